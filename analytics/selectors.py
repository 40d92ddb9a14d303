"""Reads for the figures: sums over the rollups in SQL, then ``analytics.metrics`` for the ratios.

A period reads whole months from ``FactMonthly`` and the partial months at its edges from ``FactDaily``,
so any date range costs a few thousand rows at most. ``raw_facts`` computes the same sums straight from
invoices, payments and deals: the product filter uses it, and the tests compare the two.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import (
    Case,
    Count,
    DateField,
    F,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Round, TruncMonth
from django.utils import timezone

from hub.errors import ApplicationError
from hub.models import Channel, Pipeline
from invoicing.models import InvoiceKind, InvoiceLine

from . import metrics
from .metrics import Figure
from .models import BY_CHANNEL, DETAIL, CohortMonthly, FactDaily, FactKind, FactMonthly, MarketingSpend
from .rollups import (
    MONEY,
    SOURCES,
    _month,
    _next_month,
    accrual_invoices,
    cash_allocations,
    company_currency,
    rate_expr,
)

ZERO = Decimal("0.00")
AGING_SINCE = dt.date(1990, 1, 1)  # the oldest issue date the 90+ bucket looks back to
AGING_FUTURE_DAYS = 366  # invoices dated after the as-of day count as the youngest


class MissingRate(ApplicationError):
    status_code = 409
    code = "missing_rate"


@dataclass(frozen=True)
class Filters:
    date_from: dt.date
    date_to: dt.date
    channel: int | None = None
    manager: int | None = None
    pipeline: int | None = None
    product: int | None = None

    def not_applicable(self, *names: str) -> str | None:
        given = [n for n in names if getattr(self, n) is not None]
        return f"the {', '.join(given)} filter does not apply to this figure" if given else None


@dataclass
class Sums:
    n: int = 0
    amount: Decimal = ZERO
    cost: Decimal = ZERO
    unconverted: int = 0

    def add(self, row: dict) -> None:
        self.n += int(row["s_n"] or 0)
        self.amount = metrics.money(self.amount + Decimal(row["s_amount"] or 0))
        self.cost = metrics.money(self.cost + Decimal(row["s_cost"] or 0))
        self.unconverted += int(row["s_unc"] or 0)


def split_period(date_from: dt.date, date_to: dt.date):
    """(first full month, month after the last full month, [edge day ranges]); no full months → None."""
    first_full = date_from if date_from.day == 1 else _next_month(_month(date_from))
    last_day = (date_to + dt.timedelta(days=1)).day == 1
    end_full = _next_month(_month(date_to)) if last_day else _month(date_to)
    if first_full >= end_full:
        return None, None, [(date_from, date_to)]
    edges = []
    if date_from < first_full:
        edges.append((date_from, first_full - dt.timedelta(days=1)))
    if end_full <= date_to:
        edges.append((end_full, date_to))
    return first_full, end_full, edges


def _level(f: Filters) -> int:
    """The coarse rollup (no manager dimension) serves every query that does not filter by manager."""
    return DETAIL if f.manager is not None else BY_CHANNEL


def _dims(f: Filters) -> Q:
    q = Q()
    if f.channel is not None:
        q &= Q(channel_id=f.channel)
    if f.manager is not None:
        q &= Q(manager_id=f.manager)
    if f.pipeline is not None:
        q &= Q(pipeline_id=f.pipeline)
    return q


_AGG = {
    "s_n": Sum("n"),
    "s_amount": Sum("amount"),
    "s_cost": Sum("cost"),
    "s_unc": Sum("unconverted"),
}


def fact_sums(kind: str, f: Filters, group: tuple[str, ...] = ()) -> dict[tuple, Sums]:
    """Sums of one fact kind over the period, grouped by ``group`` (dimension columns or "month")."""
    first_full, end_full, edges = split_period(f.date_from, f.date_to)
    out: dict[tuple, Sums] = defaultdict(Sums)
    parts: list[QuerySet] = []
    level = _level(f)
    if first_full is not None:
        qs = FactMonthly.objects.filter(
            _dims(f), kind=kind, level=level, month__gte=first_full, month__lt=end_full
        )
        parts.append(qs.annotate(a_month=F("month")))
    for lo, hi in edges:
        qs = FactDaily.objects.filter(_dims(f), kind=kind, level=level, day__gte=lo, day__lte=hi)
        parts.append(qs.annotate(a_month=TruncMonth("day", output_field=DateField())))
    cols = ["a_month" if g == "month" else g for g in group]
    for qs in parts:
        for row in _grouped(qs.order_by(), cols, **_AGG):
            out[tuple(row[c] for c in cols)].add(row)
    _refuse_unconverted(kind, f, out)
    return out


def _refuse_unconverted(kind: str, f: Filters, sums: dict[tuple, Sums]) -> None:
    if not any(s.unconverted for s in sums.values()):
        return
    source = SOURCES[kind]().filter(a_day__gte=f.date_from, a_day__lte=f.date_to, a_rate__isnull=True)
    currency = "payment__currency" if kind == FactKind.CASH else "currency"
    first = source.order_by("a_day").values(currency, "a_day").first() or {currency: "?", "a_day": "?"}
    raise MissingRate(
        f"No {first[currency]} exchange rate on or before {first['a_day']}: "
        f"add it under Analytics › Currency rates (figures are in {company_currency()}).",
        fields={"currency": [f"{first[currency]} has no rate for {first['a_day']}."]},
    )


def raw_fact_sums(kind: str, f: Filters, group: tuple[str, ...] = ()) -> dict[tuple, Sums]:
    """The same sums straight from the documents (no rollup): the reference the rollups must equal."""
    names = {"channel_id": "a_channel", "manager_id": "a_manager", "pipeline_id": "a_pipeline"}
    names |= {"stage_id": "a_stage", "status": "a_status"}
    qs = SOURCES[kind]().filter(a_day__gte=f.date_from, a_day__lte=f.date_to)
    for dim, name in (("channel", "a_channel"), ("manager", "a_manager"), ("pipeline", "a_pipeline")):
        if getattr(f, dim) is not None:
            qs = qs.filter(**{name: getattr(f, dim)})
    cols = []
    for g in group:
        if g == "month":
            qs = qs.annotate(a_month=TruncMonth("a_day", output_field=DateField()))
            cols.append("a_month")
        else:
            cols.append(names[g])
    rows = _grouped(
        qs,
        cols,
        s_n=Count("pk"),
        s_amount=Sum("a_amount"),
        s_cost=Sum("a_cost"),
        s_unc=Sum(Case(When(a_rate__isnull=True, then=Value(1)), default=Value(0))),
    )
    out: dict[tuple, Sums] = defaultdict(Sums)
    for row in rows:
        out[tuple(row[c] for c in cols)].add(row)
    _refuse_unconverted(kind, f, out)
    return out


def _product_accrual(f: Filters, group: tuple[str, ...] = ()) -> dict[tuple, Sums]:
    """Revenue and cost of one product's invoice lines (converted per line): always from the raw rows."""
    invoices = accrual_invoices().filter(issue_date__gte=f.date_from, issue_date__lte=f.date_to)
    for dim, name in (("channel", "a_channel"), ("manager", "a_manager"), ("pipeline", "a_pipeline")):
        if getattr(f, dim) is not None:
            invoices = invoices.filter(**{name: getattr(f, dim)})
    sign = Case(
        When(invoice__kind=InvoiceKind.CREDIT_NOTE, then=Value(Decimal("-1"))),
        default=Value(Decimal("1")),
        output_field=MONEY,
    )
    lines = (
        InvoiceLine.objects.filter(product_id=f.product, invoice__in=invoices.values("pk"))
        .annotate(a_rate=rate_expr("invoice__currency", "invoice__issue_date"))
        .annotate(
            a_amount=Round(F("a_rate") * sign * F("amount_net"), 2, output_field=MONEY),
            a_cost=Round(F("a_rate") * sign * F("cost_total"), 2, output_field=MONEY),
        )
    )
    cols = []
    if "month" in group:
        lines = lines.annotate(a_month=TruncMonth("invoice__issue_date", output_field=DateField()))
        cols.append("a_month")
    if "channel_id" in group:
        lines = lines.annotate(a_channel=F("invoice__client__channel_id"))
        cols.append("a_channel")
    rows = (
        lines.order_by()
        .values(*cols)
        .annotate(
            s_n=Count("invoice_id", distinct=True),
            s_amount=Sum("a_amount"),
            s_cost=Sum("a_cost"),
            s_unc=Sum(Case(When(a_rate__isnull=True, then=Value(1)), default=Value(0))),
        )
    )
    out: dict[tuple, Sums] = defaultdict(Sums)
    for row in rows:
        out[tuple(row[c] for c in cols)].add(row)
    _refuse_unconverted(FactKind.ACCRUAL, f, out)
    return out


def _total(sums: dict[tuple, Sums]) -> Sums:
    total = Sums()
    for s in sums.values():
        total.n += s.n
        total.amount += s.amount
        total.cost += s.cost
    return total


# --- figures ---------------------------------------------------------------------------------------


def accrual(f: Filters, group: tuple[str, ...] = ()) -> dict[tuple, Sums]:
    return _product_accrual(f, group) if f.product is not None else fact_sums(FactKind.ACCRUAL, f, group)


def spend_by_channel(f: Filters) -> dict[int, Decimal]:
    """Marketing spend of the months whose first day lies in the period, in the company currency."""
    qs = MarketingSpend.objects.filter(month__gte=f.date_from, month__lte=f.date_to)
    if f.channel is not None:
        qs = qs.filter(channel_id=f.channel)
    qs = qs.annotate(a_day=F("month"), a_rate=rate_expr("currency", "month")).annotate(
        a_amount=Round(F("a_rate") * F("amount"), 2, output_field=MONEY)
    )
    missing = qs.filter(a_rate__isnull=True).order_by("month").values("currency", "month").first()
    if missing:
        raise MissingRate(
            f"No {missing['currency']} exchange rate on or before {missing['month']} for marketing spend.",
            fields={"currency": [f"{missing['currency']} has no rate for {missing['month']}."]},
        )
    return {
        row["channel_id"]: metrics.money(Decimal(row["s"]))
        for row in qs.order_by().values("channel_id").annotate(s=Sum("a_amount"))
    }


def _cohort_rows(f: Filters, **extra) -> QuerySet:
    qs = CohortMonthly.objects.filter(level=_level(f), **extra)
    if f.channel is not None:
        qs = qs.filter(channel_id=f.channel)
    if f.manager is not None:
        qs = qs.filter(manager_id=f.manager)
    return qs.order_by()


def _refuse_cohort_unconverted(rows: list[dict], f: Filters) -> None:
    if any(row.get("unc") for row in rows):
        _refuse_unconverted(
            FactKind.ACCRUAL, Filters(dt.date(1900, 1, 1), f.date_to), {(): Sums(unconverted=1)}
        )


def _grouped(qs: QuerySet, key: list[str], **aggs) -> list[dict]:
    """``values(*key).annotate(...)``, or one ``aggregate(...)`` row when there is no key."""
    return list(qs.values(*key).annotate(**aggs)) if key else [qs.aggregate(**aggs)]


@dataclass
class LtvInputs:
    cohort_clients: int = 0
    cohort_gross_profit: Decimal = ZERO
    active_months: int = 0
    gross_profit: Decimal = ZERO
    churn_active: int = 0
    churn_retained: int = 0


def ltv_inputs(f: Filters, group: str | None = None) -> dict:
    """Per group (e.g. channel_id): cohort size and cumulative profit, client-months and retention."""
    m_from, m_to = _month(f.date_from), _month(f.date_to)
    out: dict = defaultdict(LtvInputs)
    key = [group] if group else []
    agg = _cohort_rows(f, cohort_month__gte=m_from, cohort_month__lte=m_to, month__lte=m_to)
    rows = _grouped(
        agg,
        key,
        size=Sum(Case(When(month=F("cohort_month"), then=F("active")), default=Value(0))),
        gp=Sum("gross_profit"),
        unc=Sum("unconverted"),
    )
    _refuse_cohort_unconverted(rows, f)
    for row in rows:
        o = out[row[group] if group else None]
        o.cohort_clients = int(row["size"] or 0)
        o.cohort_gross_profit = metrics.money(Decimal(row["gp"] or 0))
    period = _cohort_rows(f, month__gte=m_from, month__lte=m_to)
    rows = _grouped(
        period,
        key,
        act=Sum("active"),
        gp=Sum("gross_profit"),
        act_pairs=Sum(Case(When(month__lt=m_to, then=F("active")), default=Value(0))),
        ret_pairs=Sum(Case(When(month__lt=m_to, then=F("retained_next")), default=Value(0))),
        unc=Sum("unconverted"),
    )
    _refuse_cohort_unconverted(rows, f)
    for row in rows:
        o = out[row[group] if group else None]
        o.active_months, o.gross_profit = int(row["act"] or 0), metrics.money(Decimal(row["gp"] or 0))
        o.churn_active, o.churn_retained = int(row["act_pairs"] or 0), int(row["ret_pairs"] or 0)
    return out


@dataclass
class Report:
    """A table the API renders as JSON, CSV or XLSX; ``no_data`` maps "row:column" to the reason."""

    columns: list[str]
    rows: list[dict] = field(default_factory=list)


def _fig(row: dict, no_data: dict, name: str, figure: Figure) -> None:
    row[name] = figure.value
    if figure.value is None:
        no_data[name] = figure.reason


def _money_figures(f: Filters) -> dict:
    """The per-period figures of one slice (all channels or one), as a dict of name → Figure/int."""
    acc = _total(accrual(f))
    fig: dict = {}
    fig["revenue_accrual"] = Figure(acc.amount)
    fig["cogs"] = Figure(acc.cost)
    fig["gross_profit"] = Figure(metrics.gross_profit(acc.amount, acc.cost))
    fig["margin_pct"] = metrics.margin_pct(acc.amount, acc.cost)
    na = f.not_applicable("product")
    fig["revenue_cash"] = Figure.none(na) if na else Figure(_total(fact_sums(FactKind.CASH, f)).amount)
    return fig


def _client_figures(f: Filters, *, spend: Decimal | None, new: int, ltv: LtvInputs) -> dict:
    fig: dict = {}
    na_clients = f.not_applicable("pipeline", "product")
    na_cac = f.not_applicable("manager", "pipeline", "product")
    fig["spend"] = (
        Figure.none(na_cac)
        if na_cac
        else (
            Figure(spend) if spend is not None else Figure.none("no marketing spend recorded for the period")
        )
    )
    fig["new_clients"] = Figure.none(na_clients) if na_clients else Figure(Decimal(new))
    cac = Figure.none(na_cac) if na_cac else metrics.cac(spend, new)
    fig["cac"] = cac
    if na_clients:
        for name in (
            "ltv",
            "ltv_predictive",
            "monthly_churn",
            "avg_monthly_gross_profit",
            "ltv_cac",
            "payback_months",
        ):
            fig[name] = Figure.none(na_clients)
        return fig
    fig["ltv"] = metrics.ltv_historical(ltv.cohort_gross_profit, ltv.cohort_clients)
    churn = metrics.monthly_churn(ltv.churn_active, ltv.churn_retained)
    avg = metrics.avg_monthly_gross_profit(ltv.gross_profit, ltv.active_months)
    fig["monthly_churn"] = churn
    fig["avg_monthly_gross_profit"] = avg
    fig["ltv_predictive"] = metrics.ltv_predictive(avg, churn)
    fig["ltv_cac"] = metrics.ltv_cac(fig["ltv_predictive"], cac)
    fig["payback_months"] = metrics.payback_months(cac, avg)
    return fig


SUMMARY_COLUMNS = [
    "revenue_accrual", "revenue_cash", "cogs", "gross_profit", "margin_pct", "spend", "new_clients", "cac",
    "ltv", "ltv_predictive", "monthly_churn", "avg_monthly_gross_profit", "ltv_cac", "payback_months",
]  # fmt: skip


def _figures_row(figs: dict, columns: list[str], row: dict | None = None) -> dict:
    row = dict(row or {})
    no_data: dict = {}
    for name in columns:
        if name in figs:
            value = figs[name]
            _fig(row, no_data, name, value)
    if "new_clients" in row and row["new_clients"] is not None:
        row["new_clients"] = int(row["new_clients"])
    row["no_data"] = no_data
    return row


def analytics_summary(*, filters: Filters) -> Report:
    spend = spend_by_channel(filters)
    total_spend = sum(spend.values(), ZERO) if spend else None
    new = _total(fact_sums(FactKind.NEW_CLIENT, filters)).n
    ltv = ltv_inputs(filters)[None]
    figs = _money_figures(filters) | _client_figures(filters, spend=total_spend, new=new, ltv=ltv)
    return Report(SUMMARY_COLUMNS, [_figures_row(figs, SUMMARY_COLUMNS)])


CHANNEL_COLUMNS = ["channel_id", "channel", "spend", "new_clients", "cac", "revenue", "cogs", "gross_profit",
                   "margin_pct", "ltv", "ltv_predictive", "ltv_cac", "payback_months"]  # fmt: skip


def analytics_channels(*, filters: Filters) -> Report:
    """One row per channel (and one for clients without a channel, when it has data)."""
    spend = spend_by_channel(filters)
    acc = accrual(filters, ("channel_id",))
    new = {k[0]: s.n for k, s in fact_sums(FactKind.NEW_CLIENT, filters, ("channel_id",)).items()}
    ltv = ltv_inputs(filters, "channel_id")
    channels = Channel.objects.order_by("name")
    if filters.channel is not None:
        channels = channels.filter(pk=filters.channel)
    listed = [(c.pk, c.name) for c in channels]
    if filters.channel is None and ((None,) in acc or None in new or None in ltv):
        listed.append((None, "(no channel)"))
    rows = []
    for pk, name in listed:
        s = acc.get((pk,), Sums())
        figs = {
            "revenue": Figure(s.amount),
            "cogs": Figure(s.cost),
            "gross_profit": Figure(metrics.gross_profit(s.amount, s.cost)),
            "margin_pct": metrics.margin_pct(s.amount, s.cost),
        }
        figs |= _client_figures(
            filters, spend=spend.get(pk), new=new.get(pk, 0), ltv=ltv.get(pk, LtvInputs())
        )
        rows.append(_figures_row(figs, CHANNEL_COLUMNS, {"channel_id": pk, "channel": name}))
    return Report(CHANNEL_COLUMNS, rows)


def _months(f: Filters) -> list[dt.date]:
    out, m = [], _month(f.date_from)
    while m <= f.date_to:
        out.append(m)
        m = _next_month(m)
    return out


def analytics_revenue(*, filters: Filters) -> Report:
    """Per month: revenue on issue and on payment, cost of goods, gross profit and margin."""
    acc = accrual(filters, ("month",))
    na = filters.not_applicable("product")
    cash = {} if na else fact_sums(FactKind.CASH, filters, ("month",))
    cols = ["month", "revenue_accrual", "revenue_cash", "cogs", "gross_profit", "margin_pct"]
    rows = []
    for m in _months(filters):
        a = acc.get((m,), Sums())
        figs = {
            "revenue_accrual": Figure(a.amount),
            "revenue_cash": Figure.none(na) if na else Figure(cash.get((m,), Sums()).amount),
            "cogs": Figure(a.cost),
            "gross_profit": Figure(metrics.gross_profit(a.amount, a.cost)),
            "margin_pct": metrics.margin_pct(a.amount, a.cost),
        }
        rows.append(_figures_row(figs, cols, {"month": m}))
    return Report(cols, rows)


def analytics_cac(*, filters: Filters) -> Report:
    report = analytics_channels(filters=filters)
    cols = ["channel_id", "channel", "spend", "new_clients", "cac"]
    return Report(cols, [{c: r[c] for c in [*cols, "no_data"]} for r in report.rows])


def analytics_ltv(*, filters: Filters) -> Report:
    report = analytics_channels(filters=filters)
    cols = [
        "channel_id",
        "channel",
        "new_clients",
        "ltv",
        "ltv_predictive",
        "cac",
        "ltv_cac",
        "payback_months",
    ]
    return Report(cols, [{c: r[c] for c in [*cols, "no_data"]} for r in report.rows])


def analytics_ar_aging(*, filters: Filters, as_of: dt.date | None = None) -> Report:
    """Open invoices (issued, sent, partly paid) by age since issue: what clients owe today."""
    as_of = as_of or timezone.localdate()
    na = filters.not_applicable("product")
    cols = ["bucket", "invoices", "amount_due"]
    if na:
        return Report(cols, [{"bucket": b, "invoices": None, "amount_due": None, "no_data": {"amount_due": na}}
                             for b, _, _ in metrics.AGING_BUCKETS])  # fmt: skip
    rows = []
    for bucket, low, high in metrics.AGING_BUCKETS:
        oldest = as_of - dt.timedelta(days=high) if high is not None else AGING_SINCE
        newest = as_of - dt.timedelta(days=low) if low else as_of + dt.timedelta(days=AGING_FUTURE_DAYS)
        window = Filters(oldest, newest, filters.channel, filters.manager, filters.pipeline)
        total = _total(fact_sums(FactKind.RECEIVABLE, window))
        rows.append({"bucket": bucket, "invoices": total.n, "amount_due": total.amount, "no_data": {}})
    return Report(cols, rows)


def analytics_funnel(*, filters: Filters) -> Report:
    """Per pipeline and open stage: deals created in the period that reached it, conversion, win rate."""
    cols = [
        "pipeline_id",
        "pipeline",
        "stage_id",
        "stage",
        "reached",
        "conversion_to_next_pct",
        "win_rate_pct",
    ]
    na = filters.not_applicable("product")
    if na:
        return Report(cols, [{c: None for c in cols} | {"no_data": {"reached": na}}])
    counts = fact_sums(FactKind.DEAL, filters, ("pipeline_id", "stage_id", "status"))
    pipelines = Pipeline.objects.prefetch_related("stages").order_by("name")
    if filters.pipeline is not None:
        pipelines = pipelines.filter(pk=filters.pipeline)
    rows = []
    for p in pipelines:
        stage_counts = []
        for s in p.stages.all():
            by = {st: counts.get((p.pk, s.pk, st), Sums()).n for st in ("open", "won", "lost")}
            stage_counts.append(metrics.StageCount(s.pk, s.code, s.name, s.order, s.is_won, s.is_lost, **by))
        for r in metrics.funnel(stage_counts):
            row = {"pipeline_id": p.pk, "pipeline": p.name, "stage_id": r.stage_id, "stage": r.name,
                   "reached": r.reached}  # fmt: skip
            rows.append(_figures_row(
                {"conversion_to_next_pct": r.conversion_to_next, "win_rate_pct": r.win_rate}, cols, row
            ))  # fmt: skip
    return Report(cols, rows)


def analytics_cohorts(*, filters: Filters) -> Report:
    """Per cohort (month of first payment) in the period and month since: clients paying, retention %."""
    cols = ["cohort", "month", "months_since", "active", "cohort_size", "retention_pct"]
    na = filters.not_applicable("pipeline", "product")
    if na:
        return Report(cols, [{c: None for c in cols} | {"no_data": {"active": na}}])
    m_from, m_to = _month(filters.date_from), _month(filters.date_to)
    qs = _cohort_rows(filters, cohort_month__gte=m_from, cohort_month__lte=m_to, month__lte=m_to)
    data = {
        (r["cohort_month"], r["month"]): int(r["a"] or 0)
        for r in qs.values("cohort_month", "month").annotate(a=Sum("active"))
    }
    rows = []
    for (cohort, month), active in sorted(data.items()):
        if month < cohort:
            continue
        size = data.get((cohort, cohort), 0)
        since = (month.year - cohort.year) * 12 + month.month - cohort.month
        row = {"cohort": cohort, "month": month, "months_since": since, "active": active, "cohort_size": size}
        rows.append(_figures_row({"retention_pct": metrics.retention_pct(active, size)}, cols, row))
    return Report(cols, rows)


def cash_raw_allocations():  # re-exported for tests
    return cash_allocations()


# --- top lists for the dashboards --------------------------------------------------------------------

TOP_BY = ("product", "client", "manager")


def analytics_top(*, filters: Filters, by: str, limit: int = 10) -> Report:
    """The ``limit`` products, clients or managers with the largest gross profit on issue in the period.

    Read from the invoices themselves (the rollups have no client or product dimension); the period is
    the issue date, amounts are in the company currency, credit notes subtract.
    """
    if by not in TOP_BY:
        raise ValueError(f"by must be one of {TOP_BY}")
    cols = ["id", "name", "revenue", "cogs", "gross_profit", "margin_pct"]
    invoices = accrual_invoices().filter(issue_date__gte=filters.date_from, issue_date__lte=filters.date_to)
    for dim, name in (("channel", "a_channel"), ("manager", "a_manager"), ("pipeline", "a_pipeline")):
        if getattr(filters, dim) is not None:
            invoices = invoices.filter(**{name: getattr(filters, dim)})
    if by == "product" or filters.product is not None:
        sign = Case(
            When(invoice__kind=InvoiceKind.CREDIT_NOTE, then=Value(Decimal("-1"))),
            default=Value(Decimal("1")),
            output_field=MONEY,
        )
        rows_qs = InvoiceLine.objects.filter(invoice__in=invoices.values("pk")).annotate(
            a_rate=rate_expr("invoice__currency", "invoice__issue_date")
        )
        if filters.product is not None:
            rows_qs = rows_qs.filter(product_id=filters.product)
        key = {
            "product": "product_id",
            "client": "invoice__client_id",
            "manager": "invoice__client__manager_id",
        }[by]
        rows_qs = rows_qs.annotate(
            k=F(key),
            r=Round(F("a_rate") * sign * F("amount_net"), 2, output_field=MONEY),
            c=Round(F("a_rate") * sign * F("cost_total"), 2, output_field=MONEY),
        )
    else:
        key = {"client": "client_id", "manager": "a_manager"}[by]
        rows_qs = invoices.annotate(k=F(key), r=F("a_amount"), c=F("a_cost"))
    grouped = (
        rows_qs.order_by()
        .values("k")
        .annotate(s_r=Sum("r"), s_c=Sum("c"))
        .annotate(gp=F("s_r") - F("s_c"))
        .order_by("-gp")[:limit]
    )
    data = [(r["k"], Decimal(r["s_r"] or 0), Decimal(r["s_c"] or 0)) for r in grouped]
    names = _top_names(by, [k for k, _, _ in data if k is not None])
    rows = []
    for k, revenue, cost in data:
        row = {
            "id": k,
            "name": names.get(k, "—"),
            "revenue": metrics.money(revenue),
            "cogs": metrics.money(cost),
        }
        row["gross_profit"] = metrics.gross_profit(revenue, cost)
        rows.append(_figures_row({"margin_pct": metrics.margin_pct(revenue, cost)}, cols, row))
    return Report(cols, rows)


def _top_names(by: str, ids: list) -> dict:
    from django.contrib.auth import get_user_model

    from hub.models import Client, Product

    if by == "product":
        return dict(Product.objects.filter(pk__in=ids).values_list("pk", "name"))
    if by == "client":
        return dict(Client.objects.filter(pk__in=ids).values_list("pk", "name"))
    return {u.pk: u.get_full_name() or u.get_username() for u in get_user_model().objects.filter(pk__in=ids)}
