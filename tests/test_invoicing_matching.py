"""Matching: every purpose-text pattern, partials, overpayment (client credit), ambiguity, review queue."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from hub.models import DomainEvent
from invoicing.matching import (
    Reference,
    client_credit,
    match_confirm,
    match_reassign,
    payment_match,
    purpose_references,
)
from invoicing.models import InvoiceStatus, MatchStatus, PaymentStatus
from invoicing.overdue import invoices_mark_overdue
from invoicing.services import payment_record
from tests.factories import ClientFactory

R = Reference


@pytest.mark.parametrize(
    ("text", "refs"),
    [
        ("Оплата по счету № 2026-00042 от 14.01.2026. В т.ч. НДС (22%) 2200.00", [R(42, 2026)]),
        ("Оплата по счёту №2026-42 от 14.01.26", [R(42, 2026)]),
        ("Счет № 2026 - 00042 от 14/01/2026", [R(42, 2026)]),
        ("Оплата по сч. 2026-00042", [R(42, 2026)]),
        ("опл. сч.42 от 14.01.2026 сумма 1 220,00", [R(42)]),
        ("INV-2026-00042", [R(42, 2026)]),
        ("Payment for invoice INV 2026-00042 dated 2026-01-14", [R(42, 2026)]),
        ("Оплата по счетам № 2026-00041 и № 2026-00042", [R(41, 2026), R(42, 2026)]),
        ("Оплата по счету 202600042", [R(42, 2026)]),
        ("Оплата по договору поставки от 14.01.2026, НДС 22% 2200.00", []),
    ],
)
def test_purpose_references(text, refs):
    assert purpose_references(text) == refs


def _pay(amount, *, purpose="", inn="", external_id=""):
    return payment_record(
        amount=Decimal(amount),
        received_at=timezone.now(),
        payer_inn=inn,
        purpose=purpose,
        external_id=external_id,
    )


@pytest.fixture
def acme(db):
    return ClientFactory(inn="7701000019")


@pytest.mark.django_db
def test_number_and_equal_amount_is_applied_and_the_invoice_paid(acme, issue_invoice):
    invoice = issue_invoice(acme, 1)
    payment = _pay("1220.00", purpose=f"Оплата по счету № {invoice.number} от 14.01.2026", inn=acme.inn)
    decision = payment_match(payment=payment)
    assert decision.status == MatchStatus.APPLIED and decision.confidence >= Decimal("0.9")
    assert "found in the purpose" in decision.reason
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert payment_match(payment=payment) is None  # a second run decides nothing


@pytest.mark.django_db
def test_partial_payment_moves_the_invoice_to_partially_paid(acme, issue_invoice):
    invoice = issue_invoice(acme, 10)
    payment = _pay("5000.00", purpose="Частичная оплата INV-2026-00001", inn=acme.inn)
    decision = payment_match(payment=payment)
    assert decision.status == MatchStatus.APPLIED and "partial payment" in decision.reason
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == (InvoiceStatus.PARTIALLY_PAID, Decimal("5000.00"))


@pytest.mark.django_db
def test_overpayment_pays_the_invoice_and_the_rest_stays_as_client_credit(acme, issue_invoice):
    invoice = issue_invoice(acme, 1)
    payment = _pay("2000.00", purpose="сч. 2026-00001", inn=acme.inn)
    decision = payment_match(payment=payment)
    assert decision.status == MatchStatus.APPLIED and "credit" in decision.reason
    invoice.refresh_from_db()
    payment.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert payment.status == PaymentStatus.PARTIALLY_ALLOCATED
    assert client_credit(client=acme) == Decimal("780.00")


@pytest.mark.django_db
def test_without_a_number_the_unique_equal_amount_of_the_payer_is_applied(acme, issue_invoice):
    issue_invoice(acme, 2)
    target = issue_invoice(acme, 1)
    decision = payment_match(payment=_pay("1220.00", purpose="Оплата за насос", inn=acme.inn))
    assert (decision.status, decision.invoice) == (MatchStatus.APPLIED, target)


@pytest.mark.django_db
def test_two_invoices_with_the_same_amount_are_ambiguous_and_wait_for_review(acme, issue_invoice):
    older = issue_invoice(acme, 1, issue_date=dt.date(2026, 1, 10))
    issue_invoice(acme, 1)
    payment = _pay("1220.00", purpose="Оплата", inn=acme.inn)
    decision = payment_match(payment=payment)
    assert decision.status == MatchStatus.REVIEW and decision.invoice == older
    assert decision.confidence < Decimal("0.75") and "oldest" in decision.reason
    assert DomainEvent.objects.filter(type="payment.review_needed").count() == 1
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.UNALLOCATED
    # when a person confirms in one click, then the suggested (oldest) invoice is paid
    match_confirm(decision=decision)
    older.refresh_from_db()
    assert older.status == InvoiceStatus.PAID


@pytest.mark.django_db
def test_amount_matching_no_invoice_suggests_the_oldest_first_for_review(acme, issue_invoice):
    first = issue_invoice(acme, 1, issue_date=dt.date(2026, 1, 5))
    second = issue_invoice(acme, 2)
    decision = payment_match(payment=_pay("2000.00", inn=acme.inn))
    assert decision.status == MatchStatus.REVIEW
    assert [row["invoice"] for row in decision.candidates] == [first.pk, second.pk]
    assert [row["amount"] for row in decision.candidates] == ["1220.00", "780.00"]


@pytest.mark.django_db
def test_bare_number_present_in_two_years_is_ambiguous(acme, issue_invoice):
    # a 0 % line of 1,220.00 (a rate valid in 2025 and 2026): the same total as the 2026 invoice
    issue_invoice(
        acme, 1, issue_date=dt.date(2025, 12, 1), vat_rate=Decimal("0"), unit_price=Decimal("1220.00")
    )
    issue_invoice(acme, 3)
    decision = payment_match(payment=_pay("1220.00", purpose="Оплата по счёту №1", inn=acme.inn))
    assert decision.status == MatchStatus.REVIEW and "several open invoices" in decision.reason


@pytest.mark.django_db
def test_invoice_of_another_client_than_the_payer_waits_and_can_be_reassigned(acme, issue_invoice):
    other = ClientFactory()
    named = issue_invoice(other, 1)
    own = issue_invoice(acme, 1)
    payment = _pay("1220.00", purpose=f"Счет № {named.number}", inn=acme.inn)
    decision = payment_match(payment=payment)
    assert decision.status == MatchStatus.REVIEW and "another client" in decision.reason
    match_reassign(decision=decision, invoice=own)
    own.refresh_from_db()
    decision.refresh_from_db()
    assert own.status == InvoiceStatus.PAID and decision.status == MatchStatus.REASSIGNED


@pytest.mark.django_db
def test_unknown_payer_without_number_waits_with_zero_confidence(company):
    decision = payment_match(payment=_pay("100.00", purpose="Перевод"))
    assert (decision.status, decision.confidence, decision.invoice) == (
        MatchStatus.REVIEW,
        Decimal("0"),
        None,
    )


@pytest.mark.django_db
def test_number_alone_without_payer_inn_is_applied_to_that_invoice(acme, issue_invoice):
    invoice = issue_invoice(acme, 1)
    payment = _pay("1220.00", purpose="Оплата INV-2026-00001")
    decision = payment_match(payment=payment)
    assert decision.status == MatchStatus.APPLIED
    payment.refresh_from_db()
    assert payment.client == acme
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


@pytest.mark.django_db
def test_overdue_invoices_emit_one_event_each(acme, issue_invoice):
    invoice = issue_invoice(acme, 1, issue_date=dt.date(2026, 1, 1))
    assert invoices_mark_overdue(today=dt.date(2026, 2, 1)) == 1
    assert invoices_mark_overdue(today=dt.date(2026, 2, 2)) == 0
    event = DomainEvent.objects.get(type="invoice.overdue")
    assert event.aggregate_id == str(invoice.pk) and event.payload["days_overdue"] == 26
