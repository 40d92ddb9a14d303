"""Rules ⇒ deliveries: conditions, recipients, templates, exactly once, channels, retries, the inbox."""

import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.utils import timezone

from hub.models import DomainEvent
from invoicing.services import payment_record
from notifications.models import Delivery, DeliveryAttempt, Notification, NotificationRule, RecipientProfile
from notifications.services import delivery_send, notifications_fanout
from notifications.signing import SignatureInvalid, signature_header, signature_verify
from tests.factories import ClientFactory, UserFactory


@pytest.fixture
def paid_event(company, manager, issue_invoice):
    """An invoice of maria's client, paid: the ``invoice.paid`` event."""
    client = ClientFactory(manager=manager, inn="7701000019")
    invoice = issue_invoice(client, 10)
    payment_record(
        amount=Decimal("12200.00"),
        received_at=timezone.now(),
        client=client,
        allocations=[{"invoice": invoice}],
    )
    return DomainEvent.objects.get(type="invoice.paid")


def _rule(**kwargs):
    kwargs.setdefault("event_type", "invoice.paid")
    kwargs.setdefault("channels", ["inapp"])
    users = kwargs.pop("users", [])
    groups = kwargs.pop("groups", [])
    rule = NotificationRule.objects.create(name="r", **kwargs)
    rule.to_users.set(users)
    rule.to_groups.set(groups)
    return rule


def _send_all():
    for delivery in Delivery.objects.filter(status__in=["pending", "retrying"]).order_by("id"):
        delivery_send(delivery_id=delivery.pk)


@pytest.mark.django_db
def test_inapp_goes_to_manager_role_and_named_users_once_each_in_their_language(
    paid_event, manager, settings
):
    settings.LANGUAGE_CODE = "ru"  # users without a profile get the hub's language
    accountants = Group.objects.get(name="Accountant")
    anna = UserFactory(username="anna")
    anna.groups.add(accountants)
    RecipientProfile.objects.create(user=anna, language="en")
    boss = UserFactory(username="boss")
    _rule(users=[boss, anna], groups=[accountants], title_ru="Оплачен {{ number }} на {{ amount_total }}")
    # when the event fans out twice (a redelivery)
    assert notifications_fanout(paid_event) == 3
    assert notifications_fanout(paid_event) == 0
    # then each recipient has exactly one inbox message, rendered in their language
    inbox = {n.user.username: n.title for n in Notification.objects.select_related("user")}
    assert inbox == {
        "maria": "Оплачен 2026-00001 на 12200,00",
        "boss": "Оплачен 2026-00001 на 12200,00",
        "anna": "Invoice 2026-00001 paid",
    }
    assert Delivery.objects.filter(status="sent").count() == 3
    assert DeliveryAttempt.objects.filter(ok=True).count() == 3


@pytest.mark.django_db
def test_conditions_amount_and_pipeline_filter_rules(paid_event, pipeline):
    _rule(min_amount=Decimal("20000"))
    _rule(pipeline=pipeline)  # the invoice has no deal, so no pipeline
    _rule(min_amount=Decimal("12200"))
    assert notifications_fanout(paid_event) == 1


@pytest.mark.django_db
def test_signed_webhook_with_two_secrets_during_rotation(paid_event, local_http):
    _rule(
        channels=["webhook"],
        to_manager=False,
        webhook_url=f"{local_http.url}/hook",
        webhook_secret="new-secret",
        webhook_secret_previous="old-secret",
    )
    notifications_fanout(paid_event)
    _send_all()
    _, path, headers, body = local_http.requests[0]
    assert path == "/hook" and headers["X-Hub-Event-Type"] == "invoice.paid"
    assert json.loads(body)["data"]["number"] == "2026-00001"
    # a receiver holding either secret accepts it; a third secret does not
    signature_verify(body=body, header=headers["X-Hub-Signature"], secrets=["old-secret"])
    signature_verify(body=body, header=headers["X-Hub-Signature"], secrets=["new-secret"])
    with pytest.raises(SignatureInvalid):
        signature_verify(body=body, header=headers["X-Hub-Signature"], secrets=["other"])


def test_signature_older_than_300_seconds_is_refused():
    header = signature_header(body=b"{}", secrets=["s"], timestamp=1_000_000)
    signature_verify(body=b"{}", header=header, secrets=["s"], now=1_000_300)
    with pytest.raises(SignatureInvalid, match="tolerance"):
        signature_verify(body=b"{}", header=header, secrets=["s"], now=1_000_301)


@pytest.mark.django_db
def test_telegram_sendmessage_contract(paid_event, local_http, settings, manager):
    settings.TELEGRAM_API_BASE, settings.TELEGRAM_BOT_TOKEN = local_http.url, "123:ABC"
    RecipientProfile.objects.create(user=manager, telegram_chat_id="4242")
    local_http.respond = lambda m, p, h, b: (200, {"ok": True, "result": {"message_id": 1}})
    _rule(channels=["telegram"])
    notifications_fanout(paid_event)
    _send_all()
    method, path, _, body = local_http.requests[0]
    assert (method, path) == ("POST", "/bot123:ABC/sendMessage")
    sent = json.loads(body)
    assert sent["chat_id"] == "4242" and "2026-00001" in sent["text"]
    assert Delivery.objects.get().status == "sent"


@pytest.mark.django_db
def test_failing_channels_are_retried_then_failed_without_blocking_others(
    paid_event, local_http, settings, manager
):
    settings.NOTIFY_MAX_ATTEMPTS = 3
    settings.NOTIFY_RETRY_BASE_SECONDS = 0
    settings.TELEGRAM_API_BASE, settings.TELEGRAM_BOT_TOKEN = "http://127.0.0.1:9", "123:ABC"  # down
    RecipientProfile.objects.create(user=manager, telegram_chat_id="4242")
    local_http.respond = lambda m, p, h, b: (500, {"error": "boom"})
    _rule(
        channels=["webhook", "telegram", "inapp", "email", "crm_note"],
        webhook_url=local_http.url,
        webhook_secret="s",
    )
    notifications_fanout(paid_event)
    for _ in range(4):
        _send_all()
    by_channel = {d.channel: d for d in Delivery.objects.all()}
    assert by_channel["inapp"].status == "sent" and by_channel["email"].status == "sent"
    assert len(mail.outbox) == 1
    webhook, telegram, crm = by_channel["webhook"], by_channel["telegram"], by_channel["crm_note"]
    assert (webhook.status, webhook.attempts) == ("failed", 3) and "500" in webhook.last_error
    assert (telegram.status, telegram.attempts) == ("failed", 3) and "cannot reach" in telegram.last_error
    assert (crm.status, crm.attempts) == ("failed", 1) and "CRM" in crm.last_error  # nothing connected
    assert DeliveryAttempt.objects.filter(delivery=webhook, ok=False).count() == 3
    assert len(local_http.requests) == 3


@pytest.mark.django_db
def test_inbox_api_unread_count_and_mark_read(paid_event, manager):
    RecipientProfile.objects.create(user=manager, language="ru")
    from rest_framework.test import APIClient

    from hub.api_auth import apikey_create

    _rule()
    notifications_fanout(paid_event)
    _, raw = apikey_create(name="maria-key", scope="write", user=manager)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/notifications/unread-count/").json() == {"unread": 1}
    listed = api.get("/api/v1/notifications/").json()["results"]
    assert listed[0]["title"] == "Счёт 2026-00001 оплачен" and listed[0]["is_read"] is False
    assert api.post(f"/api/v1/notifications/{listed[0]['id']}/read/").json() == {"marked": 1, "unread": 0}
    # someone else's inbox is empty; a key acting as no user has no inbox
    _, other = apikey_create(name="svc", scope="read")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert api.get("/api/v1/notifications/").status_code == 403
