"""The outbox and its dispatcher.

``event_record`` writes a ``DomainEvent`` in the caller's transaction and, once that transaction
commits, queues its dispatch. The dispatcher gives every registered handler the event exactly once:
each (event, handler) pair is an ``EventDelivery`` row, claimed by a conditional update, and the
handler's own writes commit together with the row being marked done. A failing handler is retried
with exponential backoff and jitter, and gives up (``dead``) after ``HUB_EVENT_MAX_ATTEMPTS``.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from .models import DeliveryStatus, DomainEvent, EventDelivery

logger = logging.getLogger(__name__)

Handler = Callable[[DomainEvent], None]
CLAIM_LEASE = timedelta(minutes=10)


@dataclass(frozen=True)
class RegisteredHandler:
    name: str
    patterns: tuple[str, ...]
    func: Handler
    queue: str = "default"

    def wants(self, event_type: str) -> bool:
        return any(fnmatch.fnmatchcase(event_type, p) for p in self.patterns)


_registry: dict[str, RegisteredHandler] = {}


def event_handler(
    name: str, *, events: tuple[str, ...], queue: str = "default"
) -> Callable[[Handler], Handler]:
    """Register ``func`` under a stable ``name`` for event types matching ``events`` (``deal.*``).

    Each handler runs as its own task on ``queue``, so a slow handler (a rollup refresh, a PDF) never
    holds back a fast one (a payment notification) of the same event.
    """

    def decorate(func: Handler) -> Handler:
        _registry[name] = RegisteredHandler(name, tuple(events), func, queue)
        return func

    return decorate


def unregister_handler(name: str) -> None:
    _registry.pop(name, None)


def handlers_for(event_type: str) -> list[RegisteredHandler]:
    return [h for h in _registry.values() if h.wants(event_type)]


def to_json(value: Any) -> Any:
    """Decimals, dates and UUIDs as strings: what the payload column and the wire can hold."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def event_record(
    *,
    type: str,
    instance: models.Model,
    payload: dict[str, Any] | None = None,
    origin: str = "",
    actor=None,
) -> DomainEvent:
    """Write one event about ``instance`` in the current transaction; dispatch after commit."""
    event = DomainEvent.objects.create(
        type=type,
        aggregate_type=instance._meta.label_lower,
        aggregate_id=str(instance.pk),
        payload=to_json(payload or {}),
        origin=origin[:100],
        actor=actor if getattr(actor, "pk", None) else None,
        occurred_at=timezone.now(),
    )
    transaction.on_commit(lambda: enqueue_dispatch(event.pk))
    return event


def enqueue_dispatch(event_id: int) -> None:
    """Queue the dispatch; if the broker is down the beat sweeper picks the event up later."""
    from .tasks import dispatch_event

    try:
        dispatch_event.delay(event_id)
    except Exception:  # the event is safe in the outbox; the sweeper retries it
        logger.exception("could not queue event dispatch", extra={"event_id": event_id})


def _backoff(attempts: int) -> timedelta:
    base = min(2**attempts, 3600)
    return timedelta(seconds=base + random.uniform(0, base / 2))


@dataclass
class DispatchResult:
    delivered: int = 0
    failed: int = 0
    skipped: int = 0
    retry_in: float | None = None


def _due() -> Q:
    now = timezone.now()
    due = Q(status=DeliveryStatus.PENDING) | Q(status=DeliveryStatus.FAILED, next_attempt_at__lte=now)
    return due | Q(status=DeliveryStatus.RUNNING, claimed_until__lt=now)


def event_fanout(event_id: int) -> list[tuple[int, str]]:
    """Make sure every interested handler has its delivery row; return the due ones with their queues."""
    event = DomainEvent.objects.filter(pk=event_id).first()
    if event is None or event.dispatched_at is not None:
        return []
    handlers = {h.name: h for h in handlers_for(event.type)}
    EventDelivery.objects.bulk_create(
        [EventDelivery(event=event, handler=name) for name in handlers], ignore_conflicts=True
    )
    due = list(
        EventDelivery.objects.filter(event=event).filter(_due()).order_by("id").values_list("id", "handler")
    )
    if not due:
        _close_if_done(event.pk)
    return [(pk, handlers[name].queue if name in handlers else "default") for pk, name in due]


def _close_if_done(event_id: int) -> None:
    open_left = EventDelivery.objects.filter(event_id=event_id).exclude(
        status__in=[DeliveryStatus.DONE, DeliveryStatus.DEAD]
    )
    if not open_left.exists():
        DomainEvent.objects.filter(pk=event_id, dispatched_at__isnull=True).update(
            dispatched_at=timezone.now()
        )


def delivery_run(delivery_id: int) -> DispatchResult:
    """Claim one (event, handler) delivery and run it; its writes commit with the row marked done."""
    result = DispatchResult()
    delivery = EventDelivery.objects.select_related("event").filter(pk=delivery_id).filter(_due()).first()
    if delivery is None:
        result.skipped += 1
        return result
    event = delivery.event
    handler = _registry.get(delivery.handler)
    if handler is None:  # the handler was removed from the code: nothing left to do
        EventDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.DEAD, last_error="handler no longer registered"
        )
        _close_if_done(event.pk)
        return result
    now = timezone.now()
    claimed = EventDelivery.objects.filter(
        pk=delivery.pk, status=delivery.status, attempts=delivery.attempts
    ).update(status=DeliveryStatus.RUNNING, attempts=F("attempts") + 1, claimed_until=now + CLAIM_LEASE)
    if not claimed:
        result.skipped += 1
        return result
    try:
        with transaction.atomic():
            handler.func(event)
            EventDelivery.objects.filter(pk=delivery.pk).update(
                status=DeliveryStatus.DONE, done_at=timezone.now(), last_error="", claimed_until=None
            )
        result.delivered += 1
    except Exception as exc:
        attempts = delivery.attempts + 1
        gave_up = attempts >= settings.HUB_EVENT_MAX_ATTEMPTS
        wait = _backoff(attempts)
        EventDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.DEAD if gave_up else DeliveryStatus.FAILED,
            next_attempt_at=None if gave_up else timezone.now() + wait,
            last_error=f"{type(exc).__name__}: {exc}"[:4000],
            claimed_until=None,
        )
        logger.warning(
            "event handler failed",
            extra={"event_id": event.pk, "handler": handler.name, "attempt": attempts, "gave_up": gave_up},
            exc_info=True,
        )
        result.failed += 1
        if not gave_up:
            result.retry_in = wait.total_seconds()
    _close_if_done(event.pk)
    return result


def event_dispatch(event_id: int) -> DispatchResult:
    """Run every due handler of the event here and now. Safe to call any number of times."""
    total = DispatchResult()
    for delivery_id, _queue in event_fanout(event_id):
        one = delivery_run(delivery_id)
        total.delivered += one.delivered
        total.failed += one.failed
        total.skipped += one.skipped
        if one.retry_in is not None:
            total.retry_in = one.retry_in if total.retry_in is None else min(total.retry_in, one.retry_in)
    return total


def event_redeliver(event_id: int) -> DispatchResult:
    """Give failed and dead deliveries of an event a fresh set of attempts, then dispatch it now."""
    with transaction.atomic():
        EventDelivery.objects.filter(
            event_id=event_id, status__in=[DeliveryStatus.FAILED, DeliveryStatus.DEAD]
        ).update(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=None, claimed_until=None)
        DomainEvent.objects.filter(pk=event_id).update(dispatched_at=None)
    return event_dispatch(event_id)


def events_pending(*, older_than: timedelta = timedelta(seconds=5), limit: int = 500) -> list[int]:
    cutoff = timezone.now() - older_than
    return list(
        DomainEvent.objects.filter(dispatched_at__isnull=True, occurred_at__lte=cutoff)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
