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
import copy
import gc
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from types import MappingProxyType, SimpleNamespace
from typing import Any

import phonenumbers
from django.conf import settings
from django.db import DataError, IntegrityError, connection, models, transaction
from django.db.models.functions import Upper
from django.utils import timezone

from hub.events import event_record
from hub.models import Client, ClientKind, VatMode
from hub.services import CLIENT_FIELDS, _apply, _clean, _client_cleaners, _client_rules, _require
from sync.connectors.base import RemoteRecord
from sync.engine import (
    Context,
    _plan,
    apply_record,
    content_hash,
    mapped_fields,
    normal,
    source_hash,
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


def apply_page(ctx: Context, page: list[RemoteRecord]) -> None:
    """Bring one page of client records into the hub (see the module docstring)."""
    counts = ctx.count(ENTITY)
    before = dict(vars(counts))
    try:
        with transaction.atomic():
            _Page(ctx, page).run()
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
    flat = fast_normal(values)
    blob = json.dumps(flat, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


# ---- validation: the hub's client_create / client_update, without writing ----------------------------

_CHAR_LIMITS = [
    (f.attname, f.max_length)
    for f in Client._meta.concrete_fields
    if isinstance(f, models.CharField) and f.max_length and f.attname in CLIENT_FIELDS
]
_KINDS = set(ClientKind.values)
_VAT_MODES = set(VatMode.values) | {""}
_CLIENT_ROW = {f.attname: f.get_default() for f in Client._meta.concrete_fields}
_INVALID_PHONE = "Not a valid phone number for its country."


def _fits(values: Mapping[str, Any]) -> bool:
    """What `full_clean` checks on a client the cleaners accepted: lengths, choices, required text."""
    for attname, limit in _CHAR_LIMITS:
        value = values[attname]
        if not isinstance(value, str) or len(value) > limit:
            return False
    return (
        values["kind"] in _KINDS
        and values["vat_mode"] in _VAT_MODES
        and bool(values["name"].strip())
        and bool(values["country"])
    )


def _all_text(data: dict[str, Any]) -> bool:
    return all(type(v) is str for v in data.values())


class _Validator:
    """The hub's client cleaners and rules (`client_create` / `client_update`), without writing. A
    phone the mapping has just parsed (`phone_parse`) is checked on its parsed number: what
    `normalize_phone` would find parsing its E.164 text again, at half the cost."""

    def __init__(self, phones: dict[str, Any]):
        self.phones = phones
        self.by_country: dict[Any, dict[str, Any]] = {}

    def cleaners(self, country: Any) -> dict[str, Any]:
        if country not in self.by_country:  # text or None: the values were checked to be text
            self.by_country[country] = self._cleaners(country)
        return self.by_country[country]

    def _cleaners(self, country: Any) -> dict[str, Any]:
        cleaners = _client_cleaners(country)
        parse_again = cleaners["phone"]
        phones = self.phones

        def phone(value: Any) -> Any:
            number = phones.get(value) if type(value) is str else None
            if number is None:
                return parse_again(value)
            if not phonenumbers.is_valid_number(number):
                raise ValueError(_INVALID_PHONE)
            return value

        cleaners["phone"] = phone
        return cleaners

    def new_row(self, canonical: dict[str, Any]) -> dict[str, Any] | None:
        """The row `Clients.create` ► `client_create` would insert, or None when it might refuse it
        (then `apply_record` runs and quarantines with the hub's own reason)."""
        data = ENTITIES[ENTITY]._data(canonical)
        if not _all_text(data):
            return None
        data.setdefault("kind", "person" if len(data.get("inn") or "") == 12 else "company")
        cleaned, errors = _clean(data, self.cleaners(data.get("country")))
        _require(cleaned, ["name"], errors)
        if errors:
            return None
        row = dict(_CLIENT_ROW)
        for key, value in cleaned.items():
            if key not in CLIENT_FIELDS or key not in row:
                return None
            row[key] = value
        _client_rules(SimpleNamespace(**row), errors)
        if errors or not _fits(row):
            return None
        if row["inn"] and row["inn"] != data.get("inn"):
            return None  # matching saw another INN than the one saved: let the duplicate check speak
        return row

    def changed(self, obj: Client, changes: dict[str, Any]) -> tuple[Client, dict[str, Any]] | None:
        """The client `Clients.update` ► `client_update` would save, with its change list; None when
        it might refuse it or needs its duplicate check."""
        if changes.get("archived"):
            return None
        data = ENTITIES[ENTITY]._data(changes)
        if not data:
            return obj, {}
        if not _all_text(data):
            return None
        cleaned, errors = _clean(data, self.cleaners(data.get("country", obj.country)))
        if "name" in cleaned:
            _require(cleaned, ["name"], errors)
        if errors:
            return None
        client = copy.copy(obj)
        applied = _apply(client, cleaned, CLIENT_FIELDS)
        _client_rules(client, errors)
        if errors:
            return None
        if applied and ("inn" in applied or "kpp" in applied or not _fits(vars(client))):
            return None
        return client, applied


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
    deleted_at: Any


class _Item:
    """One record of the page and what the lookup decided for it."""

    __slots__ = (
        "applied",
        "broken",
        "canonical",
        "changes",
        "client",
        "conflicts",
        "kept_ours",
        "keys",
        "mapped",
        "obj",
        "record",
        "ref",
        "remote_hash",
        "row",
        "source",
        "way",
    )  # fmt: skip

    def __init__(self, record: RemoteRecord, source: str):
        self.record = record
        self.source = source
        self.canonical: dict[str, Any] | None = None
        self.remote_hash = ""
        self.mapped = False
        self.broken = False  # the mapping failed: apply_record quarantines it
        self.way = SLOW
        self.ref: _RefRow | ExternalRef | None = None
        self.obj: Client | None = None  # the hub client it updates
        self.row: dict[str, Any] | None = None  # or the new client's row
        self.client: Client | None = None  # the hub client as changed
        self.changes: Mapping[str, Any] = _NOTHING  # (replaced, never changed in place)
        self.applied: Mapping[str, Any] = _NOTHING
        self.kept_ours = False
        self.conflicts: Sequence[Conflict] = ()
        self.keys: AbstractSet[tuple[str, Any]] = frozenset()


_NOTHING: Mapping[str, Any] = MappingProxyType({})


def _text_or_blank(value: Any) -> bool:
    return value is None or type(value) is str


def _key(name: str, value: str) -> tuple[str, str]:
    return (name, value.upper() if name == "email" else value)


class _Page:
    def __init__(self, ctx: Context, records: list[RemoteRecord]):
        self.ctx = ctx
        self.handler = ENTITIES[ENTITY]
        self.rules = ctx.rules_for(ENTITY)
        self.fingerprint = ctx.rules_fingerprint(ENTITY)
        self.mapper, self.phones = _mapper(ctx)
        self.phones.clear()
        self.validator = _Validator(self.phones)
        self.counts = ctx.count(ENTITY)
        self.fields_all = mapped_fields(self.rules, direction="in") | mapped_fields(
            self.rules, direction="out"
        )
        self.fields_out = mapped_fields(self.rules, direction="out")
        self.empty_out_hash = content_hash({})
        self.items = [_Item(r, "" if r.deleted else source_hash(r.data, self.fingerprint)) for r in records]
        self.created_ids: list[int] = []
        self.updated_ids: list[int] = []
        self.refresh_source: list[tuple[str, int]] = []
        self.open_issues = SyncIssue.objects.filter(
            connection=ctx.connection, entity=ENTITY, status=IssueStatus.OPEN
        ).exists()

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
        item.remote_hash = fast_content_hash(item.canonical)

    def _refs(self, items: list[_Item]) -> dict[str, _RefRow]:
        in_sql, params = _in("external_id", [i.record.external_id for i in items])
        rows = _select(
            "SELECT id, external_id, object_id, content_hash, source_hash, deleted_at "
            f"FROM {ExternalRef._meta.db_table} WHERE connection_id = %s AND entity = %s AND {in_sql}",
            [self.ctx.connection.pk, ENTITY, *params],
        )
        return {row[1]: _RefRow(*row) for row in rows}

    def lookup(self, items: list[_Item]) -> None:
        """Decide each item's way against the database as it is now."""
        refs = self._refs(items)
        work: list[_Item] = []
        for item in items:
            record = item.record
            item.ref = ref = refs.get(record.external_id)
            if (
                ref is not None
                and ref.source_hash == item.source
                and not ref.deleted_at
                and not record.deleted
            ):
                item.way = UNCHANGED
                continue
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
                in_sql, params = _in(column, list(values))
                ids.update(
                    row[0]
                    for row in _select(
                        f"SELECT id FROM {table} WHERE merged_into_id IS NULL AND {in_sql}", params
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

    def run(self) -> None:
        items = self.items
        self.lookup(items)
        claimed: set[tuple[str, Any]] = set()
        segment: list[_Item] = []
        index = 0
        while index < len(items):
            item = items[index]
            index += 1
            if item.way in (UNCHANGED, CONTENT_UNCHANGED) and (
                not claimed or ("ext", item.record.external_id) not in claimed
            ):
                self.counts.unchanged += 1
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
        values = {
            "connection_id": self.ctx.connection.pk,
            "entity": ENTITY,
            "external_id": record.external_id,
            "object_id": object_id,
            "content_hash": item.remote_hash,
            "source_hash": item.source,
            "snapshot": fast_normal({k: v for k, v in local.items() if k in self.fields_all}),
            "remote_version": record.version[:64],
            "remote_updated_at": record.updated_at,
            "last_synced_at": now,
            "deleted_at": None,
        }
        if not kept_ours:
            out = {k: v for k, v in local.items() if k in self.fields_out}
            values["pushed_hash"] = content_hash(out) if out else self.empty_out_hash
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


# ---- SQL for many rows -------------------------------------------------------------------------------


def _in(column: str, values: list[Any]) -> tuple[str, list[Any]]:
    """`column IN values`: one array parameter on PostgreSQL, a parameter each elsewhere."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [values]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


def _select(sql: str, params: list[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def insert_rows(model: type[models.Model], rows: list[dict[str, Any]], *, now) -> None:
    """Insert rows (dicts by attname; missing columns take the field default) and set each row's "id":
    COPY on PostgreSQL with ids drawn from the table's sequence first, `bulk_create` elsewhere."""
    fields = list(model._meta.concrete_fields)
    defaults = {f.attname: f.get_default() for f in fields if f.attname != "id"}
    stamps = [f.attname for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    for row in rows:
        for name, value in defaults.items():
            row.setdefault(name, value)
        for name in stamps:
            row[name] = now
    if connection.vendor != "postgresql":
        objs = [model(**row) for row in rows]
        model.objects.bulk_create(objs, batch_size=500)
        for row, obj in zip(rows, objs, strict=True):
            row["id"] = obj.pk
        return
    table = model._meta.db_table
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, model._meta.pk.column, len(rows)],
        )
        for row, (pk,) in zip(rows, cursor.fetchall(), strict=True):
            row["id"] = pk
        columns = ", ".join(quote(f.column) for f in fields)
        jsons = {f.attname for f in fields if isinstance(f, models.JSONField)}
        names = [f.attname for f in fields]
        with cursor.cursor.copy(f"COPY {quote(table)} ({columns}) FROM STDIN") as copy_in:
            write = copy_in.write_row
            if not jsons:
                for row in rows:
                    write([row[name] for name in names])
                return
            for row in rows:
                write([json.dumps(row[n]) if n in jsons and row[n] is not None else row[n] for n in names])


def update_rows(model: type[models.Model], objs: list[models.Model], names: Iterable[str]) -> None:
    """`UPDATE ... SET <names> WHERE id` for each object, as one batch (`executemany`: pipelined on
    PostgreSQL); cheaper than `bulk_update`'s CASE per field and row."""
    fields = [model._meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    sets = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    params = [
        [*(f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields), obj.pk] for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {quote(model._meta.db_table)} SET {sets} WHERE id = %s", params)
