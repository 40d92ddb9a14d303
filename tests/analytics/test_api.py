"""The figures over HTTP: filters, explicit no data, errors, CSV and XLSX export."""

import csv
import io

import pytest
from openpyxl import load_workbook

from analytics import rollups
from tests.analytics.dataset import build

Q1 = "date_from=2026-01-01&date_to=2026-03-31"


@pytest.fixture
def data(db):
    ctx = build()
    rollups.rollups_rebuild()
    return ctx


def test_summary(read_api, data):
    body = read_api.get(f"/api/v1/analytics/summary/?{Q1}").json()
    assert body["currency"] == "RUB"
    assert body["rows"][0]["gross_profit"] == "1880.00"
    assert body["rows"][0]["cac"] == "2833.33"


def test_channels_columns_and_no_data(read_api, data):
    body = read_api.get(f"/api/v1/analytics/channels/?{Q1}").json()
    for column in ("spend", "new_clients", "cac", "revenue", "cogs", "gross_profit", "margin_pct", "ltv"):
        assert column in body["columns"]
    expo = next(r for r in body["rows"] if r["channel"] == "Expo")
    assert expo["cac"] is None
    assert expo["no_data"]["cac"] == "no new paying clients in the period"


@pytest.mark.parametrize(
    "figure", ["summary", "channels", "revenue", "cac", "ltv", "ar-aging", "funnel", "cohorts"]
)
def test_every_figure_exports(read_api, data, figure):
    assert read_api.get(f"/api/v1/analytics/{figure}/?{Q1}").status_code == 200
    response = read_api.get(f"/api/v1/analytics/{figure}/?{Q1}&export=csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][-1] == "no_data" and len(rows) >= 2
    response = read_api.get(f"/api/v1/analytics/{figure}/?{Q1}&export=xlsx")
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert sheet.max_row == len(rows)


def test_filters_and_bad_input(read_api, data):
    ads = data["ads"].pk
    body = read_api.get(f"/api/v1/analytics/revenue/?{Q1}&channel={ads}").json()
    assert body["filters"] == {"channel": ads}
    assert body["rows"][0]["revenue_accrual"] == "1000.00"  # January, Ads: inv1 only
    response = read_api.get("/api/v1/analytics/summary/?date_from=2026-04-01&date_to=2026-01-01")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"date_from": ["Must not be after date_to."]}
    assert read_api.get("/api/v1/analytics/summary/?date_from=yesterday").status_code == 400


def test_missing_rate_over_http(read_api, data):
    from analytics.models import CurrencyRate

    CurrencyRate.objects.all().delete()
    rollups.rollups_rebuild()
    response = read_api.get(f"/api/v1/analytics/summary/?{Q1}")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "missing_rate"
    assert "USD" in response.json()["error"]["message"]


def test_needs_a_key(anon_api, db):
    assert anon_api.get("/api/v1/analytics/summary/").status_code in (401, 403)
