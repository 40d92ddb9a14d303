"""Handlers the CRM core itself registers. Other apps register theirs in their own modules."""

import logging

from .events import event_handler
from .models import DomainEvent

audit_logger = logging.getLogger("hub.audit")


@event_handler("hub.audit_log", events=("*",))
def audit_log(event: DomainEvent) -> None:
    """One structured log line per business event: the trail an operator greps for."""
    audit_logger.info(
        "event %s",
        event.type,
        extra={
            "event_id": event.pk,
            "event_type": event.type,
            "object": f"{event.aggregate_type}:{event.aggregate_id}",
            "origin": event.origin,
        },
    )
