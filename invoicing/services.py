"""Writes to the money side: draft invoices, issuing with gapless numbers, payments and allocations.

Every total is recomputed from lines here and stored; DB constraints re-check the arithmetic that can
be expressed in SQL (total = net + VAT, paid ≤ total, allocated ≤ payment).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import F as models_F
from django.db.models import Q, Sum
from django.utils import timezone

from hub import requisites
from hub.errors import Conflict, ValidationFailed
from hub.events import event_record
from hub.models import Client, Company, Deal
from hub.pricing import document_totals, line_totals
from hub.services import apply_changes, build_deal_lines, company_get_default, deal_vat_mode

from .models import (
    OPEN_INVOICE_STATUSES,
    DeliveryStatus,
    Invoice,
    InvoiceDelivery,
    InvoiceKind,
    InvoiceLayout,
    InvoiceLine,
    InvoiceStatus,
    InvoiceTemplate,
    InvoiceTrigger,
    NumberSequence,
    Payment,
    PaymentAllocation,
    PaymentSource,
    PaymentStatus,
    VatRate,
)

logger = logging.getLogger(__name__)

DEFAULT_PAYMENT_TERM_DAYS = 5
CREDIT_NOTE_PREFIX = "CN-"


# --- VAT rates ------------------------------------------------------------------------------------


def vat_country() -> str:
    """The country whose rates apply. Our own companies are Russian today; rates of others are data."""
    return getattr(settings, "INVOICING_VAT_COUNTRY", "RU")


def vat_rates_valid(*, on: dt.date, country: str | None = None) -> set[Decimal]:
    """Rates valid on ``on`` (``valid_from`` ≤ on ≤ ``valid_to``, open ends allowed)."""
    rows = VatRate.objects.filter(country=country or vat_country()).filter(
        Q(valid_from__isnull=True) | Q(valid_from__lte=on), Q(valid_to__isnull=True) | Q(valid_to__gte=on)
    )
    return {rate.normalize() for rate in rows.values_list("rate", flat=True)}


def _check_vat_rates(
    rates: Iterable[Decimal], *, on: dt.date, vat_mode: str, errors: dict[str, list[str]]
) -> None:
    """Each line's rate must be a ``VatRate`` valid on ``on``; with no VAT the rates are not used."""
    if vat_mode == "none":
        return
    valid = vat_rates_valid(on=on)
    listed = ", ".join(f"{r:f}" for r in sorted(valid, reverse=True)) or "none configured"
    for i, rate in enumerate(rates):
        if rate is not None and Decimal(rate).normalize() not in valid:
            errors.setdefault(f"lines[{i}].vat_rate", []).append(
                f"{Decimal(rate).normalize():f} % is not a VAT rate valid on {on:%d.%m.%Y} (valid: {listed})."
            )


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
    built, line_errors = build_deal_lines(lines, vat_mode=vat_mode)
    errors.update(line_errors)
    if not line_errors:
        _check_vat_rates(
            [ln.vat_rate for ln in built], on=timezone.localdate(), vat_mode=vat_mode, errors=errors
        )
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
        changes = apply_changes(locked, data, DRAFT_FIELDS)
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
            built, line_errors = build_deal_lines(lines, vat_mode=locked.vat_mode)
            errors.update(line_errors)
            if not line_errors:
                _check_vat_rates(
                    [ln.vat_rate for ln in built],
                    on=timezone.localdate(),
                    vat_mode=locked.vat_mode,
                    errors=errors,
                )
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


def _check_buyer(client: Client, errors: dict[str, list[str]]) -> None:
    """The buyer's requisites an invoice cannot go out without."""
    if not (client.legal_name or client.name).strip():
        errors.setdefault("client.name", []).append("The client has no name to print.")
    if client.country == "RU" and client.kind == "company" and not client.inn:
        errors.setdefault("client.inn", []).append("A Russian company is invoiced with its INN.")
    if client.country != "RU" and not (client.foreign_tax_id or client.address):
        errors.setdefault("client.address", []).append("A foreign client needs an address or a tax id.")


def invoice_create_from_deal(*, deal: Deal, actor=None, origin: str = "api", **kwargs: Any) -> Invoice:
    """A draft copying the deal's lines (prices, discounts, VAT rates) and its VAT mode."""
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
    errors: dict[str, list[str]] = {}
    if not lines:
        errors["lines"] = ["The deal has no lines to invoice."]
    _check_buyer(deal.client, errors)
    if errors:
        raise ValidationFailed.from_fields(errors)
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


# --- templates ------------------------------------------------------------------------------------


def invoice_template_for(
    *, client: Client, template: InvoiceTemplate | None = None
) -> InvoiceTemplate | None:
    """The given template, else the default of the client's layout (Russian clients: «Счёт на оплату»)."""
    if template is not None:
        return template
    layout = InvoiceLayout.RU if client.country == "RU" else InvoiceLayout.EN
    return InvoiceTemplate.objects.filter(layout=layout, is_default=True).first()


def _specimen():
    """An unsaved invoice with every printed field filled: what a template is checked against."""
    company = Company(
        legal_name="ООО «Образец»",
        inn="7707083893",
        kpp="773601001",
        bank_name="Банк",
        bic="044525225",
        settlement_account="40702810938000000001",
        correspondent_account="30101810400000000225",
        address="Москва",
    )
    client = Client(name="Покупатель", inn="7736050003", kpp="773601001", country="RU", address="Москва")
    invoice = Invoice(
        company=company,
        client=client,
        number="2026-00000",
        status="issued",
        currency="RUB",
        vat_mode="on_top",
        issue_date=dt.date(2026, 1, 1),
        due_date=dt.date(2026, 1, 6),
        purpose="Оплата",
        amount_net=Decimal("100.00"),
        vat_amount=Decimal("22.00"),
        amount_total=Decimal("122.00"),
    )
    line = InvoiceLine(
        position=1,
        description="Товар",
        unit="шт",
        quantity=Decimal("1"),
        unit_price=Decimal("100.00"),
        discount_pct=Decimal("0"),
        vat_rate=Decimal("22"),
        amount_net=Decimal("100.00"),
        vat_amount=Decimal("22.00"),
        amount_total=Decimal("122.00"),
    )
    return invoice, [line]


def invoice_template_verify(*, template: InvoiceTemplate | None) -> None:
    """Render a specimen in the sandbox; raise ``ValidationFailed`` naming the template's field.

    Remembered by content hash on the row, so a template is laid out once per edit, not per issue.
    """
    from . import pdf

    digest = pdf.template_hash(template)
    if template is not None and template.verified_hash == digest:
        return
    invoice, lines = _specimen()
    html_source, css = pdf.template_sources(template)
    html = pdf.render_html(html_source, pdf.invoice_context(invoice, template, lines=lines))
    pdf.render_pdf(html, css)
    if template is not None and template.pk:
        InvoiceTemplate.objects.filter(pk=template.pk).update(verified_hash=digest)
        template.verified_hash = digest


# --- issue ----------------------------------------------------------------------------------------


def _on_commit_task(task_name: str, *args: Any) -> None:
    def queue() -> None:
        from . import tasks

        try:
            getattr(tasks, task_name).delay(*args)
        except Exception:  # the work is recorded in the DB; an admin action or a retry redoes it
            logger.exception("could not queue %s", task_name, extra={"args": args})

    transaction.on_commit(queue)


def invoice_issue(
    *,
    invoice: Invoice,
    issue_date: dt.date | None = None,
    prefix: str = "",
    template: InvoiceTemplate | None = None,
    actor=None,
    origin: str = "api",
) -> Invoice:
    """Number and issue a draft. Everything is checked before the number is taken, so a refusal
    consumes no number: the lines and their totals, the VAT rates on the issue date, the buyer's
    requisites and the template (rendered once in the sandbox)."""
    issue_date = issue_date or timezone.localdate()
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().select_related("client").get(pk=invoice.pk)
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
        errors: dict[str, list[str]] = {}
        if locked.kind == InvoiceKind.INVOICE:  # a credit note keeps the rates of what it corrects
            _check_vat_rates(
                [ln.vat_rate for ln in lines], on=issue_date, vat_mode=locked.vat_mode, errors=errors
            )
            _check_buyer(locked.client, errors)
        if errors:
            raise ValidationFailed.from_fields(errors)
        template = invoice_template_for(client=locked.client, template=template or locked.template)
        invoice_template_verify(template=template)
        number = number_next(company=locked.company, prefix=prefix, year=issue_date.year)
        locked.sequence_year, locked.sequence_number = issue_date.year, number
        locked.number = f"{prefix}{issue_date.year}-{number:05d}"
        locked.status = InvoiceStatus.ISSUED
        locked.template = template
        locked.issue_date = issue_date
        locked.due_date = locked.due_date or issue_date + dt.timedelta(days=DEFAULT_PAYMENT_TERM_DAYS)
        locked.issued_at = timezone.now()
        if not locked.purpose:
            locked.purpose = f"Оплата по счёту № {locked.number} от {issue_date:%d.%m.%Y}"
        locked.save()
        # ``invoice.issued`` is the seam the sync engine subscribes to, to push the invoice to accounting.
        event_record(
            type="invoice.issued",
            instance=locked,
            payload={
                "number": locked.number,
                "kind": locked.kind,
                "client": locked.client_id,
                "deal": locked.deal_id,
                "credit_note_for": locked.credit_note_for_id,
                "amount_total": locked.amount_total,
                "currency": locked.currency,
            },
            origin=origin,
            actor=actor,
        )
        _on_commit_task("render_invoice_pdf", locked.pk)
    return locked


def invoice_issue_from_deal(
    *,
    deal: Deal,
    trigger: InvoiceTrigger | None = None,
    template: InvoiceTemplate | None = None,
    actor=None,
    origin: str = "api",
) -> tuple[Invoice, bool]:
    """Issue the deal's invoice: its draft if it has one, else a new one from its lines.

    Returns ``(invoice, created)``. With a trigger it is idempotent: the unique constraint on
    (deal, trigger) means the second arrival of the event gets the first invoice. Without one, a deal
    that already has an open invoice is refused (``already_invoiced``) rather than billed twice.
    All in one transaction: a refusal leaves no draft and consumes no number.
    """
    if trigger is not None:
        existing = Invoice.objects.filter(deal=deal, trigger=trigger).first()
        if existing is not None:
            return existing, False
    else:
        issued = (
            Invoice.objects.filter(deal=deal, kind=InvoiceKind.INVOICE)
            .exclude(status__in=[InvoiceStatus.DRAFT, InvoiceStatus.VOID])
            .order_by("id")
            .first()
        )
        if issued is not None:
            raise Conflict(
                f"The deal is already invoiced by {issued.number}; void it first to invoice again.",
                code="already_invoiced",
                fields={"deal": [f"Invoiced by {issued.number}."]},
            )
    try:
        with transaction.atomic():
            draft = (
                Invoice.objects.filter(deal=deal, kind=InvoiceKind.INVOICE, status=InvoiceStatus.DRAFT)
                .order_by("id")
                .first()
                if trigger is None
                else None
            )
            if draft is None:
                draft = invoice_create_from_deal(deal=deal, actor=actor, origin=origin)
            if trigger is not None:
                draft.trigger = trigger
                draft.save(update_fields=["trigger", "updated_at"])
            invoice = invoice_issue(
                invoice=draft,
                prefix=trigger.prefix if trigger else "",
                template=template or (trigger.template if trigger else None),
                actor=actor,
                origin=origin,
            )
    except IntegrityError:
        if trigger is not None:
            existing = Invoice.objects.filter(deal=deal, trigger=trigger).first()
            if existing is not None:
                return existing, False
        raise
    return invoice, True


# --- lifecycle after issue ------------------------------------------------------------------------


def invoice_void(*, invoice: Invoice, reason: str = "", actor=None, origin: str = "api") -> Invoice:
    """Cancel an issued invoice nobody has paid. Its number stays used (gapless means no reuse)."""
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if locked.status == InvoiceStatus.DRAFT:
            raise Conflict("A draft has no number to void; delete it instead.", code="draft")
        if locked.status == InvoiceStatus.VOID:
            raise Conflict(f"Invoice {locked.number} is already void.", code="already_void")
        if locked.amount_paid > 0:
            raise Conflict(
                f"Invoice {locked.number} is paid in part or in full: issue a credit note instead.",
                code="paid",
            )
        locked.status = InvoiceStatus.VOID
        locked.voided_at = timezone.now()
        locked.void_reason = reason[:255]
        locked.save(update_fields=["status", "voided_at", "void_reason", "updated_at"])
        event_record(
            type="invoice.voided",
            instance=locked,
            payload={"number": locked.number, "reason": locked.void_reason},
            origin=origin,
            actor=actor,
        )
    return locked


def invoice_credit_note_create(
    *, invoice: Invoice, reason: str = "", actor=None, origin: str = "api"
) -> Invoice:
    """An issued credit note for the whole of an issued invoice, numbered in its own ``CN-`` series."""
    with transaction.atomic():
        original = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if original.kind != InvoiceKind.INVOICE or original.status in (
            InvoiceStatus.DRAFT,
            InvoiceStatus.VOID,
        ):
            raise Conflict(
                "Only an issued invoice (not a draft, void or credit note) can be credited.",
                code="not_issued",
            )
        if original.credit_notes.exclude(status=InvoiceStatus.VOID).exists():
            raise Conflict(f"Invoice {original.number} already has a credit note.", code="already_credited")
        note = Invoice.objects.create(
            kind=InvoiceKind.CREDIT_NOTE,
            company=original.company,
            client=original.client,
            deal=original.deal,
            credit_note_for=original,
            currency=original.currency,
            vat_mode=original.vat_mode,
            template=original.template,
            purpose=(reason or f"Кредит-нота к счёту № {original.number}")[:210],
            amount_net=original.amount_net,
            vat_amount=original.vat_amount,
            amount_total=original.amount_total,
            cost_total=original.cost_total,
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        lines = list(original.lines.all())
        for line in lines:
            line.pk = None
            line.invoice = note
        InvoiceLine.objects.bulk_create(lines)
        event_record(
            type="invoice.created",
            instance=note,
            payload={
                "client": note.client_id,
                "credit_note_for": original.pk,
                "amount_total": note.amount_total,
            },
            origin=origin,
            actor=actor,
        )
        # Its VAT is the original's, at the original's rates: that is what it corrects.
        note = invoice_issue(invoice=note, prefix=CREDIT_NOTE_PREFIX, actor=actor, origin=origin)
    return note


# --- PDF and e-mail -------------------------------------------------------------------------------


def invoice_pdf(*, invoice: Invoice) -> bytes:
    """The invoice's PDF: from the cache when the HTML it would be laid out from has not changed."""
    from . import pdf

    if invoice.status == InvoiceStatus.DRAFT:
        raise Conflict("A draft has no number yet: issue it to print it.", code="draft")
    invoice = (
        Invoice.objects.select_related("company", "client", "deal", "credit_note_for", "template")
        .prefetch_related("lines")
        .get(pk=invoice.pk)
    )
    template = invoice.template or invoice_template_for(client=invoice.client)
    printable = pdf.invoice_printable(invoice, template)
    if invoice.pdf_key == printable.key and invoice.pdf:
        return bytes(invoice.pdf)
    data = pdf.render_pdf(printable.html, printable.css)
    # A cache, not a business change: no event, and ``updated_at`` stays as it is.
    Invoice.objects.filter(pk=invoice.pk).update(
        pdf=data, pdf_key=printable.key, pdf_rendered_at=timezone.now()
    )
    return data


def invoice_send(
    *,
    invoice: Invoice,
    to: str | None = None,
    trigger: InvoiceTrigger | None = None,
    actor=None,
    origin: str = "api",
) -> InvoiceDelivery:
    """Log an e-mail delivery of the invoice and queue it (sent by ``invoice_delivery_send``)."""
    if invoice.status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
        raise Conflict(f"A {invoice.get_status_display().lower()} invoice is not sent.", code="not_sendable")
    recipient = (to or invoice.client.email or "").strip()
    if not recipient:
        field = "to" if to is not None else "client.email"
        raise ValidationFailed("No e-mail address to send the invoice to.", fields={field: ["Required."]})
    subject = (
        f"Счёт на оплату № {invoice.number} от {invoice.issue_date:%d.%m.%Y}"
        if invoice.client.country == "RU"
        else f"Invoice {invoice.number}"
    )
    with transaction.atomic():
        delivery = InvoiceDelivery.objects.create(
            invoice=invoice,
            trigger=trigger,
            to=recipient,
            subject=subject,
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        _on_commit_task("send_invoice_delivery", delivery.pk)
    return delivery


def _with_payment_link(invoice: Invoice) -> Invoice:
    """The invoice with its pay-online link: created now if the issue-time task has not run yet (the
    gateway's idempotence key makes that the same payment). A gateway failure never stops the e-mail."""
    from .pay_online import PaymentLinkFailed, invoice_payment_link_create, pay_online_gateway

    if invoice.payment_url or not pay_online_gateway():
        return invoice
    try:
        return invoice_payment_link_create(invoice=invoice)
    except PaymentLinkFailed:
        return invoice


def invoice_delivery_send(*, delivery_id: int) -> InvoiceDelivery:
    """Send one logged delivery. Claimed by a conditional update, so a retried task sends once."""
    claimed = InvoiceDelivery.objects.filter(
        pk=delivery_id, status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED]
    ).update(status=DeliveryStatus.SENDING, attempts=models_F("attempts") + 1)
    delivery = InvoiceDelivery.objects.select_related("invoice__client").get(pk=delivery_id)
    if not claimed:
        return delivery
    invoice = _with_payment_link(delivery.invoice)
    try:
        data = invoice_pdf(invoice=invoice)
        body = f"{delivery.subject}\n\nСчёт во вложении. / The invoice is attached.\n"
        if invoice.payment_url:
            body += f"\nОплатить онлайн / Pay online: {invoice.payment_url}\n"
        message = EmailMessage(
            subject=delivery.subject,
            body=body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[addr.strip() for addr in delivery.to.split(",") if addr.strip()],
        )
        message.attach(f"{invoice.number}.pdf", data, "application/pdf")
        message.send(fail_silently=False)
    except Exception as exc:
        InvoiceDelivery.objects.filter(pk=delivery_id).update(
            status=DeliveryStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:4000]
        )
        raise
    now = timezone.now()
    with transaction.atomic():
        InvoiceDelivery.objects.filter(pk=delivery_id).update(
            status=DeliveryStatus.SENT, sent_at=now, error=""
        )
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        fields = ["sent_at", "updated_at"]
        if locked.status == InvoiceStatus.ISSUED:
            locked.status = InvoiceStatus.SENT
            fields.append("status")
        locked.sent_at = now
        locked.save(update_fields=fields)
        event_record(
            type="invoice.sent",
            instance=locked,
            payload={"number": locked.number, "to": delivery.to, "delivery": delivery_id},
            origin="email",
        )
    delivery.refresh_from_db()
    return delivery


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
