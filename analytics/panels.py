"""The client 360° page's lifetime figures: LTV (gross profit to date), first payment, months active."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Sum

from hub.ui_panels import Panel, register_panel

from . import metrics
from .models import ClientFact, ClientMonth
from .rollups import accrual_invoices, company_currency


@register_panel("client", key="ltv", order=20)
def client_ltv(client, user, request) -> Panel:
    """LTV here is the client's own gross profit to date on issued invoices, in the company currency."""
    sums = accrual_invoices().filter(client_id=client.pk).aggregate(r=Sum("a_amount"), c=Sum("a_cost"))
    revenue, cost = Decimal(sums["r"] or 0), Decimal(sums["c"] or 0)
    return Panel(
        "ui/analytics/panel_client.html",
        {
            "fact": ClientFact.objects.filter(client_id=client.pk).first(),
            "active_months": ClientMonth.objects.filter(client_id=client.pk).count(),
            "revenue": metrics.money(revenue),
            "gross_profit": metrics.gross_profit(revenue, cost),
            "margin": metrics.margin_pct(revenue, cost).value,
            "currency": company_currency(),
        },
    )
