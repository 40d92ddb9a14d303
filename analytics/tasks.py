"""Thin beat task: the safety net that folds in whatever the event handlers missed."""

from celery import shared_task

from . import rollups


@shared_task(name="analytics.refresh_rollups", acks_late=True, time_limit=3600)
def refresh_rollups() -> str:
    return rollups.rollups_catch_up()
