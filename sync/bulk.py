"""The set-based pull of a page of clients: what `engine.apply_record` does record by record, for a
whole page in a few statements, with the same results (counts, clients, ExternalRefs, conflicts,
quarantine, matching order).

How a page goes:

1. One query reads the page's ExternalRefs. A record whose source hash (the raw record under the
   mapping, `engine.source_hash`) or, once mapped, content hash equals its ref's is unchanged and
   touches nothing (at most its ref's source hash is refreshed).
2. The others are mapped with precompiled rules, validated with the hub's own cleaners and rules
   (`hub.services` / `hub.requisites`), and matched for the whole page at once: the ref's client,
   else INN(+KPP) ► e-mail ► phone, exactly as `Clients.match` orders them.
3. The page is walked in order. A record takes the bulk way only when it is on the happy path and
   no earlier record of the page shares its external id, INN, e-mail, phone or hub client. Anything
   else (invalid, ambiguous, archived, a tombstone, a reference to resolve, a clash inside the page,
   a duplicate INN to report) goes through `apply_record` at its place in the order, after the bulk
   records before it are written, so reasons and outcomes are the per-record path's own; when such
   a record wrote something, the rest of the page is looked up again.
4. Writes: new clients and refs by COPY on PostgreSQL (ids drawn from the sequence first; Django
   `bulk_create` elsewhere), changed clients and refs by `bulk_update`, conflicts by `bulk_create`,
   open issues of applied records resolved in one statement, and **one `clients.synced` DomainEvent
   per page** (origin `sync:<connection>`, payload `{"created": [ids], "updated": [ids]}`) instead of
   one `client.created` / `client.updated` per record. Records that went through `apply_record`
   keep their per-record events.
5. Database constraints stay the last guard: an IntegrityError (or DataError) rolls the page's
   savepoint back and the page is applied record by record.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, connection, transaction
from django.db.models.functions import Upper
from django.utils import timezone

from hub.events import event_record
from hub.models import Client
from sync.bulk_checks import ClientChecks
from sync.bulk_sql import ids_in_c_order, in_clause, insert_rows, select, update_rows
from sync.connectors.base import RemoteRecord
from sync.engine import (
    Context,
    _plan,
    apply_record,
    content_hash,
    mapped_fields,
    normal,
    record_source_hash,
)
from sync.entities import ENTITIES
from sync.mapping.mapper import compile_canonical
from sync.mapping.transforms import Ref, phone_parse
from sync.models import Conflict, ExternalRef, IssueStatus, SyncIssue

logger = logging.getLogger("sync.bulk")

ENTITY = "clients"
BATCH_EVENT = "clients.synced"
DEFAULT_MIN_RECORDS = 100


def takes(stream: str, page: list[RemoteRecord]) -> bool:
    """Whether a page goes the bulk way: clients, and enough of them to be worth it (small pages,
    e.g. webhook-driven runs, keep one event per client)."""
    minimum = getattr(settings, "SYNC_BULK_MIN_RECORDS", DEFAULT_MIN_RECORDS)
    return stream == ENTITY and len(page) >= minimum


def preparer(ctx: Context, stream: str) -> Callable[[list[RemoteRecord]], Any] | None:
    """What a page reader may compute ahead for `apply_page`, with no database: the page's items with
    each record's source hash, and whether the page may be told unchanged by one count (no tombstone,
    no external id twice). The rules are read here, in the caller's thread."""
    if stream != ENTITY:
        return None
    fingerprint = ctx.rules_fingerprint(ENTITY)

    def prepare(page: list[RemoteRecord]) -> tuple[list[_Item], bool]:
        items = [_Item(r, "" if r.deleted else record_source_hash(r, fingerprint)) for r in page]
        return items, _plain(page)

    return prepare


def _plain(page: list[RemoteRecord]) -> bool:
    """No tombstone and each external id once: the page may be told unchanged by `_Page.differing`."""
    return not any(r.deleted for r in page) and len({r.external_id for r in page}) == len(page)


def apply_page(ctx: Context, page: list[RemoteRecord], prepared: Any = None) -> None:
    """Bring one page of client records into the hub (see the module docstring). `prepared`: what
    the page reader computed ahead (`preparer`), used once."""
    counts = ctx.count(ENTITY)
    before = dict(vars(counts))
    items, plain = prepared or (None, _plain(page))
    work = _Page(ctx, page, items)
    differing, refs = work.differing() if plain else (None, None)
    if differing is not None and not differing:  # every record has its ref, and none differs
        counts.unchanged += len(page)
        return
    work.lookup(work.items, differing, refs)  # reads only
    if all(i.way == UNCHANGED for i in work.items):  # nothing to write: no savepoint either
        counts.unchanged += len(work.items)
        return
    try:
        with transaction.atomic():
            work.run(looked_up=True)
    except (IntegrityError, DataError) as exc:
        vars(counts).update(before)
        logger.warning(
            "bulk page of %s refused by the database (%s); applying it record by record",
            len(page),
            str(exc).splitlines()[0],
            extra={"connection": ctx.connection.name},
        )
        for record in page:
            apply_record(ctx, record)


def settle(ctx: Context, stream: str) -> None:
    """After a pull that wrote many clients (`SYNC_VACUUM_AFTER`, default 10,000; 0: never), vacuum and
    analyze the clients and refs tables, outside any transaction (PostgreSQL). The next lookups then
    read the refs by an index-only scan and are planned on true row counts at once, instead of after
    autovacuum catches up (minutes later, or never where it is off). It costs ~0.3 s per 100,000."""
    counts = ctx.count(stream)
    threshold = settings.SYNC_VACUUM_AFTER
    if (
        stream != ENTITY
        or ctx.dry_run
        or not threshold
        or counts.created + counts.updated < threshold
        or connection.vendor != "postgresql"
        or connection.in_atomic_block
    ):
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {ExternalRef._meta.db_table}, {Client._meta.db_table}")
    except DatabaseError as exc:  # maintenance only: the pull itself is done and committed
        logger.warning("could not vacuum after the pull: %s", exc, extra={"connection": ctx.connection.name})


@contextlib.contextmanager
def fewer_collections(allocations: int = 100_000) -> Iterator[None]:
    """Pulling a stream allocates a dozen objects per record (read, mapped, decided) and drops them
    page by page, none in cycles; with the default threshold (700 allocations) the cyclic collector
    walks the whole heap again and again meanwhile, which costs more than everything else an
    unchanged record needs. Collect less often while a stream is pulled (restored after)."""
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], allocations), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


# ---- hashing ---------------------------------------------------------------------------------------


def fast_normal(values: Mapping[str, Any]) -> dict[str, Any]:
    """`engine.normal` of a flat mapping, with the common case (text values) inlined."""
    return {str(k): (v.strip() if type(v) is str else normal(v)) for k, v in values.items()}


def fast_content_hash(values: Mapping[str, Any]) -> str:
    """`engine.content_hash` with the common case (text values) inlined; the same digest."""
    return flat_hash(fast_normal(values))


def flat_hash(flat: dict[str, Any]) -> str:
    """`engine.content_hash` of values already in normal form (`fast_normal`)."""
    blob = json.dumps(flat, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


# ---- one page ----------------------------------------------------------------------------------------

UNCHANGED, CONTENT_UNCHANGED, SLOW, CREATE, UPDATE = "unchanged", "content", "slow", "create", "update"


@dataclass(eq=False, slots=True)
class _RefRow:
    """The columns of an ExternalRef the unchanged test needs (the full row is read only to update)."""

    pk: int
    external_id: str
    object_id: int
    content_hash: str
    source_hash: str
    deleted_at: Any  # truthy when the ref is a tombstone

    @classmethod
    def of(cls, external_id: str, found: tuple[str, bool, int]) -> _RefRow:
        """From a `_Page._refs` row (`object_id` and `content_hash` are read later, by `_details`)."""
        source, deleted, pk = found
        return cls(pk, external_id, 0, "", source, deleted)


_NOTHING: Mapping[str, Any] = MappingProxyType({})


class _Item:
    """One record of the page and what the lookup decided for it. The class holds each attribute's
    starting value (all immutable), so making an item sets two attributes, not seventeen: most items
    of a page are unchanged and need nothing else."""

    canonical: dict[str, Any] | None = None
    remote_hash = ""
    flat: dict[str, Any] | None = None  # the canonical record in normal form
    mapped = False
    broken = False  # the mapping failed: apply_record quarantines it
    way = SLOW
    ref: _RefRow | ExternalRef | None = None
    obj: Client | None = None  # the hub client it updates
    row: dict[str, Any] | None = None  # or the new client's row
    client: Client | None = None  # the hub client as changed
    changes: Mapping[str, Any] = _NOTHING  # (replaced, never changed in place)
    applied: Mapping[str, Any] = _NOTHING
    kept_ours = False
    conflicts: Sequence[Conflict] = ()
    keys: AbstractSet[tuple[str, Any]] = frozenset()

    def __init__(self, record: RemoteRecord, source: str):
        self.record = record
        self.source = source


def _text_or_blank(value: Any) -> bool:
    return value is None or type(value) is str


def _key(name: str, value: str) -> tuple[str, str]:
    return (name, value.upper() if name == "email" else value)


class _Page:
    def __init__(self, ctx: Context, records: list[RemoteRecord], items: list[_Item] | None = None):
        self.ctx = ctx
        self.records = records
        self.handler = ENTITIES[ENTITY]
        self.rules = ctx.rules_for(ENTITY)
        self.fingerprint = ctx.rules_fingerprint(ENTITY)
        self.mapper, self.phones = _mapper(ctx)
        self.phones.clear()
        self.validator = ClientChecks(self.phones)
        self.counts = ctx.count(ENTITY)
        self.fields_all = mapped_fields(self.rules, direction="in") | mapped_fields(
            self.rules, direction="out"
        )
        self.fields_out = mapped_fields(self.rules, direction="out")
        self.empty_out_hash = content_hash({})
        self.items = items or [
            _Item(r, "" if r.deleted else record_source_hash(r, self.fingerprint)) for r in records
        ]
        self.created_ids: list[int] = []
        self.updated_ids: list[int] = []
        self.refresh_source: list[tuple[str, int]] = []
        self._open_issues: bool | None = None  # read at the first write

    @property
    def open_issues(self) -> bool:
        if self._open_issues is None:
            self._open_issues = SyncIssue.objects.filter(
                connection=self.ctx.connection, entity=ENTITY, status=IssueStatus.OPEN
            ).exists()
        return self._open_issues

    @open_issues.setter
    def open_issues(self, value: bool) -> None:
        self._open_issues = value

    # -- lookups (no writes) --------------------------------------------------------------------------

    def _map(self, item: _Item) -> None:
        if item.mapped:
            return
        item.mapped = True
        try:
            item.canonical = self.mapper(item.record.data)
        except Exception:  # apply_record reports (or raises) it for this record
            item.broken = True
            return
        item.flat = fast_normal(item.canonical)
        item.remote_hash = flat_hash(item.flat)

    def _refs(self, items: list[_Item]) -> dict[str, tuple[str, bool, int]]:
        """The page's refs by external id: (source hash, tombstoned, pk), what the unchanged test
        needs (`_details` reads `object_id` and `content_hash` for the few that are not unchanged)."""
        where, params = self._where([i.record.external_id for i in items])
        rows = select(
            f"SELECT external_id, source_hash, deleted_at IS NOT NULL, id FROM {ExternalRef._meta.db_table} "
            f"WHERE {where}",
            params,
        )
        return {row[0]: row[1:] for row in rows}

    def _where(self, external: list[str]) -> tuple[str, list[Any]]:
        """The condition for this connection's client refs with these external ids. Where the ids
        compare byte by byte (`ids_in_c_order`) it also bounds them by the lowest and highest, so
        the index is read over that range only (a page of ids in sequence: a tenth of 100,000)."""
        in_sql, params = in_clause("external_id", external)
        where = f"connection_id = %s AND entity = %s AND {in_sql}"
        if external and ids_in_c_order(ExternalRef):
            return f"{where} AND external_id >= %s AND external_id <= %s", [
                self.ctx.connection.pk, ENTITY, *params, min(external), max(external)
            ]  # fmt: skip
        return where, [self.ctx.connection.pk, ENTITY, *params]

    def differing(self) -> tuple[dict[str, tuple[str, bool, int]] | None, dict | None]:
        """For a page with each external id once and no tombstone: the refs that differ from their
        record (`_refs` rows), when every record has a ref, else None; and, when no record has one,
        the page's refs (none). One round trip that returns only what differs: an unchanged page
        costs a count, and a page of new records needs no other lookup of refs."""
        items = self.items
        external = [r.external_id for r in self.records]
        where, params = self._where(external)
        # an external id and its source hash (fixed length) joined: equal texts, equal pairs
        pairs_sql, pairs = in_clause(
            "(external_id || %s || source_hash)",
            [e + "\x1e" + i.source for e, i in zip(external, items, strict=True)],
        )
        table = ExternalRef._meta.db_table
        rows = select(
            f"WITH found AS (SELECT id, external_id, source_hash, deleted_at FROM {table} WHERE {where}) "
            "SELECT external_id, source_hash, deleted_at IS NOT NULL, id FROM found "
            f"WHERE deleted_at IS NOT NULL OR NOT {pairs_sql} "
            "UNION ALL SELECT NULL, NULL, NULL, COUNT(*) FROM found",
            [*params, "\x1e", *pairs],
        )
        (found,) = [row[3] for row in rows if row[0] is None]  # the count (an external id is never NULL)
        if found == 0:
            return None, {}
        if found != len(items):
            return None, None  # some records have no ref yet: the full lookup tells which
        return {row[0]: row[1:] for row in rows if row[0] is not None}, None

    @staticmethod
    def _details(refs: list[_RefRow]) -> None:
        in_sql, params = in_clause("id", [r.pk for r in refs])
        rows = select(
            f"SELECT id, object_id, content_hash FROM {ExternalRef._meta.db_table} WHERE {in_sql}", params
        )
        by_pk = {pk: (object_id, content) for pk, object_id, content in rows}
        for ref in refs:
            ref.object_id, ref.content_hash = by_pk[ref.pk]

    def lookup(
        self,
        items: list[_Item],
        differing: dict[str, tuple[str, bool, int]] | None = None,
        refs: dict[str, tuple[str, bool, int]] | None = None,
    ) -> None:
        """Decide each item's way against the database as it is now (`differing` and `refs`: what
        `differing` found, when it was asked)."""
        if differing is not None:
            # (a plain page: each external id once) all unchanged but the few that differ
            for item in items:
                item.way = UNCHANGED
            position = {item.record.external_id: n for n, item in enumerate(items)}
            rest = [items[n] for n in sorted(position[external] for external in differing)]
            for item in rest:
                item.ref = _RefRow.of(item.record.external_id, differing[item.record.external_id])
        else:
            rest = self._decide_by_refs(items, self._refs(items) if refs is None else refs)
        self._lookup_rest(rest)

    def _decide_by_refs(self, items: list[_Item], refs: dict[str, tuple[str, bool, int]]) -> list[_Item]:
        """Tell the items unchanged by their refs' source hashes; returns the others, in order."""
        rest: list[_Item] = []
        for item in items:
            record = item.record
            found = refs.get(record.external_id)
            if found is None:
                item.ref = None
            else:
                source, deleted, _ = found
                if source == item.source and not deleted and not record.deleted:
                    item.way, item.ref = UNCHANGED, None  # (run() only counts it)
                    continue
                item.ref = _RefRow.of(record.external_id, found)
            rest.append(item)
        return rest

    def _lookup_rest(self, rest: list[_Item]) -> None:
        """Decide the way of the items not told unchanged by their source hash."""
        if not rest:
            return
        linked = [i.ref for i in rest if i.ref is not None]
        if linked:
            self._details(linked)
        work: list[_Item] = []
        for item in rest:
            record = item.record
            ref = item.ref
            item.obj = item.client = item.row = None
            item.way = ""
            item.keys = {("ext", record.external_id)}
            if record.deleted:
                item.way = SLOW
                continue
            self._map(item)
            if item.broken:
                item.way = SLOW
                continue
            if ref is not None and not ref.deleted_at and ref.content_hash == item.remote_hash:
                item.way = CONTENT_UNCHANGED
                continue
            canonical = item.canonical
            if (
                (ref is not None and ref.deleted_at)
                or canonical.get("archived")
                or any(isinstance(v, Ref) for v in canonical.values())
                or not all(_text_or_blank(canonical.get(k)) for k in ("inn", "kpp", "email", "phone"))
                or not (canonical.get("email") or "").isascii()
            ):
                item.way = SLOW
                continue
            for name in ("inn", "email", "phone"):
                if canonical.get(name):
                    item.keys.add(_key(name, canonical[name]))
            work.append(item)
        if not work:
            return
        self._find_objects(work)
        for item in work:
            if item.way == SLOW:
                continue
            if item.obj is None:
                item.row = self.validator.new_row(item.canonical)
                if item.row is None:
                    item.way = SLOW
                    continue
                item.way = CREATE
                for name in ("email", "phone"):
                    if item.row[name]:
                        item.keys.add(_key(name, item.row[name]))
                continue
            local = self.handler.read(item.obj)
            item.changes, item.kept_ours, item.conflicts = _plan(
                self.ctx, ENTITY, self.rules, item.record, item.obj, item.ref, item.canonical, local
            )
            planned = self.validator.changed(item.obj, item.changes)
            if planned is None:
                item.way = SLOW
                continue
            item.client, item.applied = planned
            item.way = UPDATE
            item.keys.add(("obj", item.obj.pk))
            for name in ("inn", "email", "phone"):
                for value in (getattr(item.obj, name), getattr(item.client, name)):
                    if value:
                        item.keys.add(_key(name, value))

    def _find_objects(self, work: list[_Item]) -> None:
        """The hub client of each item: through its ref, else matched as `Clients.match` does."""
        live = self.handler.queryset()
        linked = [i for i in work if i.ref is not None]
        if linked:
            full = ExternalRef.objects.in_bulk([i.ref.pk for i in linked])
            by_pk = {c.pk: c for c in live.filter(pk__in=[i.ref.object_id for i in linked])}
            for item in linked:
                item.ref = full[item.ref.pk]
                item.obj = by_pk.get(item.ref.object_id)
                # no client behind the ref (merged away): apply_record matches it again
                item.way = UPDATE if item.obj is not None else SLOW
        matching = [i for i in work if i.ref is None]
        if not matching:
            return
        table = Client._meta.db_table
        ids: set[int] = set()
        for column, values in (
            ("inn", {i.canonical["inn"] for i in matching if i.canonical.get("inn")}),
            ("UPPER(email)", {i.canonical["email"].upper() for i in matching if i.canonical.get("email")}),
            ("phone", {i.canonical["phone"] for i in matching if i.canonical.get("phone")}),
        ):
            if values:
                in_sql, params = in_clause(column, list(values))
                ids.update(
                    row[0]
                    for row in select(
                        f"SELECT id FROM {table} WHERE merged_into_id IS NULL AND {in_sql}",
                        params,
                        probe=True,
                    )
                )
        by_inn: dict[str, list[Client]] = {}
        by_email: dict[str, list[Client]] = {}
        by_phone: dict[str, list[Client]] = {}
        if ids:
            candidates = live.filter(pk__in=ids).annotate(email_upper=Upper("email")).order_by("pk")
            for c in candidates:
                if c.inn:
                    by_inn.setdefault(c.inn, []).append(c)
                if c.email:
                    by_email.setdefault(c.email_upper, []).append(c)
                if c.phone:
                    by_phone.setdefault(c.phone, []).append(c)
        matched: dict[int, _Item] = {}
        for item in matching:
            item.obj, ambiguous = _match(item.canonical, by_inn, by_email, by_phone)
            if ambiguous:
                item.way, item.obj = SLOW, None
            elif item.obj is not None:
                item.way = UPDATE
                matched[item.obj.pk] = item
            else:
                item.way = CREATE
        if matched:
            refs = ExternalRef.objects.filter(
                connection=self.ctx.connection, entity=ENTITY, object_id__in=list(matched)
            ).values_list("object_id", "external_id")
            for object_id, external_id in refs:
                if external_id != matched[object_id].record.external_id:
                    matched[object_id].way = SLOW  # already linked to another record: needs review

    # -- the walk -------------------------------------------------------------------------------------

    def run(self, *, looked_up: bool = False) -> None:
        items = self.items
        if not looked_up:
            self.lookup(items)
        claimed: set[tuple[str, Any]] = set()
        segment: list[_Item] = []
        index = unchanged = 0
        while index < len(items):
            item = items[index]
            index += 1
            if item.way in (UNCHANGED, CONTENT_UNCHANGED) and (
                not claimed or ("ext", item.record.external_id) not in claimed
            ):
                unchanged += 1  # (added to the counts after the walk)
                if item.way == CONTENT_UNCHANGED and item.ref.source_hash != item.source:
                    self.refresh_source.append((item.source, item.ref.pk))
                continue
            if item.way in (CREATE, UPDATE) and not (item.keys & claimed):
                segment.append(item)
                claimed |= item.keys
                continue
            # the per-record path, in its place in the order
            self.flush(segment)
            segment = []
            claimed |= item.keys or {("ext", item.record.external_id)}
            result = apply_record(self.ctx, item.record)
            if result == "quarantined":
                self.open_issues = True
            elif index < len(items):
                # it may have written what the next records match against: look them up again; what
                # came before is in the database now, so nothing is claimed any more
                self.lookup(items[index:])
                claimed = set()
        self.flush(segment)
        self.counts.unchanged += unchanged
        if self.refresh_source:
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"UPDATE {ExternalRef._meta.db_table} SET source_hash = %s WHERE id = %s",
                    self.refresh_source,
                )
        if self.created_ids or self.updated_ids:
            event_record(
                type=BATCH_EVENT,
                instance=self.ctx.connection,
                payload={"created": self.created_ids, "updated": self.updated_ids},
                origin=self.ctx.origin,
            )

    # -- writes ---------------------------------------------------------------------------------------

    def flush(self, segment: list[_Item]) -> None:
        if not segment:
            return
        now = timezone.now()
        creates = [i for i in segment if i.way == CREATE]
        updates = [i for i in segment if i.way == UPDATE]
        conflicts = [c for i in updates for c in i.conflicts]
        if conflicts:
            self.counts.conflicts += len(conflicts)
            Conflict.objects.bulk_create(conflicts, batch_size=1000)
        if creates:
            insert_rows(Client, [i.row for i in creates], now=now)
            self.created_ids.extend(i.row["id"] for i in creates)
        written = [i for i in updates if i.applied]
        if written:
            names = sorted({name for i in written for name in i.applied} | {"updated_at"})
            for i in written:
                i.client.updated_at = now
            update_rows(Client, [i.client for i in written], names)
            self.updated_ids.extend(i.client.pk for i in written)
        new_refs, old_refs = [], []
        for i in creates:
            values = self._bind_values(i, i.row["id"], {f: i.row[f] for f in self.handler.fields}, False, now)
            new_refs.append(values)
        for i in updates:
            values = self._bind_values(i, i.client.pk, self.handler.read(i.client), i.kept_ours, now)
            if i.ref is None:
                new_refs.append(values)
            else:
                for key, value in values.items():
                    setattr(i.ref, key, value)
                old_refs.append(i.ref)
        if new_refs:
            insert_rows(ExternalRef, new_refs, now=now)
        if old_refs:
            update_rows(ExternalRef, old_refs, _REF_VALUES)
        self.counts.created += len(creates)
        for i in updates:
            if i.changes:
                self.counts.updated += 1
            else:
                self.counts.unchanged += 1
        if self.open_issues:
            SyncIssue.objects.filter(
                connection=self.ctx.connection,
                entity=ENTITY,
                status=IssueStatus.OPEN,
                external_id__in=[i.record.external_id for i in segment],
            ).exclude(kind="push").update(status=IssueStatus.RESOLVED, resolved_at=now)

    def _bind_values(self, item: _Item, object_id: int, local: dict[str, Any], kept_ours: bool, now) -> dict:
        """What `engine._bind` stores on the ref (`local`: the client as `Clients.read` gives it)."""
        if "archived" not in local:
            local["archived"] = False  # a new client (archived ones go record by record)
        record = item.record
        snapshot = fast_normal({k: v for k, v in local.items() if k in self.fields_all})
        values = {
            "connection_id": self.ctx.connection.pk,
            "entity": ENTITY,
            "external_id": record.external_id,
            "object_id": object_id,
            "content_hash": item.remote_hash,
            "source_hash": item.source,
            "snapshot": snapshot,
            "remote_version": record.version[:64],
            "remote_updated_at": record.updated_at,
            "last_synced_at": now,
            "deleted_at": None,
        }
        if not kept_ours:
            # what `content_hash` of the outbound fields gives, hashed only when it differs from the
            # remote record's (usually it is the record as received: its hash is known)
            out = {k: v for k, v in snapshot.items() if k in self.fields_out}
            if not out:
                values["pushed_hash"] = self.empty_out_hash
            else:
                values["pushed_hash"] = item.remote_hash if out == item.flat else flat_hash(out)
        elif item.ref is None:
            values["pushed_hash"] = ""
        else:
            values["pushed_hash"] = item.ref.pushed_hash
        return values


_REF_VALUES = (
    "object_id", "content_hash", "source_hash", "snapshot", "remote_version", "remote_updated_at",
    "last_synced_at", "deleted_at", "pushed_hash",
)  # fmt: skip


def _match(
    canonical: dict[str, Any],
    by_inn: dict[str, list[Client]],
    by_email: dict[str, list[Client]],
    by_phone: dict[str, list[Client]],
) -> tuple[Client | None, bool]:
    """`Clients.match` over prefetched candidates: (the client, whether the match is ambiguous)."""
    inn = canonical.get("inn")
    if inn:
        candidates = by_inn.get(inn, [])
        if canonical.get("kpp"):
            exact = [c for c in candidates if c.kpp == canonical["kpp"]]
            if len(exact) > 1:
                return None, True
            if exact:
                return exact[0], False
        if len(candidates) > 1:
            return None, True
        if candidates:
            return candidates[0], False
    for name, pool in (("email", by_email), ("phone", by_phone)):
        value = canonical.get(name)
        if value:
            candidates = pool.get(value.upper() if name == "email" else value, [])
            if len(candidates) > 1:
                return None, True
            if candidates:
                return candidates[0], False
    return None, False


def _mapper(ctx: Context) -> tuple[Any, dict[str, Any]]:
    """The connection's compiled client mapping and the side table where its phone transform leaves
    each parsed number (keyed by the E.164 text it returned)."""
    if ENTITY not in ctx.mappers:
        phones: dict[str, Any] = {}

        def phone_in(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
            text, number = phone_parse(value, params)
            if number is not None:
                phones[text] = number
            return text

        ctx.mappers[ENTITY] = (compile_canonical(ctx.rules_for(ENTITY), inbound={"phone": phone_in}), phones)
    return ctx.mappers[ENTITY]
