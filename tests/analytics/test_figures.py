"""Every figure on the hand-computed dataset of tests/analytics/dataset.py, worked out by hand below.

The dataset (company currency RUB; USD 90.00 from 2026-01-01, 100.00 from 2026-02-10):
  c1 (Ads, manager maria), c2 (Ads), c3 (Referral); channel Expo has no clients and no spend.
  inv1 c1 2026-01-10 net 1000 cost 600, paid 1220 on 01-15   inv2 c3 2026-01-20 USD net 10 cost 4, paid 10 USD on 02-12
  inv3 c1 2026-02-05 net  500 cost 200, paid  610 on 02-20   inv4 c2 2026-02-10 net 2000 cost 1500, 1000 paid on 03-03
  cn1  c1 2026-02-25 credit note net 100 cost 40             inv7 c1 2026-03-05 net 300 cost 100, paid 366 on 03-10
  void c2 2026-02-11 (ignored), a draft (ignored), c3 2026-04-01 USD net 20 unpaid, c2 2025-12-01 net 100 cost 50 unpaid.
  Spend: Ads 3000 (Jan) + 1000 (Feb) RUB; Referral 50 USD (Jan, at 90 → 4500.00).
  Deals created 2026-01-05: 2 won, 1 at "proposal", 1 at "new", 1 lost.
"""

import datetime as dt
from decimal import Decimal as D

import pytest

from analytics import rollups, selectors
from analytics.selectors import Filters
from tests.analytics.dataset import build

Q1 = Filters(dt.date(2026, 1, 1), dt.date(2026, 3, 31))


@pytest.fixture
def data(db):
    ctx = build()
    rollups.rollups_rebuild()
    return ctx


def test_summary_of_the_quarter(data):
    row = selectors.analytics_summary(filters=Q1).rows[0]
    # Revenue on issue: 1000 + 10×90 + 500 + 2000 − 100 (credit note) + 300 = 4600.00
    assert row["revenue_accrual"] == D("4600.00")
    # COGS: 600 + 4×90 + 200 + 1500 − 40 + 100 = 2720.00; gross profit 4600 − 2720 = 1880.00
    assert row["cogs"] == D("2720.00")
    assert row["gross_profit"] == D("1880.00")
    # Margin: 1880 / 4600 = 40.869…% → 40.87
    assert row["margin_pct"] == D("40.87")
    # Revenue on payment: 1220 + 10×100 (rate of 02-12 is the 02-10 one) + 610 + 1000 + 366 = 4196.00
    assert row["revenue_cash"] == D("4196.00")
    # First payments: c1 01-15, c3 02-12, c2 03-03 → 3 new paying clients; spend 4000 + 4500 = 8500
    assert row["new_clients"] == 3
    assert row["spend"] == D("8500.00")
    # CAC: 8500 / 3 = 2833.33
    assert row["cac"] == D("2833.33")
    # Historical LTV: cumulative gross profit to 03-31 of the Q1 cohorts ÷ 3:
    # c1 400 + 300 − 60 + 200 = 840; c3 540 (its January invoice); c2 2000 − 1500 = 500 plus 50 from Dec 2025 → 550
    # (840 + 540 + 550) / 3 = 643.33
    assert row["ltv"] == D("643.33")
    # Paying client-months Jan–Mar: Jan c1; Feb c1, c3; Mar c1, c2 → 5. Gross profit in those months 1880.
    # Average monthly gross profit per paying client: 1880 / 5 = 376.00
    assert row["avg_monthly_gross_profit"] == D("376.00")
    # Churn over Jan→Feb and Feb→Mar: 3 client-months (c1 Jan, c1 Feb, c3 Feb), 2 retained → 1/3 = 0.3333
    assert row["monthly_churn"] == D("0.3333")
    # Predictive LTV: 376.00 / 0.3333 = 1128.11; LTV/CAC = 1128.11 / 2833.33 = 0.398 → 0.40
    assert row["ltv_predictive"] == D("1128.11")
    assert row["ltv_cac"] == D("0.40")
    # Payback: 2833.33 / 376.00 = 7.535 → 7.54 months
    assert row["payback_months"] == D("7.54")
    assert row["no_data"] == {}


def test_channels_one_row_each_with_explicit_no_data(data):
    rows = {r["channel"]: r for r in selectors.analytics_channels(filters=Q1).rows}
    ads, referral, expo = rows["Ads"], rows["Referral"], rows["Expo"]
    # Ads: c1 + c2. Revenue 1000 + 500 − 100 + 300 + 2000 = 3700; COGS 600 + 200 − 40 + 100 + 1500 = 2360
    assert (ads["revenue"], ads["cogs"], ads["gross_profit"]) == (D("3700.00"), D("2360.00"), D("1340.00"))
    # Margin 1340 / 3700 = 36.216% → 36.22; CAC 4000 / 2 = 2000.00; LTV (840 + 550) / 2 = 695.00
    assert (ads["margin_pct"], ads["cac"], ads["ltv"]) == (D("36.22"), D("2000.00"), D("695.00"))
    # Ads churn: c1 Jan→Feb, Feb→Mar both retained → 0: lifetime unbounded, no predictive LTV
    assert ads["ltv_predictive"] is None and "no churn" in ads["no_data"]["ltv_predictive"]
    # Ads payback: 2000 / (1340 / 4 client-months = 335.00) = 5.97
    assert ads["payback_months"] == D("5.97")
    # Referral: c3. Revenue 900, COGS 360, margin 60.00, CAC 4500, LTV 540, churn 1 → predictive 540
    assert (referral["revenue"], referral["margin_pct"], referral["cac"]) == (
        D("900.00"),
        D("60.00"),
        D("4500.00"),
    )
    assert (referral["ltv"], referral["ltv_predictive"]) == (D("540.00"), D("540.00"))
    # LTV/CAC 540 / 4500 = 0.12; payback 4500 / 540 = 8.33
    assert (referral["ltv_cac"], referral["payback_months"]) == (D("0.12"), D("8.33"))
    # Expo: no clients, no spend → nulls with reasons, never a 0 CAC or a division by zero
    assert expo["new_clients"] == 0
    for name in ("cac", "spend", "margin_pct", "ltv", "payback_months"):
        assert expo[name] is None and expo["no_data"][name]


def test_monthly_revenue(data):
    rows = {r["month"]: r for r in selectors.analytics_revenue(filters=Q1).rows}
    jan, feb, mar = (rows[dt.date(2026, m, 1)] for m in (1, 2, 3))
    # Jan: issue 1000 + 900 = 1900, cost 600 + 360 = 960, margin 940/1900 = 49.47; cash 1220
    assert (jan["revenue_accrual"], jan["cogs"], jan["margin_pct"], jan["revenue_cash"]) == (
        D("1900.00"), D("960.00"), D("49.47"), D("1220.00"))  # fmt: skip
    # Feb: 500 + 2000 − 100 = 2400, cost 200 + 1500 − 40 = 1660, margin 740/2400 = 30.83; cash 1000 + 610
    assert (feb["revenue_accrual"], feb["cogs"], feb["margin_pct"], feb["revenue_cash"]) == (
        D("2400.00"), D("1660.00"), D("30.83"), D("1610.00"))  # fmt: skip
    # Mar: 300, cost 100, margin 66.67; cash 1000 + 366 = 1366
    assert (mar["revenue_accrual"], mar["margin_pct"], mar["revenue_cash"]) == (
        D("300.00"),
        D("66.67"),
        D("1366.00"),
    )


def test_partial_period_reads_edge_days(data):
    # 2026-01-16 … 2026-02-12: inv2 (900, cost 360) + inv3 (500, 200) + inv4 (2000, 1500) = 3400 / 2060
    row = selectors.analytics_summary(filters=Filters(dt.date(2026, 1, 16), dt.date(2026, 2, 12))).rows[0]
    assert (row["revenue_accrual"], row["cogs"]) == (D("3400.00"), D("2060.00"))
    # cash in the window: only the USD payment of 02-12 → 1000.00
    assert row["revenue_cash"] == D("1000.00")


def test_manager_filter(data):
    # maria manages c1 (and deal d1): 1000 + 500 − 100 + 300 = 1700
    row = selectors.analytics_summary(
        filters=Filters(Q1.date_from, Q1.date_to, manager=data["maria"].pk)
    ).rows[0]
    assert row["revenue_accrual"] == D("1700.00")
    # CAC is per channel: with a manager filter it is explicitly not applicable
    assert row["cac"] is None and "manager" in row["no_data"]["cac"]


def test_ar_aging_buckets(data):
    rows = {r["bucket"]: r for r in selectors.analytics_ar_aging(filters=Q1, as_of=dt.date(2026, 4, 15)).rows}
    # Open on 04-15: inv4 (2440 − 1000 = 1440, issued 02-10: 64 days), the USD invoice of 04-01 (20 × 100 =
    # 2000, 14 days), the December invoice (122, 135 days). Credit notes and paid invoices are not receivables.
    assert (rows["0-30"]["invoices"], rows["0-30"]["amount_due"]) == (1, D("2000.00"))
    assert (rows["31-60"]["invoices"], rows["31-60"]["amount_due"]) == (0, D("0.00"))
    assert (rows["61-90"]["invoices"], rows["61-90"]["amount_due"]) == (1, D("1440.00"))
    assert (rows["90+"]["invoices"], rows["90+"]["amount_due"]) == (1, D("122.00"))


def test_funnel_conversion_and_win_rate(data):
    rows = {r["stage"]: r for r in selectors.analytics_funnel(filters=Q1).rows}
    # Reached "New": all 5 (2 open + 2 won + 1 lost); "Proposal": 1 open there + 2 won = 3; "Negotiation": 2 won
    assert [rows[s]["reached"] for s in ("New", "Proposal", "Negotiation")] == [5, 3, 2]
    # Conversion: 3/5 = 60.00, 2/3 = 66.67, 2/2 (to won) = 100.00
    assert [rows[s]["conversion_to_next_pct"] for s in ("New", "Proposal", "Negotiation")] == [
        D("60.00"), D("66.67"), D("100.00")]  # fmt: skip
    # Win rate: New 2 won / (2 + 1 lost) = 66.67; later stages 2 / 2 = 100.00
    assert rows["New"]["win_rate_pct"] == D("66.67")
    assert rows["Proposal"]["win_rate_pct"] == D("100.00")


def test_cohort_retention(data):
    rows = [(r["cohort"].month, r["months_since"], r["active"], r["retention_pct"])
            for r in selectors.analytics_cohorts(filters=Q1).rows]  # fmt: skip
    # Jan cohort = c1, paying in Jan, Feb, Mar; Feb cohort = c3 (Feb only); Mar cohort = c2
    assert rows == [
        (1, 0, 1, D("100.00")), (1, 1, 1, D("100.00")), (1, 2, 1, D("100.00")),
        (2, 0, 1, D("100.00")), (3, 0, 1, D("100.00")),
    ]  # fmt: skip


def test_empty_period_is_no_data_not_zero(data):
    row = selectors.analytics_summary(filters=Filters(dt.date(2024, 1, 1), dt.date(2024, 3, 31))).rows[0]
    assert row["revenue_accrual"] == D("0.00")  # a sum over nothing is a true zero…
    for name in ("margin_pct", "cac", "ltv", "ltv_predictive", "ltv_cac", "payback_months", "spend"):
        assert row[name] is None, name  # …but a ratio over nothing is "no data", with a reason
        assert row["no_data"][name]


def test_missing_rate_is_a_clear_error(data):
    from analytics.models import CurrencyRate
    from tests.analytics.dataset import invoice

    c1 = data["clients"][0]
    c1._company = data["company"]
    invoice(c1, dt.date(2026, 3, 20), D("5"), D("0"), D("1"), currency="EUR")
    rollups.rollups_rebuild()
    with pytest.raises(selectors.MissingRate, match=r"No EUR exchange rate on or before 2026-03-20"):
        selectors.analytics_summary(filters=Q1)
    CurrencyRate.objects.create(currency="EUR", date=dt.date(2026, 3, 1), rate=D("110"))
    rollups.rollups_rebuild()
    assert selectors.analytics_summary(filters=Q1).rows[0]["revenue_accrual"] == D("5150.00")  # 4600 + 5×110


def test_product_filter_reads_invoice_lines(data):
    from invoicing.models import Invoice, InvoiceLine
    from tests.factories import ProductFactory

    pump = ProductFactory(name="Pump")
    # given a Pump line on the January RUB invoice (net 1000, cost 600) and on the USD one (net 10, cost 4)
    for issued, net, cost in (
        (dt.date(2026, 1, 10), D("1000"), D("600")),
        (dt.date(2026, 1, 20), D("10"), D("4")),
    ):
        InvoiceLine.objects.create(invoice=Invoice.objects.get(issue_date=issued), product=pump, description="Pump",
                                   quantity=D("1"), unit_price=net, amount_net=net, amount_total=net, cost_total=cost)  # fmt: skip
    row = selectors.analytics_summary(filters=Filters(Q1.date_from, Q1.date_to, product=pump.pk)).rows[0]
    # then revenue 1000 + 10×90 = 1900, cost 600 + 4×90 = 960, margin 940/1900 = 49.47
    assert (row["revenue_accrual"], row["cogs"], row["margin_pct"]) == (D("1900.00"), D("960.00"), D("49.47"))
    # and what has no product split says so
    assert row["revenue_cash"] is None and "product" in row["no_data"]["revenue_cash"]
    assert row["cac"] is None and "product" in row["no_data"]["cac"]
