"""Top clients and managers by gross profit (the dashboards' top lists) on the hand-computed dataset."""

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


def test_top_clients_by_gross_profit(data):
    c1, c2, c3 = data["clients"]
    rows = selectors.analytics_top(filters=Q1, by="client").rows
    # c1: 1000−600 + 500−200 − (100−40) credit note + 300−100 = 840 on revenue 1700
    # c3: USD 10 net, 4 cost at 90.00 → 900 − 360 = 540; c2: 2000 − 1500 = 500 (its void is not counted)
    assert [(r["name"], r["gross_profit"]) for r in rows] == [
        (c1.name, D("840.00")),
        (c3.name, D("540.00")),
        (c2.name, D("500.00")),
    ]
    assert rows[0]["revenue"] == D("1700.00") and rows[0]["cogs"] == D("860.00")
    assert rows[0]["margin_pct"] == D("49.41")  # 840 / 1700


def test_top_managers_and_the_filters(data):
    c1 = data["clients"][0]
    rows = selectors.analytics_top(filters=Q1, by="manager").rows
    by_id = {r["id"]: r["gross_profit"] for r in rows}
    assert by_id[data["maria"].pk] == D("840.00") and by_id[None] == D("1040.00")
    only_maria = Filters(Q1.date_from, Q1.date_to, manager=data["maria"].pk)
    assert [r["id"] for r in selectors.analytics_top(filters=only_maria, by="client").rows] == [c1.pk]


def test_an_unknown_top_list_is_refused():
    with pytest.raises(ValueError):
        selectors.analytics_top(filters=Q1, by="channel")
