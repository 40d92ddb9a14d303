"""YooKassa (re-fetch verification against a local fake API) and Stripe (signature, tolerance, replay)."""

import base64
import json
import time

import pytest

from invoicing.gateways import stripe_signature_header
from invoicing.models import GatewayEvent, InvoiceStatus, Payment
from tests.factories import ClientFactory

PAYMENT_ID = "2f3c6a99-000f-5000-9000-1d2a3b4c5d6e"


def _yookassa_payment(status="succeeded", value="1220.00", invoice_id=None):
    return {
        "id": PAYMENT_ID,
        "status": status,
        "paid": status == "succeeded",
        "amount": {"value": value, "currency": "RUB"},
        "income_amount": {"value": "1180.00", "currency": "RUB"},
        "description": "Оплата счёта 2026-00001",
        "metadata": {"invoice_id": str(invoice_id)} if invoice_id else {},
        "created_at": "2026-05-30T10:00:00.000Z",
        "captured_at": "2026-05-30T10:00:05.000Z",
        "test": False,
    }


def _notification(obj):
    return json.dumps({"type": "notification", "event": "payment.succeeded", "object": obj}).encode()


@pytest.fixture
def yookassa(local_http, settings):
    settings.YOOKASSA_API_BASE = local_http.url
    settings.YOOKASSA_SHOP_ID, settings.YOOKASSA_SECRET_KEY = "54401", "test_secret"
    return local_http


@pytest.mark.django_db
def test_yookassa_notification_is_verified_by_refetching_and_pays_its_invoice(
    client, yookassa, issue_invoice
):
    invoice = issue_invoice(ClientFactory(), 1)
    api_view = _yookassa_payment(invoice_id=invoice.pk)
    yookassa.respond = lambda method, path, headers, body: (200, api_view)
    # when YooKassa notifies us
    response = client.post("/webhooks/yookassa/", _notification(api_view), content_type="application/json")
    # then the payment was re-read with Basic shopId:secretKey and recorded, and the invoice is paid
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    method, path, headers, _ = yookassa.requests[0]
    assert (method, path) == ("GET", f"/v3/payments/{PAYMENT_ID}")
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"54401:test_secret").decode()
    payment = Payment.objects.get(source="yookassa", external_id=PAYMENT_ID)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID and payment.client == invoice.client
    # when the same notification comes again, then nothing is recorded twice
    again = client.post("/webhooks/yookassa/", _notification(api_view), content_type="application/json")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_forged_yookassa_notification_is_refused_and_logged(client, yookassa, company):
    # given the API says the payment is still pending, while the notification claims success
    yookassa.respond = lambda method, path, headers, body: (200, _yookassa_payment(status="pending"))
    response = client.post(
        "/webhooks/yookassa/", _notification(_yookassa_payment()), content_type="application/json"
    )
    assert response.status_code == 400
    assert Payment.objects.count() == 0
    logged = GatewayEvent.objects.get()
    assert logged.status == "refused" and "not succeeded" in logged.reason


@pytest.mark.django_db
def test_yookassa_notification_with_another_amount_or_unknown_id_is_refused(client, yookassa, company):
    yookassa.respond = lambda method, path, headers, body: (200, _yookassa_payment(value="1.00"))
    assert (
        client.post(
            "/webhooks/yookassa/", _notification(_yookassa_payment()), content_type="application/json"
        ).status_code
        == 400
    )
    yookassa.respond = lambda method, path, headers, body: (404, {"type": "error", "code": "not_found"})
    assert (
        client.post(
            "/webhooks/yookassa/", _notification(_yookassa_payment()), content_type="application/json"
        ).status_code
        == 400
    )
    assert [e.status for e in GatewayEvent.objects.order_by("id")] == ["refused", "refused"]
    assert Payment.objects.count() == 0


@pytest.mark.django_db
def test_yookassa_api_down_asks_for_a_retry(client, settings, company):
    settings.YOOKASSA_API_BASE = "http://127.0.0.1:9"
    settings.YOOKASSA_SHOP_ID, settings.YOOKASSA_SECRET_KEY = "1", "s"
    response = client.post(
        "/webhooks/yookassa/", _notification(_yookassa_payment()), content_type="application/json"
    )
    assert response.status_code == 503 and Payment.objects.count() == 0


def _stripe_event(invoice_id=None, amount=122000):
    return json.dumps(
        {
            "id": "evt_1",
            "type": "payment_intent.succeeded",
            "created": 1767225600,
            "data": {
                "object": {
                    "id": "pi_3Mtw",
                    "object": "payment_intent",
                    "amount": amount,
                    "amount_received": amount,
                    "currency": "rub",
                    "status": "succeeded",
                    "created": 1767225600,
                    "metadata": {"invoice_id": str(invoice_id)} if invoice_id else {},
                }
            },
        }
    ).encode()


@pytest.fixture
def stripe_secret(settings):
    settings.STRIPE_WEBHOOK_SECRET = "whsec_test"
    return "whsec_test"


@pytest.mark.django_db
def test_stripe_signed_event_is_recorded_once(client, stripe_secret, issue_invoice):
    invoice = issue_invoice(ClientFactory(), 1)
    body = _stripe_event(invoice_id=invoice.pk)
    header = stripe_signature_header(body=body, secret=stripe_secret)
    response = client.post(
        "/webhooks/stripe/", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    # a replay within the tolerance is a duplicate, recorded as such
    again = client.post(
        "/webhooks/stripe/", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    assert again.json()["status"] == "duplicate" and Payment.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("make_header", "reason"),
    [
        (lambda body: stripe_signature_header(body=body, secret="whsec_other"), "does not match"),
        (
            lambda body: stripe_signature_header(
                body=body, secret="whsec_test", timestamp=int(time.time()) - 301
            ),
            "replay",
        ),
        (lambda body: stripe_signature_header(body=b"{}", secret="whsec_test"), "does not match"),
        (lambda body: "", "no Stripe-Signature"),
    ],
    ids=["forged", "replayed-after-300s", "body-tampered", "unsigned"],
)
def test_stripe_forged_or_replayed_events_are_refused_and_logged(
    client, stripe_secret, company, make_header, reason
):
    body = _stripe_event()
    response = client.post(
        "/webhooks/stripe/", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=make_header(body)
    )
    assert response.status_code == 400
    assert Payment.objects.count() == 0
    logged = GatewayEvent.objects.get()
    assert logged.status == "refused" and reason in logged.reason
