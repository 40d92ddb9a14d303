"""Keep the rollups current as the canonical model changes: events queue one coalesced refresh."""

from django.conf import settings
from django.db import transaction

from hub.events import event_handler
from hub.models import DomainEvent


@event_handler(
    "analytics.rollups",
    events=(
        "invoice.*",
        "payment.*",
        "deal.*",
        "client.updated",
        "client.merged",
        "clients.synced",
        "currency_rate.set",
    ),
)
def refresh_rollups(event: DomainEvent) -> None:
    """Ask for one coalesced refresh instead of refreshing per event.

    A payment alone raises three events (received, allocated, invoice paid), and a bank statement
    hundreds; refreshing the rollups for each would cost seconds of worker time per payment at scale.
    The first event of a burst queues ``analytics.refresh_rollups`` a moment later; the events after it,
    until that task starts, find it queued and add nothing. The task folds in everything changed
    since its watermark, so no change is missed, whatever the order.
    """
    from .models import RollupState

    if event.aggregate_type == "analytics.currencyrate":
        # A rate changes the conversion of every later document in that currency: rebuild.
        RollupState.objects.filter(name="facts").update(watermark=None)
    _, created = RollupState.objects.get_or_create(name=REFRESH_QUEUED)
    if created:
        transaction.on_commit(_enqueue_refresh)


REFRESH_QUEUED = "refresh-queued"


def _enqueue_refresh() -> None:
    from .tasks import refresh_rollups as task

    task.apply_async(countdown=settings.ANALYTICS_REFRESH_DELAY_SECONDS)
