"""Writes to the money side: draft invoices, issuing with gapless numbers, payments and allocations.

Every total is recomputed from lines here and stored; DB constraints re-check the arithmetic that can
be expressed in SQL (total = net + VAT, paid ≤ total, allocated ≤ payment).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from hub import requisites
from hub.errors import Conflict, ValidationFailed
from hub.events import event_record
from hub.models import Client, Company, Deal
from hub.pricing import document_totals, line_totals
from hub.services import _apply, _build_lines, company_get_default, deal_vat_mode

from .models import (
    OPEN_INVOICE_STATUSES,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    NumberSequence,
    Payment,
    PaymentAllocation,
    PaymentSource,
    PaymentStatus,
)

DEFAULT_PAYMENT_TERM_DAYS = 5


def _lines_from(built) -> list[InvoiceLine]:
    return [
        InvoiceLine(
            position=ln.position,
            product=ln.product,
            description=ln.description,
            unit=ln.unit,
            quantity=ln.quantity,
            unit_price=ln.unit_price,
            discount_pct=ln.discount_pct,
            vat_rate=ln.vat_rate,
            unit_cost=ln.unit_cost,
            amount_net=ln.amount_net,
            vat_amount=ln.vat_amount,
            amount_total=ln.amount_total,
            cost_total=ln.cost_total,
        )
        for ln in built
    ]


def _set_totals(invoice: Invoice, lines: Iterable[InvoiceLine]) -> None:
    totals = document_totals(
        line_totals(
            quantity=ln.quantity,
            unit_price=ln.unit_price,
            discount_pct=ln.discount_pct,
            vat_rate=ln.vat_rate,
            unit_cost=ln.unit_cost,
            vat_mode=invoice.vat_mode,
        )
        for ln in lines
    )
    invoice.amount_net, invoice.vat_amount = totals.amount_net, totals.vat_amount
    invoice.amount_total, invoice.cost_total = totals.amount_total, totals.cost_total


def invoice_create_draft(
    *,
    client: Client,
    lines: Iterable[Mapping[str, Any]],
    deal: Deal | None = None,
    company: Company | None = None,
    currency: str | None = None,
    vat_mode: str | None = None,
    due_date: dt.date | None = None,
    purpose: str = "",
    actor=None,
    origin: str = "api",
) -> Invoice:
    """A draft invoice: lines and totals, no number yet."""
    company = company or (deal.company if deal else None) or company_get_default()
    vat_mode = vat_mode or (deal.vat_mode if deal else deal_vat_mode(company=company, client=client))
    errors: dict[str, list[str]] = {}
    try:
        currency = requisites.normalize_currency(
            currency or (deal.currency if deal else company.default_currency)
        )
    except ValueError as exc:
        errors["currency"] = [str(exc)]
    lines = list(lines)
    if not lines:
        errors["lines"] = ["An invoice needs at least one line."]
    built, line_errors = _build_lines(lines, vat_mode=vat_mode)
    errors.update(line_errors)
    if client.merged_into_id:
        errors["client"] = [f"The client was merged into client #{client.merged_into_id}."]
    if deal is not None and deal.client_id != client.pk:
        errors["deal"] = ["The deal belongs to another client."]
    if errors:
        raise ValidationFailed.from_fields(errors)
    with transaction.atomic():
        invoice = Invoice(
            company=company,
            client=client,
            deal=deal,
            currency=currency,
            vat_mode=vat_mode,
            due_date=due_date,
            purpose=purpose[:210],
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        invoice_lines = _lines_from(built)
        _set_totals(invoice, invoice_lines)
        invoice.save()
        for line in invoice_lines:
            line.invoice = invoice
        InvoiceLine.objects.bulk_create(invoice_lines)
        event_record(
            type="invoice.created",
            instance=invoice,
            payload={
                "client": client.pk,
                "deal": deal.pk if deal else None,
                "amount_total": invoice.amount_total,
            },
            origin=origin,
            actor=actor,
        )
    return invoice


DRAFT_FIELDS = ("company", "client", "deal", "currency", "vat_mode", "due_date", "purpose")


def invoice_update_draft(
    *,
    invoice: Invoice,
    lines: list[dict[str, Any]] | None = None,
    actor=None,
    origin: str = "admin",
    **data: Any,
) -> Invoice:
    """Change a draft's header and/or replace its lines; totals are recomputed from the lines."""
    errors: dict[str, list[str]] = {}
    if data.get("currency"):
        try:
            data["currency"] = requisites.normalize_currency(data["currency"])
        except ValueError as exc:
            errors["currency"] = [str(exc)]
    if errors:
        raise ValidationFailed.from_fields(errors)
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if locked.status != InvoiceStatus.DRAFT:
            raise Conflict(f"Invoice {locked} is issued and can no longer be changed.", code="already_issued")
        changes = _apply(locked, data, DRAFT_FIELDS)
        if locked.client.merged_into_id:
            errors["client"] = [f"The client was merged into client #{locked.client.merged_into_id}."]
        if locked.deal_id and locked.deal.client_id != locked.client_id:
            errors["deal"] = ["The deal belongs to another client."]
        if lines is None and "vat_mode" in changes:
            lines = [
                {
                    name: getattr(ln, name)
                    for name in (
                        "product",
                        "description",
                        "unit",
                        "quantity",
                        "unit_price",
                        "discount_pct",
                        "vat_rate",
                        "unit_cost",
                    )
                }
                for ln in locked.lines.select_related("product")
            ]
        built = None
        if lines is not None:
            if not lines:
                errors["lines"] = ["An invoice needs at least one line."]
            built, line_errors = _build_lines(lines, vat_mode=locked.vat_mode)
            errors.update(line_errors)
        if errors:
            raise ValidationFailed.from_fields(errors)
        if built is not None:
            before = locked.amount_total
            locked.lines.all().delete()
            new_lines = _lines_from(built)
            for line in new_lines:
                line.invoice = locked
            InvoiceLine.objects.bulk_create(new_lines)
            _set_totals(locked, new_lines)
            changes["lines"] = [None, len(new_lines)]
            if before != locked.amount_total:
                changes["amount_total"] = [before, locked.amount_total]
        if not changes:
            return locked
        locked.save()
        event_record(
            type="invoice.updated", instance=locked, payload={"changes": changes}, origin=origin, actor=actor
        )
    return locked


def invoice_create_from_deal(*, deal: Deal, actor=None, origin: str = "api", **kwargs: Any) -> Invoice:
    lines = [
        {
            "product": ln.product,
            "description": ln.description,
            "unit": ln.unit,
            "quantity": ln.quantity,
            "unit_price": ln.unit_price,
            "discount_pct": ln.discount_pct,
            "vat_rate": ln.vat_rate,
            "unit_cost": ln.unit_cost,
        }
        for ln in deal.lines.select_related("product")
    ]
    if not lines:
        raise ValidationFailed(
            "The deal has no lines to invoice.", fields={"lines": ["The deal has no lines."]}
        )
    return invoice_create_draft(
        client=deal.client, deal=deal, lines=lines, actor=actor, origin=origin, **kwargs
    )


def number_next(*, company: Company, prefix: str, year: int) -> int:
    """Take the next number of a sequence. Call inside the transaction that uses it: gapless."""
    NumberSequence.objects.get_or_create(company=company, prefix=prefix, year=year)
    seq = NumberSequence.objects.select_for_update().get(company=company, prefix=prefix, year=year)
    seq.last_number += 1
    seq.save(update_fields=["last_number"])
    return seq.last_number


def invoice_issue(
    *, invoice: Invoice, issue_date: dt.date | None = None, prefix: str = "", actor=None, origin: str = "api"
) -> Invoice:
    """Number and issue a draft. Totals are re-checked against the lines first."""
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if locked.status != InvoiceStatus.DRAFT:
            raise Conflict(f"Invoice {locked.number} is already issued.", code="already_issued")
        lines = list(locked.lines.all())
        if not lines:
            raise ValidationFailed("An invoice needs at least one line.", fields={"lines": ["No lines."]})
        stored = (locked.amount_net, locked.vat_amount, locked.amount_total)
        _set_totals(locked, lines)
        if stored != (locked.amount_net, locked.vat_amount, locked.amount_total):
            raise ValidationFailed(
                "Stored totals do not match the lines.",
                fields={"amount_total": ["Mismatch."]},
                code="totals_mismatch",
            )
        issue_date = issue_date or timezone.localdate()
        number = number_next(company=locked.company, prefix=prefix, year=issue_date.year)
        locked.sequence_year, locked.sequence_number = issue_date.year, number
        locked.number = f"{prefix}{issue_date.year}-{number:05d}"
        locked.status = InvoiceStatus.ISSUED
        locked.issue_date = issue_date
        locked.due_date = locked.due_date or issue_date + dt.timedelta(days=DEFAULT_PAYMENT_TERM_DAYS)
        locked.issued_at = timezone.now()
        if not locked.purpose:
            locked.purpose = f"Оплата по счёту № {locked.number} от {issue_date:%d.%m.%Y}"
        locked.save()
        event_record(
            type="invoice.issued",
            instance=locked,
            payload={
                "number": locked.number,
                "client": locked.client_id,
                "deal": locked.deal_id,
                "amount_total": locked.amount_total,
                "currency": locked.currency,
            },
            origin=origin,
            actor=actor,
        )
    return locked


# --- payments -------------------------------------------------------------------------------------


def payment_record(
    *,
    amount: Decimal,
    received_at: dt.datetime,
    currency: str | None = None,
    client: Client | None = None,
    company: Company | None = None,
    source: str = PaymentSource.MANUAL,
    external_id: str = "",
    payer_name: str = "",
    payer_inn: str = "",
    purpose: str = "",
    allocations: Iterable[Mapping[str, Any]] = (),
    actor=None,
    origin: str = "api",
) -> Payment:
    """Record an incoming payment, optionally allocating it to invoices at once.

    ``(source, external_id)`` is the natural key: recording the same bank document or gateway payment
    twice is refused with ``Conflict`` (code ``duplicate``) and changes nothing.
    """
    company = company or company_get_default()
    errors: dict[str, list[str]] = {}
    if amount is None or amount <= 0:
        errors["amount"] = ["Must be greater than zero."]
    if received_at is None or timezone.is_naive(received_at):
        errors["received_at"] = ["A date and time with a time zone is required."]
    try:
        currency = requisites.normalize_currency(currency or company.default_currency)
    except ValueError as exc:
        errors["currency"] = [str(exc)]
    if source not in PaymentSource.values:
        errors["source"] = [f"Unknown source; one of {', '.join(PaymentSource.values)}."]
    if payer_inn:
        try:
            payer_inn = requisites.normalize_inn(payer_inn)
        except ValueError as exc:
            errors["payer_inn"] = [str(exc)]
    if errors:
        raise ValidationFailed.from_fields(errors)
    if client is None and payer_inn:
        client = Client.objects.filter(inn=payer_inn, merged_into__isnull=True).order_by("id").first()
    try:
        with transaction.atomic():
            payment = Payment.objects.create(
                company=company,
                client=client,
                source=source,
                external_id=external_id.strip(),
                amount=amount,
                currency=currency,
                received_at=received_at,
                payer_name=payer_name,
                payer_inn=payer_inn,
                purpose=purpose,
                created_by=actor if getattr(actor, "pk", None) else None,
            )
            event_record(
                type="payment.received",
                instance=payment,
                payload={
                    "amount": amount,
                    "currency": currency,
                    "client": client.pk if client else None,
                    "source": source,
                },
                origin=origin,
                actor=actor,
            )
            for alloc in allocations:
                payment_allocate(
                    payment=payment,
                    invoice=alloc["invoice"],
                    amount=alloc.get("amount"),
                    actor=actor,
                    origin=origin,
                )
    except IntegrityError as exc:
        if external_id and Payment.objects.filter(source=source, external_id=external_id.strip()).exists():
            raise Conflict(
                f"Payment {external_id!r} from {source} is already recorded.",
                code="duplicate",
                fields={"external_id": ["Already recorded."]},
            ) from exc
        raise
    payment.refresh_from_db()
    return payment


def payment_allocate(
    *, payment: Payment, invoice: Invoice, amount: Decimal | None = None, actor=None, origin: str = "api"
) -> PaymentAllocation:
    """Apply (part of) a payment to an invoice; moves the invoice to partially paid or paid."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        errors: dict[str, list[str]] = {}
        if invoice.status not in OPEN_INVOICE_STATUSES:
            errors["invoice"] = [
                f"Invoice {invoice} is {invoice.get_status_display().lower()}, not open for payment."
            ]
        if invoice.currency != payment.currency:
            errors["invoice"] = [f"Invoice is in {invoice.currency}, the payment in {payment.currency}."]
        if payment.client_id and invoice.client_id != payment.client_id:
            errors["invoice"] = ["The invoice belongs to another client."]
        if errors:
            raise ValidationFailed.from_fields(errors)
        available = min(payment.amount - payment.amount_allocated, invoice.amount_total - invoice.amount_paid)
        amount = available if amount is None else amount
        if amount <= 0 or amount > available:
            raise ValidationFailed(
                f"Can allocate at most {available} {payment.currency}.",
                fields={"amount": [f"At most {available}."]},
            )
        allocation, created = PaymentAllocation.objects.get_or_create(
            payment=payment,
            invoice=invoice,
            defaults={"amount": amount, "created_by": actor if getattr(actor, "pk", None) else None},
        )
        if not created:
            allocation.amount += amount
            allocation.save(update_fields=["amount"])
        now = timezone.now()
        payment.amount_allocated = payment.allocations.aggregate(s=Sum("amount"))["s"] or Decimal("0")
        payment.status = (
            PaymentStatus.ALLOCATED
            if payment.amount_allocated == payment.amount
            else PaymentStatus.PARTIALLY_ALLOCATED
        )
        if payment.client_id is None:
            payment.client_id = invoice.client_id
        payment.save(update_fields=["amount_allocated", "status", "client", "updated_at"])
        invoice.amount_paid = invoice.allocations.aggregate(s=Sum("amount"))["s"] or Decimal("0")
        fully = invoice.amount_paid == invoice.amount_total
        invoice.status = InvoiceStatus.PAID if fully else InvoiceStatus.PARTIALLY_PAID
        invoice.paid_at = now if fully else None
        invoice.save(update_fields=["amount_paid", "status", "paid_at", "updated_at"])
        payload = {
            "payment": payment.pk,
            "invoice": invoice.pk,
            "number": invoice.number,
            "amount": amount,
            "amount_paid": invoice.amount_paid,
            "amount_total": invoice.amount_total,
        }
        event_record(type="payment.allocated", instance=payment, payload=payload, origin=origin, actor=actor)
        event_record(
            type="invoice.paid" if fully else "invoice.partially_paid",
            instance=invoice,
            payload=payload,
            origin=origin,
            actor=actor,
        )
    return allocation
