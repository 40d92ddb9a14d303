"""Handlers the money side registers: every unallocated incoming payment gets a matching decision."""

from hub.events import event_handler
from hub.models import DomainEvent

from .matching import payment_match
from .models import Payment


@event_handler("invoicing.match_payment", events=("payment.received",))
def match_payment(event: DomainEvent) -> None:
    """Payments recorded without allocations (API, sync, gateways) are matched here; idempotent."""
    payment = Payment.objects.filter(pk=event.aggregate_id).first()
    if payment is not None:
        payment_match(payment=payment, origin="matching")
