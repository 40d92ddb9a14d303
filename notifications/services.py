"""Rules ⇒ deliveries ⇒ sends.

``notifications_fanout`` runs once per event (from the outbox dispatcher): it evaluates the active
rules, creates one ``Delivery`` per (event, rule, recipient, channel) — the unique constraint makes a
second run create nothing — delivers in-app messages at once and queues the other channels.
``delivery_send`` claims one delivery with a conditional update, sends it, logs the attempt, and either
marks it sent, schedules a retry with exponential backoff, or marks it failed with the error.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q
from django.template import Context, Engine
from django.utils import timezone, translation

from hub.models import Deal, DomainEvent
from invoicing.models import Invoice, Payment

from .channels import ChannelError, transport_for
from .models import ChannelKind, Delivery, DeliveryAttempt, DeliveryState, Notification, NotificationRule

logger = logging.getLogger(__name__)
_engine = Engine(autoescape=False)

DEFAULT_TEMPLATES = {
    "payment.received": (
        ("Поступила оплата {{ amount }} {{ currency }}", "От {{ client }}. {{ purpose }}"),
        ("Payment received: {{ amount }} {{ currency }}", "From {{ client }}. {{ purpose }}"),
    ),
    "invoice.paid": (
        (
            "Счёт {{ number }} оплачен",
            "{{ client }} оплатил счёт {{ number }} на {{ amount_total }} {{ currency }}.",
        ),
        (
            "Invoice {{ number }} paid",
            "{{ client }} paid invoice {{ number }}: {{ amount_total }} {{ currency }}.",
        ),
    ),
    "invoice.overdue": (
        (
            "Счёт {{ number }} просрочен",
            "{{ client }}: к оплате {{ amount_due }} {{ currency }}, срок {{ due_date }}.",
        ),
        (
            "Invoice {{ number }} overdue",
            "{{ client }}: {{ amount_due }} {{ currency }} was due {{ due_date }}.",
        ),
    ),
    "deal.won": (
        ("Сделка выиграна: {{ title }}", "{{ client }}, {{ amount_total }} {{ currency }}."),
        ("Deal won: {{ title }}", "{{ client }}, {{ amount_total }} {{ currency }}."),
    ),
    "sync.failed": (("Ошибка синхронизации", "{{ error }}"), ("Sync failed", "{{ error }}")),
    "connection.auth_expired": (
        ("Подключение требует повторной авторизации", "{{ connection }}"),
        ("A connection needs re-authorisation", "{{ connection }}"),
    ),
}


@dataclass
class EventContext:
    """What rules and templates see about an event."""

    amount: Decimal | None = None
    manager_id: int | None = None
    pipeline_id: int | None = None
    channel_id: int | None = None
    variables: dict[str, Any] = field(default_factory=dict)


def event_context(event: DomainEvent) -> EventContext:
    payload = dict(event.payload or {})
    ctx = EventContext(variables={**payload, "event": event.type})
    model = event.aggregate_type
    if model == "invoicing.payment":
        payment = Payment.objects.select_related("client").filter(pk=event.aggregate_id).first()
        if payment is not None:
            client = payment.client
            ctx.amount = payment.amount
            ctx.manager_id = client.manager_id if client else None
            ctx.channel_id = client.channel_id if client else None
            ctx.variables.update(
                amount=payment.amount,
                currency=payment.currency,
                client=str(client) if client else payment.payer_name or payment.payer_inn,
                purpose=payment.purpose,
                payer_inn=payment.payer_inn,
            )
    elif model == "invoicing.invoice":
        invoice = Invoice.objects.select_related("client", "deal").filter(pk=event.aggregate_id).first()
        if invoice is not None:
            deal = invoice.deal
            ctx.amount = invoice.amount_total
            ctx.manager_id = (deal.manager_id if deal else None) or invoice.client.manager_id
            ctx.pipeline_id = deal.pipeline_id if deal else None
            ctx.channel_id = (deal.channel_id if deal else None) or invoice.client.channel_id
            ctx.variables.update(
                number=invoice.number,
                client=str(invoice.client),
                amount_total=invoice.amount_total,
                amount_paid=invoice.amount_paid,
                amount_due=invoice.amount_due,
                currency=invoice.currency,
                due_date=invoice.due_date,
            )
    elif model == "hub.deal":
        deal = Deal.objects.select_related("client").filter(pk=event.aggregate_id).first()
        if deal is not None:
            ctx.amount = deal.amount_total
            ctx.manager_id = deal.manager_id or deal.client.manager_id
            ctx.pipeline_id, ctx.channel_id = deal.pipeline_id, deal.channel_id or deal.client.channel_id
            ctx.variables.update(
                title=deal.title,
                client=str(deal.client),
                amount_total=deal.amount_total,
                currency=deal.currency,
            )
    elif "amount" in payload:
        try:
            ctx.amount = Decimal(str(payload["amount"]))
        except ArithmeticError:
            ctx.amount = None
    return ctx


def rule_matches(rule: NotificationRule, ctx: EventContext) -> bool:
    if rule.min_amount is not None and (ctx.amount is None or ctx.amount < rule.min_amount):
        return False
    if rule.pipeline_id and ctx.pipeline_id != rule.pipeline_id:
        return False
    return not (rule.acquisition_channel_id and ctx.channel_id != rule.acquisition_channel_id)


def rule_recipients(rule: NotificationRule, ctx: EventContext) -> list:
    users = get_user_model().objects.filter(is_active=True)
    query = Q(pk__in=rule.to_users.values("pk")) | Q(groups__in=rule.to_groups.values("pk"))
    if rule.to_manager and ctx.manager_id:
        query |= Q(pk=ctx.manager_id)
    return list(users.filter(query).select_related("notification_profile").distinct().order_by("pk"))


def _language(user) -> str:
    profile = getattr(user, "notification_profile", None) if user is not None else None
    return profile.language if profile else settings.LANGUAGE_CODE[:2]


def render(rule: NotificationRule, *, event_type: str, language: str, variables: dict) -> tuple[str, str]:
    ru, en = DEFAULT_TEMPLATES.get(event_type, (("{{ event }}", ""), ("{{ event }}", "")))
    if language == "ru":
        title, body = rule.title_ru or ru[0], rule.body_ru or ru[1]
    else:
        title, body = rule.title_en or en[0], rule.body_en or en[1]
    context = Context(variables)
    try:
        with translation.override(language):  # numbers and dates in the reader's own format
            return (
                _engine.from_string(title).render(context).strip()[:200],
                _engine.from_string(body).render(context).strip(),
            )
    except Exception as exc:  # a broken template in admin must not lose the notification
        logger.warning("notification template failed", extra={"rule": rule.pk}, exc_info=True)
        return f"{event_type}"[:200], f"(template error: {exc})"


def _targets(rule: NotificationRule, channel: str, users: list) -> list[tuple[str, Any]]:
    if channel == ChannelKind.WEBHOOK:
        return [(rule.webhook_url, None)] if rule.webhook_url else []
    if channel == ChannelKind.CRM_NOTE:
        return [("crm", None)]
    if channel == ChannelKind.TELEGRAM and rule.telegram_chat_id:
        return [(f"chat:{rule.telegram_chat_id}", None)]
    if channel == ChannelKind.TELEGRAM:
        out = []
        for user in users:
            profile = getattr(user, "notification_profile", None)
            if profile and profile.telegram_chat_id:
                out.append((f"chat:{profile.telegram_chat_id}", user))
        return out
    return [(f"user:{user.pk}", user) for user in users]


def notifications_fanout(event: DomainEvent) -> int:
    """Create the deliveries an event calls for; returns how many are new. Safe to run twice."""
    rules = list(
        NotificationRule.objects.filter(event_type=event.type, is_active=True).prefetch_related(
            "to_users", "to_groups"
        )
    )
    if not rules:
        return 0
    ctx = event_context(event)
    rows: list[Delivery] = []
    for rule in rules:
        if not rule_matches(rule, ctx):
            continue
        users = rule_recipients(rule, ctx)
        for channel in rule.channels:
            for recipient, user in _targets(rule, channel, users):
                title, body = render(
                    rule, event_type=event.type, language=_language(user), variables=ctx.variables
                )
                rows.append(
                    Delivery(
                        event=event,
                        rule=rule,
                        channel=channel,
                        recipient=recipient[:200],
                        user=user,
                        title=title,
                        body=body,
                    )
                )
    if not rows:
        return 0
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    fresh = list(
        Delivery.objects.filter(event=event, status=DeliveryState.PENDING, attempts=0).select_related(
            "event", "rule", "user"
        )
    )
    for delivery in fresh:
        if delivery.channel == ChannelKind.INAPP:
            _send(delivery)  # a row in our own database: no reason to queue it
        else:
            transaction.on_commit(lambda pk=delivery.pk: enqueue_delivery(pk))
    return len(fresh)


def enqueue_delivery(delivery_id: int) -> None:
    from .tasks import deliver

    try:
        deliver.delay(delivery_id)
    except Exception:  # the row stays pending; the sweeper sends it
        logger.exception("could not queue a notification delivery", extra={"delivery_id": delivery_id})


def _backoff(attempts: int) -> dt.timedelta:
    base = settings.NOTIFY_RETRY_BASE_SECONDS * 2 ** (attempts - 1)
    base = min(base, 3600)
    return dt.timedelta(seconds=base + random.uniform(0, base / 4))


def _send(delivery: Delivery) -> float | None:
    """Claim, send, log. Returns seconds until a retry is due, or ``None``."""
    claimed = Delivery.objects.filter(
        pk=delivery.pk, status__in=[DeliveryState.PENDING, DeliveryState.RETRYING], attempts=delivery.attempts
    ).update(attempts=F("attempts") + 1)
    if not claimed:
        return None  # another worker has it, or it is done
    number = delivery.attempts + 1
    delivery.attempts = number
    started, clock = timezone.now(), time.monotonic()
    error, code, permanent = "", None, False
    try:
        result = transport_for(delivery.channel).send(delivery)
        code = result.response_code
    except ChannelError as exc:
        error, code, permanent = str(exc), exc.response_code, exc.permanent
    except Exception as exc:  # a bug in a transport must not block other channels
        logger.exception("notification transport crashed", extra={"delivery_id": delivery.pk})
        error = f"{type(exc).__name__}: {exc}"
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=number,
        started_at=started,
        duration_ms=int((time.monotonic() - clock) * 1000),
        ok=not error,
        response_code=code,
        error=error[:4000],
    )
    if not error:
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryState.SENT, delivered_at=timezone.now(), last_error="", next_attempt_at=None
        )
        return None
    gave_up = permanent or number >= settings.NOTIFY_MAX_ATTEMPTS
    wait = None if gave_up else _backoff(number)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryState.FAILED if gave_up else DeliveryState.RETRYING,
        last_error=error[:4000],
        next_attempt_at=None if wait is None else timezone.now() + wait,
    )
    logger.warning(
        "notification delivery failed",
        extra={
            "delivery_id": delivery.pk,
            "channel": delivery.channel,
            "attempt": number,
            "gave_up": gave_up,
        },
    )
    return None if wait is None else wait.total_seconds()


def delivery_send(*, delivery_id: int) -> float | None:
    delivery = Delivery.objects.select_related("event", "rule", "user").filter(pk=delivery_id).first()
    if delivery is None or delivery.status in (DeliveryState.SENT, DeliveryState.FAILED):
        return None
    if (
        delivery.status == DeliveryState.RETRYING
        and delivery.next_attempt_at
        and delivery.next_attempt_at > timezone.now()
    ):
        return (delivery.next_attempt_at - timezone.now()).total_seconds()
    return _send(delivery)


def deliveries_due(*, limit: int = 500) -> list[int]:
    """Deliveries whose queued send was lost or whose retry is due (the sweeper's work)."""
    now = timezone.now()
    stale = now - dt.timedelta(seconds=30)
    return list(
        Delivery.objects.filter(
            Q(status=DeliveryState.RETRYING, next_attempt_at__lte=now)
            | Q(status=DeliveryState.PENDING, created_at__lte=stale)
        )
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )


# --- the inbox --------------------------------------------------------------------------------------


def notifications_mark_read(*, user, ids: list[int] | None = None) -> int:
    """Mark the user's notifications read (all unread when ``ids`` is None); returns how many changed."""
    qs = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    return qs.update(read_at=timezone.now())
