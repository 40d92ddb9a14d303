"""Outbound sync from the outbox: a canonical change leaves for every other connected system."""

from __future__ import annotations

from decimal import Decimal

from hub.events import event_handler
from hub.models import DomainEvent
from invoicing.models import Invoice

from . import services

ENTITY_OF = {
    "hub.client": "clients",
    "hub.contact": "contacts",
    "hub.deal": "deals",
    "hub.product": "products",
    "invoicing.invoice": "invoices",
}
PUSH_EVENTS = (
    "client.created", "client.updated", "contact.created", "contact.updated", "deal.created", "deal.updated",
    "deal.stage_changed", "product.created", "product.updated", "invoice.issued", "invoice.voided",
    "clients.synced",
)  # fmt: skip


@event_handler("sync.push", events=PUSH_EVENTS, queue="sync")
def push(event: DomainEvent) -> None:
    """Never back to the change's origin; unchanged content (by hash) is not sent again. A bulk pull's
    `clients.synced` (one event per page) pushes each client it created or updated."""
    if event.type == "clients.synced":
        ids = [*event.payload.get("created", []), *event.payload.get("updated", [])]
        services.push_changes_many(entity="clients", object_ids=ids, origin=event.origin)
        return
    entity = ENTITY_OF.get(event.aggregate_type)
    if entity:
        services.push_changes(entity=entity, object_id=int(event.aggregate_id), origin=event.origin)


@event_handler("sync.tombstone", events=("client.archived",), queue="sync")
def tombstone(event: DomainEvent) -> None:
    entity = ENTITY_OF.get(event.aggregate_type)
    if entity:
        services.tombstone_push(entity=entity, object_id=int(event.aggregate_id), origin=event.origin)


@event_handler("sync.paid_note", events=("invoice.paid",), queue="sync")
def paid_note(event: DomainEvent) -> None:
    """The CRM deal learns that its invoice was paid."""
    invoice = Invoice.objects.filter(pk=event.aggregate_id).first()
    if invoice is None or invoice.deal_id is None:
        return
    amount = Decimal(invoice.amount_paid).quantize(Decimal("0.01"))
    services.note_to_crm(
        entity="deals",
        object_id=invoice.deal_id,
        text=f"Invoice {invoice.number} paid in full: {amount} {invoice.currency}.",
    )
