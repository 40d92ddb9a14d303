"""The synchronizer: connector (adapter) ► mapper ► binder ► hub services, for one connection.

Pull, per stream in reference order: fetch changes since the stored cursor; per page of records, in one
transaction: map, validate, resolve references, match (ExternalRef ► INN(+KPP) ► e-mail ► phone),
compare with what was last synced (content hash, then field by field against the snapshot), resolve
conflicts by field ownership and the connection's policy, write through services (each write records
its DomainEvent, origin `sync:<connection>`), update the ExternalRefs, store the cursor (capped at the
run's start). A record that fails is quarantined (SyncIssue) inside its own savepoint; the page goes on.
A large page of clients takes the set-based way (`sync.bulk`): the same outcomes, a few statements per
page and one `clients.synced` event per page instead of one event per client.

Push, per stream the connector can write: hub objects changed since the push cursor whose outbound
content differs from what this connection last saw (hash), never the change that came from it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from hub.errors import ApplicationError
from sync.connectors.base import Connector, ConnectorError, RecordError, RemoteRecord
from sync.entities import ENTITIES, Ambiguous, Unsupported
from sync.mapping.mapper import MappingError, Rule, to_canonical, to_remote
from sync.mapping.transforms import Ref, TransformError
from sync.models import (
    Conflict,
    ConflictPolicy,
    ConflictStatus,
    Connection,
    ExternalRef,
    IssueStatus,
    SyncCursor,
    SyncIssue,
    SyncRun,
)

logger = logging.getLogger("sync.engine")


@dataclass
class StreamCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    conflicts: int = 0
    quarantined: int = 0
    archived: int = 0
    pushed_created: int = 0
    pushed_updated: int = 0
    push_failed: int = 0

    def line(self, entity: str) -> str:
        """The one line `manage.py sync` prints per entity (pushes count as created/updated)."""
        return (
            f"{entity} created={self.created + self.pushed_created} "
            f"updated={self.updated + self.archived + self.pushed_updated} unchanged={self.unchanged} "
            f"conflicts={self.conflicts} quarantined={self.quarantined + self.push_failed}"
        )


@dataclass
class Context:
    connection: Connection
    connector: Connector
    run: SyncRun | None = None
    dry_run: bool = False
    counts: dict[str, StreamCounts] = field(default_factory=dict)
    rules: dict[str, list[Rule]] = field(default_factory=dict)
    fetching: set[tuple[str, str]] = field(default_factory=set)
    fingerprints: dict[str, bytes] = field(default_factory=dict)
    mappers: dict[str, Any] = field(default_factory=dict)  # compiled inbound mappings (sync.bulk)

    def count(self, entity: str) -> StreamCounts:
        return self.counts.setdefault(entity, StreamCounts())

    def rules_for(self, entity: str) -> list[Rule]:
        if entity not in self.rules:
            self.rules[entity] = [
                Rule.of(m) for m in self.connection.mappings.filter(entity=entity).order_by("position", "id")
            ]
        return self.rules[entity]

    def rules_fingerprint(self, entity: str) -> bytes:
        """What the inbound mapping of `entity` depends on; part of every record's source hash."""
        if entity not in self.fingerprints:
            self.fingerprints[entity] = rules_fingerprint(self.rules_for(entity))
        return self.fingerprints[entity]

    @property
    def origin(self) -> str:
        return self.connection.origin


# ---- values, hashes, snapshots ---------------------------------------------------------------------


def normal(value: Any) -> Any:
    """A JSON-able normal form for comparing and hashing: 100 == 100.00, None == "", aware UTC times."""
    if value is None:
        return ""
    if isinstance(value, Ref):
        return f"ref:{value.entity}:{value.external_id}"
    if isinstance(value, bool | int):
        return value
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, float):
        return normal(Decimal(repr(value)))
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normal(v) for v in value]
    return str(value).strip()


def same(a: Any, b: Any) -> bool:
    return normal(a) == normal(b)


def content_hash(values: Mapping[str, Any]) -> str:
    blob = json.dumps(normal(values), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


# Bump when a transform's inbound result changes for the same input: every stored source hash expires.
MAPPING_VERSION = b"1"


def rules_fingerprint(rules: Iterable[Rule]) -> bytes:
    inbound = [
        (r.external_path, r.canonical_field, r.direction, r.transform, sorted((r.params or {}).items()))
        for r in rules
        if r.direction != "out"
    ]
    return MAPPING_VERSION + b":" + repr(inbound).encode() + b":"


def source_hash(data: Mapping[str, Any], fingerprint: bytes) -> str:
    """A cheap hash of a remote record as received, under the mapping that reads it.

    Equal source hashes mean equal canonical records (the mapping is a pure function of the record
    and the rules in `fingerprint`), so a record whose source hash matches its ExternalRef's is
    unchanged without being mapped. `repr` is exact for the str/number/bool/None/list/dict values
    connectors return; a value with a lossy repr could only make two equal records look different.
    """
    return hashlib.blake2b(fingerprint + repr(data).encode(), digest_size=16).hexdigest()


def record_source_hash(record: RemoteRecord, fingerprint: bytes) -> str:
    """`source_hash` of a record, from its raw `source` text when the connector gave one (cheaper than
    `repr(data)`, and as exact: equal sources mean equal data). A ref hashed the other way only looks
    changed once: the record is mapped, found equal by content hash and its source hash refreshed."""
    if not record.source:
        return source_hash(record.data, fingerprint)
    seeded = _SEEDED.get(fingerprint)
    if seeded is None:
        if len(_SEEDED) > 64:
            _SEEDED.clear()
        seeded = _SEEDED[fingerprint] = hashlib.blake2b(fingerprint + b"raw:", digest_size=16)
    digest = seeded.copy()
    digest.update(record.source.encode())
    return digest.hexdigest()


_SEEDED: dict[bytes, Any] = {}  # a hasher fed with a rules fingerprint, copied per record


def mapped_fields(rules: Iterable[Rule], *, direction: str) -> set[str]:
    wanted = ("in", "both") if direction == "in" else ("out", "both")
    return {r.canonical_field for r in rules if r.direction in wanted}


def owner_of(rules: Iterable[Rule], canonical_field: str) -> str:
    for rule in rules:
        if rule.canonical_field == canonical_field:
            return rule.owner
    return "remote"


# ---- quarantine ------------------------------------------------------------------------------------


def quarantine(ctx: Context, entity: str, external_id: str, reason: str, data: Any, *, kind: str = "invalid"):
    ctx.count(entity).quarantined += 1
    logger.warning(
        "quarantined %s %s: %s", entity, external_id, reason, extra={"connection": ctx.connection.name}
    )
    payload = json.loads(json.dumps(data, default=str)) if data is not None else {}
    issue = SyncIssue.objects.filter(
        connection=ctx.connection, entity=entity, external_id=external_id, kind=kind, status=IssueStatus.OPEN
    ).first()
    if issue:
        issue.reason, issue.payload, issue.run = reason, payload, ctx.run
        issue.attempts += 1
        issue.save(update_fields=["reason", "payload", "run", "attempts", "updated_at"])
    else:
        SyncIssue.objects.create(
            connection=ctx.connection, run=ctx.run, entity=entity, external_id=external_id, kind=kind,
            reason=reason, payload=payload,
        )  # fmt: skip


def _resolve_issues(ctx: Context, entity: str, external_id: str) -> None:
    SyncIssue.objects.filter(
        connection=ctx.connection, entity=entity, external_id=external_id, status=IssueStatus.OPEN
    ).exclude(kind="push").update(status=IssueStatus.RESOLVED, resolved_at=timezone.now())


# ---- pull ------------------------------------------------------------------------------------------


def _resolve_refs(ctx: Context, canonical: dict[str, Any]) -> dict[str, Any]:
    """Ref(entity, external id) ► hub object id. A reference not seen yet is fetched and applied once."""
    for key, value in list(canonical.items()):
        if not isinstance(value, Ref):
            continue
        object_id = (
            ExternalRef.objects.filter(
                connection=ctx.connection, entity=value.entity, external_id=value.external_id
            )
            .values_list("object_id", flat=True)
            .first()
        )
        if object_id is None and (value.entity, value.external_id) not in ctx.fetching:
            ctx.fetching.add((value.entity, value.external_id))
            try:
                record = ctx.connector.get(value.entity, value.external_id)
            except (ConnectorError, NotImplementedError):
                record = None
            if record is not None:
                apply_record(ctx, record)
                object_id = (
                    ExternalRef.objects.filter(
                        connection=ctx.connection, entity=value.entity, external_id=value.external_id
                    )
                    .values_list("object_id", flat=True)
                    .first()
                )
        if object_id is None:
            raise RecordError(f"{key}: {value.entity} {value.external_id} is not in the hub (not synced yet)")
        canonical[key] = object_id
    return canonical


def _plan(ctx: Context, entity: str, rules: list[Rule], record: RemoteRecord, obj: Any, ref: ExternalRef | None,
          remote: dict[str, Any], local: dict[str, Any]) -> tuple[dict[str, Any], bool, list[Conflict]]:  # fmt: skip
    """The fields to write from the remote record, whether any hub value was kept over a remote one, and
    the conflicts found (not saved yet). Pure: the per-record and the bulk path both decide with it."""
    base = ref.snapshot if ref else {}
    policy = ctx.connection.conflict_policy
    changes: dict[str, Any] = {}
    conflicts: list[Conflict] = []
    kept_ours = False
    for name, theirs in remote.items():
        ours = local.get(name)
        if same(theirs, ours):
            continue
        remote_changed = name not in base or not same(theirs, base[name])
        if not remote_changed:
            kept_ours = True  # only the hub changed it: the push sends it
            continue
        hub_changed = name in base and not same(ours, base[name])
        owner = owner_of(rules, name)
        if not hub_changed:
            if owner == "hub" and ref is not None and not _blank(ours):
                kept_ours = True  # routine update of a hub-owned field: the hub's value stands
                continue
            changes[name] = theirs
            continue
        # both sides changed the field since the last sync: a true conflict
        if policy == ConflictPolicy.MANUAL:
            status = ConflictStatus.OPEN
        elif policy == ConflictPolicy.NEWEST_WINS:
            remote_newer = record.updated_at is not None and record.updated_at > getattr(
                obj, "updated_at", record.updated_at
            )
            status = ConflictStatus.TOOK_THEIRS if remote_newer else ConflictStatus.KEPT_OURS
        else:
            status = ConflictStatus.KEPT_OURS if owner == "hub" else ConflictStatus.TOOK_THEIRS
        conflicts.append(
            Conflict(
                connection=ctx.connection, run=ctx.run, entity=entity, object_id=obj.pk,
                external_id=record.external_id, field=name, base_value=base.get(name), hub_value=normal(ours),
                remote_value=normal(theirs), policy=policy, status=status,
                resolved_at=None if status == ConflictStatus.OPEN else timezone.now(),
            )
        )  # fmt: skip
        if status == ConflictStatus.TOOK_THEIRS:
            changes[name] = theirs
        else:
            kept_ours = True
    return changes, kept_ours, conflicts


def _decide(ctx: Context, entity: str, rules: list[Rule], record: RemoteRecord, obj: Any, ref: ExternalRef | None,
            remote: dict[str, Any], local: dict[str, Any]) -> tuple[dict[str, Any], bool]:  # fmt: skip
    """The fields to write from the remote record, and whether any hub value was kept over a remote one;
    every true conflict is counted and recorded."""
    changes, kept_ours, conflicts = _plan(ctx, entity, rules, record, obj, ref, remote, local)
    for conflict in conflicts:
        ctx.count(entity).conflicts += 1
        conflict.save()
    return changes, kept_ours


def _blank(value: Any) -> bool:
    return value is None or value == ""


def _bind(ctx: Context, entity: str, record: RemoteRecord, obj: Any, ref: ExternalRef | None, *,
          remote_hash: str, rules: list[Rule], kept_ours: bool) -> None:  # fmt: skip
    handler = ENTITIES[entity]
    source = record_source_hash(record, ctx.rules_fingerprint(entity))
    local = handler.read(obj)
    fields_in = mapped_fields(rules, direction="in") | mapped_fields(rules, direction="out")
    snapshot = normal({k: v for k, v in local.items() if k in fields_in})
    out_hash = content_hash({k: v for k, v in local.items() if k in mapped_fields(rules, direction="out")})
    values = {
        "object_id": obj.pk,
        "content_hash": remote_hash,
        "source_hash": source,
        "snapshot": snapshot,
        "remote_version": record.version[:64],
        "remote_updated_at": record.updated_at,
        "last_synced_at": timezone.now(),
        "deleted_at": timezone.now() if record.deleted else None,
    }
    if not kept_ours:
        values["pushed_hash"] = out_hash
    if ref is None:
        ExternalRef.objects.create(
            connection=ctx.connection, entity=entity, external_id=record.external_id, **values
        )
    else:
        for key, value in values.items():
            setattr(ref, key, value)
        ref.save()


def apply_record(ctx: Context, record: RemoteRecord) -> str:
    """Bring one remote record into the hub; returns created / updated / unchanged / quarantined / ..."""
    entity = record.stream
    handler = ENTITIES[entity]
    rules = ctx.rules_for(entity)
    counts = ctx.count(entity)
    ref = ExternalRef.objects.filter(
        connection=ctx.connection, entity=entity, external_id=record.external_id
    ).first()
    try:
        with transaction.atomic():
            if record.deleted:
                if ref is None or ref.deleted_at:
                    counts.unchanged += 1
                    return "unchanged"
                obj = handler.queryset().filter(pk=ref.object_id).first()
                if obj is not None:
                    handler.archive(obj, origin=ctx.origin)
                ref.deleted_at = timezone.now()
                ref.save(update_fields=["deleted_at"])
                counts.archived += 1
                return "archived"
            canonical = to_canonical(record.data, rules)
            remote_hash = content_hash(canonical)
            if ref is not None and ref.content_hash == remote_hash and not ref.deleted_at:
                source = record_source_hash(record, ctx.rules_fingerprint(entity))
                if ref.source_hash != source:  # same content read under other rules: remember it
                    ExternalRef.objects.filter(pk=ref.pk).update(source_hash=source)
                counts.unchanged += 1
                return "unchanged"
            canonical = _resolve_refs(ctx, canonical)
            obj = handler.queryset().filter(pk=ref.object_id).first() if ref is not None else None
            if obj is None:
                obj = handler.match(canonical)
                if (
                    obj is not None
                    and ExternalRef.objects.filter(connection=ctx.connection, entity=entity, object_id=obj.pk)
                    .exclude(external_id=record.external_id)
                    .exists()
                ):
                    raise Ambiguous(
                        f"hub {entity[:-1]} #{obj.pk} matches, but is already linked to another record of "
                        f"{ctx.connection.name}"
                    )
            if obj is None:
                obj = handler.create(
                    canonical, origin=ctx.origin, external_key=f"{ctx.connection.name}:{record.external_id}"
                )
                _bind(ctx, entity, record, obj, None, remote_hash=remote_hash, rules=rules, kept_ours=False)
                counts.created += 1
                result = "created"
            else:
                local = handler.read(obj)
                if handler.writable is not None:
                    canonical = {k: v for k, v in canonical.items() if k in handler.writable}
                changes, kept_ours = _decide(ctx, entity, rules, record, obj, ref, canonical, local)
                if changes:
                    obj = handler.update(obj, changes, origin=ctx.origin)
                _bind(
                    ctx, entity, record, obj, ref, remote_hash=remote_hash, rules=rules, kept_ours=kept_ours
                )
                result = "updated" if changes else "unchanged"
                if changes:
                    counts.updated += 1
                else:
                    counts.unchanged += 1
            _resolve_issues(ctx, entity, record.external_id)
            return result
    except MappingError as exc:
        reason = str(exc)
    except (TransformError, RecordError, Unsupported) as exc:
        reason = str(exc)
    except Ambiguous as exc:
        quarantine(
            ctx, entity, record.external_id, f"needs review: {exc}", dict(record.data), kind="ambiguous"
        )
        return "quarantined"
    except ApplicationError as exc:
        details = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.fields.items())
        reason = exc.message + (f" ({details})" if details else "")
    except IntegrityError as exc:
        reason = f"a database rule refused it: {exc}".splitlines()[0]
    quarantine(ctx, entity, record.external_id, reason, dict(record.data))
    return "quarantined"


def _pages(records: Iterator[RemoteRecord], size: int) -> Iterator[list[RemoteRecord]]:
    while page := list(islice(records, size)):
        yield page


_DONE = object()
_UPDATED_AT = operator.attrgetter("updated_at")


def read_ahead(
    pages: Iterator[list[RemoteRecord]],
    *,
    prepare: Callable[[list[RemoteRecord]], Any] | None = None,
    depth: int = 1,
) -> Iterator[tuple[list[RemoteRecord], Any]]:
    """The same pages, read by a thread while the caller applies the previous one: reading (parsing
    a file, waiting on HTTP) overlaps with the caller's database round trips. At most `depth` pages
    wait ahead, so memory stays bounded by the page size; an error while reading is raised here, in
    its place; a caller that stops early stops the reader. Yields `(page, prepare(page))`: `prepare`
    (pure: no database) runs in the reader too. Only for connectors that declare `Connector.read_ahead`
    (their `fetch` touches neither the database nor state the engine shares).

    While it runs, the interpreter hands over between threads every 0.2 ms instead of 5 ms
    (`SYNC_READ_AHEAD_SWITCH`, seconds): each time the engine's thread has its reply from the
    database it must win the interpreter back from the reader, and at 5 ms those waits cost more
    than the reading overlaps (an unchanged pass of 100,000 records: ~1.1 s against ~0.8 s)."""
    import queue
    import sys
    import threading

    ahead: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for page in pages:
                if not offer((page, prepare(page) if prepare else None)):
                    return
            offer(_DONE)
        except BaseException as exc:  # handed to the caller, raised in its thread
            offer(exc)

    reader = threading.Thread(target=read, name="sync-read-ahead", daemon=True)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, settings.SYNC_READ_AHEAD_SWITCH))
    reader.start()
    try:
        while (item := ahead.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=5)
        sys.setswitchinterval(interval)


def history_from(connection: Connection) -> dt.datetime | None:
    """Option `history_from` (ISO date-time): a new connection's first pull starts there instead of
    reading the remote system's whole history."""
    value = (connection.options or {}).get("history_from")
    if not value:
        return None
    moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def pull_stream(ctx: Context, stream: str, *, started_at: dt.datetime) -> None:
    """Pull one stream page by page; a large page of clients goes through the set-based `sync.bulk`,
    which gives the same results as `apply_record` per record at a fraction of the cost."""
    from sync import bulk

    cursor, _ = SyncCursor.objects.get_or_create(connection=ctx.connection, stream=stream)
    ctx.count(stream)
    since = cursor.position or history_from(ctx.connection)
    fetched = _pages(iter(ctx.connector.fetch(stream, since=since)), settings.SYNC_PAGE_SIZE)
    if ctx.connector.read_ahead:
        pages: Any = read_ahead(fetched, prepare=bulk.preparer(ctx, stream))
    else:
        pages = ((page, None) for page in fetched)
    with bulk.fewer_collections(), contextlib.closing(pages):
        for page, prepared in pages:
            with transaction.atomic():
                if bulk.takes(stream, page):
                    bulk.apply_page(ctx, page, prepared)
                else:
                    for record in page:
                        apply_record(ctx, record)
                latest = max(filter(None, map(_UPDATED_AT, page)), default=None)  # (datetimes are true)
                if latest is not None:
                    position = min(latest, started_at)
                    if cursor.position is None or position > cursor.position:
                        cursor.position = position
                        cursor.save(update_fields=["position", "updated_at"])
    bulk.settle(ctx, stream)


# ---- push ------------------------------------------------------------------------------------------


def _external_id(ctx: Context, entity: str, object_id: Any) -> str | None:
    if object_id in (None, ""):
        return None
    external = (
        ExternalRef.objects.filter(connection=ctx.connection, entity=entity, object_id=object_id)
        .values_list("external_id", flat=True)
        .first()
    )
    if external is None and entity in ctx.connector.push_streams:
        obj = ENTITIES[entity].queryset().filter(pk=object_id).first()
        if obj is not None and push_object(ctx, entity, obj) in ("created", "updated"):
            return _external_id(ctx, entity, object_id)
    return external


def push_object(ctx: Context, entity: str, obj: Any, *, hint: ExternalRef | None = None) -> str:
    """Send one hub object to the connection when its outbound content changed; returns what happened.

    `hint`: the object's ref as `push_stream` read it for a chunk of objects. It only ever tells an
    object unchanged (what most of a push phase is); anything to send is decided on the ref read
    again here, as a push earlier in the chunk may have written it (a related object pushed first)."""
    handler = ENTITIES[entity]
    rules = ctx.rules_for(entity)
    counts = ctx.count(entity)
    if not handler.pushable(obj):
        return "skipped"
    out_fields = mapped_fields(rules, direction="out")
    local = handler.read(obj)
    outbound = {k: v for k, v in local.items() if k in out_fields}
    out_hash = content_hash(outbound)
    if hint is not None and (hint.pushed_hash == out_hash or hint.deleted_at):
        return "unchanged"
    ref = ExternalRef.objects.filter(connection=ctx.connection, entity=entity, object_id=obj.pk).first()
    if ref is not None and (ref.pushed_hash == out_hash or ref.deleted_at):
        return "unchanged"
    if ctx.dry_run:
        if ref is None:
            counts.pushed_created += 1
        else:
            counts.pushed_updated += 1
        return "created" if ref is None else "updated"
    try:
        payload = to_remote(local, rules, resolve=lambda e, oid: _external_id(ctx, e, oid))
        external_id = ctx.connector.upsert(entity, payload, external_id=ref.external_id if ref else None)
        ctx.connector.after_push(entity, external_id, local)
    except (ConnectorError, TransformError) as exc:
        if isinstance(exc, ConnectorError) and exc.retryable:
            raise
        counts.push_failed += 1
        quarantine(
            ctx,
            entity,
            str(obj.pk),
            f"push to {ctx.connection.name} failed: {exc}",
            normal(local),
            kind="push",
        )
        return "failed"
    fields_all = mapped_fields(rules, direction="in") | out_fields
    snapshot = normal({k: v for k, v in local.items() if k in fields_all})
    now = timezone.now()
    if ref is None:
        ref, _ = ExternalRef.objects.update_or_create(
            connection=ctx.connection, entity=entity, external_id=str(external_id),
            defaults={"object_id": obj.pk, "pushed_hash": out_hash, "snapshot": snapshot, "last_synced_at": now},
        )  # fmt: skip
        counts.pushed_created += 1
        result = "created"
    else:
        ref.pushed_hash, ref.snapshot, ref.last_synced_at = out_hash, snapshot, now
        ref.save(update_fields=["pushed_hash", "snapshot", "last_synced_at"])
        counts.pushed_updated += 1
        result = "updated"
    SyncIssue.objects.filter(
        connection=ctx.connection,
        entity=entity,
        external_id=str(obj.pk),
        kind="push",
        status=IssueStatus.OPEN,
    ).update(status=IssueStatus.RESOLVED, resolved_at=now)
    return result


PUSH_CHUNK = 200


def push_stream(ctx: Context, stream: str, *, started_at: dt.datetime) -> None:
    """Push what changed in the hub since this stream's push cursor (capped at the run's start)."""
    cursor, _ = SyncCursor.objects.get_or_create(connection=ctx.connection, stream=f"push:{stream}")
    ctx.count(stream)
    handler = ENTITIES[stream]
    changed = handler.queryset().filter(updated_at__lt=started_at)
    if cursor.position is not None:
        changed = changed.filter(updated_at__gte=cursor.position)
    objects = handler.readable(changed.order_by("updated_at", "pk")).iterator(chunk_size=PUSH_CHUNK)
    while chunk := list(islice(objects, PUSH_CHUNK)):
        # the chunk's refs in one query: after a large pull, most objects are unchanged on this side
        refs = ExternalRef.objects.filter(
            connection=ctx.connection, entity=stream, object_id__in=[obj.pk for obj in chunk]
        ).only("object_id", "pushed_hash", "deleted_at")  # (what a hint is read for; not the snapshot)
        hints = {ref.object_id: ref for ref in refs}
        for obj in chunk:
            push_object(ctx, stream, obj, hint=hints.get(obj.pk))
    if not ctx.dry_run:
        cursor.position = started_at
        cursor.save(update_fields=["position", "updated_at"])
