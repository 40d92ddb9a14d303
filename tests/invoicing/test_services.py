"""Issuing from deals, VAT rates as data, bad input, lifecycle, triggers and e-mail."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.core import mail

from hub.errors import Conflict, ValidationFailed
from hub.events import event_dispatch
from hub.models import DomainEvent
from hub.services import deal_create, deal_update
from invoicing.models import Invoice, InvoiceDelivery, InvoiceTrigger, NumberSequence
from invoicing.services import (
    invoice_create_draft,
    invoice_credit_note_create,
    invoice_issue,
    invoice_issue_from_deal,
    invoice_send,
    invoice_void,
    vat_rates_valid,
)
from invoicing.tasks import send_invoice_delivery
from tests.factories import ClientFactory

LINE = {"description": "Насос", "quantity": D("2"), "unit_price": D("1000.00"), "vat_rate": D("22")}


def no_number_taken():
    return not NumberSequence.objects.filter(last_number__gt=0).exists()


def test_rates_are_data_with_validity_dates(db):
    assert vat_rates_valid(on=dt.date(2026, 1, 1)) == {D("22"), D("10"), D("0")}
    assert vat_rates_valid(on=dt.date(2025, 12, 31)) == {D("20"), D("10"), D("0")}


def test_from_deal_copies_lines_and_vat(company, pipeline, buyer):
    deal = deal_create(title="Pumps", client=buyer, lines=[{**LINE, "discount_pct": D("10")}])
    invoice, created = invoice_issue_from_deal(deal=deal)
    assert created and invoice.number and invoice.status == "issued"
    line = invoice.lines.get()
    assert (line.quantity, line.unit_price, line.discount_pct, line.vat_rate) == (
        D("2.000"),
        D("1000.00"),
        D("10.00"),
        D("22.00"),
    )
    assert (invoice.amount_net, invoice.vat_amount, invoice.amount_total) == (
        D("1800.00"),
        D("396.00"),
        D("2196.00"),
    )
    # and the deal is not billed twice
    with pytest.raises(Conflict):
        invoice_issue_from_deal(deal=deal)


@pytest.mark.parametrize(
    ("client_kwargs", "lines", "field"),
    [
        ({}, [], "lines"),
        ({"inn": ""}, [LINE], "client.inn"),
        ({}, [{**LINE, "unit_price": D("-1")}], "lines[0].unit_price"),
        ({}, [{**LINE, "vat_rate": D("18")}], "lines[0].vat_rate"),
        ({}, [{**LINE, "vat_rate": D("20")}], "lines[0].vat_rate"),  # 20 % ended on 31.12.2025
    ],
)
def test_bad_input_names_the_field_and_consumes_no_number(company, pipeline, client_kwargs, lines, field):
    client = ClientFactory(**client_kwargs)
    deal = deal_create(title="Bad", client=client)
    if lines:
        # the deal itself may hold the line (deals do not check VAT against the rate table)
        try:
            deal = deal_update(deal=deal, lines=lines)
        except ValidationFailed as exc:
            assert field in exc.fields
            return
    with pytest.raises(ValidationFailed) as exc:
        invoice_issue_from_deal(deal=deal)
    assert field in exc.value.fields
    assert no_number_taken() and not Invoice.objects.exists()


def test_a_rate_valid_on_the_issue_date_is_accepted(company, buyer):
    draft = invoice_create_draft(client=buyer, lines=[{**LINE, "vat_rate": D("10")}])
    assert invoice_issue(invoice=draft, issue_date=dt.date(2025, 6, 1)).number == "2025-00001"
    draft = invoice_create_draft(client=buyer, lines=[LINE])
    with pytest.raises(ValidationFailed) as exc:
        invoice_issue(invoice=draft, issue_date=dt.date(2025, 6, 1))  # 22 % not yet valid
    assert "lines[0].vat_rate" in exc.value.fields


def test_void_and_credit_note(company, buyer):
    invoice = invoice_issue(invoice=invoice_create_draft(client=buyer, lines=[LINE]))
    note = invoice_credit_note_create(invoice=invoice, reason="returned")
    assert note.kind == "credit_note" and note.credit_note_for == invoice
    assert note.number.startswith("CN-") and note.amount_total == invoice.amount_total
    with pytest.raises(Conflict):
        invoice_credit_note_create(invoice=invoice)
    other = invoice_issue(invoice=invoice_create_draft(client=buyer, lines=[LINE]))
    voided = invoice_void(invoice=other, reason="typo")
    assert voided.status == "void" and voided.number  # the number stays used
    with pytest.raises(Conflict):
        invoice_void(invoice=other)
    assert DomainEvent.objects.filter(type="invoice.voided").count() == 1


def test_issued_invoice_is_immutable(company, buyer):
    from invoicing.services import invoice_update_draft

    invoice = invoice_issue(invoice=invoice_create_draft(client=buyer, lines=[LINE]))
    with pytest.raises(Conflict):
        invoice_update_draft(invoice=invoice, purpose="changed")
    with pytest.raises(Conflict):
        invoice_issue(invoice=invoice)


def test_trigger_issues_once_and_emails_the_pdf(
    company, pipeline, buyer, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # given a trigger on the "won" stage that e-mails the invoice
    won = pipeline.stages.get(code="won")
    trigger = InvoiceTrigger.objects.create(name="won", stage=won, send_email=True)
    deal = deal_create(title="Pumps", client=buyer, lines=[LINE])
    # when the deal is won (two events: stage_changed and won), each delivered, and delivered again
    with django_capture_on_commit_callbacks(execute=True):
        deal_update(deal=deal, stage=won)
    events = DomainEvent.objects.filter(type__in=["deal.stage_changed", "deal.won"])
    assert events.count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        for event in events:
            event_dispatch(event.pk)
            DomainEvent.objects.filter(pk=event.pk).update(dispatched_at=None)
            event_dispatch(event.pk)
    # then the deal has exactly one invoice from the trigger, e-mailed once with its PDF
    invoice = Invoice.objects.get(deal=deal, trigger=trigger)
    delivery = InvoiceDelivery.objects.get(invoice=invoice)
    if delivery.status == "pending":  # the eager task ran inside on_commit capture
        send_invoice_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "sent" and delivery.to == buyer.email
    assert len(mail.outbox) == 1
    name, content, mimetype = mail.outbox[0].attachments[0]
    assert name == f"{invoice.number}.pdf" and mimetype == "application/pdf" and content.startswith(b"%PDF")
    invoice.refresh_from_db()
    assert invoice.status == "sent" and invoice.sent_at
    # and a retried send task sends nothing more
    send_invoice_delivery(delivery.pk)
    assert len(mail.outbox) == 1


def test_failed_email_is_logged(company, buyer, settings):
    settings.EMAIL_BACKEND = "tests.invoicing.test_services.BrokenBackend"
    invoice = invoice_issue(invoice=invoice_create_draft(client=buyer, lines=[LINE]))
    delivery = invoice_send(invoice=invoice, to="a@example.com")
    with pytest.raises(OSError):
        send_invoice_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "failed" and "refused" in delivery.error and delivery.attempts == 1


class BrokenBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise OSError("connection refused")
