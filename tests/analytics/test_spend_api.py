"""Marketing spend through the API: one month at a time, or a whole CSV file (all or nothing)."""

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from analytics.models import MarketingSpend
from tests.factories import ChannelFactory

pytestmark = pytest.mark.django_db


def test_set_a_month_then_replace_it(api):
    channel = ChannelFactory(code="yandex")
    first = api.post("/api/v1/analytics/spend/", {"channel": channel.pk, "month": "2026-03-01", "amount": "1000.00"},
                     format="json")  # fmt: skip
    assert first.status_code == 201, first.content
    assert first.json()["channel_code"] == "yandex" and first.json()["currency"] == "RUB"
    again = api.post("/api/v1/analytics/spend/", {"channel": channel.pk, "month": "2026-03-01", "amount": "1500.00"},
                     format="json")  # fmt: skip
    assert again.status_code == 201
    assert MarketingSpend.objects.get().amount == Decimal("1500.00")
    listed = api.get("/api/v1/analytics/spend/", {"month_from": "2026-01-01"}).json()["results"]
    assert [row["amount"] for row in listed] == ["1500.00"]


def test_month_must_be_its_first_day(api):
    channel = ChannelFactory()
    response = api.post("/api/v1/analytics/spend/", {"channel": channel.pk, "month": "2026-03-15", "amount": "1"},
                        format="json")  # fmt: skip
    assert response.status_code == 400 and "month" in response.json()["error"]["fields"]


def test_csv_import_all_or_nothing_names_the_bad_row(api):
    ChannelFactory(code="referral", name="Referral")
    good = "channel,month,amount,currency\nreferral,2026-01,100.00,RUB\nReferral,2026-02,200.50,RUB\n"
    response = api.post("/api/v1/analytics/spend/import/",
                        {"file": SimpleUploadedFile("spend.csv", good.encode())}, format="multipart")  # fmt: skip
    assert response.status_code == 201 and response.json() == {"imported": 2}
    bad = "channel,month,amount\nreferral,2026-03,10\nreferral,2026-04,ten\n"
    response = api.post("/api/v1/analytics/spend/import/",
                        {"file": SimpleUploadedFile("bad.csv", bad.encode())}, format="multipart")  # fmt: skip
    assert response.status_code == 400
    assert "Row 3" in response.json()["error"]["message"]
    assert MarketingSpend.objects.count() == 2  # nothing from the bad file


def test_read_key_cannot_write_spend(read_api):
    channel = ChannelFactory()
    response = read_api.post("/api/v1/analytics/spend/", {"channel": channel.pk, "month": "2026-03-01", "amount": "1"},
                             format="json")  # fmt: skip
    assert response.status_code == 403


def test_binary_and_windows_1251_files(api):
    ChannelFactory(code="expo", name="Выставки")
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    response = api.post("/api/v1/analytics/spend/import/", {"file": SimpleUploadedFile("x.csv", png)},
                        format="multipart")  # fmt: skip
    assert response.status_code == 400 and response.json()["error"]["code"] in (
        "bad_file",
        "validation_error",
    )
    text = "channel,month,amount\nВыставки,2026-05,300.00\n".encode("cp1251")
    response = api.post("/api/v1/analytics/spend/import/", {"file": SimpleUploadedFile("x.csv", text)},
                        format="multipart")  # fmt: skip
    assert response.status_code == 201 and response.json() == {"imported": 1}
