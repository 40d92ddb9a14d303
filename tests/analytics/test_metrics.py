"""The pure figure functions: rounding half-up and "no data" instead of a division by zero."""

from decimal import Decimal as D

from analytics import metrics
from analytics.metrics import Figure


def test_margin_and_no_revenue():
    assert metrics.margin_pct(D("3"), D("1")) == Figure(D("66.67"))
    assert metrics.margin_pct(D("0"), D("5")).value is None


def test_cac_without_clients_or_spend():
    assert metrics.cac(D("100"), 3) == Figure(D("33.33"))
    assert metrics.cac(D("100"), 0).reason == "no new paying clients in the period"
    assert metrics.cac(None, 2).reason == "no marketing spend recorded for the period"


def test_rounding_is_half_up():
    assert metrics.convert(D("0.125"), D("1")) == D("0.13")
    assert metrics.convert(D("-0.125"), D("1")) == D("-0.13")


def test_predictive_ltv_and_payback():
    avg = metrics.avg_monthly_gross_profit(D("1000"), 4)  # 250.00 per client-month
    churn = metrics.monthly_churn(10, 8)  # 0.2
    assert metrics.ltv_predictive(avg, churn) == Figure(D("1250.00"))
    assert metrics.ltv_predictive(avg, metrics.monthly_churn(5, 5)).value is None
    assert metrics.payback_months(Figure(D("500")), avg) == Figure(D("2.00"))
    assert metrics.payback_months(Figure(D("500")), Figure(D("-1"))).value is None


def test_aging_buckets():
    assert [metrics.aging_bucket(d) for d in (0, 30, 31, 60, 61, 90, 91, 400)] == [
        "0-30", "0-30", "31-60", "31-60", "61-90", "61-90", "90+", "90+"]  # fmt: skip
