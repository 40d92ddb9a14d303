"""Matching incoming payments to open invoices.

``purpose_references`` reads invoice numbers out of a payment purpose (pure). ``match_plan`` decides
(reads only): which invoices, how much each, with a confidence in [0, 1] and a reason a person can read.
``payment_match`` stores the decision and, above ``HUB_MATCH_AUTO_THRESHOLD``, applies it through
``payment_allocate``; below it the decision waits in the review queue, where ``match_confirm`` applies the
suggestion and ``match_reassign`` applies the payment to another invoice. Whatever is left of a payment
after its invoices are paid stays unallocated: the client's credit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from hub.errors import Conflict, ValidationFailed
from hub.events import event_record
from hub.models import Client

from .models import (
    OPEN_INVOICE_STATUSES,
    Invoice,
    MatchDecision,
    MatchStatus,
    Payment,
    PaymentStatus,
)

DEFAULT_THRESHOLD = Decimal("0.75")

# Dates (14.01.2026, 14/01/26, 2026-01-14), amounts with kopecks (2200.00, 2 200,00) and percentages
# would otherwise be read as invoice numbers.
_DATES = re.compile(r"\b\d{1,2}[./]\d{1,2}[./]\d{2,4}\b|\b\d{4}-\d{2}-\d{2}\b(?!\d)")
_AMOUNTS = re.compile(r"\b\d[\d\s]*[.,]\d{2}\b(?!\s*[-/]?\s*\d)|\b\d{1,2}\s*%")
# A marker («Счет №», «счёту», «сч.», «INV-», «invoice», «№», «N», «#») followed by the reference.
_REFERENCE = re.compile(
    r"(?:сч[её]т[а-яё]*|сч\.?|inv(?:oice)?|№|#|\bN\b)\s*(?:№|N\b|#|no\.?)?\s*[:.]?\s*[-–]?\s*"
    r"(?P<ref>(?:[A-ZА-Я]{1,5}\s*-\s*)?\d{1,9}(?:\s*[-/–]\s*\d{1,6})?)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Reference:
    """An invoice reference read from text: a (year, sequence) pair, or a bare sequence number."""

    sequence: int
    year: int | None = None

    def __str__(self) -> str:
        return f"{self.year}-{self.sequence:05d}" if self.year else str(self.sequence)


def purpose_references(text: str) -> list[Reference]:
    """Invoice references in a payment purpose, in the order they appear, without repeats."""
    cleaned = _AMOUNTS.sub(" ", _DATES.sub(" ", text or ""))
    found: list[Reference] = []
    for match in _REFERENCE.finditer(cleaned):
        ref = re.sub(r"^[A-ZА-Я]{1,5}\s*-\s*", "", match.group("ref"), flags=re.IGNORECASE)
        parts = [p for p in re.split(r"\s*[-/–]\s*", ref) if p]
        if len(parts) == 2 and len(parts[0]) == 4 and parts[0].startswith("20"):
            item = Reference(sequence=int(parts[1]), year=int(parts[0]))
        elif len(parts) == 1 and len(parts[0]) >= 6 and parts[0].startswith("20"):
            item = Reference(sequence=int(parts[0][4:]), year=int(parts[0][:4]))  # «202600042»
        else:
            item = Reference(sequence=int(parts[-1]))
        if item.sequence and item not in found:
            found.append(item)
    return found


@dataclass
class MatchPlan:
    confidence: Decimal
    reason: str
    client: Client | None = None
    allocations: list[tuple[Invoice, Decimal]] = field(default_factory=list)
    candidates: list[Invoice] = field(default_factory=list)


def _threshold() -> Decimal:
    return Decimal(str(getattr(settings, "HUB_MATCH_AUTO_THRESHOLD", DEFAULT_THRESHOLD)))


def _open_invoices(payment: Payment):
    return (
        Invoice.objects.filter(
            company_id=payment.company_id, currency=payment.currency, status__in=OPEN_INVOICE_STATUSES
        )
        .filter(amount_paid__lt=F("amount_total"))
        .select_related("client")
        .order_by("issue_date", "id")
    )


def _by_reference(payment: Payment, refs: list[Reference]) -> list[Invoice]:
    if not refs:
        return []
    query = Q()
    for ref in refs:
        query |= (
            Q(sequence_year=ref.year, sequence_number=ref.sequence)
            if ref.year
            else Q(sequence_number=ref.sequence)
        )
    return list(_open_invoices(payment).filter(query))


def _oldest_first(invoices: list[Invoice], amount: Decimal) -> list[tuple[Invoice, Decimal]]:
    plan, left = [], amount
    for invoice in invoices:
        if left <= 0:
            break
        part = min(left, invoice.amount_due)
        plan.append((invoice, part))
        left -= part
    return plan


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def match_plan(*, payment: Payment) -> MatchPlan:
    """Decide where a payment goes. Reads only; ``payment_match`` stores and applies the result."""
    amount = payment.amount_unallocated
    client = payment.client
    refs = purpose_references(payment.purpose)
    named = _by_reference(payment, refs)
    if named:
        if client is not None:
            own = [i for i in named if i.client_id == client.pk]
            if not own:
                return MatchPlan(
                    Decimal("0.40"),
                    f"The purpose names invoice {', '.join(i.number for i in named)}, but it belongs to "
                    f"another client than the payer (INN {payment.payer_inn}).",
                    client=client,
                    allocations=_oldest_first(named[:1], amount),
                    candidates=named,
                )
            named = own
        by_ref: dict[tuple, list[Invoice]] = {}
        for invoice in named:
            by_ref.setdefault((invoice.sequence_year, invoice.sequence_number), []).append(invoice)
        # The same bare number in several years: the reference is ambiguous.
        bare_ambiguous = any(not r.year for r in refs) and len({i.sequence_number for i in named}) < len(
            named
        )
        if bare_ambiguous:
            return MatchPlan(
                Decimal("0.50"),
                f"The purpose number matches several open invoices: {', '.join(i.number for i in named)}.",
                client=client or named[0].client,
                allocations=_oldest_first(named[:1], amount),
                candidates=named,
            )
        due = sum((i.amount_due for i in named), Decimal("0"))
        numbers = ", ".join(i.number for i in named)
        allocations = _oldest_first(named, amount)
        payer = "the payer's INN matches the client" if client else "payer INN unknown"
        if amount == due:
            confidence, how = Decimal("0.97" if client else "0.90"), "the amount equals the amount due"
        elif amount < due:
            confidence, how = (
                Decimal("0.90" if client else "0.80"),
                f"a partial payment ({_money(amount)} of {_money(due)} due)",
            )
        else:
            confidence, how = (
                Decimal("0.85" if client else "0.78"),
                f"an overpayment: {_money(amount - due)} stays as the client's credit",
            )
        if len(named) > 1 and amount < due:
            confidence -= Decimal("0.10")
            how += ", applied to the oldest invoice first"
        return MatchPlan(
            confidence,
            f"Invoice {numbers} found in the purpose; {payer}; {how}.",
            client=client or named[0].client,
            allocations=allocations,
            candidates=named,
        )
    if client is None:
        return MatchPlan(
            Decimal("0.00"),
            "No invoice number in the purpose and no client with the payer's INN"
            + (f" ({payment.payer_inn})." if payment.payer_inn else "."),
        )
    open_invoices = list(_open_invoices(payment).filter(client=client))
    if not open_invoices:
        return MatchPlan(
            Decimal("0.00"),
            f"The payer is client {client} but it has no open invoice; the payment stays as its credit.",
            client=client,
        )
    equal = [i for i in open_invoices if i.amount_due == amount]
    if len(equal) == 1:
        return MatchPlan(
            Decimal("0.80"),
            f"No invoice number in the purpose; the payer's INN matches client {client} and the amount "
            f"equals the amount due of invoice {equal[0].number}.",
            client=client,
            allocations=[(equal[0], amount)],
            candidates=open_invoices,
        )
    if len(equal) > 1:
        return MatchPlan(
            Decimal("0.55"),
            f"No invoice number in the purpose; {len(equal)} open invoices of client {client} are due "
            f"exactly {_money(amount)}: {', '.join(i.number for i in equal)}; the oldest is suggested.",
            client=client,
            allocations=[(equal[0], amount)],
            candidates=equal,
        )
    total_due = sum((i.amount_due for i in open_invoices), Decimal("0"))
    allocations = _oldest_first(open_invoices, amount)
    extra = f"; {_money(amount - total_due)} would stay as credit" if amount > total_due else ""
    return MatchPlan(
        Decimal("0.60") if len(open_invoices) == 1 else Decimal("0.50"),
        f"No invoice number in the purpose; the payer's INN matches client {client}; the amount matches no "
        f"invoice, so the oldest open invoices are suggested first{extra}.",
        client=client,
        allocations=allocations,
        candidates=open_invoices,
    )


def _plan_rows(allocations: list[tuple[Invoice, Decimal]]) -> list[dict]:
    return [{"invoice": i.pk, "number": i.number, "amount": _money(a)} for i, a in allocations]


def _apply(payment: Payment, rows: list[dict], *, actor, origin: str) -> None:
    from .services import payment_allocate

    for row in rows:
        invoice = Invoice.objects.get(pk=row["invoice"])
        payment.refresh_from_db()
        amount = min(Decimal(row["amount"]), payment.amount_unallocated, invoice.amount_due)
        if amount > 0:
            payment_allocate(payment=payment, invoice=invoice, amount=amount, actor=actor, origin=origin)


def payment_match(*, payment: Payment, actor=None, origin: str = "matching") -> MatchDecision | None:
    """Decide once per payment; apply above the threshold, otherwise queue for review.

    Returns ``None`` when the payment is already allocated by hand or has a decision (idempotent).
    """
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if (
            payment.status != PaymentStatus.UNALLOCATED
            or MatchDecision.objects.filter(payment=payment).exists()
        ):
            return None
        plan = match_plan(payment=payment)
        auto = plan.confidence >= _threshold() and bool(plan.allocations)
        decision = MatchDecision.objects.create(
            payment=payment,
            invoice=plan.allocations[0][0] if plan.allocations else None,
            client=plan.client,
            confidence=plan.confidence,
            reason=plan.reason,
            status=MatchStatus.APPLIED if auto else MatchStatus.REVIEW,
            candidates=_plan_rows(plan.allocations),
        )
        if auto:
            if payment.client_id is None and plan.client is not None:
                Payment.objects.filter(pk=payment.pk).update(client=plan.client)
                payment.client = plan.client
            _apply(payment, decision.candidates, actor=actor, origin=origin)
        else:
            event_record(
                type="payment.review_needed",
                instance=payment,
                payload={
                    "decision": decision.pk,
                    "confidence": plan.confidence,
                    "reason": plan.reason,
                    "suggested": decision.candidates,
                },
                origin=origin,
                actor=actor,
            )
    return decision


def _resolve(decision: MatchDecision, *, status: str, actor) -> MatchDecision:
    locked = MatchDecision.objects.select_for_update().get(pk=decision.pk)
    if locked.status != MatchStatus.REVIEW:
        raise Conflict(
            f"This match is already {locked.get_status_display().lower()}.", code="already_resolved"
        )
    locked.status = status
    locked.resolved_at = timezone.now()
    locked.resolved_by = actor if getattr(actor, "pk", None) else None
    return locked


def match_confirm(*, decision: MatchDecision, actor=None, origin: str = "admin") -> MatchDecision:
    """One click: apply the suggestion waiting in the review queue."""
    with transaction.atomic():
        locked = _resolve(decision, status=MatchStatus.CONFIRMED, actor=actor)
        if not locked.candidates:
            raise ValidationFailed(
                "There is no suggested invoice to confirm; reassign the payment to an invoice instead.",
                fields={"invoice": ["Choose an invoice."]},
            )
        _apply(locked.payment, locked.candidates, actor=actor, origin=origin)
        locked.save()
    return locked


def match_reassign(
    *,
    decision: MatchDecision,
    invoice: Invoice,
    amount: Decimal | None = None,
    actor=None,
    origin: str = "admin",
) -> MatchDecision:
    """Apply the payment to the invoice a person chose instead of the suggestion."""
    with transaction.atomic():
        locked = _resolve(decision, status=MatchStatus.REASSIGNED, actor=actor)
        payment = locked.payment
        if payment.client_id and payment.client_id != invoice.client_id:
            # The person knows better than the INN (a parent company paying for a subsidiary).
            Payment.objects.filter(pk=payment.pk).update(client=invoice.client)
            payment.refresh_from_db()
        amount = amount if amount is not None else min(payment.amount_unallocated, invoice.amount_due)
        rows = [{"invoice": invoice.pk, "number": invoice.number, "amount": _money(amount)}]
        _apply(payment, rows, actor=actor, origin=origin)
        locked.invoice, locked.client, locked.candidates = invoice, invoice.client, rows
        locked.reason += f" Reassigned to invoice {invoice.number}."
        locked.save()
    return locked


def client_credit(*, client: Client) -> Decimal:
    """What the client has paid beyond its invoices: the unallocated rest of its payments."""
    totals = Payment.objects.filter(client=client).aggregate(
        paid=Sum("amount"), allocated=Sum("amount_allocated")
    )
    return (totals["paid"] or Decimal("0")) - (totals["allocated"] or Decimal("0"))
