"""Delivery channels: one small class each, found through a registry by ``ChannelKind``.

``send`` raises ``ChannelError`` on failure; ``permanent=True`` means retrying cannot help.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import ClassVar

from django.conf import settings
from django.core.mail import send_mail

from .models import ChannelKind, Delivery, Notification
from .signing import HEADER, signature_header


class ChannelError(Exception):
    def __init__(self, message: str, *, permanent: bool = False, response_code: int | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.response_code = response_code


@dataclass
class SendResult:
    response_code: int | None = None


class Transport:
    kind: ClassVar[str]

    def send(self, delivery: Delivery) -> SendResult:
        raise NotImplementedError


_registry: dict[str, Transport] = {}


def register(cls: type[Transport]) -> type[Transport]:
    _registry[cls.kind] = cls()
    return cls


def transport_for(kind: str) -> Transport:
    try:
        return _registry[kind]
    except KeyError as exc:
        raise ChannelError(f"unknown channel {kind!r}", permanent=True) from exc


def _post_json(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise ChannelError(f"cannot reach {url.split('?')[0]}: {exc}") from exc


# Where an in-app notification leads in the manager UI, by the kind of object its event is about.
UI_PAGES = {
    "invoicing.invoice": "ui-invoice",
    "hub.deal": "ui-deal",
    "hub.client": "ui-client",
    "invoicing.payment": "ui-payments",
}


def ui_link(event) -> str:
    from django.urls import NoReverseMatch, reverse

    name = UI_PAGES.get(event.aggregate_type)
    if name is None:
        return ""
    try:
        if name == "ui-payments":
            return reverse(name)
        return reverse(name, args=[int(event.aggregate_id)])
    except (NoReverseMatch, ValueError):
        return ""


@register
class InAppTransport(Transport):
    kind = ChannelKind.INAPP

    def send(self, delivery: Delivery) -> SendResult:
        if delivery.user_id is None:
            raise ChannelError("in-app notifications need a user", permanent=True)
        Notification.objects.get_or_create(
            delivery=delivery,
            defaults={
                "user_id": delivery.user_id,
                "event_type": delivery.event.type,
                "title": delivery.title,
                "body": delivery.body,
                "link": ui_link(delivery.event),
            },
        )
        return SendResult()


@register
class EmailTransport(Transport):
    kind = ChannelKind.EMAIL

    def send(self, delivery: Delivery) -> SendResult:
        email = getattr(delivery.user, "email", "")
        if not email:
            raise ChannelError("the recipient has no e-mail address", permanent=True)
        try:
            send_mail(delivery.title, delivery.body or delivery.title, None, [email])
        except OSError as exc:
            raise ChannelError(f"mail server: {exc}") from exc
        return SendResult()


@register
class TelegramTransport(Transport):
    """Bot API ``sendMessage``: ``POST {base}/bot<token>/sendMessage`` → ``{"ok": true, "result": …}``."""

    kind = ChannelKind.TELEGRAM

    def send(self, delivery: Delivery) -> SendResult:
        token = settings.TELEGRAM_BOT_TOKEN
        if not token:
            raise ChannelError("Telegram is not configured (TELEGRAM_BOT_TOKEN)", permanent=True)
        chat_id = delivery.recipient.removeprefix("chat:")
        text = f"{delivery.title}\n\n{delivery.body}".strip()
        url = f"{settings.TELEGRAM_API_BASE.rstrip('/')}/bot{token}/sendMessage"
        body = json.dumps(
            {"chat_id": chat_id, "text": text[:4096], "disable_web_page_preview": True}
        ).encode()
        code, raw = _post_json(url, body, {}, timeout=settings.NOTIFY_HTTP_TIMEOUT)
        try:
            answer = json.loads(raw or b"{}")
        except ValueError:
            answer = {}
        if code == 200 and answer.get("ok") is True:
            return SendResult(code)
        description = answer.get("description") or raw[:200].decode("utf-8", "replace")
        # 400/403: wrong chat or the bot was blocked: retrying cannot help. 429/5xx: it can.
        permanent = code in (400, 401, 403, 404)
        raise ChannelError(
            f"Telegram answered {code}: {description}", permanent=permanent, response_code=code
        )


def webhook_body(delivery: Delivery) -> bytes:
    event = delivery.event
    return json.dumps(
        {
            "id": str(event.pk),
            "type": event.type,
            "occurred_at": event.occurred_at.isoformat(),
            "object": {"type": event.aggregate_type, "id": event.aggregate_id},
            "data": event.payload,
            "message": {"title": delivery.title, "text": delivery.body},
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


@register
class WebhookTransport(Transport):
    kind = ChannelKind.WEBHOOK

    def send(self, delivery: Delivery) -> SendResult:
        rule = delivery.rule
        body = webhook_body(delivery)
        secrets = [s for s in (rule.webhook_secret, rule.webhook_secret_previous) if s]
        headers = {
            HEADER: signature_header(body=body, secrets=secrets),
            "X-Hub-Event-Id": str(delivery.event_id),
            "X-Hub-Event-Type": delivery.event.type,
            "X-Hub-Delivery-Id": str(delivery.pk),
            "User-Agent": "crm-accounting-hub/1",
        }
        code, raw = _post_json(delivery.recipient, body, headers, timeout=settings.NOTIFY_HTTP_TIMEOUT)
        if 200 <= code < 300:
            return SendResult(code)
        raise ChannelError(
            f"the webhook answered {code}: {raw[:200].decode('utf-8', 'replace')}",
            permanent=code == 410,
            response_code=code,
        )


@register
class CrmNoteTransport(Transport):
    """A note on the deal/client in the CRM through its connection; the sync engine provides it."""

    kind = ChannelKind.CRM_NOTE

    # What a note attaches to, by the event's object: a deal directly; an invoice or a payment through its deal.
    def _target(self, delivery: Delivery) -> tuple[str, int] | None:
        from invoicing.models import Invoice, Payment

        event = delivery.event
        object_id = int(event.aggregate_id)
        if event.aggregate_type == "hub.deal":
            return "deals", object_id
        if event.aggregate_type == "hub.client":
            return "clients", object_id
        if event.aggregate_type == "invoicing.invoice":
            deal = Invoice.objects.filter(pk=object_id).values_list("deal_id", flat=True).first()
            return ("deals", deal) if deal else None
        if event.aggregate_type == "invoicing.payment":
            deal = (
                Payment.objects.filter(pk=object_id, allocations__invoice__deal__isnull=False)
                .values_list("allocations__invoice__deal_id", flat=True)
                .first()
            )
            return ("deals", deal) if deal else None
        return None

    def send(self, delivery: Delivery) -> SendResult:
        from hub.integrations import crm_note

        target = self._target(delivery)
        if target is None:
            raise ChannelError("the event is not about a deal or a client the CRM knows", permanent=True)
        text = delivery.title + (f"\n{delivery.body}" if delivery.body else "")
        noted = crm_note(entity=target[0], object_id=target[1], text=text)
        if not noted:
            raise ChannelError("no CRM connection holds this record", permanent=True)
        return SendResult()
