"""Services without HTTP: requisites, pricing, deals, merge, invoices and payments, DB constraints."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from hub import requisites
from hub.errors import Conflict, ValidationFailed
from hub.models import Client, Contact, Deal, DealLine, DomainEvent
from hub.pricing import line_totals
from hub.services import client_create, client_merge, client_update, contact_create, deal_create, deal_update
from invoicing.models import Invoice, InvoiceStatus, NumberSequence
from invoicing.services import (
    invoice_create_draft,
    invoice_create_from_deal,
    invoice_issue,
    payment_allocate,
    payment_record,
)
from tests.factories import ClientFactory, ProductFactory, person_inn

D = Decimal


# --- requisites -------------------------------------------------------------------------------


def test_inn_checks():
    assert requisites.normalize_inn(" 7707083893 ") == "7707083893"
    assert requisites.normalize_inn(person_inn("5001234567")) == person_inn("5001234567")
    with pytest.raises(ValueError, match="checksum"):
        requisites.normalize_inn("7707083894")
    with pytest.raises(ValueError, match="10 digits"):
        requisites.normalize_inn("12345")


def test_inn_check_answers_as_stdnum_does():
    """Plain digits take a shortcut past stdnum's cleaner; every text gets stdnum's verdict."""
    import random

    from stdnum import exceptions
    from stdnum.ru import inn

    def stdnum_says(text):
        text = text.strip().replace(" ", "")
        if not text:
            return ""
        try:
            return inn.validate(text)
        except exceptions.InvalidChecksum:
            return "checksum"
        except exceptions.ValidationError:
            return "format"

    def hub_says(text):
        try:
            return requisites.normalize_inn(text)
        except ValueError as exc:
            return "checksum" if "checksum" in str(exc) else "format"

    rng = random.Random(5)
    texts = ["", " ", "٧٧٠٧٠٨٣٨٩٣", "7707-083893", "7707083893\n", "77070838931", "+707083893"]
    for _ in range(20_000):
        length = rng.choice([9, 10, 10, 10, 11, 12, 12, 12, 13])
        digits = "".join(rng.choices("0123456789", k=length))
        texts += [digits, f" {digits[:4]} {digits[4:]} ", digits[:-1] + rng.choice("x-. ")]
    verdicts = [hub_says(text) for text in texts]
    assert verdicts == [stdnum_says(text) for text in texts]
    assert sum(v not in ("checksum", "format") for v in verdicts) > 1_000  # valid ones were compared too


def test_kpp_ogrn_phone_email():
    assert requisites.normalize_kpp("773601001") == "773601001"
    assert requisites.normalize_kpp("7736AB001") == "7736AB001"
    with pytest.raises(ValueError):
        requisites.normalize_kpp("7736-01001")
    assert requisites.normalize_ogrn("1027700132195") == "1027700132195"
    with pytest.raises(ValueError):
        requisites.normalize_ogrn("1027700132196")
    assert requisites.normalize_phone("8 916 123-45-67") == "+79161234567"
    assert requisites.normalize_phone("+49 30 901820", region="DE") == "+4930901820"
    with pytest.raises(ValueError):
        requisites.normalize_phone("+7 000")
    assert requisites.normalize_email("Anna@Example.COM") == "Anna@example.com"


# --- pricing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        # 3 × 33.33 = 99.99; −5 % = 5.00 (4.9995 rounded half up) → 94.99
        ("on_top", (D("94.99"), D("20.90"), D("115.89"))),  # VAT 94.99 × 22 % = 20.8978 → 20.90
        ("included", (D("77.86"), D("17.13"), D("94.99"))),  # VAT 94.99 × 22 / 122 = 17.1293 → 17.13
        ("none", (D("94.99"), D("0.00"), D("94.99"))),
    ],
)
def test_line_totals_round_half_up_per_mode(mode, expected):
    t = line_totals(
        quantity=D("3"),
        unit_price=D("33.33"),
        discount_pct=D("5"),
        vat_rate=D("22"),
        unit_cost=D("10.005"),
        vat_mode=mode,
    )
    assert (t.amount_net, t.vat_amount, t.amount_total) == expected
    assert t.cost_total == D("30.02")  # 30.015 → 30.02


# --- clients ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_person_cannot_have_kpp_or_company_inn():
    with pytest.raises(ValidationFailed) as exc:
        client_create(name="ИП Иванов", kind="person", inn="7707083893", kpp="773601001")
    assert set(exc.value.fields) == {"inn", "kpp"}


@pytest.mark.django_db
def test_update_records_changes_and_no_event_when_nothing_changed():
    client = client_create(name="A", email="a@example.com")
    client_update(client=client, name="A")
    assert DomainEvent.objects.filter(type="client.updated").count() == 0
    client_update(client=client, email="b@example.com")
    event = DomainEvent.objects.get(type="client.updated")
    assert event.payload["changes"] == {"email": ["a@example.com", "b@example.com"]}


@pytest.mark.django_db
def test_branch_with_same_inn_but_other_kpp_is_allowed():
    client_create(name="HQ", inn="7707083893", kpp="773601001")
    client_create(name="Branch", inn="7707083893", kpp="773602001")
    with pytest.raises(Conflict):
        client_create(name="HQ again", inn="7707083893", kpp="773601001")


@pytest.mark.django_db
def test_db_constraints_guard_what_services_check():
    with pytest.raises(IntegrityError), transaction.atomic():
        Client.objects.create(name="raw", phone="89161234567")  # not E.164
    with pytest.raises(IntegrityError), transaction.atomic():
        Client.objects.create(name="raw", inn="123")


@pytest.mark.django_db
def test_merge_moves_everything_and_keeps_a_pointer(company, pipeline):
    source, target = ClientFactory(), ClientFactory()
    contact_create(client=source, first_name="Олег", is_primary=True)
    contact_create(client=target, first_name="Анна", is_primary=True)
    deal = deal_create(title="D", client=source)
    client_merge(source=source, target=target)
    source.refresh_from_db()
    assert source.merged_into == target and source.archived_at is not None
    assert Deal.objects.get(pk=deal.pk).client == target
    assert Contact.objects.filter(client=target).count() == 2
    assert Contact.objects.filter(client=target, is_primary=True).count() == 1
    with pytest.raises(ValidationFailed):
        deal_create(title="to merged", client=source)


# --- deals -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_deal_totals_are_sums_of_lines_and_follow_vat_mode(company, pipeline):
    product = ProductFactory(price=D("100.00"), unit_cost=D("40.00"), vat_rate=D("22"))
    deal = deal_create(title="T", client=ClientFactory(), lines=[{"product": product.pk, "quantity": "2"}])
    assert (deal.amount_net, deal.vat_amount, deal.amount_total, deal.cost_total) == (
        D("200.00"),
        D("44.00"),
        D("244.00"),
        D("80.00"),
    )
    product.unit_cost = D("90.00")
    product.save()
    line = DealLine.objects.get(deal=deal)
    assert line.unit_cost == D("40.00")  # a snapshot, not a live link
    deal = deal_update(deal=deal, vat_mode="included")
    assert (deal.amount_net, deal.vat_amount, deal.amount_total) == (D("163.93"), D("36.07"), D("200.00"))


@pytest.mark.django_db
def test_deal_leaving_won_stage_clears_won_at(company, pipeline):
    deal = deal_create(title="T", client=ClientFactory())
    deal = deal_update(deal=deal, stage=pipeline.stages.get(code="won"))
    assert deal.status == "won" and deal.won_at
    deal = deal_update(deal=deal, stage=pipeline.stages.get(code="negotiation"))
    assert deal.status == "open" and deal.won_at is None


@pytest.mark.django_db
def test_stage_from_another_pipeline_is_refused(company, pipeline):
    from tests.factories import PipelineFactory

    other = PipelineFactory(name="Other", is_default=False)
    with pytest.raises(ValidationFailed) as exc:
        deal_create(title="T", client=ClientFactory(), pipeline=pipeline, stage=other.stages.first())
    assert "stage" in exc.value.fields


# --- invoices and payments --------------------------------------------------------------------


@pytest.mark.django_db
def test_numbers_are_assigned_at_issue_gapless_per_year(company):
    client = ClientFactory()
    lines = [{"description": "x", "quantity": D("1"), "unit_price": D("10")}]
    drafts = [invoice_create_draft(client=client, lines=lines) for _ in range(3)]
    assert all(d.number is None for d in drafts)
    numbers = [invoice_issue(invoice=d, issue_date=dt.date(2026, 3, 1)).number for d in drafts[:2]]
    numbers.append(invoice_issue(invoice=drafts[2], issue_date=dt.date(2027, 1, 2)).number)
    assert numbers == ["2026-00001", "2026-00002", "2027-00001"]
    assert NumberSequence.objects.get(company=company, year=2026).last_number == 2


@pytest.mark.django_db
def test_invoice_from_deal_without_lines_consumes_no_number(company, pipeline):
    deal = deal_create(title="Empty", client=ClientFactory())
    with pytest.raises(ValidationFailed):
        invoice_create_from_deal(deal=deal)
    assert not NumberSequence.objects.exists() and not Invoice.objects.exists()


@pytest.mark.django_db
def test_one_payment_over_two_invoices_and_overpayment_stays_as_credit(company):
    client = ClientFactory()
    invoices = []
    for amount in ("100.00", "50.00"):
        draft = invoice_create_draft(
            client=client,
            vat_mode="none",
            lines=[{"description": "x", "quantity": D("1"), "unit_price": D(amount)}],
        )
        invoices.append(invoice_issue(invoice=draft))
    payment = payment_record(
        amount=D("170.00"),
        received_at=timezone.now(),
        client=client,
        allocations=[{"invoice": invoices[0]}, {"invoice": invoices[1]}],
    )
    assert payment.amount_allocated == D("150.00") and payment.amount_unallocated == D("20.00")
    assert payment.status == "partially_allocated"
    for inv in invoices:
        inv.refresh_from_db()
        assert inv.status == InvoiceStatus.PAID and inv.amount_paid == inv.amount_total
    with pytest.raises(ValidationFailed):
        payment_allocate(payment=payment, invoice=invoices[0], amount=D("1.00"))
    assert DomainEvent.objects.filter(type="invoice.paid").count() == 2


@pytest.mark.django_db
def test_partial_payments_then_paid(company):
    client = ClientFactory()
    draft = invoice_create_draft(
        client=client,
        vat_mode="none",
        lines=[{"description": "x", "quantity": D("1"), "unit_price": D("100")}],
    )
    invoice = invoice_issue(invoice=draft)
    payment_record(
        amount=D("30"), received_at=timezone.now(), client=client, allocations=[{"invoice": invoice}]
    )
    invoice.refresh_from_db()
    assert invoice.status == "partially_paid" and invoice.amount_due == D("70.00")
    payment_record(
        amount=D("70"), received_at=timezone.now(), client=client, allocations=[{"invoice": invoice}]
    )
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.paid_at


@pytest.mark.django_db
def test_payment_natural_key_and_naive_time(company):
    payment_record(amount=D("1"), received_at=timezone.now(), source="bank", external_id="doc-1")
    with pytest.raises(Conflict):
        payment_record(amount=D("1"), received_at=timezone.now(), source="bank", external_id="doc-1")
    with pytest.raises(ValidationFailed) as exc:
        payment_record(amount=D("1"), received_at=dt.datetime(2026, 1, 1, 12, 0))
    assert "received_at" in exc.value.fields


@pytest.mark.django_db
def test_payer_inn_finds_the_client(company):
    client = ClientFactory(inn="7707083893")
    payment = payment_record(amount=D("5"), received_at=timezone.now(), payer_inn="7707083893")
    assert payment.client == client
