"""Pay online: issuing an invoice creates a payment at the gateway (the invoice is the idempotence key),
the link is kept on the invoice and shown in the API, the PDF and the e-mail, and the gateway's
notification marks the invoice paid. The gateways are local fake HTTP servers speaking their contracts."""

import base64
import io
import json
import urllib.parse
from decimal import Decimal as D

import pytest
from django.core import mail
from pypdf import PdfReader

from hub.events import event_dispatch
from hub.models import DomainEvent
from invoicing.gateways import stripe_signature_header
from invoicing.models import GatewayEvent, Invoice, InvoiceStatus, Payment
from invoicing.pay_online import PaymentLinkFailed, invoice_payment_link_create
from invoicing.services import (
    invoice_create_draft,
    invoice_credit_note_create,
    invoice_issue,
    invoice_pdf,
    invoice_send,
)
from invoicing.tasks import create_payment_link, send_invoice_delivery
from tests.factories import ClientFactory

PAYMENT_ID = "2f3c6a99-000f-5000-9000-1d2a3b4c5d6e"
CONFIRMATION_URL = "https://yoomoney.ru/checkout/payments/v2/contract?orderId=2f3c6a99"
SESSION_URL = "https://checkout.stripe.com/c/pay/cs_test_a1"


class FakeYooKassa:
    """POST /v3/payments (one payment per Idempotence-Key) and GET /v3/payments/{id}."""

    def __init__(self, server):
        self.server, self.payments, self.by_key, self.fail_next = server, {}, {}, 0
        server.respond = self.respond

    def respond(self, method, path, headers, body):
        if self.fail_next:
            self.fail_next -= 1
            return 503, {"type": "error", "code": "internal_server_error"}
        if method == "POST" and path == "/v3/payments":
            key = headers["Idempotence-Key"]
            if key not in self.by_key:
                request = json.loads(body)
                payment_id = PAYMENT_ID if not self.payments else f"{PAYMENT_ID[:-1]}{len(self.payments)}"
                self.payments[payment_id] = {
                    "id": payment_id,
                    "status": "pending",
                    "paid": False,
                    "amount": request["amount"],
                    "description": request["description"],
                    "metadata": request["metadata"],
                    "confirmation": {"type": "redirect", "confirmation_url": CONFIRMATION_URL},
                    "created_at": "2026-01-14T10:00:00.000Z",
                }
                self.by_key[key] = payment_id
            return 200, self.payments[self.by_key[key]]
        if method == "GET" and path.startswith("/v3/payments/"):
            payment = self.payments.get(path.rsplit("/", 1)[1])
            return (200, payment) if payment else (404, {"type": "error", "code": "not_found"})
        return 404, {}

    def succeed(self, payment_id):
        self.payments[payment_id].update(
            status="succeeded", paid=True, captured_at="2026-01-15T09:00:00.000Z"
        )

    @property
    def creates(self):
        return [r for r in self.server.requests if r[0] == "POST"]


@pytest.fixture
def yookassa(local_http, settings):
    settings.HUB_PAY_ONLINE_GATEWAY = "yookassa"
    settings.YOOKASSA_API_BASE = local_http.url
    settings.YOOKASSA_SHOP_ID, settings.YOOKASSA_SECRET_KEY = "54401", "test_secret"
    settings.HUB_PUBLIC_URL = "https://hub.example.com/"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return FakeYooKassa(local_http)


def _issue_and_dispatch(issue_invoice, django_capture_on_commit_callbacks, client=None):
    """Issue an invoice and deliver its ``invoice.issued`` event, as the dispatcher would."""
    with django_capture_on_commit_callbacks(execute=True):
        invoice = issue_invoice(client or ClientFactory(), 1)
    event = DomainEvent.objects.get(type="invoice.issued", aggregate_id=str(invoice.pk))
    with django_capture_on_commit_callbacks(execute=True):
        event_dispatch(event.pk)
    invoice.refresh_from_db()
    return invoice


@pytest.mark.django_db
def test_issue_creates_a_yookassa_payment_and_its_notification_pays_the_invoice(
    yookassa, issue_invoice, django_capture_on_commit_callbacks, api, client
):
    # given YooKassa is the pay-online gateway; when an invoice for 1,220.00 is issued
    invoice = _issue_and_dispatch(issue_invoice, django_capture_on_commit_callbacks)
    # then one payment was created for its amount, keyed by the invoice, and its link kept on the invoice
    [(method, path, headers, body)] = yookassa.creates
    assert (method, path) == ("POST", "/v3/payments")
    assert headers["Idempotence-Key"] == f"invoice-{invoice.pk}-{invoice.number}"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"54401:test_secret").decode()
    assert json.loads(body) == {
        "amount": {"value": "1220.00", "currency": "RUB"},
        "capture": True,
        "confirmation": {"type": "redirect", "return_url": "https://hub.example.com/"},
        "description": f"Оплата по счёту № {invoice.number}",
        "metadata": {"invoice_id": str(invoice.pk)},
    }
    assert (invoice.payment_url, invoice.gateway, invoice.gateway_payment_id) == (
        CONFIRMATION_URL,
        "yookassa",
        PAYMENT_ID,
    )
    assert invoice.status == InvoiceStatus.ISSUED
    assert DomainEvent.objects.filter(
        type="invoice.payment_link_created", aggregate_id=str(invoice.pk)
    ).exists()
    assert GatewayEvent.objects.get(event_type="payment.create").status == "created"
    # and the API shows the link
    assert api.get(f"/api/v1/invoices/{invoice.pk}/").json()["payment_url"] == CONFIRMATION_URL
    # when the payer pays and YooKassa notifies us
    yookassa.succeed(PAYMENT_ID)
    notification = {
        "type": "notification",
        "event": "payment.succeeded",
        "object": yookassa.payments[PAYMENT_ID],
    }
    response = client.post("/webhooks/yookassa/", notification, content_type="application/json")
    # then the notification was verified by re-reading the payment, and the invoice is paid
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    assert yookassa.server.requests[-1][:2] == ("GET", f"/v3/payments/{PAYMENT_ID}")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID and invoice.amount_paid == D("1220.00")
    assert Payment.objects.get(source="yookassa", external_id=PAYMENT_ID).amount == D("1220.00")


@pytest.mark.django_db
def test_a_failing_gateway_is_logged_the_invoice_stays_issued_and_a_retry_gets_the_same_payment(
    yookassa, issue_invoice
):
    invoice = issue_invoice(ClientFactory(), 1)
    # given YooKassa answers 503 once
    yookassa.fail_next = 1
    with pytest.raises(PaymentLinkFailed, match="HTTP 503") as failure:
        invoice_payment_link_create(invoice=invoice)
    assert failure.value.retryable
    # then the failure is recorded with its reason and the invoice is issued without a link
    failed = GatewayEvent.objects.get(event_type="payment.create")
    assert failed.status == "failed" and "HTTP 503" in failed.reason
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ISSUED and invoice.payment_url == ""
    # when the task retries (twice: a redelivered task), then one payment, the same key, one link
    assert create_payment_link(invoice.pk) == CONFIRMATION_URL
    assert create_payment_link(invoice.pk) == CONFIRMATION_URL
    keys = {headers["Idempotence-Key"] for _, _, headers, _ in yookassa.creates}
    assert keys == {f"invoice-{invoice.pk}-{invoice.number}"} and len(yookassa.creates) == 2
    assert len(yookassa.payments) == 1
    # and a create repeated at the gateway with the same key returns that same payment
    invoice.refresh_from_db()
    Invoice.objects.filter(pk=invoice.pk).update(payment_url="")
    assert invoice_payment_link_create(invoice=invoice).gateway_payment_id == PAYMENT_ID
    assert len(yookassa.payments) == 1


@pytest.mark.django_db
def test_an_unreachable_gateway_is_a_clear_retryable_error(yookassa, settings, issue_invoice):
    settings.YOOKASSA_API_BASE = "http://127.0.0.1:9"
    invoice = issue_invoice(ClientFactory(), 1)
    with pytest.raises(PaymentLinkFailed, match="unreachable"):
        invoice_payment_link_create(invoice=invoice)
    assert "unreachable" in GatewayEvent.objects.get(status="failed").reason
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ISSUED and not invoice.payment_url


@pytest.mark.django_db
def test_without_a_configured_gateway_issuing_calls_nobody(
    local_http, settings, issue_invoice, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.YOOKASSA_API_BASE = local_http.url
    settings.YOOKASSA_SHOP_ID, settings.YOOKASSA_SECRET_KEY = "54401", "test_secret"
    settings.HUB_PAY_ONLINE_GATEWAY = ""  # credentials for notifications, but pay online is off
    invoice = _issue_and_dispatch(issue_invoice, django_capture_on_commit_callbacks)
    assert local_http.requests == [] and invoice.payment_url == ""
    # and a credit note never gets a link, even with pay online on
    settings.HUB_PAY_ONLINE_GATEWAY = "yookassa"
    note = invoice_credit_note_create(invoice=invoice, reason="return")
    assert invoice_payment_link_create(invoice=note).payment_url == ""
    assert local_http.requests == []


@pytest.mark.django_db
def test_stripe_checkout_session_is_created_with_the_invoice_as_idempotency_key_and_pays_it(
    local_http, settings, issue_invoice, django_capture_on_commit_callbacks, client
):
    settings.HUB_PAY_ONLINE_GATEWAY = "stripe"
    settings.STRIPE_API_BASE = local_http.url
    settings.STRIPE_SECRET_KEY = "sk_test_123"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_test"
    settings.HUB_PUBLIC_URL = "https://hub.example.com/paid"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    local_http.respond = lambda method, path, headers, body: (
        200,
        {"id": "cs_test_a1", "object": "checkout.session", "url": SESSION_URL, "payment_status": "unpaid"},
    )
    invoice = _issue_and_dispatch(issue_invoice, django_capture_on_commit_callbacks)
    [(method, path, headers, body)] = local_http.requests
    assert (method, path) == ("POST", "/v1/checkout/sessions")
    assert headers["Idempotency-Key"] == f"invoice-{invoice.pk}-{invoice.number}"
    assert headers["Authorization"] == "Bearer sk_test_123"
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = dict(urllib.parse.parse_qsl(body.decode()))
    assert form == {
        "mode": "payment",
        "line_items[0][price_data][currency]": "rub",
        "line_items[0][price_data][unit_amount]": "122000",
        "line_items[0][price_data][product_data][name]": f"Счёт № {invoice.number}",
        "line_items[0][quantity]": "1",
        "client_reference_id": str(invoice.pk),
        "metadata[invoice_id]": str(invoice.pk),
        "payment_intent_data[metadata][invoice_id]": str(invoice.pk),
        "success_url": "https://hub.example.com/paid",
    }
    assert (invoice.payment_url, invoice.gateway, invoice.gateway_payment_id) == (
        SESSION_URL,
        "stripe",
        "cs_test_a1",
    )
    # when Stripe reports the session's payment intent succeeded (it carries the metadata we set)
    event = json.dumps(
        {
            "id": "evt_1",
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": "pi_1",
                    "amount": 122000,
                    "amount_received": 122000,
                    "currency": "rub",
                    "status": "succeeded",
                    "created": 1768384800,
                    "metadata": {"invoice_id": form["payment_intent_data[metadata][invoice_id]"]},
                }
            },
        }
    ).encode()
    response = client.post(
        "/webhooks/stripe/",
        event,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature_header(body=event, secret="whsec_test"),
    )
    assert response.status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


def _pdf_text(data: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).replace("\n", "")


@pytest.mark.django_db
def test_the_link_is_printed_in_both_layouts(yookassa, company):
    ru = ClientFactory(name="ООО «Покупатель»", inn="7736050003", kpp="773601001")
    en = ClientFactory(name="ACME GmbH", inn="", country="DE", foreign_tax_id="DE123456789")
    line = {"description": "Pump", "quantity": D("1"), "unit_price": D("100"), "vat_rate": D("0")}
    for buyer, label in ((ru, "Оплатить онлайн:"), (en, "Pay online:")):
        invoice = invoice_issue(invoice=invoice_create_draft(client=buyer, lines=[line]))
        assert label not in _pdf_text(invoice_pdf(invoice=invoice))  # no link, no line
        invoice = invoice_payment_link_create(invoice=invoice)
        text = _pdf_text(invoice_pdf(invoice=invoice))  # the cached PDF is re-rendered with the link
        assert label in text and CONFIRMATION_URL in text.replace(" ", "")


@pytest.mark.django_db
def test_the_email_carries_the_link_even_when_sent_before_the_issue_task_ran(yookassa, issue_invoice):
    invoice = issue_invoice(ClientFactory(email="buyer@example.com"), 1)
    assert invoice.payment_url == ""  # the invoice.issued event has not been dispatched yet
    delivery = invoice_send(invoice=invoice)
    send_invoice_delivery(delivery.pk)
    [message] = mail.outbox
    assert f"Оплатить онлайн / Pay online: {CONFIRMATION_URL}" in message.body
    invoice.refresh_from_db()
    assert invoice.payment_url == CONFIRMATION_URL and len(yookassa.payments) == 1
    # and the event arriving later creates nothing more
    assert create_payment_link(invoice.pk) == CONFIRMATION_URL
    assert len(yookassa.creates) == 1
