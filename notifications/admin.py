"""Admin: rules are edited here; deliveries, attempts and the inbox are read-only logs."""

from django import forms
from django.contrib import admin

from hub.admin import ViewOnlyAdmin, ViewOnlyInline

from .models import (
    ChannelKind,
    Delivery,
    DeliveryAttempt,
    Notification,
    NotificationRule,
    RecipientProfile,
)


class RuleForm(forms.ModelForm):
    channels = forms.MultipleChoiceField(choices=ChannelKind.choices, widget=forms.CheckboxSelectMultiple)
    webhook_url = forms.URLField(required=False, assume_scheme="https", max_length=500)

    class Meta:
        model = NotificationRule
        fields = [
            "name",
            "event_type",
            "is_active",
            "min_amount",
            "pipeline",
            "acquisition_channel",
            "to_manager",
            "to_groups",
            "to_users",
            "channels",
            "webhook_url",
            "webhook_secret",
            "webhook_secret_previous",
            "telegram_chat_id",
            "title_ru",
            "body_ru",
            "title_en",
            "body_en",
        ]

    def clean(self):
        data = super().clean()
        if ChannelKind.WEBHOOK in (data.get("channels") or []):
            if not data.get("webhook_url"):
                self.add_error("webhook_url", "The webhook channel needs a URL.")
            if not data.get("webhook_secret"):
                self.add_error("webhook_secret", "The webhook channel needs a signing secret.")
        return data


@admin.register(NotificationRule)
class NotificationRuleAdmin(admin.ModelAdmin):
    form = RuleForm
    list_display = ["name", "event_type", "is_active", "min_amount", "channels"]
    list_filter = ["event_type", "is_active"]
    filter_horizontal = ["to_groups", "to_users"]
    fieldsets = [
        (None, {"fields": ["name", "event_type", "is_active"]}),
        ("Conditions", {"fields": ["min_amount", "pipeline", "acquisition_channel"]}),
        ("Recipients", {"fields": ["to_manager", "to_groups", "to_users"]}),
        (
            "Channels",
            {
                "fields": [
                    "channels",
                    "webhook_url",
                    "webhook_secret",
                    "webhook_secret_previous",
                    "telegram_chat_id",
                ]
            },
        ),
        (
            "Templates",
            {
                "fields": ["title_ru", "body_ru", "title_en", "body_en"],
                "description": "Django template syntax: {{ amount }}, {{ currency }}, {{ client }}, "
                "{{ number }}, {{ amount_due }}, {{ due_date }}, {{ title }}, {{ purpose }}.",
            },
        ),
    ]


@admin.register(RecipientProfile)
class RecipientProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "language", "telegram_chat_id"]


class AttemptInline(ViewOnlyInline, admin.TabularInline):
    model = DeliveryAttempt
    fields = ["number", "started_at", "duration_ms", "ok", "response_code", "error"]
    readonly_fields = fields


@admin.register(Delivery)
class DeliveryAdmin(ViewOnlyAdmin):
    list_display = ["id", "event", "rule", "channel", "recipient", "status", "attempts", "delivered_at"]
    list_filter = ["status", "channel"]
    list_select_related = ["event", "rule"]
    inlines = [AttemptInline]


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ViewOnlyAdmin):
    list_display = ["delivery", "number", "started_at", "ok", "response_code", "error"]
    list_filter = ["ok"]


@admin.register(Notification)
class NotificationAdmin(ViewOnlyAdmin):
    list_display = ["id", "user", "event_type", "title", "created_at", "read_at"]
    list_filter = ["event_type"]
