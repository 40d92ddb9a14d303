"""Handlers the money side registers: every unallocated incoming payment gets a matching decision;
every issued invoice gets a pay-online link when a gateway is configured."""

from django.db import transaction

from hub.events import event_handler
from hub.models import DomainEvent

from .matching import payment_match
from .models import Payment
from .pay_online import pay_online_gateway


@event_handler("invoicing.match_payment", events=("payment.received",))
def match_payment(event: DomainEvent) -> None:
    """Payments recorded without allocations (API, sync, gateways) are matched here; idempotent."""
    payment = Payment.objects.filter(pk=event.aggregate_id).first()
    if payment is not None:
        payment_match(payment=payment, origin="matching")


@event_handler("invoicing.pay_online", events=("invoice.issued",), queue="default")
def create_payment_link(event: DomainEvent) -> None:
    """Queue the gateway call as its own task: it retries with backoff without holding the event."""
    if not pay_online_gateway() or event.payload.get("kind", "invoice") != "invoice":
        return
    from .tasks import create_payment_link as task

    invoice_id = int(event.aggregate_id)
    transaction.on_commit(lambda: task.delay(invoice_id))
