"""Notification rules, the in-app inbox, and the delivery log (one row per send, one per attempt)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from hub.models import Channel as AcquisitionChannel
from hub.models import DomainEvent, Pipeline


class EventType(models.TextChoices):
    PAYMENT_RECEIVED = "payment.received", _("Payment received")
    INVOICE_PAID = "invoice.paid", _("Invoice paid")
    INVOICE_OVERDUE = "invoice.overdue", _("Invoice overdue")
    DEAL_WON = "deal.won", _("Deal won")
    SYNC_FAILED = "sync.failed", _("Sync failed")
    CONNECTION_AUTH_EXPIRED = "connection.auth_expired", _("Connection authorisation expired")


class ChannelKind(models.TextChoices):
    INAPP = "inapp", _("In-app inbox")
    EMAIL = "email", _("E-mail")
    TELEGRAM = "telegram", "Telegram"
    WEBHOOK = "webhook", _("Signed webhook")
    CRM_NOTE = "crm_note", _("Note in the CRM")


class NotificationRule(models.Model):
    """When an event of ``event_type`` meets the conditions, tell the recipients through the channels."""

    name = models.CharField(_("name"), max_length=100)
    event_type = models.CharField(_("event type"), max_length=40, choices=EventType)
    is_active = models.BooleanField(_("active"), default=True)
    # Conditions: empty means "any".
    min_amount = models.DecimalField(
        _("amount at least"), max_digits=18, decimal_places=2, null=True, blank=True
    )
    pipeline = models.ForeignKey(
        Pipeline,
        verbose_name=_("pipeline"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    acquisition_channel = models.ForeignKey(
        AcquisitionChannel,
        verbose_name=_("acquisition channel"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    # Recipients.
    to_manager = models.BooleanField(_("the deal's / client's manager"), default=True)
    to_groups = models.ManyToManyField(Group, verbose_name=_("roles"), blank=True, related_name="+")
    to_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, verbose_name=_("named users"), blank=True, related_name="+"
    )
    # Channels.
    channels = models.JSONField(
        _("channels"), default=list, help_text=_("Any of: inapp, email, telegram, webhook, crm_note.")
    )
    webhook_url = models.URLField(_("webhook URL"), blank=True, max_length=500)
    webhook_secret = models.CharField(_("webhook secret"), max_length=128, blank=True)
    webhook_secret_previous = models.CharField(
        _("previous webhook secret"),
        max_length=128,
        blank=True,
        help_text=_("During rotation both secrets sign every delivery (two v1= values)."),
    )
    telegram_chat_id = models.CharField(
        _("Telegram chat id"),
        max_length=64,
        blank=True,
        help_text=_("A group chat to post to; otherwise each recipient's own chat id is used."),
    )
    # Templates (Django template syntax, e.g. {{ amount }} {{ client }} {{ number }}).
    title_ru = models.CharField(_("title (ru)"), max_length=200, blank=True)
    body_ru = models.TextField(_("text (ru)"), blank=True)
    title_en = models.CharField(_("title (en)"), max_length=200, blank=True)
    body_en = models.TextField(_("text (en)"), blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["event_type", "name"]
        verbose_name = _("notification rule")
        verbose_name_plural = _("notification rules")
        indexes = [models.Index(fields=["event_type", "is_active"], name="rule_event_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.event_type})"


class RecipientProfile(models.Model):
    """Where a user is reached outside the hub, and in which language."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_profile"
    )
    language = models.CharField(_("language"), max_length=2, choices=settings.LANGUAGES, default="ru")
    telegram_chat_id = models.CharField(_("Telegram chat id"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("recipient profile")
        verbose_name_plural = _("recipient profiles")

    def __str__(self) -> str:
        return str(self.user)


class DeliveryState(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENT = "sent", _("Sent")
    RETRYING = "retrying", _("Failed, will retry")
    FAILED = "failed", _("Failed, gave up")


class Delivery(models.Model):
    """One message: exactly one per (event, rule, recipient, channel), by the unique constraint."""

    event = models.ForeignKey(DomainEvent, on_delete=models.CASCADE, related_name="notification_deliveries")
    rule = models.ForeignKey(NotificationRule, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(_("channel"), max_length=10, choices=ChannelKind)
    recipient = models.CharField(
        _("recipient"), max_length=200, help_text=_("user:<id>, chat:<id> or the webhook URL")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("text"), blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=DeliveryState, default=DeliveryState.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        verbose_name = _("notification delivery")
        verbose_name_plural = _("notification deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["event", "rule", "recipient", "channel"], name="notification_once_per_recipient"
            ),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notify_due_idx")]

    def __str__(self) -> str:
        return f"{self.channel} → {self.recipient}: {self.status}"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField(_("attempt"))
    started_at = models.DateTimeField(_("started at"))
    duration_ms = models.PositiveIntegerField(_("duration, ms"), default=0)
    ok = models.BooleanField(_("succeeded"), default=False)
    response_code = models.PositiveSmallIntegerField(_("response code"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="attempt_unique_number")]

    def __str__(self) -> str:
        return f"#{self.number} {'ok' if self.ok else self.error[:40]}"


class Notification(models.Model):
    """The in-app inbox: what a user sees, read or not."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    delivery = models.OneToOneField(
        Delivery, on_delete=models.CASCADE, null=True, blank=True, related_name="notification"
    )
    event_type = models.CharField(_("event type"), max_length=40)
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("text"), blank=True)
    link = models.CharField(_("link"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications (inbox)")
        indexes = [
            models.Index(fields=["user", "-id"], name="inbox_user_idx"),
            models.Index(fields=["user"], condition=Q(read_at__isnull=True), name="inbox_unread_idx"),
        ]

    def __str__(self) -> str:
        return self.title
