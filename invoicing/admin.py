"""Admin for the money: invoices, payments, allocations, number sequences.

Drafts are created by ``invoice_create_draft`` and issued by ``invoice_issue``; an issued invoice is
immutable (corrections are a void or a credit note), so its admin page is read-only. Payments are
recorded by ``payment_record`` and allocated by ``payment_allocate``; recorded amounts are not edited.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from hub.admin import (
    ORIGIN,
    LineInline,
    ServiceAdminMixin,
    ViewOnlyAdmin,
    ViewOnlyInline,
    copy_saved,
    form_data,
    line_payloads,
    mark_formsets_saved,
    refuse,
)
from hub.errors import ApplicationError

from .models import (
    Invoice,
    InvoiceDelivery,
    InvoiceLine,
    InvoiceStatus,
    InvoiceTemplate,
    InvoiceTrigger,
    NumberSequence,
    Payment,
    PaymentAllocation,
    VatRate,
)
from .services import (
    DRAFT_FIELDS,
    invoice_create_draft,
    invoice_credit_note_create,
    invoice_issue,
    invoice_send,
    invoice_template_verify,
    invoice_update_draft,
    invoice_void,
    payment_allocate,
    payment_record,
)

INVOICE_COMPUTED_FIELDS = (
    "kind",
    "credit_note_for",
    "number",
    "status",
    "issue_date",
    "amount_net",
    "vat_amount",
    "amount_total",
    "cost_total",
    "amount_paid",
    "issued_at",
    "sent_at",
    "paid_at",
    "voided_at",
    "created_by",
    "created_at",
    "updated_at",
    "payment_url",
    "gateway",
    "gateway_payment_id",
)


def _is_draft(obj) -> bool:
    return obj is None or obj.status == InvoiceStatus.DRAFT


# --- invoices -------------------------------------------------------------------------------------------


class InvoiceLineInline(LineInline):
    """Editable on drafts; on an issued invoice the parent's read-only state makes it read-only too."""

    model = InvoiceLine

    def has_add_permission(self, request, obj=None):
        return _is_draft(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return _is_draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return _is_draft(obj) and super().has_delete_permission(request, obj)


class InvoiceAllocationInline(ViewOnlyInline, admin.TabularInline):
    """How the invoice was paid: written by ``payment_allocate``, read here."""

    model = PaymentAllocation
    fields = ("payment", "amount", "created_at", "created_by")
    readonly_fields = fields
    verbose_name_plural = _("payments allocated to this invoice")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("payment", "created_by")


@admin.register(Invoice)
class InvoiceAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = (
        "__str__",
        "kind",
        "client",
        "status",
        "issue_date",
        "due_date",
        "amount_total",
        "amount_paid",
        "currency",
        "company",
    )
    list_filter = ("status", "kind", "currency", "company")
    list_select_related = ("client", "company")
    ordering = ("-created_at",)
    search_fields = ("number", "client__name", "client__inn", "purpose")
    autocomplete_fields = ("company", "client", "deal")
    date_hierarchy = "issue_date"
    readonly_fields = INVOICE_COMPUTED_FIELDS
    fieldsets = (
        (None, {"fields": ("kind", "number", "status", "company", "client", "deal", "credit_note_for")}),
        (_("Terms"), {"fields": ("currency", "vat_mode", "issue_date", "due_date", "purpose")}),
        (_("Totals"), {"fields": ("amount_net", "vat_amount", "amount_total", "cost_total", "amount_paid")}),
        (_("Pay online"), {"fields": ("payment_url", "gateway", "gateway_payment_id")}),
        (
            _("Record"),
            {
                "fields": (
                    "issued_at",
                    "sent_at",
                    "paid_at",
                    "voided_at",
                    "created_by",
                    "created_at",
                    "updated_at",
                )
            },
        ),
    )
    inlines = (InvoiceLineInline, InvoiceAllocationInline)
    actions = ("issue_selected", "send_selected", "void_selected", "credit_note_selected")

    def has_change_permission(self, request, obj=None):
        # An issued invoice is immutable: corrections are a void or a credit note.
        return _is_draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return _is_draft(obj) and super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        """Nothing yet: the invoice is written with its lines in ``save_related``."""

    def save_related(self, request, form, formsets, change):
        lines_formset = next(fs for fs in formsets if fs.model is InvoiceLine)
        lines = line_payloads(lines_formset) if (lines_formset.has_changed() or not change) else None
        data = form_data(form, DRAFT_FIELDS, change=change)
        try:
            if change:
                saved = invoice_update_draft(invoice=form.instance, lines=lines, actor=request.user, **data)
            else:
                saved = invoice_create_draft(lines=lines or [], actor=request.user, origin=ORIGIN, **data)
        except ApplicationError as exc:
            raise refuse(exc) from exc
        copy_saved(saved, form.instance)
        mark_formsets_saved(formsets)

    @admin.action(description=_("Issue selected drafts"), permissions=["change"])
    def issue_selected(self, request, queryset):
        issued = 0
        for invoice in queryset.filter(status=InvoiceStatus.DRAFT).order_by("id"):
            try:
                invoice_issue(invoice=invoice, actor=request.user, origin=ORIGIN)
            except ApplicationError as exc:
                self.message_user(request, f"{invoice}: {exc.message}", messages.ERROR)
            else:
                issued += 1
        if issued:
            self.message_user(request, ngettext("%d invoice issued.", "%d invoices issued.", issued) % issued)

    def _each(self, request, queryset, service, done_message: str) -> None:
        done = 0
        for invoice in queryset.order_by("id"):
            try:
                service(invoice=invoice, actor=request.user, origin=ORIGIN)
            except ApplicationError as exc:
                self.message_user(request, f"{invoice}: {exc.message}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, done_message % done)

    # Voiding, crediting and sending change an issued invoice's state through services, so these
    # actions need only the view permission plus the matching model permission checked by Django.
    @admin.action(description=_("E-mail selected invoices to their clients"), permissions=["view"])
    def send_selected(self, request, queryset):
        self._each(request, queryset, invoice_send, _("%d invoice(s) queued for e-mail."))

    @admin.action(description=_("Void selected invoices"), permissions=["view"])
    def void_selected(self, request, queryset):
        self._each(request, queryset, invoice_void, _("%d invoice(s) voided."))

    @admin.action(description=_("Issue a credit note for selected invoices"), permissions=["view"])
    def credit_note_selected(self, request, queryset):
        self._each(request, queryset, invoice_credit_note_create, _("%d credit note(s) issued."))


@admin.register(InvoiceLine)
class InvoiceLineAdmin(ViewOnlyAdmin):
    """Lines are edited on their draft invoice, where the totals are recomputed."""

    list_display = ("description", "invoice", "product", "quantity", "unit_price", "vat_rate", "amount_total")
    list_select_related = ("invoice", "product")
    search_fields = ("description", "invoice__number", "product__sku")


# --- payments -------------------------------------------------------------------------------------------


class AllocationInlineForm(forms.ModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["amount"].required = False
        self.fields["amount"].help_text = _("Empty: as much as the payment and the invoice allow.")
        if self.instance._state.adding:
            self.initial.pop("amount", None)  # the model default 0.00 is never a valid allocation


class PaymentAllocationInline(admin.TabularInline):
    """New rows are applied by ``payment_allocate``; applied rows are history and stay as they are."""

    model = PaymentAllocation
    form = AllocationInlineForm
    fields = ("invoice", "amount", "created_at", "created_by")
    readonly_fields = ("created_at", "created_by")
    autocomplete_fields = ("invoice",)
    can_delete = False
    extra = 1

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("invoice", "created_by")

    def has_change_permission(self, request, obj=None):
        return False


PAYMENT_INPUT_FIELDS = (
    "company",
    "client",
    "source",
    "external_id",
    "amount",
    "currency",
    "received_at",
    "payer_name",
    "payer_inn",
    "purpose",
)


@admin.register(Payment)
class PaymentAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = (
        "received_at",
        "amount",
        "currency",
        "client",
        "payer_name",
        "source",
        "status",
        "amount_allocated",
    )
    list_filter = ("status", "source", "currency", "company")
    list_select_related = ("client",)
    ordering = ("-received_at",)
    search_fields = ("payer_name", "payer_inn", "external_id", "purpose", "client__name", "client__inn")
    autocomplete_fields = ("company", "client")
    date_hierarchy = "received_at"
    inlines = (PaymentAllocationInline,)

    def get_readonly_fields(self, request, obj=None):
        computed = ("amount_allocated", "status", "created_by", "created_at", "updated_at")
        if obj is None:
            return computed
        # A recorded payment is a fact from the bank or gateway: only its allocations grow.
        return (*PAYMENT_INPUT_FIELDS, *computed)

    def has_delete_permission(self, request, obj=None):
        # Deleting an allocated payment would leave its invoices marked as paid.
        allocated = obj is not None and obj.amount_allocated > 0
        return not allocated and super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        """Nothing yet: the payment is recorded with its allocations in ``save_related``."""

    def save_related(self, request, form, formsets, change):
        allocations_formset = next(fs for fs in formsets if fs.model is PaymentAllocation)
        new_allocations = [
            {"invoice": f.cleaned_data["invoice"], "amount": f.cleaned_data.get("amount")}
            for f in allocations_formset.forms
            if f.instance._state.adding and f.has_changed() and f.cleaned_data.get("invoice")
        ]
        try:
            if change:
                payment = form.instance
                for allocation in new_allocations:
                    payment_allocate(payment=payment, actor=request.user, origin=ORIGIN, **allocation)
                payment.refresh_from_db()
            else:
                data = form_data(form, PAYMENT_INPUT_FIELDS, change=False)
                payment = payment_record(
                    allocations=new_allocations,
                    actor=request.user,
                    origin=ORIGIN,
                    **{k: v for k, v in data.items() if v is not None},
                )
        except ApplicationError as exc:
            raise refuse(exc) from exc
        copy_saved(payment, form.instance)
        mark_formsets_saved(formsets)


@admin.register(PaymentAllocation)
class PaymentAllocationAdmin(ViewOnlyAdmin):
    """Allocations are applied on their payment."""

    list_display = ("payment", "invoice", "amount", "created_at", "created_by")
    list_select_related = ("payment", "invoice", "created_by")
    search_fields = ("invoice__number", "payment__external_id", "payment__payer_name")
    date_hierarchy = "created_at"


# --- numbering ------------------------------------------------------------------------------------------


@admin.register(NumberSequence)
class NumberSequenceAdmin(admin.ModelAdmin):
    """The counter is advanced only by ``invoice_issue``: editing it would break gapless numbering."""

    list_display = ("company", "prefix", "year", "last_number")
    list_filter = ("company", "year")
    list_select_related = ("company",)
    search_fields = ("prefix", "company__legal_name")

    def get_readonly_fields(self, request, obj=None):
        return ("last_number",) if obj is None else ("company", "prefix", "year", "last_number")

    def has_delete_permission(self, request, obj=None):
        return False


# --- documents ------------------------------------------------------------------------------------------


@admin.register(VatRate)
class VatRateAdmin(admin.ModelAdmin):
    """Rates are data with validity dates: a new rate is a new row, the old one gets an end date."""

    list_display = ("country", "rate", "name", "valid_from", "valid_to")
    list_filter = ("country",)
    ordering = ("country", "-rate", "valid_from")


class InvoiceTemplateForm(forms.ModelForm):
    class Meta:
        model = InvoiceTemplate
        fields = (
            "name",
            "layout",
            "is_default",
            "html",
            "css",
            "logo",
            "director_name",
            "accountant_name",
            "payment_terms",
            "show_qr",
        )

    def clean(self):
        cleaned = super().clean()
        candidate = InvoiceTemplate(
            **{k: v for k, v in cleaned.items() if k in {f.name for f in InvoiceTemplate._meta.fields}}
        )
        try:
            invoice_template_verify(template=candidate)
        except ApplicationError as exc:
            field_map = {"template.html": "html", "template.css": "css", "template.logo": "logo"}
            for name, messages_ in exc.fields.items():
                self.add_error(field_map.get(name), messages_)
            if not exc.fields:
                raise forms.ValidationError(exc.message) from exc
        return cleaned


@admin.register(InvoiceTemplate)
class InvoiceTemplateAdmin(admin.ModelAdmin):
    """Saved only if a specimen invoice renders in the sandbox (no files, no network)."""

    form = InvoiceTemplateForm
    list_display = ("name", "layout", "is_default", "show_qr", "updated_at")
    list_filter = ("layout", "is_default")
    search_fields = ("name",)


@admin.register(InvoiceTrigger)
class InvoiceTriggerAdmin(admin.ModelAdmin):
    list_display = ("name", "stage", "template", "prefix", "send_email", "is_active")
    list_filter = ("is_active", "send_email")
    list_select_related = ("stage__pipeline", "template")
    search_fields = ("name", "stage__name")


@admin.register(InvoiceDelivery)
class InvoiceDeliveryAdmin(ViewOnlyAdmin):
    """The e-mail log: one row per delivery, written by ``invoice_send``."""

    list_display = ("invoice", "to", "status", "attempts", "created_at", "sent_at", "trigger")
    list_filter = ("status",)
    list_select_related = ("invoice", "trigger")
    search_fields = ("invoice__number", "to")
    date_hierarchy = "created_at"


# --- payment intake (issue 6): statement imports, the review queue, gateway notifications ------------

from .bank_statements import bank_statement_import  # noqa: E402
from .matching import match_confirm, match_reassign  # noqa: E402
from .models import BankStatementImport, GatewayEvent, MatchDecision, MatchStatus, OverdueNotice  # noqa: E402


class StatementUploadForm(forms.ModelForm):
    file = forms.FileField(help_text=_("1CClientBankExchange, versions 1.02/1.03, Windows-1251 or UTF-8"))
    only_valid = forms.BooleanField(
        required=False, help_text=_("Import the valid documents of a file with broken lines; list the rest.")
    )

    class Meta:
        model = BankStatementImport
        fields = []


@admin.register(BankStatementImport)
class BankStatementImportAdmin(admin.ModelAdmin):
    """Upload a statement on the add page; every import stays as a read-only row with its counts."""

    list_display = [
        "id",
        "file_name",
        "status",
        "period_start",
        "period_end",
        "imported",
        "duplicates",
        "matched",
        "waiting_review",
        "created_at",
    ]
    list_filter = ["status"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = StatementUploadForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] if obj else []

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        upload = form.cleaned_data["file"]
        log = bank_statement_import(
            data=upload.read(10 * 1024 * 1024 + 1),
            file_name=upload.name,
            only_valid=form.cleaned_data.get("only_valid", False),
            actor=request.user,
            origin="admin",
        )
        obj.pk = log.pk
        obj.refresh_from_db()
        level = messages.ERROR if log.status == "refused" else messages.SUCCESS
        self.message_user(
            request,
            f"{log.get_status_display()}: imported {log.imported}, duplicates {log.duplicates}, matched "
            f"{log.matched}, waiting for review {log.waiting_review}, errors {len(log.errors)}"
            + (f" — {'; '.join(log.errors[:5])}" if log.errors else ""),
            level,
        )

    def log_addition(self, request, obj, message):
        return None


@admin.register(MatchDecision)
class MatchDecisionAdmin(ViewOnlyAdmin):
    """The review queue: filter by «Waiting for review»; confirm in one click or reassign on the row."""

    list_display = ["id", "payment", "invoice", "confidence", "status", "reason"]
    list_filter = ["status"]
    list_select_related = ["payment", "invoice"]
    actions = ["confirm_selected"]

    @admin.action(description=_("Confirm the suggested invoice"))
    def confirm_selected(self, request, queryset):
        done = 0
        for decision in queryset.filter(status=MatchStatus.REVIEW):
            try:
                match_confirm(decision=decision, actor=request.user, origin="admin")
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"#{decision.pk}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Confirmed {done}.", messages.SUCCESS)

    def has_change_permission(self, request, obj=None):
        return (
            obj is not None
            and obj.status == MatchStatus.REVIEW
            and request.user.has_perm("invoicing.change_matchdecision")
        )

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def get_form(self, request, obj=None, **kwargs):
        class Form(forms.ModelForm):
            reassign_to = forms.ModelChoiceField(
                queryset=Invoice.objects.filter(status__in=["issued", "sent", "partially_paid"]),
                required=False,
                help_text=_("Leave empty to confirm the suggestion."),
            )

            class Meta:
                model = MatchDecision
                fields = []

        kwargs["form"] = Form
        kwargs["fields"] = ["reassign_to"]
        return super().get_form(request, obj, **kwargs)

    def get_fieldsets(self, request, obj=None):
        fields = self.get_readonly_fields(request, obj)
        if self.has_change_permission(request, obj):
            fields = [*fields, "reassign_to"]
        return [(None, {"fields": fields})]

    def save_model(self, request, obj, form, change):
        target = form.cleaned_data.get("reassign_to")
        try:
            if target is not None:
                match_reassign(decision=obj, invoice=target, actor=request.user, origin="admin")
            else:
                match_confirm(decision=obj, actor=request.user, origin="admin")
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)


@admin.register(GatewayEvent)
class GatewayEventAdmin(ViewOnlyAdmin):
    list_display = ["id", "gateway", "event_type", "external_id", "status", "reason", "received_at"]
    list_filter = ["gateway", "status"]


@admin.register(OverdueNotice)
class OverdueNoticeAdmin(ViewOnlyAdmin):
    list_display = ["invoice", "due_date", "found_at"]
