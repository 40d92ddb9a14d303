"""Thin tasks: they take ids and call services."""

from celery import shared_task

from .events import delivery_run, event_dispatch, event_fanout, events_pending


@shared_task(name="hub.dispatch_event", bind=True, acks_late=True, max_retries=None)
def dispatch_event(self, event_id: int, queue: str = "default") -> int:
    """Run the event's handlers that live on ``queue``; the first dispatch hands other queues their share.

    One task per (event, queue), not per handler: handlers on the same queue run back to back in one
    task, and a slow queue (documents) never holds back a fast one (notify).
    """
    due = event_fanout(event_id)
    if queue == "default":
        for other in sorted({q for _, q in due if q != queue}):
            dispatch_event.apply_async((event_id, other), queue=other)
    retry_in = None
    ran = 0
    for delivery_id, handler_queue in due:
        if handler_queue != queue:
            continue
        result = delivery_run(delivery_id)
        ran += result.delivered
        if result.retry_in is not None:
            retry_in = result.retry_in if retry_in is None else min(retry_in, result.retry_in)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)
    return ran


@shared_task(name="hub.dispatch_pending_events")
def dispatch_pending_events() -> int:
    """The sweeper: events whose queued dispatch was lost (broker down) or whose retry is due."""
    ids = events_pending()
    for event_id in ids:
        event_dispatch(event_id)
    return len(ids)


@shared_task(name="hub.purge_idempotency_records")
def purge_idempotency_records() -> int:
    """Forget Idempotency-Key responses older than HUB_IDEMPOTENCY_TTL_HOURS."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from .models import IdempotencyRecord

    cutoff = timezone.now() - timedelta(hours=settings.HUB_IDEMPOTENCY_TTL_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
