"""Reads of invoices and payments for the manager UI, scoped by the caller's role.

Accountants and administrators see every invoice and payment. A manager sees the invoices of the
clients they manage and of the deals they own, and the payments of those clients; the payment
review queue is not theirs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Sum
from django.utils import timezone

from hub.models import Client, Deal, DealStatus
from hub.selectors import clients_visible, deals_visible, user_access

from .models import (
    OPEN_INVOICE_STATUSES,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    MatchDecision,
    MatchStatus,
    Payment,
    PaymentAllocation,
)


def invoices_visible(*, user) -> QuerySet[Invoice]:
    access = user_access(user)
    if access.sees_money:
        return Invoice.objects.all()
    if access.is_manager:
        return Invoice.objects.filter(
            Q(client__manager_id=access.user_id) | Q(deal__manager_id=access.user_id)
        )
    return Invoice.objects.none()


def payments_visible(*, user) -> QuerySet[Payment]:
    access = user_access(user)
    if access.sees_money:
        return Payment.objects.all()
    if access.is_manager:
        return Payment.objects.filter(client__manager_id=access.user_id)
    return Payment.objects.none()


def invoice_list(*, user, status: str = "", search: str = "", overdue: bool = False) -> QuerySet[Invoice]:
    qs = invoices_visible(user=user).select_related("client").defer("pdf")
    if status:
        qs = qs.filter(status=status)
    if overdue:
        qs = qs.filter(status__in=OPEN_INVOICE_STATUSES, due_date__lt=timezone.localdate())
    if search.strip():
        s = search.strip()
        qs = qs.filter(Q(number__icontains=s) | Q(client__name__icontains=s) | Q(client__inn__startswith=s))
    return qs.order_by("-issue_date", "-id")


def invoice_detail(*, user, pk: int) -> Invoice:
    return (
        invoices_visible(user=user)
        .select_related("client", "deal", "company", "credit_note_for")
        .defer("pdf")
        .prefetch_related(
            "lines",
            Prefetch(
                "allocations",
                queryset=PaymentAllocation.objects.select_related("payment").order_by("id"),
            ),
            "deliveries",
        )
        .get(pk=pk)
    )


def payment_list(*, user, status: str = "", search: str = "") -> QuerySet[Payment]:
    qs = payments_visible(user=user).select_related("client", "match_decision")
    if status:
        qs = qs.filter(status=status)
    if search.strip():
        s = search.strip()
        qs = qs.filter(Q(payer_name__icontains=s) | Q(payer_inn__startswith=s) | Q(purpose__icontains=s))
    return qs.order_by("-received_at", "-id")


def review_queue(*, user) -> QuerySet[MatchDecision]:
    """Payments the matcher was not sure about, oldest first (accountants and administrators only)."""
    if not user_access(user).sees_money:
        return MatchDecision.objects.none()
    return (
        MatchDecision.objects.filter(status=MatchStatus.REVIEW)
        .select_related("payment", "payment__client", "invoice", "client")
        .order_by("created_at", "id")
    )


@dataclass
class ClientMoney:
    invoices: list[Invoice]
    payments: list[Payment]
    invoiced: Decimal
    paid: Decimal
    debt: Decimal
    overdue: Decimal
    credit: Decimal
    currencies: list[str]


def client_money(*, client: Client, limit: int = 50) -> ClientMoney:
    """Invoices with status, payments, and the balance (per the company currency documents)."""
    invoices = list(Invoice.objects.filter(client=client).defer("pdf").order_by("-issue_date", "-id")[:limit])
    payments = list(
        Payment.objects.filter(client=client)
        .prefetch_related(
            Prefetch("allocations", queryset=PaymentAllocation.objects.select_related("invoice"))
        )
        .order_by("-received_at", "-id")[:limit]
    )
    today = timezone.localdate()
    sums = Invoice.objects.filter(client=client, kind=InvoiceKind.INVOICE).exclude(
        status__in=[InvoiceStatus.DRAFT, InvoiceStatus.VOID]
    )
    totals = sums.aggregate(
        invoiced=Sum("amount_total"),
        paid=Sum("amount_paid"),
        overdue_total=Sum("amount_total", filter=Q(status__in=OPEN_INVOICE_STATUSES, due_date__lt=today)),
        overdue_paid=Sum("amount_paid", filter=Q(status__in=OPEN_INVOICE_STATUSES, due_date__lt=today)),
        open_total=Sum("amount_total", filter=Q(status__in=OPEN_INVOICE_STATUSES)),
        open_paid=Sum("amount_paid", filter=Q(status__in=OPEN_INVOICE_STATUSES)),
    )
    pay = Payment.objects.filter(client=client).aggregate(
        amount=Sum("amount"), allocated=Sum("amount_allocated")
    )
    zero = Decimal("0.00")
    currencies = sorted({i.currency for i in invoices} | {p.currency for p in payments})
    return ClientMoney(
        invoices=invoices,
        payments=payments,
        invoiced=totals["invoiced"] or zero,
        paid=totals["paid"] or zero,
        debt=(totals["open_total"] or zero) - (totals["open_paid"] or zero),
        overdue=(totals["overdue_total"] or zero) - (totals["overdue_paid"] or zero),
        credit=(pay["amount"] or zero) - (pay["allocated"] or zero),
        currencies=currencies,
    )


def deal_money(*, deal: Deal) -> tuple[list[Invoice], list[PaymentAllocation]]:
    invoices = list(Invoice.objects.filter(deal=deal).defer("pdf").order_by("-id"))
    allocations = list(
        PaymentAllocation.objects.filter(invoice__deal=deal)
        .select_related("payment", "invoice")
        .order_by("-id")
    )
    return invoices, allocations


def deal_issued_invoice(deal: Deal) -> Invoice | None:
    return (
        Invoice.objects.filter(deal=deal, kind=InvoiceKind.INVOICE)
        .exclude(status__in=[InvoiceStatus.DRAFT, InvoiceStatus.VOID])
        .defer("pdf")
        .first()
    )


# --- home ----------------------------------------------------------------------------------------


def payments_since(*, user, since: dt.datetime, limit: int = 10) -> list[Payment]:
    return list(
        payments_visible(user=user)
        .filter(received_at__gte=since)
        .select_related("client")
        .order_by("-received_at")[:limit]
    )


def overdue_invoices(*, user, limit: int = 10) -> list[Invoice]:
    return list(invoice_list(user=user, overdue=True).order_by("due_date", "id")[:limit])


def deals_waiting_for_invoice(*, user, limit: int = 10) -> list[Deal]:
    """Won deals without an issued invoice (a draft still waits)."""
    invoiced = Invoice.objects.filter(deal=OuterRef("pk"), kind=InvoiceKind.INVOICE).exclude(
        status__in=[InvoiceStatus.DRAFT, InvoiceStatus.VOID]
    )
    return list(
        deals_visible(user=user)
        .filter(status=DealStatus.WON)
        .filter(~Exists(invoiced))
        .select_related("client")
        .order_by("-won_at")[:limit]
    )


def client_is_visible(*, user, client_id: int | None) -> bool:
    return client_id is not None and clients_visible(user=user).filter(pk=client_id).exists()
