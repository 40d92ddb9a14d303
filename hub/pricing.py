"""Line and document totals. Decimal only; VAT per line rounded half up, then summed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
HUNDRED = Decimal("100")


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class LineTotals:
    amount_net: Decimal
    vat_amount: Decimal
    amount_total: Decimal
    cost_total: Decimal


def line_totals(
    *,
    quantity: Decimal,
    unit_price: Decimal,
    discount_pct: Decimal,
    vat_rate: Decimal,
    unit_cost: Decimal,
    vat_mode: str,
) -> LineTotals:
    """Totals of one line.

    ``on_top``: prices exclude VAT, VAT = net × rate. ``included``: prices include VAT, VAT = total ×
    rate / (100 + rate). ``none``: no VAT whatever the rate says.
    """
    gross = money(quantity * unit_price)
    discount = money(gross * discount_pct / HUNDRED)
    after_discount = gross - discount
    cost = money(quantity * unit_cost)
    if vat_mode == "none" or not vat_rate:
        return LineTotals(after_discount, Decimal("0.00"), after_discount, cost)
    if vat_mode == "included":
        vat = money(after_discount * vat_rate / (HUNDRED + vat_rate))
        return LineTotals(after_discount - vat, vat, after_discount, cost)
    vat = money(after_discount * vat_rate / HUNDRED)
    return LineTotals(after_discount, vat, after_discount + vat, cost)


def document_totals(lines: Iterable[LineTotals]) -> LineTotals:
    net = vat = total = cost = Decimal("0.00")
    for line in lines:
        net += line.amount_net
        vat += line.vat_amount
        total += line.amount_total
        cost += line.cost_total
    return LineTotals(net, vat, total, cost)
