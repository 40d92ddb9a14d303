"""Admin for the CRM core, the outbox and API keys.

Writes that the rest of the hub must hear about (clients, contacts, deals, products) go through
``hub.services`` with ``origin="admin"``, so they are validated the same way as API writes and leave a
``DomainEvent``. A refusal from a service is shown on the form, not as a 500: see ``ServiceAdminMixin``.
Stored totals and service-computed fields are read-only; the outbox and idempotency records are view-only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Model
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import requisites
from .api_auth import apikey_create, apikey_revoke
from .errors import ApplicationError, ValidationFailed
from .events import event_record, event_redeliver
from .models import (
    ApiKey,
    Channel,
    Client,
    Company,
    Contact,
    Deal,
    DealLine,
    DomainEvent,
    EventDelivery,
    IdempotencyRecord,
    Pipeline,
    Product,
    Stage,
)
from .services import (
    CLIENT_FIELDS,
    CONTACT_FIELDS,
    DEAL_FIELDS,
    PRODUCT_FIELDS,
    client_archive,
    client_cleaners,
    client_create,
    client_update,
    contact_create,
    contact_update,
    deal_create,
    deal_update,
    product_create,
    product_update,
)

admin.site.site_header = _("CRM-accounting hub")
admin.site.site_title = _("CRM-accounting hub")
admin.site.index_title = _("Administration")

ORIGIN = "admin"


# --- shared machinery -------------------------------------------------------------------------------


class ServiceRefused(Exception):
    """A service refused an admin save; carries the error back to ``changeform_view``."""

    def __init__(self, error: ApplicationError):
        super().__init__(error.message)
        self.error = error


def refuse(exc: ApplicationError | ValueError) -> ServiceRefused:
    if isinstance(exc, ValueError):
        exc = ValidationFailed(str(exc))
    return ServiceRefused(exc)


def copy_saved(saved: Model, target: Model) -> None:
    """Make the form's instance the row the service wrote, so inlines, log and redirect use it."""
    for field in saved._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False
    target._state.db = saved._state.db


class ServiceAdminMixin:
    """Let ``save_model``/``save_related`` call services and show their refusal on the form.

    ``changeform_view`` runs in a transaction: a refusal raises ``ServiceRefused``, which rolls back
    everything written by this request, and the form is then built again from the same POST with the
    service's messages attached to the fields they name (others become form-wide errors).
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRefused as refused:
            request._service_error = refused.error
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        error: ApplicationError | None = getattr(request, "_service_error", None)
        if error is None:
            return form_class

        class RefusedForm(form_class):
            def clean(self):
                cleaned = super().clean()
                for field, field_messages in error.fields.items():
                    if field in self.fields and field in self.cleaned_data:
                        self.add_error(field, list(field_messages))
                    else:
                        self.add_error(None, [f"{field}: {m}" for m in field_messages])
                if not error.fields:
                    self.add_error(None, error.message)
                return cleaned

        return RefusedForm


def form_data(form, fields, *, change: bool) -> dict[str, Any]:
    """The service's input: every field on add, only the changed ones on change."""
    names = [f for f in fields if f in form.cleaned_data]
    if change:
        names = [f for f in names if f in form.changed_data]
    return {f: form.cleaned_data[f] for f in names}


def mark_formsets_saved(formsets) -> None:
    """Fill ``new_objects`` & co. for the change message without writing: the service wrote the rows."""
    for formset in formsets:
        formset.save(commit=False)


class ViewOnlyAdmin(admin.ModelAdmin):
    """Rows written by the hub itself: an admin reads them, never edits them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ViewOnlyInline:
    can_delete = False
    extra = 0
    max_num = 0

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- document lines (deal lines here, invoice lines in invoicing.admin) -----------------------------

LINE_INPUT_FIELDS = (
    "product",
    "description",
    "unit",
    "quantity",
    "unit_price",
    "discount_pct",
    "vat_rate",
    "unit_cost",
)
LINE_TOTAL_FIELDS = ("amount_net", "vat_amount", "amount_total", "cost_total")
LINE_OPTIONAL_FIELDS = ("description", "unit", "unit_price", "discount_pct", "vat_rate", "unit_cost")


class LineInlineForm(forms.ModelForm):
    """A line: pick a product and leave the rest empty to take its name, unit, price, VAT and cost."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in LINE_OPTIONAL_FIELDS:
            if name in self.fields:
                self.fields[name].required = False
                self.fields[name].help_text = _("Empty: taken from the product.")
        if self.instance._state.adding:
            # Model defaults (0.00, "шт") would otherwise override the product's values.
            for name in LINE_OPTIONAL_FIELDS:
                self.initial.pop(name, None)


def line_payloads(formset) -> list[dict[str, Any]]:
    """The lines a formset holds, in order, as the dicts ``build_deal_lines`` takes; deleted rows left out."""
    lines = []
    for form in formset.forms:
        if not hasattr(form, "cleaned_data") or formset._should_delete_form(form):
            continue
        if form.instance._state.adding and not form.has_changed():
            continue
        lines.append(
            {
                name: value
                for name in LINE_INPUT_FIELDS
                if (value := form.cleaned_data.get(name)) is not None and value != ""
            }
        )
    return lines


class LineInline(admin.TabularInline):
    form = LineInlineForm
    fields = (*LINE_INPUT_FIELDS, *LINE_TOTAL_FIELDS)
    readonly_fields = LINE_TOTAL_FIELDS
    autocomplete_fields = ("product",)
    extra = 1

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("product")


# --- own company, channels, products, pipelines ----------------------------------------------------


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ("__str__", "legal_name", "inn", "kpp", "vat_mode", "default_currency", "is_default")
    list_filter = ("vat_mode", "is_default", "default_currency")
    search_fields = ("legal_name", "short_name", "inn")
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("legal_name", "short_name", "is_default", "vat_mode", "default_currency")}),
        (_("Requisites"), {"fields": ("inn", "kpp", "ogrn", "foreign_tax_id", "address")}),
        (_("Bank"), {"fields": ("bank_name", "bic", "settlement_account", "correspondent_account")}),
        (_("Record"), {"fields": ("created_at", "updated_at")}),
    )


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "code")
    prepopulated_fields = {"code": ("name",)}


@admin.register(Product)
class ProductAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ("sku", "name", "unit", "price", "unit_cost", "currency", "vat_rate", "is_active")
    list_filter = ("is_active", "currency", "vat_rate")
    search_fields = ("sku", "name")
    readonly_fields = ("created_at", "updated_at")

    def save_model(self, request, obj, form, change):
        data = form_data(form, PRODUCT_FIELDS, change=change)
        try:
            if change:
                saved = product_update(
                    product=Product.objects.get(pk=obj.pk), actor=request.user, origin=ORIGIN, **data
                )
            else:
                saved = product_create(actor=request.user, origin=ORIGIN, **data)
        except ApplicationError as exc:
            raise refuse(exc) from exc
        copy_saved(saved, obj)


class StageInline(admin.TabularInline):
    model = Stage
    fields = ("order", "name", "code", "probability", "is_won", "is_lost")
    prepopulated_fields = {"code": ("name",)}
    extra = 0


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ("name", "is_default", "created_at")
    list_filter = ("is_default",)
    search_fields = ("name",)
    inlines = (StageInline,)


@admin.register(Stage)
class StageAdmin(admin.ModelAdmin):
    list_display = ("name", "pipeline", "code", "order", "probability", "is_won", "is_lost")
    list_filter = ("pipeline", "is_won", "is_lost")
    list_select_related = ("pipeline",)
    search_fields = ("name", "code", "pipeline__name")
    ordering = ("pipeline__name", "order")

    def get_search_results(self, request, queryset, search_term):
        # The autocomplete widget renders "pipeline: stage" for every result.
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        return queryset.select_related("pipeline"), may_have_duplicates


# --- clients and contacts ---------------------------------------------------------------------------


class ClientAdminForm(forms.ModelForm):
    """Normalise requisites as the service will, so DB rules (INN format, E.164 phone) see the clean values.

    The service still decides: it re-checks and refuses what the form cannot know (a person with a KPP).
    """

    def clean(self):
        cleaned = super().clean()
        cleaners = client_cleaners(cleaned.get("country"))
        for name in ("inn", "kpp", "ogrn", "email", "phone", "country"):
            if name in cleaned and name in cleaners:
                try:
                    cleaned[name] = cleaners[name](cleaned[name])
                except ValueError as exc:
                    self.add_error(name, str(exc))
        return cleaned


class ContactInlineForm(forms.ModelForm):
    def clean(self):
        cleaned = super().clean()
        normalizers: Mapping[str, Callable[[str], str]] = {
            "email": requisites.normalize_email,
            "phone": requisites.normalize_phone,
        }
        for name, normalize in normalizers.items():
            if cleaned.get(name):
                try:
                    cleaned[name] = normalize(cleaned[name])
                except ValueError as exc:
                    self.add_error(name, str(exc))
        return cleaned


class ContactInline(admin.TabularInline):
    model = Contact
    form = ContactInlineForm
    fields = ("last_name", "first_name", "middle_name", "position", "email", "phone", "is_primary")
    extra = 0


def save_contacts(request, client: Client, formset) -> None:
    """Write the contact rows of a client form through the contact services."""
    for form in formset.forms:
        if not hasattr(form, "cleaned_data"):
            continue
        contact = form.instance
        if formset._should_delete_form(form):
            if contact.pk:
                event_record(
                    type="contact.deleted",
                    instance=contact,
                    payload={"client": client.pk},
                    origin=ORIGIN,
                    actor=request.user,
                )
                contact.delete()
            continue
        if not form.has_changed():
            continue
        data = form_data(form, CONTACT_FIELDS, change=not contact._state.adding)
        if contact._state.adding:
            contact_create(client=client, actor=request.user, origin=ORIGIN, **data)
        else:
            contact_update(
                contact=Contact.objects.get(pk=contact.pk), actor=request.user, origin=ORIGIN, **data
            )


@admin.register(Client)
class ClientAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = ClientAdminForm
    list_display = (
        "name",
        "kind",
        "inn",
        "kpp",
        "email",
        "phone",
        "manager",
        "channel",
        "created_at",
        "archived",
    )
    list_filter = ("kind", ("archived_at", admin.EmptyFieldListFilter), "channel", "manager")
    list_select_related = ("manager", "channel")
    search_fields = ("name", "legal_name", "^inn", "email", "phone")
    autocomplete_fields = ("manager", "channel")
    date_hierarchy = "created_at"
    readonly_fields = ("archived_at", "merged_into", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("kind", "name", "legal_name", "manager", "channel", "vat_mode")}),
        (_("Requisites"), {"fields": ("inn", "kpp", "ogrn", "foreign_tax_id", "country", "address")}),
        (_("Contacts"), {"fields": ("email", "phone", "notes")}),
        (_("Record"), {"fields": ("archived_at", "merged_into", "created_at", "updated_at")}),
    )
    inlines = (ContactInline,)
    actions = ("archive_selected",)

    @admin.display(boolean=True, description=_("archived"), ordering="archived_at")
    def archived(self, obj: Client) -> bool:
        return obj.is_archived

    def save_model(self, request, obj, form, change):
        data = form_data(form, CLIENT_FIELDS, change=change)
        try:
            if change:
                saved = client_update(
                    client=Client.objects.get(pk=obj.pk), actor=request.user, origin=ORIGIN, **data
                )
            else:
                saved = client_create(actor=request.user, origin=ORIGIN, **data)
        except ApplicationError as exc:
            raise refuse(exc) from exc
        copy_saved(saved, obj)

    def save_related(self, request, form, formsets, change):
        form.save_m2m()
        for formset in formsets:
            if formset.model is Contact:
                try:
                    save_contacts(request, form.instance, formset)
                except ApplicationError as exc:
                    raise refuse(exc) from exc
        mark_formsets_saved(formsets)

    @admin.action(description=_("Archive selected clients"), permissions=["change"])
    def archive_selected(self, request, queryset):
        count = 0
        for client in queryset.filter(archived_at__isnull=True):
            client_archive(client=client, actor=request.user, origin=ORIGIN)
            count += 1
        self.message_user(request, ngettext("%d client archived.", "%d clients archived.", count) % count)


@admin.register(Contact)
class ContactAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = ContactInlineForm
    list_display = ("__str__", "client", "position", "email", "phone", "is_primary", "updated_at")
    list_filter = ("is_primary",)
    list_select_related = ("client",)
    search_fields = ("last_name", "first_name", "email", "phone", "client__name")
    autocomplete_fields = ("client",)
    readonly_fields = ("created_at", "updated_at")

    def save_model(self, request, obj, form, change):
        data = form_data(form, CONTACT_FIELDS, change=change)
        try:
            if change:
                contact = Contact.objects.get(pk=obj.pk)
                if "client" in form.changed_data:
                    data["client"] = form.cleaned_data["client"]
                saved = contact_update(contact=contact, actor=request.user, origin=ORIGIN, **data)
            else:
                saved = contact_create(
                    client=form.cleaned_data["client"], actor=request.user, origin=ORIGIN, **data
                )
        except ApplicationError as exc:
            raise refuse(exc) from exc
        copy_saved(saved, obj)


# --- deals --------------------------------------------------------------------------------------------


class DealLineInline(LineInline):
    model = DealLine


DEAL_COMPUTED_FIELDS = (
    "status",
    "won_at",
    "lost_at",
    "amount_net",
    "vat_amount",
    "amount_total",
    "cost_total",
)


@admin.register(Deal)
class DealAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ("title", "client", "stage", "status", "amount_total", "currency", "manager", "created_at")
    list_filter = ("status", "pipeline", "stage", "channel", "currency", "manager")
    list_select_related = ("client", "stage__pipeline", "manager")
    search_fields = ("title", "client__name", "client__inn")
    autocomplete_fields = ("client", "company", "pipeline", "stage", "manager", "channel")
    date_hierarchy = "created_at"
    readonly_fields = (*DEAL_COMPUTED_FIELDS, "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("title", "client", "company", "pipeline", "stage", "manager", "channel")}),
        (
            _("Money"),
            {"fields": ("currency", "vat_mode", "amount_net", "vat_amount", "amount_total", "cost_total")},
        ),
        (_("Outcome"), {"fields": ("status", "expected_close_date", "won_at", "lost_at", "lost_reason")}),
        (_("Attribution"), {"fields": ("utm_source", "utm_medium", "utm_campaign")}),
        (_("Record"), {"fields": ("created_at", "updated_at")}),
    )
    inlines = (DealLineInline,)

    def save_model(self, request, obj, form, change):
        """Nothing yet: the deal is written with its lines in ``save_related``."""

    def save_related(self, request, form, formsets, change):
        lines_formset = next(fs for fs in formsets if fs.model is DealLine)
        lines = line_payloads(lines_formset) if (lines_formset.has_changed() or not change) else None
        data = form_data(form, DEAL_FIELDS, change=change)
        try:
            if change:
                saved = deal_update(
                    deal=Deal.objects.get(pk=form.instance.pk),
                    lines=lines,
                    actor=request.user,
                    origin=ORIGIN,
                    **data,
                )
            else:
                saved = deal_create(
                    title=data.pop("title"),
                    client=data.pop("client"),
                    lines=lines or [],
                    actor=request.user,
                    origin=ORIGIN,
                    **data,
                )
        except ApplicationError as exc:
            raise refuse(exc) from exc
        copy_saved(saved, form.instance)
        mark_formsets_saved(formsets)


@admin.register(DealLine)
class DealLineAdmin(ViewOnlyAdmin):
    """Lines are edited on their deal, where the totals are recomputed."""

    list_display = (
        "description",
        "deal",
        "product",
        "quantity",
        "unit_price",
        "discount_pct",
        "vat_rate",
        "amount_total",
    )
    list_select_related = ("deal", "product")
    search_fields = ("description", "deal__title", "product__sku")


# --- outbox -------------------------------------------------------------------------------------------


class EventDeliveryInline(ViewOnlyInline, admin.TabularInline):
    model = EventDelivery
    fields = ("handler", "status", "attempts", "next_attempt_at", "done_at", "last_error")
    readonly_fields = fields


@admin.register(DomainEvent)
class DomainEventAdmin(ViewOnlyAdmin):
    list_display = (
        "id",
        "type",
        "aggregate_type",
        "aggregate_id",
        "origin",
        "actor",
        "occurred_at",
        "dispatched_at",
    )
    list_filter = (
        "type",
        "aggregate_type",
        ("dispatched_at", admin.EmptyFieldListFilter),
        "deliveries__status",
    )
    list_select_related = ("actor",)
    ordering = ("-id",)
    show_full_result_count = False  # the outbox grows without bound: one COUNT is enough
    search_fields = ("=id", "type", "=aggregate_id", "origin")
    date_hierarchy = "occurred_at"
    fields = (
        "type",
        "aggregate_type",
        "aggregate_id",
        "origin",
        "actor",
        "occurred_at",
        "dispatched_at",
        "payload_pretty",
    )
    readonly_fields = fields
    inlines = (EventDeliveryInline,)
    actions = ("redispatch",)

    @admin.display(description=_("payload"))
    def payload_pretty(self, obj: DomainEvent) -> str:
        return format_html(
            "<pre>{}</pre>", json.dumps(obj.payload, indent=2, ensure_ascii=False, sort_keys=True)
        )

    def has_redispatch_permission(self, request) -> bool:
        # The model admin is view-only, so the action needs its own right: changing events.
        return request.user.has_perm("hub.change_domainevent")

    @admin.action(description=_("Re-dispatch selected events"), permissions=["redispatch"])
    def redispatch(self, request, queryset):
        delivered = failed = 0
        for event_id in queryset.order_by("id").values_list("id", flat=True):
            result = event_redeliver(event_id)
            delivered += result.delivered
            failed += result.failed
        level = messages.WARNING if failed else messages.SUCCESS
        self.message_user(
            request,
            _("Dispatched: %(delivered)d handler runs done, %(failed)d failed.")
            % {"delivered": delivered, "failed": failed},
            level,
        )


@admin.register(EventDelivery)
class EventDeliveryAdmin(ViewOnlyAdmin):
    list_display = ("id", "event", "handler", "status", "attempts", "next_attempt_at", "done_at")
    list_filter = ("status", "handler", "event__type")
    list_select_related = ("event",)
    ordering = ("-id",)
    show_full_result_count = False
    search_fields = ("handler", "event__type", "=event__id", "last_error")


# --- API keys and idempotency ----------------------------------------------------------------------


@admin.register(ApiKey)
class ApiKeyAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """Keys are minted by ``apikey_create``: the raw key is shown once, only its digest is kept."""

    list_display = ("name", "prefix", "scope", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("scope", ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("user",)
    search_fields = ("name", "prefix", "user__username")
    autocomplete_fields = ("user",)
    date_hierarchy = "created_at"
    actions = ("revoke_selected",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "scope", "user")
        return ("name", "prefix", "scope", "user", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # Scope and the acting user are fixed at creation: a different right is a different key.
        return ("prefix", "scope", "user", "created_at", "last_used_at", "revoked_at")

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        try:
            key, raw = apikey_create(
                name=form.cleaned_data["name"],
                scope=form.cleaned_data["scope"],
                user=form.cleaned_data.get("user"),
            )
        except ValueError as exc:
            raise refuse(exc) from exc
        copy_saved(key, obj)
        messages.success(
            request,
            format_html(
                "API key “{}”: <code>{}</code> — copy it now, it is not stored and will not be shown again.",
                key.name,
                raw,
            ),
        )

    @admin.action(description=_("Revoke selected keys"), permissions=["change"])
    def revoke_selected(self, request, queryset):
        count = 0
        for key in queryset.filter(revoked_at__isnull=True):
            apikey_revoke(key=key)
            count += 1
        self.message_user(request, ngettext("%d key revoked.", "%d keys revoked.", count) % count)


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ViewOnlyAdmin):
    list_display = ("key", "principal", "method", "path", "status_code", "created_at")
    list_filter = ("method", "status_code")
    search_fields = ("=key", "principal", "path")
    ordering = ("-created_at",)
    date_hierarchy = "created_at"
