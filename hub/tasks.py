"""Thin tasks: they take ids and call services."""

from celery import shared_task

from .events import event_dispatch, events_pending


@shared_task(name="hub.dispatch_event", bind=True, acks_late=True, max_retries=None)
def dispatch_event(self, event_id: int) -> dict:
    result = event_dispatch(event_id)
    if result.retry_in is not None:
        raise self.retry(countdown=result.retry_in)
    return {"delivered": result.delivered, "failed": result.failed}


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
