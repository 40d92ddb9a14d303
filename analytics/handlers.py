"""Keep the rollups current as the canonical model changes: one refresh per event, in its transaction."""

from hub.events import event_handler
from hub.models import DomainEvent

from . import rollups


def _id(event: DomainEvent) -> int:
    return int(event.aggregate_id)


@event_handler(
    "analytics.rollups",
    events=("invoice.*", "payment.*", "deal.*", "client.updated", "client.merged", "currency_rate.set"),
)
def refresh_rollups(event: DomainEvent) -> None:
    kind = event.aggregate_type
    if kind == "invoicing.invoice":
        rollups.rollups_refresh_for(invoice_ids=[_id(event)])
    elif kind == "invoicing.payment":
        ids = [_id(event)]
        invoice = event.payload.get("invoice")
        rollups.rollups_refresh_for(payment_ids=ids, invoice_ids=[invoice] if invoice else [])
    elif kind == "hub.deal":
        rollups.rollups_refresh_for(deal_ids=[_id(event)])
    elif kind == "hub.client":
        ids = [_id(event)]
        target = event.payload.get("into")
        rollups.rollups_refresh_for(client_ids=[*ids, *([target] if target else [])])
    elif kind == "analytics.currencyrate":
        # A rate changes the conversion of every later document in that currency: let the beat task
        # rebuild (cheap to ask for, expensive to do in the request that stored the rate).
        from .models import RollupState

        RollupState.objects.filter(name="facts").update(watermark=None)
