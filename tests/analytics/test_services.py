"""Marketing spend CSV import: all or nothing, a bad row refused with its row number."""

import datetime as dt
from decimal import Decimal as D

import pytest

from analytics.models import MarketingSpend
from analytics.services import spend_import_csv
from hub.errors import ValidationFailed
from hub.models import Channel


@pytest.fixture
def channels(db):
    return Channel.objects.create(name="Яндекс Директ", code="yandex"), Channel.objects.create(
        name="Expo", code="expo"
    )


def test_import_stores_every_row(channels):
    data = 'channel,month,amount,currency\nyandex,2026-01,150000.00,RUB\nExpo,2026-02-01,"1 200,50",usd\n'
    assert spend_import_csv(data=data.encode("utf-8-sig")) == 2
    rows = set(MarketingSpend.objects.values_list("channel__code", "month", "amount", "currency"))
    assert rows == {
        ("yandex", dt.date(2026, 1, 1), D("150000.00"), "RUB"),
        ("expo", dt.date(2026, 2, 1), D("1200.50"), "USD"),
    }


def test_reimport_replaces_the_amount(channels):
    spend_import_csv(data="channel,month,amount\nyandex,2026-01,100\n")
    spend_import_csv(data="channel,month,amount\nyandex,2026-01,250\n")
    assert list(MarketingSpend.objects.values_list("amount", flat=True)) == [D("250.00")]


@pytest.mark.parametrize(
    ("bad_row", "field"),
    [
        ("nosuch,2026-03,10,RUB", "channel"),
        ("yandex,2026-03-15,10,RUB", "month"),
        ("yandex,March,10,RUB", "month"),
        ("yandex,2026-03,ten,RUB", "amount"),
        ("yandex,2026-03,-5,RUB", "amount"),
        ("yandex,2026-03,1.234,RUB", "amount"),
        ("yandex,2026-03,10,RUBLES", "currency"),
        ("yandex,2026-01,10,RUB", "month"),  # repeats row 2
    ],
)
def test_bad_row_refuses_the_whole_file_with_its_number(channels, bad_row, field):
    MarketingSpend.objects.create(channel=channels[1], month=dt.date(2025, 12, 1), amount=D("5"))
    data = f"channel,month,amount,currency\nyandex,2026-01,100,RUB\nexpo,2026-02,200,RUB\n{bad_row}\n"
    with pytest.raises(ValidationFailed) as exc:
        spend_import_csv(data=data)
    assert exc.value.message.startswith("Row 4:")
    assert f"row 4.{field}" in exc.value.fields
    # nothing imported, nothing already stored lost
    assert list(MarketingSpend.objects.values_list("amount", flat=True)) == [D("5.00")]


def test_header_without_required_columns_is_refused(channels):
    with pytest.raises(ValidationFailed, match="Row 1: the header lacks amount"):
        spend_import_csv(data="channel,month\nyandex,2026-01\n")


def test_admin_import_page(admin_client, channels):
    from django.core.files.uploadedfile import SimpleUploadedFile

    url = "/admin/analytics/marketingspend/import-csv/"
    assert admin_client.get(url).status_code == 200
    bad = SimpleUploadedFile("s.csv", b"channel,month,amount\nyandex,2026-01,10\nyandex,2026-02,x\n")
    response = admin_client.post(url, {"file": bad}, follow=True)
    assert "Row 3: amount" in response.content.decode()
    assert not MarketingSpend.objects.exists()
    good = SimpleUploadedFile("s.csv", b"channel,month,amount\nyandex,2026-01,10\n")
    admin_client.post(url, {"file": good})
    assert MarketingSpend.objects.count() == 1
