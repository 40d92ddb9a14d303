"""The dashboards page: the figures of ``analytics.selectors`` with filters, charts and drill-down.

A manager sees the figures of their own deals and clients only (the manager filter is forced to
them); accountants and administrators see everything and may filter by manager.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from hub.models import Channel, Pipeline
from hub.selectors import MANAGER, user_access

from . import selectors
from .rollups import company_currency
from .selectors import Filters, MissingRate

MIN_DATE, MAX_DATE = dt.date(1990, 1, 1), dt.date(2199, 12, 31)

KPIS = [
    ("revenue_accrual", gettext_lazy("Revenue (on issue)"), "money"),
    ("revenue_cash", gettext_lazy("Revenue (paid)"), "money"),
    ("gross_profit", gettext_lazy("Gross profit"), "money"),
    ("margin_pct", gettext_lazy("Margin"), "pct"),
    ("new_clients", gettext_lazy("New paying clients"), "num"),
    ("cac", gettext_lazy("CAC"), "money"),
    ("ltv", gettext_lazy("LTV (historical)"), "money"),
    ("ltv_cac", gettext_lazy("LTV / CAC"), "num"),
]


class DashboardFilters(forms.Form):
    date_from = forms.DateField(
        label=gettext_lazy("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=gettext_lazy("To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    channel = forms.ModelChoiceField(label=gettext_lazy("Channel"), queryset=None, required=False)
    manager = forms.ModelChoiceField(label=gettext_lazy("Manager"), queryset=None, required=False)
    pipeline = forms.ModelChoiceField(label=gettext_lazy("Pipeline"), queryset=None, required=False)

    def __init__(self, *args, may_pick_manager: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["channel"].queryset = Channel.objects.order_by("name")
        self.fields["pipeline"].queryset = Pipeline.objects.order_by("name")
        if may_pick_manager:
            self.fields["manager"].queryset = (
                get_user_model().objects.filter(groups__name=MANAGER).order_by("username").distinct()
            )
        else:
            del self.fields["manager"]

    def clean(self):
        data = super().clean()
        today = timezone.localdate()
        date_to = data.get("date_to") or today
        date_from = data.get("date_from") or (date_to.replace(day=1) - dt.timedelta(days=334)).replace(day=1)
        for name, value in (("date_from", date_from), ("date_to", date_to)):
            if not MIN_DATE <= value <= MAX_DATE:
                self.add_error(
                    name, _("Choose a date between %(a)s and %(b)s.") % {"a": MIN_DATE, "b": MAX_DATE}
                )
        if date_from > date_to:
            self.add_error("date_to", _("The end of the period is before its start."))
        data["date_from"], data["date_to"] = date_from, date_to
        return data


def _previous(f: Filters) -> Filters:
    length = f.date_to - f.date_from
    prev_to = f.date_from - dt.timedelta(days=1)
    return Filters(prev_to - length, prev_to, f.channel, f.manager, f.pipeline, f.product)


def _delta(now, before) -> dict | None:
    if now is None or before is None:
        return None
    now, before = Decimal(now), Decimal(before)
    if before == 0:
        return None
    change = (now - before) * 100 / abs(before)
    return {"pct": change.quantize(Decimal("0.1")), "up": change >= 0}


def _f(value) -> float | None:
    return None if value is None else float(value)


def _heat_cell(row: dict | None) -> dict | None:
    if row is None or row.get("retention_pct") is None:
        return None
    pct = Decimal(row["retention_pct"])
    # The colour's opacity as a plain CSS number, whatever the page's locale.
    return {"pct": pct, "alpha": f"{min(pct, Decimal(100)) / 100:.2f}"}


def _month_end(month: dt.date) -> dt.date:
    nxt = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return nxt - dt.timedelta(days=1)


PARTS = ("kpis", "charts", "tops", "receivables", "cohorts")


@login_required
@require_GET
def dashboards(request):
    """The page draws the filters at once and fetches its five parts in parallel (htmx, on load), so
    no single request computes every figure; ``?all=1`` (the no-JavaScript link) renders them inline."""
    access = user_access(request.user)
    if not access.is_staff_role:
        raise PermissionDenied
    part = request.GET.get("part", "")
    if part and part not in PARTS:
        raise Http404
    form = DashboardFilters(request.GET, may_pick_manager=access.sees_all_crm)
    if not form.is_valid():
        template = "ui/analytics/part_error.html" if part else "ui/analytics/dashboards.html"
        return render(request, template, {"nav": "dashboards", "form": form}, status=400)
    data = form.cleaned_data
    manager = data.get("manager")
    filters = Filters(
        date_from=data["date_from"],
        date_to=data["date_to"],
        channel=data["channel"].pk if data.get("channel") else None,
        manager=(manager.pk if manager else None) if access.sees_all_crm else request.user.pk,
        pipeline=data["pipeline"].pk if data.get("pipeline") else None,
    )
    context = {"nav": "dashboards", "filters": filters, "currency": company_currency()}
    wanted = [part] if part else (PARTS if request.GET.get("all") else ())
    try:
        for name in wanted:
            context.update(PART_FIGURES[name](filters))
    except MissingRate as exc:
        context["error"] = exc.message
        if part:
            return render(request, "ui/analytics/part_error.html", context, status=409)
    if part:
        return render(request, f"ui/analytics/part_{part}.html", context)
    query = request.GET.copy()
    query.pop("all", None)
    # Show the period actually used (the defaults fill empty dates).
    shown = {
        **request.GET.dict(),
        "date_from": filters.date_from.isoformat(),
        "date_to": filters.date_to.isoformat(),
    }
    context.update(
        {
            "form": DashboardFilters(shown, may_pick_manager=access.sees_all_crm),
            "query": query.urlencode(),
            "inline": bool(wanted),
            "parts": PARTS,
        }
    )
    return render(request, "ui/analytics/dashboards.html", context)


def _kpis(filters: Filters) -> dict:
    now = selectors.analytics_summary(filters=filters).rows[0]
    before = selectors.analytics_summary(filters=_previous(filters)).rows[0]
    tiles = [
        {"key": key, "label": label, "kind": kind, "value": now.get(key), "reason": now["no_data"].get(key),
         "delta": _delta(now.get(key), before.get(key))}
        for key, label, kind in KPIS
    ]  # fmt: skip
    return {"tiles": tiles}


def _charts(filters: Filters) -> dict:
    revenue = selectors.analytics_revenue(filters=filters).rows
    channels = selectors.analytics_channels(filters=filters).rows
    for r in revenue:
        r["drill"] = (
            f"?status=won&won_from={r['month'].isoformat()}&won_to={_month_end(r['month']).isoformat()}"
        )
    chart_gp = {
        "labels": [r["month"].strftime("%Y-%m") for r in revenue],
        "gross_profit": [_f(r["gross_profit"]) for r in revenue],
        "margin": [_f(r["margin_pct"]) for r in revenue],
        "drill": [r["drill"] for r in revenue],
    }
    chart_cac = {
        "labels": [r["channel"] for r in channels],
        "cac": [_f(r["cac"]) for r in channels],
        "ltv": [_f(r["ltv"]) for r in channels],
    }
    return {"revenue": revenue, "channels": channels, "chart_gp": chart_gp, "chart_cac": chart_cac}


def _tops(filters: Filters) -> dict:
    return {"tops": {by: selectors.analytics_top(filters=filters, by=by).rows for by in selectors.TOP_BY}}


def _receivables(filters: Filters) -> dict:
    return {
        "aging": selectors.analytics_ar_aging(filters=filters).rows,
        "funnel": selectors.analytics_funnel(filters=filters).rows,
    }


def _cohorts(filters: Filters) -> dict:
    cohorts = selectors.analytics_cohorts(filters=filters).rows
    by_cohort: dict = {}
    for r in cohorts:
        if r.get("cohort") is None:
            continue
        by_cohort.setdefault(r["cohort"], {})[r["months_since"]] = r
    span = max((r["months_since"] for r in cohorts if r.get("months_since") is not None), default=-1) + 1
    heat = [
        {
            "cohort": c,
            "size": cells.get(0, {}).get("cohort_size"),
            "cells": [_heat_cell(cells.get(i)) for i in range(span)],
        }
        for c, cells in sorted(by_cohort.items())
    ]
    return {"heat": heat, "heat_span": range(span)}


PART_FIGURES = {
    "kpis": _kpis,
    "charts": _charts,
    "tops": _tops,
    "receivables": _receivables,
    "cohorts": _cohorts,
}
