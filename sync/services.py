"""Sync services: connections, runs, the webhook inbox, conflict review and quarantine retries.

Views, admin actions, commands and tasks call these; the pull/push core is in `sync.engine`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from hub.errors import ValidationFailed
from sync import crypto
from sync.connectors import connector_class
from sync.connectors.base import (
    AuthError,
    ConnectionConfig,
    Connector,
    ConnectorError,
    MappingSpec,
    RemoteRecord,
)
from sync.engine import (
    ENTITIES,
    Context,
    StreamCounts,
    apply_record,
    normal,
    pull_stream,
    push_object,
    push_stream,
    quarantine,
)
from sync.entities import ORDER
from sync.mapping.mapper import MappingError, to_canonical
from sync.models import (
    Conflict,
    ConflictStatus,
    Connection,
    ExternalRef,
    FieldMapping,
    InboundEvent,
    InboundStatus,
    IssueStatus,
    RunStatus,
    SyncIssue,
    SyncRun,
)

logger = logging.getLogger("sync")


# ---- credentials -----------------------------------------------------------------------------------


class DbCredentialStore:
    """Credentials of one connection, decrypted on read; `update` is single-flight through a row lock."""

    def __init__(self, connection_id: int):
        self.connection_id = connection_id
        self._values: dict[str, str] | None = None

    def load(self) -> dict[str, str]:
        """Read once per connector (connectors ask on every request); `update` refreshes it. A token
        another worker rotated meanwhile shows up as a 401, whose refresh goes through `update`."""
        if self._values is None:
            token = Connection.objects.values_list("credentials_encrypted", flat=True).get(
                pk=self.connection_id
            )
            self._values = crypto.decrypt(token)
        return dict(self._values)

    def update(self, fn: Callable[[dict[str, str]], dict[str, str] | None]) -> dict[str, str]:
        with transaction.atomic():
            connection = Connection.objects.select_for_update().get(pk=self.connection_id)
            current = crypto.decrypt(connection.credentials_encrypted)
            changed = fn(dict(current))
            if changed:
                current.update(changed)
                Connection.objects.filter(pk=self.connection_id).update(
                    credentials_encrypted=crypto.encrypt(current), updated_at=timezone.now()
                )
            self._values = dict(current)
            return current


def credentials_set(*, connection: Connection, values: Mapping[str, str], replace: bool = False) -> None:
    """Store credentials encrypted; existing keys not given are kept unless `replace`."""
    current = {} if replace else crypto.decrypt(connection.credentials_encrypted)
    current.update({k: v for k, v in values.items() if v is not None})
    connection.credentials_encrypted = crypto.encrypt(current)
    connection.save(update_fields=["credentials_encrypted", "updated_at"])


def credential_keys(*, connection: Connection) -> list[str]:
    """The names of the stored credentials (never their values)."""
    try:
        return sorted(crypto.decrypt(connection.credentials_encrypted))
    except crypto.CredentialsUnreadable:
        return ["(unreadable)"]


# ---- connections -----------------------------------------------------------------------------------


def connector_for(connection: Connection) -> Connector:
    cls = connector_class(connection.system)
    rate = connection.rate_limit_per_second
    config = ConnectionConfig(
        name=connection.name,
        system=connection.system,
        base_url=connection.base_url,
        credentials=DbCredentialStore(connection.pk),
        options=dict(connection.options or {}),
        rate_limit_per_second=float(rate) if rate else cls.default_rate_limit,
        timeout_seconds=settings.SYNC_HTTP_TIMEOUT,
        max_attempts=settings.SYNC_HTTP_MAX_ATTEMPTS,
    )
    return cls(config)


def mappings_seed(*, connection: Connection, specs: Iterable[MappingSpec] | None = None) -> int:
    """Add the connector's default mappings that the connection does not have yet; returns how many."""
    specs = list(specs if specs is not None else connector_class(connection.system).default_mappings)
    existing = set(connection.mappings.values_list("entity", "external_path", "canonical_field", "direction"))
    new = [
        FieldMapping(
            connection=connection,
            entity=s.entity,
            external_path=s.external_path,
            canonical_field=s.canonical_field,
            direction=s.direction,
            transform=s.transform,
            params=dict(s.params),
            owner=s.owner,
            position=i,
        )
        for i, s in enumerate(specs)
        if (s.entity, s.external_path, s.canonical_field, s.direction) not in existing
    ]
    FieldMapping.objects.bulk_create(new)
    return len(new)


def schedule_set(*, connection: Connection, minutes: int | None) -> None:
    """Keep the connection's beat schedule as a django-celery-beat periodic task."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    connection.schedule_minutes = minutes or None
    task = connection.periodic_task
    if not minutes:
        if task is not None:
            connection.periodic_task = None
            connection.save(update_fields=["schedule_minutes", "periodic_task", "updated_at"])
            task.delete()
        else:
            connection.save(update_fields=["schedule_minutes", "updated_at"])
        return
    interval, _ = IntervalSchedule.objects.get_or_create(every=minutes, period=IntervalSchedule.MINUTES)
    values = {
        "interval": interval,
        "task": "sync.run_connection",
        "args": json.dumps([connection.pk]),
        "enabled": connection.enabled,
        "queue": "sync",
    }
    if task is None:
        task, _ = PeriodicTask.objects.update_or_create(name=f"sync: {connection.name}", defaults=values)
    else:
        for key, value in values.items():
            setattr(task, key, value)
        task.save()
    connection.periodic_task = task
    connection.save(update_fields=["schedule_minutes", "periodic_task", "updated_at"])


def connection_save(
    *,
    system: str,
    name: str,
    url: str,
    role: str | None = None,
    credentials: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
    schedule_minutes: int | None = None,
) -> tuple[Connection, bool]:
    """Create or update a connection with the system's default mappings (what `manage.py connect` does)."""
    try:
        cls = connector_class(system)
    except KeyError as exc:
        raise ValidationFailed(str(exc.args[0]), fields={"system": ["Unknown system."]}) from None
    credentials = dict(credentials or {})
    unknown = set(credentials) - set(cls.credential_keys)
    if unknown:
        raise ValidationFailed(
            f"{system} takes no credential {', '.join(sorted(unknown))}; it takes: {', '.join(cls.credential_keys) or 'none'}",
            fields={"credentials": ["Unknown key."]},
        )
    role = role or cls.role
    if role not in ("crm", "accounting"):
        raise ValidationFailed("Role must be crm or accounting.", fields={"role": ["Invalid."]})
    with transaction.atomic():
        connection = Connection.objects.select_for_update().filter(name=name).first()
        created = connection is None
        if created:
            connection = Connection(name=name, system=system)
        elif connection.system != system:
            raise ValidationFailed(
                f"Connection {name!r} is a {connection.system} connection, not {system}.",
                fields={"system": ["Differs from the existing connection."]},
            )
        connection.base_url = url
        connection.role = role
        if options is not None:
            connection.options = {**(connection.options or {}), **options}
        connection.full_clean(exclude=["credentials_encrypted", "periodic_task"])
        connection.save()
        if credentials or created:
            credentials_set(connection=connection, values=credentials)
        missing = set(cls.required_credentials) - set(crypto.decrypt(connection.credentials_encrypted))
        if missing:
            raise ValidationFailed(
                f"{system} needs the credential(s) {', '.join(sorted(missing))} (--credential KEY=VALUE).",
                fields={"credentials": ["Missing."]},
            )
        mappings_seed(connection=connection)
        if schedule_minutes is not None:
            schedule_set(connection=connection, minutes=schedule_minutes)
    return connection, created


def connection_pause(*, connection: Connection, reason: str) -> None:
    Connection.objects.filter(pk=connection.pk).update(
        enabled=False, paused_reason=reason[:500], last_error=reason, updated_at=timezone.now()
    )
    if connection.periodic_task_id:
        from django_celery_beat.models import PeriodicTask

        PeriodicTask.objects.filter(pk=connection.periodic_task_id).update(enabled=False)
    connection.refresh_from_db()


def connection_resume(*, connection: Connection) -> None:
    Connection.objects.filter(pk=connection.pk).update(
        enabled=True, paused_reason="", updated_at=timezone.now()
    )
    if connection.periodic_task_id:
        from django_celery_beat.models import PeriodicTask

        PeriodicTask.objects.filter(pk=connection.periodic_task_id).update(enabled=True)
    connection.refresh_from_db()


# ---- runs ------------------------------------------------------------------------------------------


class RunBusy(Exception):
    """Another run of the same connection holds the lease."""


class _DryRunRollback(Exception):
    pass


@dataclass
class RunResult:
    run: SyncRun
    counts: dict[str, StreamCounts]

    @property
    def ok(self) -> bool:
        return self.run.status in (RunStatus.SUCCESS, RunStatus.PARTIAL)

    def lines(self) -> list[str]:
        return [counts.line(entity) for entity, counts in self.counts.items()]


def _claim(connection: Connection) -> bool:
    now = timezone.now()
    return bool(
        Connection.objects.filter(pk=connection.pk)
        .filter(Q(lock_until__isnull=True) | Q(lock_until__lt=now))
        .update(lock_until=now + dt.timedelta(minutes=settings.SYNC_RUN_LEASE_MINUTES))
    )


def _release(connection: Connection) -> None:
    Connection.objects.filter(pk=connection.pk).update(lock_until=None)


def _streams(names: Iterable[str], entity: str | None) -> list[str]:
    wanted = [s for s in ORDER if s in set(names)]
    return [s for s in wanted if entity in (None, s)]


def sync_run(
    *, connection: Connection, entity: str | None = None, dry_run: bool = False, trigger: str = "manual"
) -> RunResult:
    """One pull-and-push cycle. Never raises for remote trouble: the run row says what happened."""
    if entity is not None and entity not in ENTITIES:
        raise ValidationFailed(
            f"Unknown entity {entity!r}; one of {', '.join(ORDER)}.", fields={"entity": ["Unknown."]}
        )
    if not _claim(connection):
        raise RunBusy(f"{connection.name} is already running")
    started = time.monotonic()
    started_at = timezone.now()
    run = SyncRun.objects.create(
        connection=connection, trigger=trigger, dry_run=dry_run, started_at=started_at
    )
    ctx: Context | None = None
    try:
        connector = connector_for(connection)
        ctx = Context(connection=connection, connector=connector, run=run, dry_run=dry_run)
        pulls = _streams(connector.streams, entity)
        pushes = _streams(connector.push_streams, entity)
        if entity is not None and not pulls and not pushes:
            raise ValidationFailed(
                f"{connection.system} does not sync {entity}.", fields={"entity": ["Not synced."]}
            )
        connector.check()
        try:
            # A dry run is the real run in one transaction that is rolled back; a real run commits page by page.
            with transaction.atomic() if dry_run else contextlib.nullcontext():
                for stream in pulls:
                    pull_stream(ctx, stream, started_at=started_at)
                for stream in pushes:
                    push_stream(ctx, stream, started_at=started_at)
                if dry_run:
                    raise _DryRunRollback
        except _DryRunRollback:
            pass
        quarantined = any(c.quarantined or c.push_failed for c in ctx.counts.values())
        run.status = RunStatus.PARTIAL if quarantined else RunStatus.SUCCESS
        if not dry_run:
            Connection.objects.filter(pk=connection.pk).update(last_success_at=timezone.now(), last_error="")
    except AuthError as exc:
        run.status, run.error = RunStatus.FAILED, f"credentials refused: {exc}"
        connection_pause(
            connection=connection, reason=f"{exc} — fix the credentials and resume the connection"
        )
    except ConnectorError as exc:
        run.status, run.error = RunStatus.FAILED, str(exc)
    except crypto.CredentialsUnreadable as exc:
        run.status, run.error = RunStatus.FAILED, str(exc)
        connection_pause(connection=connection, reason=str(exc))
    except ValidationFailed:
        run.delete()
        raise
    except Exception as exc:  # a bug or a database failure: record it, then let it surface
        run.status, run.error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        _finish(run, ctx, started, connection)
        raise
    finally:
        _release(connection)
        if ctx is not None:
            ctx.connector.close()
    _finish(run, ctx, started, connection)
    return RunResult(run=run, counts=ctx.counts if ctx else {})


def _finish(run: SyncRun, ctx: Context | None, started: float, connection: Connection) -> None:
    run.finished_at = timezone.now()
    run.duration_ms = int((time.monotonic() - started) * 1000)
    run.counts = {k: vars(v) for k, v in (ctx.counts if ctx else {}).items()}
    run.save()
    update = {"last_run_at": run.finished_at}
    if run.status == RunStatus.FAILED and not run.dry_run:
        update["last_error"] = run.error[:5000]
    Connection.objects.filter(pk=connection.pk).update(**update)


# ---- outbound, from domain events ------------------------------------------------------------------


def _push_targets(entity: str, origin: str) -> list[tuple[Connection, Connector]]:
    """Enabled connections that write `entity`, except the one the change came from."""
    targets = []
    for connection in Connection.objects.filter(enabled=True).order_by("pk"):
        if origin == connection.origin:
            continue  # never back to the change's origin
        try:
            if entity not in connector_class(connection.system).push_streams:
                continue
        except KeyError:
            continue
        targets.append((connection, connector_for(connection)))
    return targets


def push_changes(*, entity: str, object_id: int, origin: str = "") -> dict[str, str]:
    """Push one changed hub object to every enabled connection that writes its entity, except the
    connection the change came from. Retryable remote errors propagate (the outbox retries)."""
    return push_changes_many(entity=entity, object_ids=[object_id], origin=origin).get(object_id, {})


def push_changes_many(
    *, entity: str, object_ids: Iterable[int], origin: str = ""
) -> dict[int, dict[str, str]]:
    """`push_changes` for many objects (a bulk pull's `clients.synced` event): the target connections
    are found once; nothing is read when no other connection writes the entity."""
    object_ids = list(object_ids)
    if not object_ids:
        return {}
    targets = _push_targets(entity, origin)
    if not targets:
        return {}
    try:
        return _push_to(targets, entity, object_ids)
    finally:
        for _connection, connector in targets:
            connector.close()


def _push_to(
    targets: list[tuple[Connection, Connector]], entity: str, object_ids: list[int]
) -> dict[int, dict[str, str]]:
    handler = ENTITIES[entity]
    results: dict[int, dict[str, str]] = {}
    paused: set[int] = set()
    for start in range(0, len(object_ids), 500):
        chunk = object_ids[start : start + 500]
        objects = {obj.pk: obj for obj in handler.queryset().filter(pk__in=chunk)}
        for object_id in chunk:
            obj = objects.get(object_id)
            if obj is None:
                continue
            mine = results.setdefault(object_id, {})
            for connection, connector in targets:
                if connection.pk in paused:
                    mine[connection.name] = "paused"
                    continue
                ctx = Context(connection=connection, connector=connector)
                try:
                    with transaction.atomic():
                        mine[connection.name] = push_object(ctx, entity, obj)
                except AuthError as exc:
                    connection_pause(connection=connection, reason=str(exc))
                    paused.add(connection.pk)
                    mine[connection.name] = "paused"
    return results


def tombstone_push(*, entity: str, object_id: int, origin: str = "") -> None:
    """An archived hub object: archive it in every connection that has it (not at its origin)."""
    refs = ExternalRef.objects.filter(
        entity=entity, object_id=object_id, deleted_at__isnull=True
    ).select_related("connection")
    for ref in refs:
        connection = ref.connection
        if not connection.enabled or origin == connection.origin:
            continue
        if entity not in connector_class(connection.system).push_streams:
            continue
        with connector_for(connection) as connector:
            try:
                connector.delete(entity, ref.external_id)
            except ConnectorError as exc:
                if exc.retryable:
                    raise
                ctx = Context(connection=connection, connector=connector)
                quarantine(
                    ctx,
                    entity,
                    str(object_id),
                    f"archive in {connection.name} failed: {exc}",
                    {},
                    kind="push",
                )
                continue
        ref.deleted_at = timezone.now()
        ref.save(update_fields=["deleted_at"])


def note_to_crm(*, entity: str, object_id: int, text: str) -> list[str]:
    """Leave a note on the record in every CRM connection that has it; returns the connections noted."""
    noted = []
    refs = ExternalRef.objects.filter(
        entity=entity, object_id=object_id, connection__enabled=True, connection__role="crm"
    ).select_related("connection")
    for ref in refs:
        try:
            with connector_for(ref.connection) as connector:
                connector.add_note(entity, ref.external_id, text)
        except ConnectorError as exc:
            if exc.retryable:
                raise
            logger.warning("note to %s failed: %s", ref.connection.name, exc)
            continue
        noted.append(ref.connection.name)
    return noted


# ---- the webhook inbox -----------------------------------------------------------------------------


@dataclass
class WebhookReply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    stored: list[int] | None = None


def _reply(status: int, message: str, **extra: Any) -> WebhookReply:
    return WebhookReply(status, json.dumps({"status": message, **extra}).encode())


def webhook_receive(*, name: str, headers: Mapping[str, str], body: bytes) -> WebhookReply:
    """Store first, process after: verify, parse, keep each event once (by its id), queue processing."""
    connection = Connection.objects.filter(name=name).first()
    if connection is None:
        return _reply(404, "unknown connection")
    if len(body) > settings.SYNC_WEBHOOK_MAX_BYTES:
        return _reply(413, "payload too large")
    with connector_for(connection) as connector:
        return _webhook_store(connection, connector, headers, body)


def _webhook_store(
    connection: Connection, connector: Connector, headers: Mapping[str, str], body: bytes
) -> WebhookReply:
    kept_headers = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}
    text = body.decode("utf-8", errors="replace")
    try:
        challenge = connector.webhook_challenge(headers, body)
        if challenge is not None:
            return WebhookReply(200, challenge, "text/plain")
        authentic = connector.verify_webhook(headers, body)
    except ConnectorError as exc:
        authentic, reason = False, str(exc)
    else:
        reason = "signature or token does not match"
    if not authentic:
        InboundEvent.objects.create(
            connection=connection, event_id=f"rejected:{uuid.uuid4()}", headers=kept_headers, body=text[:20000],
            status=InboundStatus.REJECTED, error=f"not authentic: {reason}",
        )  # fmt: skip
        return _reply(401, "not authentic")
    if not connection.enabled:
        return _reply(503, "connection paused")
    try:
        events = connector.parse_webhook(headers, body)
    except ConnectorError as exc:
        InboundEvent.objects.create(
            connection=connection, event_id=f"malformed:{uuid.uuid4()}", headers=kept_headers, body=text[:20000],
            status=InboundStatus.FAILED, error=f"malformed delivery: {exc}",
        )  # fmt: skip
        return _reply(400, "malformed", error=str(exc)[:300])
    stored: list[int] = []
    duplicates = 0
    with transaction.atomic():
        for event in events:
            record = event.record
            inbound, created = InboundEvent.objects.get_or_create(
                connection=connection,
                event_id=event.event_id[:255],
                defaults={
                    "entity": event.stream,
                    "external_id": event.external_id,
                    "action": event.action,
                    "record": json.loads(
                        json.dumps(
                            {
                                "data": record.data,
                                "updated_at": record.updated_at,
                                "version": record.version,
                                "deleted": record.deleted,
                            },
                            default=str,
                        )
                    )
                    if record
                    else None,
                    "headers": kept_headers,
                    "body": text[:20000],
                },
            )
            if created:
                stored.append(inbound.pk)
            else:
                duplicates += 1
        for pk in stored:
            transaction.on_commit(lambda pk=pk: _queue_inbound(pk))
    return _reply(200, "accepted", stored=len(stored), duplicates=duplicates)


def _queue_inbound(inbound_id: int) -> None:
    from sync.tasks import process_inbound

    try:
        process_inbound.delay(inbound_id)
    except Exception:  # the row waits in the inbox; the sweeper processes it
        logger.exception("could not queue inbound event %s", inbound_id)


def inbound_process(*, inbound_id: int) -> str:
    """Apply one stored webhook event (re-fetching the record when the delivery carried only its id)."""
    claimed = InboundEvent.objects.filter(
        pk=inbound_id, status__in=[InboundStatus.PENDING, InboundStatus.FAILED]
    ).update(attempts=F("attempts") + 1)
    if not claimed:
        return "skipped"
    inbound = InboundEvent.objects.select_related("connection").get(pk=inbound_id)
    connection = inbound.connection
    try:
        with connector_for(connection) as connector:
            if inbound.action == "delete":
                record = RemoteRecord(
                    stream=inbound.entity, external_id=inbound.external_id, data={}, deleted=True
                )
            elif inbound.record:
                stored = inbound.record
                updated = stored.get("updated_at")
                record = RemoteRecord(
                    stream=inbound.entity,
                    external_id=inbound.external_id,
                    data=stored.get("data") or {},
                    updated_at=dt.datetime.fromisoformat(updated) if updated and updated != "None" else None,
                    version=stored.get("version") or "",
                    deleted=bool(stored.get("deleted")),
                )
            else:
                record = connector.get(inbound.entity, inbound.external_id)
                if record is None:
                    record = RemoteRecord(
                        stream=inbound.entity, external_id=inbound.external_id, data={}, deleted=True
                    )
            ctx = Context(connection=connection, connector=connector)
            with transaction.atomic():
                result = apply_record(ctx, record)
    except ConnectorError as exc:
        InboundEvent.objects.filter(pk=inbound_id).update(status=InboundStatus.FAILED, error=str(exc)[:5000])
        if exc.retryable:
            raise
        return "failed"
    InboundEvent.objects.filter(pk=inbound_id).update(
        status=InboundStatus.PROCESSED,
        processed_at=timezone.now(),
        error="" if result != "quarantined" else "quarantined",
    )
    return result


def inbound_pending(*, older_than_seconds: int = 60) -> list[int]:
    cutoff = timezone.now() - dt.timedelta(seconds=older_than_seconds)
    return list(
        InboundEvent.objects.filter(status=InboundStatus.PENDING, received_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:500]
    )


# ---- review: conflicts and quarantine --------------------------------------------------------------


def conflict_resolve(*, conflict: Conflict, take: str, user=None) -> Conflict:
    """Keep the hub's value ("ours": it is pushed on the next run) or take the remote one ("theirs")."""
    if conflict.status != ConflictStatus.OPEN:
        raise ValidationFailed("This conflict is already resolved.", fields={"status": ["Resolved."]})
    if take not in ("ours", "theirs"):
        raise ValidationFailed("Choose ours or theirs.", fields={"take": ["Invalid."]})
    handler = ENTITIES[conflict.entity]
    with transaction.atomic():
        obj = handler.queryset().filter(pk=conflict.object_id).first()
        ref = ExternalRef.objects.filter(
            connection=conflict.connection, entity=conflict.entity, object_id=conflict.object_id
        ).first()
        if take == "theirs" and obj is not None:
            from sync.mapping.canonical import ENTITIES as CANONICAL

            value = conflict.remote_value
            kind = CANONICAL[conflict.entity].get(conflict.field, "str")
            if kind == "decimal" and value not in (None, ""):
                from decimal import Decimal

                value = Decimal(str(value))
            handler.update(obj, {conflict.field: value}, origin=f"review:{conflict.connection.name}")
        if ref is not None:
            snapshot = dict(ref.snapshot or {})
            snapshot[conflict.field] = normal(
                conflict.remote_value if take == "theirs" else conflict.hub_value
            )
            ref.snapshot = snapshot
            if take == "ours":
                ref.pushed_hash = ""  # the next push sends the hub's value
            ref.save(update_fields=["snapshot", "pushed_hash"])
        conflict.status = ConflictStatus.TOOK_THEIRS if take == "theirs" else ConflictStatus.KEPT_OURS
        conflict.resolved_at = timezone.now()
        conflict.resolved_by = user if getattr(user, "pk", None) else None
        conflict.save(update_fields=["status", "resolved_at", "resolved_by"])
    return conflict


def issue_retry(*, issue: SyncIssue) -> str:
    """Apply a quarantined record again (after the mapping or the hub data was fixed)."""
    if issue.status != IssueStatus.OPEN:
        return "skipped"
    with connector_for(issue.connection) as connector:
        return _retry(issue, Context(connection=issue.connection, connector=connector))


def _retry(issue: SyncIssue, ctx: Context) -> str:
    if issue.kind == "push":
        handler = ENTITIES[issue.entity]
        obj = handler.queryset().filter(pk=issue.external_id).first()
        if obj is None:
            SyncIssue.objects.filter(pk=issue.pk).update(
                status=IssueStatus.IGNORED, resolved_at=timezone.now()
            )
            return "gone"
        with transaction.atomic():
            return push_object(ctx, issue.entity, obj)
    try:
        record = ctx.connector.get(issue.entity, issue.external_id)
    except (ConnectorError, NotImplementedError):
        record = None
    if record is None:
        record = RemoteRecord(stream=issue.entity, external_id=issue.external_id, data=issue.payload or {})
    with transaction.atomic():
        return apply_record(ctx, record)


# ---- mapping preview -------------------------------------------------------------------------------


def mapping_preview(*, connection: Connection, entity: str, limit: int = 10) -> dict[str, Any]:
    """What the mappings make of the first records: columns used and unused, each record's canonical
    values and what a run would do with it (validated for real, then rolled back: nothing is written)."""
    with connector_for(connection) as connector:
        records = list(islice(iter(connector.fetch(entity, since=None)), limit))
        columns_of = getattr(connector, "columns", None)
        columns = columns_of(entity) if columns_of else sorted({k for r in records for k in r.data})
        ctx = Context(connection=connection, connector=connector, dry_run=True)
        rules = ctx.rules_for(entity)
        rows = [_preview_row(ctx, entity, rules, record) for record in records]
    used = {r.external_path.split(".")[0].split("[")[0] for r in rules if r.direction in ("in", "both")}
    return {"columns": columns, "unmapped": sorted(set(columns) - used), "rows": rows}


def _preview_row(ctx: Context, entity: str, rules: list, record: RemoteRecord) -> dict[str, Any]:
    row: dict[str, Any] = {"external_id": record.external_id}
    try:
        row["canonical"] = normal(to_canonical(record.data, rules))
    except MappingError as exc:
        row["canonical"], row["error"] = {}, str(exc)
        return row
    try:
        with transaction.atomic():
            row["outcome"] = apply_record(ctx, record)
            if row["outcome"] == "quarantined":
                row["error"] = (
                    SyncIssue.objects.filter(
                        connection=ctx.connection, entity=entity, external_id=record.external_id,
                        status=IssueStatus.OPEN,
                    ).values_list("reason", flat=True).first() or ""
                )  # fmt: skip
            raise _DryRunRollback
    except _DryRunRollback:
        pass
    return row
