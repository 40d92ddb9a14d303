"""Thin tasks: ids in, services called, safe to retry."""

from __future__ import annotations

from celery import shared_task

from . import services
from .models import Connection


@shared_task(name="sync.run_connection", acks_late=True, soft_time_limit=3300, time_limit=3600)
def run_connection(connection_id: int, entity: str | None = None) -> dict:
    """A scheduled run. A paused or busy connection is skipped; remote trouble is recorded on the run."""
    connection = Connection.objects.filter(pk=connection_id, enabled=True).first()
    if connection is None:
        return {"skipped": "paused or deleted"}
    try:
        result = services.sync_run(connection=connection, entity=entity, trigger="schedule")
    except services.RunBusy:
        return {"skipped": "busy"}
    return {"run": result.run.pk, "status": result.run.status}


@shared_task(
    name="sync.process_inbound",
    bind=True,
    acks_late=True,
    max_retries=8,
    autoretry_for=(services.ConnectorError,),
    retry_backoff=True,
    retry_jitter=True,
)
def process_inbound(self, inbound_id: int) -> str:
    return services.inbound_process(inbound_id=inbound_id)


@shared_task(name="sync.process_pending_inbound")
def process_pending_inbound() -> int:
    """The sweeper: webhook events whose processing task was lost."""
    ids = services.inbound_pending()
    for pk in ids:
        process_inbound.delay(pk)
    return len(ids)
