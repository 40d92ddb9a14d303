"""Admin for the inputs analytics needs and nobody else has: marketing spend and currency rates."""

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext_lazy as _

from hub.errors import ApplicationError

from . import services
from .models import (
    ClientFact,
    ClientMonth,
    CohortMonthly,
    CurrencyRate,
    FactDaily,
    FactMonthly,
    MarketingSpend,
    RollupState,
)


class SpendImportForm(forms.Form):
    file = forms.FileField(label=_("CSV file"))


@admin.register(MarketingSpend)
class MarketingSpendAdmin(admin.ModelAdmin):
    list_display = ("month", "channel", "amount", "currency", "updated_at")
    list_filter = ("channel", "currency")
    list_select_related = ("channel",)
    search_fields = ("channel__name", "channel__code")
    autocomplete_fields = ("channel",)
    date_hierarchy = "month"
    readonly_fields = ("created_at", "updated_at")

    def get_urls(self):
        extra = [
            path(
                "import-csv/",
                self.admin_site.admin_view(self.import_csv),
                name="analytics_marketingspend_import_csv",
            )
        ]
        return extra + super().get_urls()

    def import_csv(self, request):
        if not self.has_add_permission(request):
            return redirect("admin:analytics_marketingspend_changelist")
        form = SpendImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                count = services.spend_import_csv(
                    data=form.cleaned_data["file"].read(), actor=request.user, origin="admin"
                )
            except ApplicationError as exc:
                self.message_user(request, exc.message, level=messages.ERROR)
            else:
                self.message_user(request, _("Imported %(n)d rows.") % {"n": count}, level=messages.SUCCESS)
                return redirect("admin:analytics_marketingspend_changelist")
        context = {**self.admin_site.each_context(request), "form": form, "opts": self.model._meta}
        return TemplateResponse(request, "admin/analytics/marketingspend/import_csv.html", context)


@admin.register(CurrencyRate)
class CurrencyRateAdmin(admin.ModelAdmin):
    list_display = ("date", "currency", "rate")
    list_filter = ("currency",)
    date_hierarchy = "date"

    def save_model(self, request, obj, form, change):
        saved = services.rate_set(
            currency=obj.currency, date=obj.date, rate=obj.rate, actor=request.user, origin="admin"
        )
        obj.pk = saved.pk


class RollupAdmin(admin.ModelAdmin):
    """Rollups are derived data: shown for inspection, written only by ``analytics.rollups``."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(FactDaily)
class FactDailyAdmin(RollupAdmin):
    list_display = ("day", "kind", "channel_id", "manager_id", "pipeline_id", "n", "amount", "cost")
    list_filter = ("kind",)
    date_hierarchy = "day"


@admin.register(FactMonthly)
class FactMonthlyAdmin(RollupAdmin):
    list_display = ("month", "kind", "channel_id", "manager_id", "pipeline_id", "n", "amount", "cost")
    list_filter = ("kind",)


@admin.register(ClientFact)
class ClientFactAdmin(RollupAdmin):
    list_display = ("client_id", "first_paid_on", "cohort_month", "channel_id", "manager_id")


@admin.register(ClientMonth)
class ClientMonthAdmin(RollupAdmin):
    list_display = ("client_id", "month", "retained_next")


@admin.register(CohortMonthly)
class CohortMonthlyAdmin(RollupAdmin):
    list_display = (
        "cohort_month",
        "month",
        "channel_id",
        "manager_id",
        "active",
        "retained_next",
        "gross_profit",
    )


@admin.register(RollupState)
class RollupStateAdmin(RollupAdmin):
    list_display = ("name", "watermark", "rebuilt_at")
