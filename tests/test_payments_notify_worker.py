"""End to end with a real Celery worker: a payment enters ► is allocated ► the manager's in-app
notification and a signed webhook are delivered ► once, even when the event is dispatched twice."""

import json
import time
from decimal import Decimal

import pytest
from django.utils import timezone

from hub.models import DomainEvent
from hub.tasks import dispatch_event
from invoicing.models import InvoiceStatus
from invoicing.services import payment_record
from notifications.models import Delivery, Notification, NotificationRule
from notifications.signing import signature_verify
from tests.factories import ClientFactory
from tests.test_celery_worker import _wait_for, worker  # noqa: F401  (the worker fixture)

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_payment_is_allocated_and_notified_once(worker, company, manager, issue_invoice, local_http):  # noqa: F811
    # given maria's client with an open invoice and a rule: invoice paid ⇒ in-app + signed webhook
    client = ClientFactory(manager=manager, inn="7701000019")
    invoice = issue_invoice(client, 10)
    rule = NotificationRule.objects.create(
        name="paid",
        event_type="invoice.paid",
        channels=["inapp", "webhook"],
        webhook_url=f"{local_http.url}/hook",
        webhook_secret="s3cret",
    )
    # when a payment naming the invoice arrives, with no allocation given
    payment_record(
        amount=Decimal("12200.00"),
        received_at=timezone.now(),
        payer_inn=client.inn,
        purpose=f"Оплата по счету № {invoice.number} от 14.01.2026",
        source="bank",
        external_id="PP-512",
    )
    # then the worker matches it, the invoice is paid, and maria and the webhook hear about it
    assert _wait_for(lambda: Delivery.objects.filter(rule=rule, status="sent").count() == 2, timeout=20), (
        list(Delivery.objects.values("channel", "status", "last_error"))
    )
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert (
        Notification.objects.get(user=manager).title.endswith("paid")
        or "оплачен" in Notification.objects.get(user=manager).title
    )
    _, path, headers, body = local_http.requests[0]
    assert path == "/hook"
    signature_verify(body=body, header=headers["X-Hub-Signature"], secrets=["s3cret"])
    assert json.loads(body)["data"]["number"] == invoice.number
    # when the invoice.paid event is dispatched twice more
    event = DomainEvent.objects.get(type="invoice.paid")
    DomainEvent.objects.filter(pk=event.pk).update(dispatched_at=None)
    dispatch_event.delay(event.pk)
    dispatch_event.delay(event.pk)
    time.sleep(2.0)
    # then nothing is delivered twice
    assert Delivery.objects.filter(event=event).count() == 2
    assert Notification.objects.filter(user=manager).count() == 1
    assert len(local_http.requests) == 1
