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

import copy
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

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
from sync.mapping.transforms import Ref
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


# ---- hashing ---------------------------------------------------------------------------------------


def fast_content_hash(values: dict[str, Any]) -> str:
    """`engine.content_hash` with the common case (text values) inlined; the same digest."""
    flat = {str(k): (v.strip() if type(v) is str else normal(v)) for k, v in values.items()}
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


def _fits(client: Client) -> bool:
    """What `full_clean` checks on a client the cleaners accepted: lengths, choices, required text."""
    for attname, limit in _CHAR_LIMITS:
        value = getattr(client, attname)
        if not isinstance(value, str) or len(value) > limit:
            return False
    return (
        client.kind in _KINDS
        and client.vat_mode in _VAT_MODES
        and bool(client.name.strip())
        and bool(client.country)
    )


def _all_text(data: dict[str, Any]) -> bool:
    return all(type(v) is str for v in data.values())


def _new_client(canonical: dict[str, Any]) -> Client | None:
    """The client `client_create` would save for these canonical values, or None when it might refuse
    them (then `apply_record` runs and quarantines with the hub's own reason)."""
    data = ENTITIES[ENTITY]._data(canonical)
    if not _all_text(data):
        return None
    data.setdefault("kind", "person" if len(data.get("inn") or "") == 12 else "company")
    cleaned, errors = _clean(data, _client_cleaners(data.get("country")))
    _require(cleaned, ["name"], errors)
    if errors:
        return None
    client = Client(**{k: v for k, v in cleaned.items() if k in CLIENT_FIELDS})
    _client_rules(client, errors)
    if errors or not _fits(client):
        return None
    if client.inn and client.inn != data.get("inn"):
        return None  # matching saw another INN than the one saved: let the duplicate check speak
    return client


def _changed_client(obj: Client, changes: dict[str, Any]) -> tuple[Client, dict[str, Any]] | None:
    """The client `Clients.update` ► `client_update` would save, with its change list; None when it
    might refuse them or needs its duplicate check."""
    if changes.get("archived"):
        return None
    data = ENTITIES[ENTITY]._data(changes)
    if not data:
        return obj, {}
    if not _all_text(data):
        return None
    cleaned, errors = _clean(data, _client_cleaners(data.get("country", obj.country)))
    if "name" in cleaned:
        _require(cleaned, ["name"], errors)
    if errors:
        return None
    client = copy.copy(obj)
    applied = _apply(client, cleaned, CLIENT_FIELDS)
    _client_rules(client, errors)
    if errors:
        return None
    if applied and ("inn" in applied or "kpp" in applied or not _fits(client)):
        return None
    return client, applied


# ---- one page ----------------------------------------------------------------------------------------

UNCHANGED, CONTENT_UNCHANGED, SLOW, CREATE, UPDATE = "unchanged", "content", "slow", "create", "update"


@dataclass(eq=False)
class _Item:
    record: RemoteRecord
    source: str
    canonical: dict[str, Any] | None = None
    remote_hash: str = ""
    mapped: bool = False
    broken: bool = False  # the mapping failed: apply_record quarantines it
    # set by each lookup
    way: str = SLOW
    ref: ExternalRef | None = None
    obj: Client | None = None
    client: Client | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    applied: dict[str, Any] = field(default_factory=dict)
    kept_ours: bool = False
    conflicts: list[Conflict] = field(default_factory=list)
    keys: set[tuple[str, Any]] = field(default_factory=set)


def _text_or_blank(value: Any) -> bool:
    return value is None or type(value) is str


class _Page:
    def __init__(self, ctx: Context, records: list[RemoteRecord]):
        self.ctx = ctx
        self.handler = ENTITIES[ENTITY]
        self.rules = ctx.rules_for(ENTITY)
        self.fingerprint = ctx.rules_fingerprint(ENTITY)
        self.mapper = _mapper(ctx)
        self.counts = ctx.count(ENTITY)
        self.fields_all = mapped_fields(self.rules, direction="in") | mapped_fields(
            self.rules, direction="out"
        )
        self.fields_out = mapped_fields(self.rules, direction="out")
        self.items = [_Item(r, "" if r.deleted else source_hash(r.data, self.fingerprint)) for r in records]
        self.created_ids: list[int] = []
        self.updated_ids: list[int] = []
        self.refresh_source: list[ExternalRef] = []
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

    def lookup(self, items: list[_Item]) -> None:
        """Decide each item's way against the database as it is now."""
        conn = self.ctx.connection
        refs = {
            ref.external_id: ref
            for ref in ExternalRef.objects.filter(
                connection=conn, entity=ENTITY, external_id__in=[i.record.external_id for i in items]
            ).only(
                "id",
                "external_id",
                "object_id",
                "content_hash",
                "source_hash",
                "pushed_hash",
                "deleted_at",
                "snapshot",
            )
        }
        work: list[_Item] = []
        for item in items:
            record = item.record
            item.ref = ref = refs.get(record.external_id)
            item.obj = item.client = None
            item.way = ""
            item.keys = {("ext", record.external_id)}
            if record.deleted:
                item.way = SLOW
                continue
            if ref is not None and not ref.deleted_at and ref.source_hash == item.source:
                item.way = UNCHANGED
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
                    item.keys.add((name, canonical[name].upper() if name == "email" else canonical[name]))
            work.append(item)
        self._find_objects(work)
        for item in work:
            if item.way == SLOW:
                continue
            if item.obj is None:
                item.client = _new_client(item.canonical)
                item.way = CREATE if item.client is not None else SLOW
                if item.client is not None:
                    for name in ("email", "phone"):
                        value = getattr(item.client, name)
                        if value:
                            item.keys.add((name, value.upper() if name == "email" else value))
                continue
            local = self.handler.read(item.obj)
            item.changes, item.kept_ours, item.conflicts = _plan(
                self.ctx, ENTITY, self.rules, item.record, item.obj, item.ref, item.canonical, local
            )
            planned = _changed_client(item.obj, item.changes)
            if planned is None:
                item.way = SLOW
                continue
            item.client, item.applied = planned
            item.way = UPDATE
            item.keys.add(("obj", item.obj.pk))
            for name in ("inn", "email", "phone"):
                for value in (getattr(item.obj, name), getattr(item.client, name)):
                    if value:
                        item.keys.add((name, value.upper() if name == "email" else value))

    def _find_objects(self, work: list[_Item]) -> None:
        """The hub client of each item: through its ref, else matched as `Clients.match` does."""
        live = self.handler.queryset()
        by_pk = {c.pk: c for c in live.filter(pk__in=[i.ref.object_id for i in work if i.ref is not None])}
        matching = [i for i in work if i.ref is None]
        inns = {i.canonical["inn"] for i in matching if i.canonical.get("inn")}
        emails = {i.canonical["email"].upper() for i in matching if i.canonical.get("email")}
        phones = {i.canonical["phone"] for i in matching if i.canonical.get("phone")}
        by_inn: dict[str, list[Client]] = {}
        by_email: dict[str, list[Client]] = {}
        by_phone: dict[str, list[Client]] = {}
        if inns:
            for c in live.filter(inn__in=inns).order_by("pk"):
                by_inn.setdefault(c.inn, []).append(c)
        if emails:
            for c in live.annotate(email_upper=Upper("email")).filter(email_upper__in=emails).order_by("pk"):
                by_email.setdefault(c.email_upper, []).append(c)
        if phones:
            for c in live.filter(phone__in=phones).order_by("pk"):
                by_phone.setdefault(c.phone, []).append(c)
        for item in work:
            if item.ref is not None:
                item.obj = by_pk.get(item.ref.object_id)
                if item.obj is None:
                    item.way = SLOW  # its client was merged away or deleted: match it record by record
                continue
            found, ambiguous = _match(item.canonical, by_inn, by_email, by_phone)
            if ambiguous:
                item.way = SLOW
            item.obj = found
        matched = {i.obj.pk: i for i in matching if i.obj is not None and i.way != SLOW}
        if matched:
            linked = ExternalRef.objects.filter(
                connection=self.ctx.connection, entity=ENTITY, object_id__in=list(matched)
            ).values_list("object_id", "external_id")
            for object_id, external_id in linked:
                if external_id != matched[object_id].record.external_id:
                    matched[object_id].way = SLOW  # already linked to another record: needs review
        for item in work:
            if item.way != SLOW:
                item.way = UPDATE if item.obj is not None else CREATE

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
            if item.way in (UNCHANGED, CONTENT_UNCHANGED) and ("ext", item.record.external_id) not in claimed:
                self.counts.unchanged += 1
                if item.way == CONTENT_UNCHANGED and item.ref.source_hash != item.source:
                    item.ref.source_hash = item.source
                    self.refresh_source.append(item.ref)
                continue
            if item.way in (CREATE, UPDATE) and not (item.keys & claimed):
                segment.append(item)
                claimed |= item.keys
                continue
            # the per-record path, in its place in the order
            self.flush(segment)
            segment = []
            claimed |= item.keys
            result = apply_record(self.ctx, item.record)
            if result == "quarantined":
                self.open_issues = True
            elif index < len(items):
                # it may have written what the next records match against: look them up again, and
                # what came before is in the database now, so nothing is claimed any more
                self.lookup(items[index:])
                claimed = set()
        self.flush(segment)
        if self.refresh_source:
            ExternalRef.objects.bulk_update(self.refresh_source, ["source_hash"], batch_size=1000)
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
            insert_rows(Client, [i.client for i in creates], now=now)
            self.created_ids.extend(i.client.pk for i in creates)
        written = [i for i in updates if i.applied]
        if written:
            names = sorted({name for i in written for name in i.applied} | {"updated_at"})
            for i in written:
                i.client.updated_at = now
            Client.objects.bulk_update([i.client for i in written], names, batch_size=1000)
            self.updated_ids.extend(i.client.pk for i in written)
        new_refs, old_refs = [], []
        for i in creates + updates:
            values = self._bind_values(i, now)
            if i.ref is None:
                new_refs.append(
                    ExternalRef(connection=self.ctx.connection, entity=ENTITY, external_id=i.record.external_id, **values)
                )  # fmt: skip
            else:
                for key, value in values.items():
                    setattr(i.ref, key, value)
                old_refs.append(i.ref)
        if new_refs:
            insert_rows(ExternalRef, new_refs, now=now)
        if old_refs:
            ExternalRef.objects.bulk_update(old_refs, list(_REF_VALUES), batch_size=1000)
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

    def _bind_values(self, item: _Item, now) -> dict[str, Any]:
        """What `engine._bind` stores on the ref."""
        local = self.handler.read(item.client)
        record = item.record
        values = {
            "object_id": item.client.pk,
            "content_hash": item.remote_hash,
            "source_hash": item.source,
            "snapshot": normal({k: v for k, v in local.items() if k in self.fields_all}),
            "remote_version": record.version[:64],
            "remote_updated_at": record.updated_at,
            "last_synced_at": now,
            "deleted_at": None,
        }
        if not item.kept_ours:
            values["pushed_hash"] = content_hash({k: v for k, v in local.items() if k in self.fields_out})
        elif item.ref is not None:
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


def _mapper(ctx: Context):
    if ENTITY not in ctx.mappers:
        ctx.mappers[ENTITY] = compile_canonical(ctx.rules_for(ENTITY))
    return ctx.mappers[ENTITY]


# ---- inserting many rows -------------------------------------------------------------------------


def insert_rows(model: type[models.Model], objs: Iterable[models.Model], *, now) -> None:
    """Insert new rows and set their primary keys: COPY on PostgreSQL (ids drawn from the table's
    sequence first), `bulk_create` elsewhere."""
    objs = list(objs)
    fields = list(model._meta.concrete_fields)
    for f in fields:
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            for obj in objs:
                setattr(obj, f.attname, now)
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs, batch_size=500)
        return
    table = model._meta.db_table
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, model._meta.pk.column, len(objs)],
        )
        for obj, (pk,) in zip(objs, cursor.fetchall(), strict=True):
            obj.pk = pk
        columns = ", ".join(quote(f.column) for f in fields)
        getters = [(f.attname, isinstance(f, models.JSONField)) for f in fields]
        with cursor.cursor.copy(f"COPY {quote(table)} ({columns}) FROM STDIN") as copy_in:
            write = copy_in.write_row
            for obj in objs:
                values = obj.__dict__
                write(
                    [
                        json.dumps(values[name]) if is_json and values[name] is not None else values[name]
                        for name, is_json in getters
                    ]
                )
