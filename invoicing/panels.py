"""Money panels on the CRM pages (home, client 360°, deal), registered into ``hub.ui_panels``."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from hub.selectors import user_access
from hub.ui_panels import Panel, register_panel

from . import selectors


@register_panel("home", key="money", order=10)
def home_money(obj, user, request) -> Panel:
    since = timezone.now() - dt.timedelta(days=1)
    return Panel(
        "ui/invoicing/panel_home.html",
        {
            "payments": selectors.payments_since(user=user, since=since),
            "overdue": selectors.overdue_invoices(user=user),
            "waiting": selectors.deals_waiting_for_invoice(user=user),
        },
    )


@register_panel("client", key="money", order=10)
def client_money(client, user, request) -> Panel:
    return Panel(
        "ui/invoicing/panel_client.html", {"money": selectors.client_money(client=client), "client": client}
    )


@register_panel("deal", key="money", order=10)
def deal_money(deal, user, request) -> Panel:
    invoices, allocations = selectors.deal_money(deal=deal)
    access = user_access(user)
    can_issue = access.sees_money or user.has_perm("invoicing.add_invoice")
    issued = next((i for i in invoices if i.kind == "invoice" and i.status not in ("draft", "void")), None)
    return Panel(
        "ui/invoicing/panel_deal.html",
        {
            "deal": deal,
            "invoices": invoices,
            "allocations": allocations,
            "can_issue": can_issue and issued is None and bool(deal.amount_total),
        },
    )
