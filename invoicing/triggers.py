"""Invoice triggers: a deal entering a stage issues its invoice (and may e-mail it).

Subscribed to ``deal.stage_changed`` and ``deal.won`` whatever their origin (API, admin, a CRM sync),
so a deal moved in amoCRM and synced here is invoiced the same way. Idempotent: the unique constraint on
(deal, trigger) gives one invoice per deal and trigger however often the event arrives.
"""

from __future__ import annotations

from hub.events import event_handler
from hub.models import Deal, DomainEvent

from . import services
from .models import InvoiceDelivery, InvoiceTrigger


@event_handler("invoicing.triggers", events=("deal.stage_changed", "deal.won"), queue="documents")
def deal_entered_stage(event: DomainEvent) -> None:
    stage_id = event.payload.get("stage")
    if not stage_id:
        return
    triggers = list(
        InvoiceTrigger.objects.filter(stage_id=stage_id, is_active=True).select_related("template")
    )
    if not triggers:
        return
    deal = Deal.objects.select_related("client").get(pk=event.aggregate_id)
    for trigger in triggers:
        invoice, _created = services.invoice_issue_from_deal(
            deal=deal, trigger=trigger, actor=event.actor, origin=f"trigger:{trigger.pk}"
        )
        if (
            trigger.send_email
            and not InvoiceDelivery.objects.filter(invoice=invoice, trigger=trigger).exists()
        ):
            services.invoice_send(invoice=invoice, trigger=trigger, actor=event.actor, origin="trigger")
