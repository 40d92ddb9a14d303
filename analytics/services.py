"""Writes of the analytics inputs: marketing spend (one row or a whole CSV file) and currency rates."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal, InvalidOperation

from django.db import transaction

from hub.errors import ValidationFailed
from hub.events import event_record
from hub.models import Channel

from .models import CurrencyRate, MarketingSpend

SPEND_COLUMNS = ("channel", "month", "amount", "currency")


def _parse_month(value: str) -> dt.date:
    value = value.strip()
    for fmt in ("%Y-%m", "%Y-%m-%d"):
        try:
            day = dt.datetime.strptime(value, fmt).date()  # noqa: DTZ007 - a calendar date, no time
        except ValueError:
            continue
        if day.day != 1:
            raise ValueError("must be the first day of a month (YYYY-MM or YYYY-MM-01)")
        return day
    raise ValueError("expected YYYY-MM or YYYY-MM-01")


def spend_import_csv(*, data: bytes | str, actor=None, origin: str = "admin") -> int:
    """Import marketing spend from CSV with columns channel (code or name), month, amount, currency.

    All or nothing: the first bad row refuses the whole file with its row number (the header is row 1)
    and nothing is stored. A row for an existing channel+month+currency replaces its amount.
    """
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            f"The file is not UTF-8 text (byte {exc.start}).", fields={"file": ["Expected a UTF-8 CSV file."]}
        ) from exc
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in SPEND_COLUMNS[:3] if c not in (reader.fieldnames or [])]
    if missing:
        raise ValidationFailed(
            f"Row 1: the header lacks {', '.join(missing)} (expected: {', '.join(SPEND_COLUMNS)}).",
            fields={"file": [f"Missing columns: {', '.join(missing)}."]},
        )
    channels = {c.code.lower(): c for c in Channel.objects.all()}
    channels |= {c.name.lower(): c for c in channels.values()}
    parsed: list[tuple[Channel, dt.date, Decimal, str]] = []
    seen: dict[tuple, int] = {}
    for number, row in enumerate(reader, start=2):

        def refuse(field: str, message: str, number=number, row=row):
            raise ValidationFailed(
                f"Row {number}: {field} {message}. Nothing was imported.",
                fields={f"row {number}.{field}": [message], "row": [str(number)]},
                code="bad_row",
            )

        channel = channels.get((row.get("channel") or "").strip().lower())
        if channel is None:
            refuse("channel", f"{row.get('channel')!r} is not a known channel code or name")
        try:
            month = _parse_month(row.get("month") or "")
        except ValueError as exc:
            refuse("month", str(exc))
        try:
            amount = Decimal((row.get("amount") or "").strip().replace(" ", "").replace(",", "."))
        except InvalidOperation:
            refuse("amount", f"{row.get('amount')!r} is not a number")
        if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
            refuse("amount", "must be zero or more with at most 2 decimal places")
        currency = (row.get("currency") or "RUB").strip().upper() or "RUB"
        if len(currency) != 3 or not currency.isalpha() or not currency.isascii():
            refuse("currency", f"{currency!r} is not an ISO 4217 code")
        key = (channel.pk, month, currency)
        if key in seen:
            refuse("month", f"repeats row {seen[key]} for the same channel, month and currency")
        seen[key] = number
        parsed.append((channel, month, amount, currency))
    with transaction.atomic():
        for channel, month, amount, currency in parsed:
            spend, _ = MarketingSpend.objects.update_or_create(
                channel=channel, month=month, currency=currency, defaults={"amount": amount}
            )
            event_record(
                type="marketing_spend.imported",
                instance=spend,
                payload={"channel": channel.code, "month": month, "amount": amount, "currency": currency},
                origin=origin,
                actor=actor,
            )
    return len(parsed)


def spend_set(
    *,
    channel: Channel,
    month: dt.date,
    amount: Decimal,
    currency: str = "RUB",
    actor=None,
    origin: str = "api",
) -> MarketingSpend:
    """Store one month of a channel's spend (replacing that month's amount in that currency)."""
    errors: dict[str, list[str]] = {}
    if month.day != 1:
        errors["month"] = ["Must be the first day of a month."]
    if not amount.is_finite() or amount < 0:
        errors["amount"] = ["Must be zero or more."]
    currency = (currency or "RUB").strip().upper()
    if len(currency) != 3 or not currency.isalpha() or not currency.isascii():
        errors["currency"] = [f"{currency!r} is not an ISO 4217 code."]
    if errors:
        raise ValidationFailed.from_fields(errors)
    with transaction.atomic():
        spend, _ = MarketingSpend.objects.update_or_create(
            channel=channel, month=month, currency=currency, defaults={"amount": amount}
        )
        event_record(
            type="marketing_spend.set",
            instance=spend,
            payload={"channel": channel.code, "month": month, "amount": amount, "currency": currency},
            origin=origin,
            actor=actor,
        )
    return spend


def rate_set(
    *, currency: str, date: dt.date, rate: Decimal, actor=None, origin: str = "admin"
) -> CurrencyRate:
    """Store a rate; documents on and after that date convert at it once rollups are rebuilt (beat)."""
    if rate is None or rate <= 0:
        raise ValidationFailed("A rate must be greater than zero.", fields={"rate": ["Must be > 0."]})
    with transaction.atomic():
        obj, _ = CurrencyRate.objects.update_or_create(
            currency=currency.upper(), date=date, defaults={"rate": rate}
        )
        event_record(
            type="currency_rate.set",
            instance=obj,
            payload={"currency": obj.currency, "date": date, "rate": rate},
            origin=origin,
            actor=actor,
        )
    return obj
