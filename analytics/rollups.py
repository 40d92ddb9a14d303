"""Rollups: the facts the dashboards read, kept current per affected day, client and cohort.

The *sources* below are the raw queries (ORM, compiled to SQL); a rollup row is exactly a source grouped
by day and dimensions, written with one ``INSERT … SELECT`` so no row passes through Python. Event
handlers refresh what one change touched (``rollups_refresh_for``); the beat task folds in anything
changed since its watermark (``rollups_catch_up``); ``rollups_rebuild`` starts from scratch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    DateField,
    DecimalField,
    Exists,
    F,
    Min,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, ExtractMonth, ExtractYear, Round, TruncDate, TruncMonth
from django.utils import timezone

from hub.models import Client, Deal
from invoicing.models import (
    OPEN_INVOICE_STATUSES,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Payment,
    PaymentAllocation,
)

from .models import (
    BY_CHANNEL,
    DETAIL,
    ClientFact,
    ClientMonth,
    CohortMonthly,
    CurrencyRate,
    FactDaily,
    FactKind,
    FactMonthly,
    RollupState,
)

MONEY = DecimalField(max_digits=20, decimal_places=2)
RATE = DecimalField(max_digits=18, decimal_places=6)
FACT_COLUMNS = ("channel_id", "manager_id", "pipeline_id", "stage_id", "status")
CATCH_UP_FULL_REBUILD_ABOVE = 50_000
COARSE_DAY_SELECT = ["day", "channel_id", "NULL", "pipeline_id", "stage_id", "status"]
COARSE_DAY_SELECT += ["a_n", "a_sum_amount", "a_sum_cost", "a_unc"]
_NULL_ID = Cast(Value(None), output_field=BigIntegerField())  # a typed NULL: PostgreSQL needs the type


def company_currency() -> str:
    return settings.HUB_DEFAULT_CURRENCY


def rate_expr(currency_ref: str, date_ref: str):
    """Rate of the document's currency on its date: 1 for the company currency, else the latest stored
    rate on or before that date, else NULL (the figure then refuses; never a silent 1.0)."""
    latest = (
        CurrencyRate.objects.filter(currency=OuterRef(currency_ref), date__lte=OuterRef(date_ref))
        .order_by("-date")
        .values("rate")[:1]
    )
    return Case(
        When(**{currency_ref: company_currency()}, then=Value(Decimal("1"), output_field=RATE)),
        default=Subquery(latest, output_field=RATE),
        output_field=RATE,
    )


def _converted(expr, rate="a_rate"):
    return Round(F(rate) * expr, 2, output_field=MONEY)


# --- sources: the raw figures, one row per document ------------------------------------------------


def accrual_invoices() -> QuerySet:
    """Invoices counted as revenue on issue: issued (any status but draft and void); credit notes negative."""
    sign = Case(
        When(kind=InvoiceKind.CREDIT_NOTE, then=Value(Decimal("-1"))),
        default=Value(Decimal("1")),
        output_field=MONEY,
    )
    return (
        Invoice.objects.exclude(status__in=[InvoiceStatus.DRAFT, InvoiceStatus.VOID])
        .filter(issue_date__isnull=False)
        .annotate(
            a_day=F("issue_date"),
            a_rate=rate_expr("currency", "issue_date"),
            a_amount=_converted(sign * F("amount_net")),
            a_cost=_converted(sign * F("cost_total")),
            a_channel=F("client__channel_id"),
            a_manager=Coalesce("deal__manager_id", "client__manager_id"),
            a_pipeline=F("deal__pipeline_id"),
            a_stage=_NULL_ID,
            a_status=Value(""),
        )
        .order_by()
    )


def open_receivables() -> QuerySet:
    """What clients owe now: open invoices (issued, sent, partly paid), by issue date."""
    return (
        Invoice.objects.filter(status__in=OPEN_INVOICE_STATUSES, kind=InvoiceKind.INVOICE)
        .filter(issue_date__isnull=False)
        .annotate(
            a_day=F("issue_date"),
            a_rate=rate_expr("currency", "issue_date"),
            a_amount=_converted(F("amount_total") - F("amount_paid")),
            a_cost=Value(Decimal("0"), output_field=MONEY),
            a_channel=F("client__channel_id"),
            a_manager=Coalesce("deal__manager_id", "client__manager_id"),
            a_pipeline=F("deal__pipeline_id"),
            a_stage=_NULL_ID,
            a_status=Value(""),
        )
        .order_by()
    )


def cash_allocations() -> QuerySet:
    """Money applied to invoices, dated by the payment's local date."""
    return (
        PaymentAllocation.objects.annotate(
            a_day=TruncDate("payment__received_at"),
            a_currency=F("payment__currency"),
        )
        .annotate(
            a_rate=rate_expr("a_currency", "a_day"),
        )
        .annotate(
            a_amount=_converted(F("amount")),
            a_cost=Value(Decimal("0"), output_field=MONEY),
            a_channel=F("invoice__client__channel_id"),
            a_manager=Coalesce("invoice__deal__manager_id", "invoice__client__manager_id"),
            a_pipeline=F("invoice__deal__pipeline_id"),
            a_stage=_NULL_ID,
            a_status=Value(""),
        )
        .order_by()
    )


def created_deals() -> QuerySet:
    """Deals by the local date they were created, attributed to the deal's own channel."""
    return Deal.objects.annotate(
        a_day=TruncDate("created_at"),
        a_rate=Value(Decimal("1"), output_field=RATE),
        a_amount=Value(Decimal("0"), output_field=MONEY),
        a_cost=Value(Decimal("0"), output_field=MONEY),
        a_channel=F("channel_id"),
        a_manager=F("manager_id"),
        a_pipeline=F("pipeline_id"),
        a_stage=F("stage_id"),
        a_status=F("status"),
    ).order_by()


def new_clients() -> QuerySet:
    return ClientFact.objects.annotate(
        a_day=F("first_paid_on"),
        a_rate=Value(Decimal("1"), output_field=RATE),
        a_amount=Value(Decimal("0"), output_field=MONEY),
        a_cost=Value(Decimal("0"), output_field=MONEY),
        a_channel=F("channel_id"),
        a_manager=F("manager_id"),
        a_pipeline=_NULL_ID,
        a_stage=_NULL_ID,
        a_status=Value(""),
    ).order_by()


SOURCES = {
    FactKind.ACCRUAL: accrual_invoices,
    FactKind.CASH: cash_allocations,
    FactKind.DEAL: created_deals,
    FactKind.NEW_CLIENT: new_clients,
    FactKind.RECEIVABLE: open_receivables,
}

_UNCONVERTED = Sum(Case(When(a_rate__isnull=True, then=Value(1)), default=Value(0)))


def _insert_select(table: str, columns: list[str], qs: QuerySet, select: list[str], consts=None) -> int:
    """``INSERT INTO table (columns…, const columns…) SELECT sub.select…, consts… FROM (qs) sub``."""
    consts = consts or {}
    sql, params = qs.query.sql_with_params()
    names = [*columns, *consts]
    outer = ", ".join([c if c == "NULL" else f"sub.{c}" for c in select] + ["%s"] * len(consts))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(names)}) SELECT {outer} FROM ({sql}) sub",
            (*consts.values(), *params),
        )
        return cursor.rowcount


def _fact_grouped(kind: str, days: Iterable[dt.date] | None) -> QuerySet:
    qs = SOURCES[kind]()
    if days is not None:
        qs = qs.filter(a_day__in=sorted(days))
    return qs.values("a_day", "a_channel", "a_manager", "a_pipeline", "a_stage", "a_status").annotate(
        a_n=Count("pk"),
        a_sum_amount=Coalesce(Sum("a_amount"), Value(Decimal("0")), output_field=MONEY),
        a_sum_cost=Coalesce(Sum("a_cost"), Value(Decimal("0")), output_field=MONEY),
        a_unconverted=_UNCONVERTED,
    )


def _month(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def facts_refresh(kind: str, days: Iterable[dt.date] | None = None) -> None:
    """Recompute the daily rows of ``kind`` for ``days`` (all days when None), then their months."""
    days = None if days is None else {d for d in days if d is not None}
    if days is not None and not days:
        return
    cols = ["day", *FACT_COLUMNS, "n", "amount", "cost", "unconverted"]
    sel = ["a_day", "a_channel", "a_manager", "a_pipeline", "a_stage", "a_status"]
    sel += ["a_n", "a_sum_amount", "a_sum_cost", "a_unconverted"]
    with transaction.atomic():
        daily = FactDaily.objects.filter(kind=kind)
        monthly = FactMonthly.objects.filter(kind=kind)
        if days is not None:
            months = sorted({_month(d) for d in days})
            daily.filter(day__in=days).delete()
            monthly.filter(month__in=months).delete()
        else:
            daily.delete()
            monthly.delete()
        _insert_select(
            FactDaily._meta.db_table,
            cols,
            _fact_grouped(kind, days),
            sel,
            consts={"kind": kind, "level": DETAIL},
        )
        detail = FactDaily.objects.filter(kind=kind, level=DETAIL)
        if days is not None:
            detail = detail.filter(day__in=days)
        coarse = [c for c in FACT_COLUMNS if c != "manager_id"]
        _insert_select(
            FactDaily._meta.db_table,
            ["day", *FACT_COLUMNS, "n", "amount", "cost", "unconverted"],
            _sums(detail, "day", coarse),
            COARSE_DAY_SELECT,
            consts={"kind": kind, "level": BY_CHANNEL},
        )
        for level in (DETAIL, BY_CHANNEL):
            source = FactDaily.objects.filter(kind=kind, level=level).annotate(
                a_month=TruncMonth("day", output_field=DateField())
            )
            if days is not None:
                source = source.filter(a_month__in=months)
            _insert_select(
                FactMonthly._meta.db_table,
                ["month", *FACT_COLUMNS, "n", "amount", "cost", "unconverted"],
                _sums(source, "a_month", list(FACT_COLUMNS)),
                ["a_month", *FACT_COLUMNS, "a_n", "a_sum_amount", "a_sum_cost", "a_unc"],
                consts={"kind": kind, "level": level},
            )


def _sums(qs: QuerySet, period: str, dims: list[str]) -> QuerySet:
    """Rollup rows summed by period and ``dims``."""
    return (
        qs.order_by()
        .values(period, *dims)
        .annotate(a_n=Sum("n"), a_sum_amount=Sum("amount"), a_sum_cost=Sum("cost"), a_unc=Sum("unconverted"))
    )


# --- client level: first payment, months with payments, cohorts ------------------------------------


def _client_first_payments(client_ids: Iterable[int] | None) -> QuerySet:
    qs = Client.objects.all()
    if client_ids is not None:
        qs = qs.filter(pk__in=list(client_ids))
    return (
        qs.order_by()
        .values(a_client=F("id"), a_channel=F("channel_id"), a_manager=F("manager_id"))
        .annotate(a_first=Min(TruncDate("invoices__allocations__payment__received_at")))
        .filter(a_first__isnull=False)
    )


def _client_months(client_ids: Iterable[int] | None) -> QuerySet:
    qs = PaymentAllocation.objects.all()
    if client_ids is not None:
        qs = qs.filter(invoice__client_id__in=list(client_ids))
    return (
        qs.order_by()
        .annotate(a_date=TruncDate("payment__received_at"))
        .values(
            a_client=F("invoice__client_id"),
            a_month=TruncMonth("a_date", output_field=DateField()),
            a_month_no=ExtractYear("a_date") * 12 + ExtractMonth("a_date") - 1,
        )
        .annotate(a_n=Count("pk"))
    )


def clients_refresh(client_ids: Iterable[int] | None = None) -> None:
    """Recompute first payments, paying months and the cohorts the clients belonged to or now belong to."""
    ids = None if client_ids is None else sorted({int(i) for i in client_ids})
    if ids is not None and not ids:
        return
    with transaction.atomic():
        facts = ClientFact.objects.all() if ids is None else ClientFact.objects.filter(pk__in=ids)
        before = list(facts.values_list("first_paid_on", "cohort_month"))
        ClientMonth.objects.filter(**({} if ids is None else {"client_id__in": ids})).delete()
        facts.delete()
        _insert_select(
            ClientFact._meta.db_table,
            ["client_id", "channel_id", "manager_id", "first_paid_on"],
            _client_first_payments(ids),
            ["a_client", "a_channel", "a_manager", "a_first"],
        )
        facts = ClientFact.objects.all() if ids is None else ClientFact.objects.filter(pk__in=ids)
        facts.update(cohort_month=TruncMonth("first_paid_on", output_field=DateField()))
        _insert_select(
            ClientMonth._meta.db_table,
            ["client_id", "month", "month_no"],
            _client_months(ids),
            ["a_client", "a_month", "a_month_no"],
            consts={"retained_next": False},
        )
        months = ClientMonth.objects.all() if ids is None else ClientMonth.objects.filter(client_id__in=ids)
        months.update(
            retained_next=Exists(
                ClientMonth.objects.filter(client_id=OuterRef("client_id"), month_no=OuterRef("month_no") + 1)
            )
        )
        after = list(facts.values_list("first_paid_on", "cohort_month"))
        if ids is None:
            cohorts_refresh(None)
            facts_refresh(FactKind.NEW_CLIENT, None)
        else:
            cohorts_refresh({c for _, c in before + after})
            facts_refresh(FactKind.NEW_CLIENT, {d for d, _ in before + after})


def cohorts_refresh(cohort_months: Iterable[dt.date] | None) -> None:
    months = None if cohort_months is None else sorted({m for m in cohort_months if m is not None})
    if months is not None and not months:
        return
    table = CohortMonthly._meta.db_table
    cols = ["cohort_month", "month", "channel_id", "manager_id"]
    with transaction.atomic():
        rows = CohortMonthly.objects.all()
        activity = ClientMonth.objects.all()
        profit = accrual_invoices().filter(client__analytics_fact__isnull=False)
        if months is not None:
            rows = rows.filter(cohort_month__in=months)
            activity = activity.filter(client__cohort_month__in=months)
            profit = profit.filter(client__analytics_fact__cohort_month__in=months)
        rows.delete()
        activity = (
            activity.order_by()
            .values(
                a_cohort=F("client__cohort_month"),
                a_month=F("month"),
                a_channel=F("client__channel_id"),
                a_manager=F("client__manager_id"),
            )
            .annotate(
                a_active=Count("pk"),
                a_retained=Sum(Case(When(retained_next=True, then=Value(1)), default=Value(0))),
            )
        )
        profit = profit.values(
            a_cohort=F("client__analytics_fact__cohort_month"),
            a_month=TruncMonth("issue_date", output_field=DateField()),
            a_channel2=F("client__analytics_fact__channel_id"),
            a_manager2=F("client__analytics_fact__manager_id"),
        ).annotate(
            a_gp=Coalesce(Sum(F("a_amount") - F("a_cost"), output_field=MONEY), Value(Decimal("0"))),
            a_unc=_UNCONVERTED,
        )
        # One row per key: paying activity and gross profit side by side.
        sql1, params1 = activity.query.sql_with_params()
        sql2, params2 = profit.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (level, {', '.join(cols)}, active, retained_next, gross_profit, unconverted)"
                " SELECT %s, c, m, ch, mg, SUM(act), SUM(ret), SUM(gp), SUM(unc) FROM ("
                " SELECT s1.a_cohort AS c, s1.a_month AS m, s1.a_channel AS ch, s1.a_manager AS mg,"
                f" s1.a_active AS act, s1.a_retained AS ret, 0 AS gp, 0 AS unc FROM ({sql1}) s1"
                " UNION ALL SELECT s2.a_cohort, s2.a_month, s2.a_channel2, s2.a_manager2, 0, 0, s2.a_gp, s2.a_unc"
                f" FROM ({sql2}) s2) u GROUP BY c, m, ch, mg",
                (DETAIL, *params1, *params2),
            )
        detail = CohortMonthly.objects.filter(level=DETAIL)
        if months is not None:
            detail = detail.filter(cohort_month__in=months)
        coarse = (
            detail.order_by()
            .values("cohort_month", "month", "channel_id")
            .annotate(
                a_act=Sum("active"),
                a_ret=Sum("retained_next"),
                a_gp=Sum("gross_profit"),
                a_unc=Sum("unconverted"),
            )
        )
        _insert_select(
            table,
            [*cols, "active", "retained_next", "gross_profit", "unconverted"],
            coarse,
            ["cohort_month", "month", "channel_id", "NULL", "a_act", "a_ret", "a_gp", "a_unc"],
            consts={"level": BY_CHANNEL},
        )


# --- what to refresh when something changed --------------------------------------------------------


def _serialize_refreshes() -> None:
    """One refresh at a time: two concurrent delete-and-insert of one day would both insert (READ
    COMMITTED), double-counting it. The lock is a row lock held until the caller's transaction ends."""
    RollupState.objects.get_or_create(name="lock")
    RollupState.objects.select_for_update().get(name="lock")


def rollups_refresh_for(
    *,
    invoice_ids: Iterable[int] = (),
    payment_ids: Iterable[int] = (),
    deal_ids: Iterable[int] = (),
    client_ids: Iterable[int] = (),
) -> None:
    """Refresh every rollup row the given objects contribute to (by their days, clients and cohorts)."""
    invoice_ids, payment_ids = set(invoice_ids), set(payment_ids)
    deal_ids, client_ids = set(deal_ids), set(client_ids)
    with transaction.atomic():
        _serialize_refreshes()
        if deal_ids:  # a deal's manager or pipeline is its invoices' too
            invoice_ids |= set(Invoice.objects.filter(deal_id__in=deal_ids).values_list("pk", flat=True))
        if client_ids:  # attribution changed: every day of the client's documents
            invoice_ids |= set(Invoice.objects.filter(client_id__in=client_ids).values_list("pk", flat=True))
            payment_ids |= set(
                PaymentAllocation.objects.filter(invoice__client_id__in=client_ids).values_list(
                    "payment_id", flat=True
                )
            )
        if invoice_ids:
            invoices = Invoice.objects.filter(pk__in=invoice_ids)
            issue_days = set(invoices.values_list("issue_date", flat=True))
            facts_refresh(FactKind.ACCRUAL, issue_days)
            facts_refresh(FactKind.RECEIVABLE, issue_days)
            client_ids |= set(invoices.values_list("client_id", flat=True))
            payment_ids |= set(
                PaymentAllocation.objects.filter(invoice_id__in=invoice_ids).values_list(
                    "payment_id", flat=True
                )
            )
        if payment_ids:
            days = (
                Payment.objects.filter(pk__in=payment_ids)
                .annotate(a_day=TruncDate("received_at"))
                .values_list("a_day", flat=True)
            )
            facts_refresh(FactKind.CASH, set(days))
            client_ids |= set(
                PaymentAllocation.objects.filter(payment_id__in=payment_ids).values_list(
                    "invoice__client_id", flat=True
                )
            )
            client_ids |= {
                c for c in Payment.objects.filter(pk__in=payment_ids).values_list("client_id", flat=True) if c
            }
        if deal_ids:
            days = (
                Deal.objects.filter(pk__in=deal_ids)
                .annotate(a_day=TruncDate("created_at"))
                .values_list("a_day", flat=True)
            )
            facts_refresh(FactKind.DEAL, set(days))
        if client_ids:
            clients_refresh(client_ids)


def rollups_rebuild() -> None:
    """Everything from scratch (first install, a rate correction, or the nightly safety net)."""
    started = timezone.now()
    with transaction.atomic():
        _serialize_refreshes()
        for kind in (FactKind.ACCRUAL, FactKind.RECEIVABLE, FactKind.CASH, FactKind.DEAL):
            facts_refresh(kind, None)
        clients_refresh(None)
        RollupState.objects.update_or_create(
            name="facts", defaults={"watermark": started, "rebuilt_at": timezone.now()}
        )


def rollups_catch_up() -> str:
    """The beat safety net: fold in whatever changed since the watermark, whether or not its event ran."""
    state = RollupState.objects.filter(name="facts").first()
    if state is None or state.watermark is None:
        rollups_rebuild()
        return "rebuilt"
    started = timezone.now()
    since = state.watermark - dt.timedelta(minutes=1)  # overlap: a transaction open across the mark
    changed = {
        "invoice_ids": set(Invoice.objects.filter(updated_at__gte=since).values_list("pk", flat=True)),
        "payment_ids": set(Payment.objects.filter(updated_at__gte=since).values_list("pk", flat=True)),
        "deal_ids": set(Deal.objects.filter(updated_at__gte=since).values_list("pk", flat=True)),
        "client_ids": set(Client.objects.filter(updated_at__gte=since).values_list("pk", flat=True)),
    }
    if sum(len(v) for v in changed.values()) > CATCH_UP_FULL_REBUILD_ABOVE:
        rollups_rebuild()
        return "rebuilt"
    with transaction.atomic():
        rollups_refresh_for(**changed)
        RollupState.objects.filter(pk=state.pk).update(watermark=started)
    return "refreshed"
