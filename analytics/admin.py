"""Admin for the inputs analytics needs and nobody else has: marketing spend per channel and month."""

from django.contrib import admin

from .models import MarketingSpend


@admin.register(MarketingSpend)
class MarketingSpendAdmin(admin.ModelAdmin):
    list_display = ("month", "channel", "amount", "currency", "updated_at")
    list_filter = ("channel", "currency")
    list_select_related = ("channel",)
    search_fields = ("channel__name", "channel__code")
    autocomplete_fields = ("channel",)
    date_hierarchy = "month"
    readonly_fields = ("created_at", "updated_at")
