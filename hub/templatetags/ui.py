"""Template helpers of the manager UI: money in the user's locale, and the panels of a page."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template
from django.utils.formats import number_format
from django.utils.safestring import mark_safe

from hub import ui_panels

register = template.Library()

SYMBOLS = {"RUB": "₽", "EUR": "€", "USD": "$", "GBP": "£", "CNY": "¥", "KZT": "₸", "BYN": "Br"}


@register.filter
def money(value, currency: str = "") -> str:
    """``1 234 567,89 ₽`` in Russian, ``1,234,567.89 ₽`` in English; empty for ``None``."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return str(value)
    text = number_format(amount, decimal_pos=2, use_l10n=True, force_grouping=True)
    symbol = SYMBOLS.get(currency, currency)
    return f"{text}\u00a0{symbol}" if symbol else text


@register.filter
def pct(value) -> str:
    if value is None or value == "":
        return "—"
    return f"{number_format(Decimal(value), decimal_pos=1, use_l10n=True)}\u00a0%"


@register.filter
def num(value) -> str:
    if value is None:
        return "—"
    return number_format(value, use_l10n=True, force_grouping=True)


@register.simple_tag(takes_context=True)
def panels(context, slot: str, obj=None):
    request = context["request"]
    html = "".join(str(h) for _, h in ui_panels.panels_render(slot, obj=obj, request=request))
    return mark_safe(html)  # each panel is rendered from our own templates
