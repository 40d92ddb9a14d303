"""Thin beat task: the safety net that folds in whatever the event handlers missed."""

from celery import shared_task

from . import rollups


@shared_task(name="analytics.refresh_rollups", acks_late=True, time_limit=3600)
def refresh_rollups() -> str:
    """Fold every change since the watermark into the rollups (queued by events, and by beat)."""
    from .handlers import REFRESH_QUEUED
    from .models import RollupState

    # Clear the marker first: an event after this point queues the next run, so nothing is missed.
    RollupState.objects.filter(name=REFRESH_QUEUED).delete()
    return rollups.rollups_catch_up()
