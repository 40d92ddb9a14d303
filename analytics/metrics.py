"""Pure figure arithmetic on ``Decimal``: no ORM, no I/O. Definitions: docs/metrics.md.

Every ratio returns a ``Figure``: a value, or ``None`` with the reason there is none. A figure whose
denominator is zero or missing is "no data", never a division by zero and never a made-up 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0")

AGING_BUCKETS = (("0-30", 0, 30), ("31-60", 31, 60), ("61-90", 61, 90), ("90+", 91, None))


@dataclass(frozen=True)
class Figure:
    value: Decimal | None
    reason: str | None = None

    @classmethod
    def none(cls, reason: str) -> Figure:
        return cls(None, reason)


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def convert(amount: Decimal, rate: Decimal) -> Decimal:
    """One document's amount in the company currency: amount × rate, rounded half-up to kopecks."""
    return money(amount * rate)


def gross_profit(revenue: Decimal, cogs: Decimal) -> Decimal:
    return money(revenue - cogs)


def ratio(numerator: Decimal | None, denominator: Decimal | int | None, reason: str) -> Figure:
    if numerator is None or denominator is None or Decimal(denominator) == 0:
        return Figure.none(reason)
    return Figure(money(Decimal(numerator) / Decimal(denominator)))


def margin_pct(revenue: Decimal, cogs: Decimal) -> Figure:
    """Gross profit as a percentage of revenue (on issue)."""
    if revenue == 0:
        return Figure.none("no revenue in the period")
    return Figure(money((revenue - cogs) * 100 / revenue))


def cac(spend: Decimal | None, new_clients: int) -> Figure:
    """Customer acquisition cost: spend ÷ new paying clients."""
    if new_clients == 0:
        return Figure.none("no new paying clients in the period")
    if spend is None:
        return Figure.none("no marketing spend recorded for the period")
    return Figure(money(spend / new_clients))


def ltv_historical(cumulative_gross_profit: Decimal, clients: int) -> Figure:
    """Average cumulative gross profit per client acquired in the period."""
    return ratio(cumulative_gross_profit, clients, "no new paying clients in the period")


def monthly_churn(active_client_months: int, retained_client_months: int) -> Figure:
    """Share of clients paying in a month who do not pay in the next one (4 decimals)."""
    if active_client_months == 0:
        return Figure.none("no paying clients in the period")
    churn = Decimal(active_client_months - retained_client_months) / Decimal(active_client_months)
    return Figure(churn.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def avg_monthly_gross_profit(gross_profit_total: Decimal, active_client_months: int) -> Figure:
    return ratio(gross_profit_total, active_client_months, "no paying clients in the period")


def ltv_predictive(avg_monthly_gp: Figure, churn: Figure) -> Figure:
    """Average monthly gross profit per client × expected lifetime (1 ÷ monthly churn)."""
    if avg_monthly_gp.value is None:
        return avg_monthly_gp
    if churn.value is None:
        return churn
    if churn.value == 0:
        return Figure.none("no churn observed in the period: expected lifetime is unbounded")
    return Figure(money(avg_monthly_gp.value / churn.value))


def ltv_cac(ltv: Figure, cac_: Figure) -> Figure:
    if ltv.value is None:
        return ltv
    if cac_.value is None:
        return cac_
    if cac_.value == 0:
        return Figure.none("acquisition cost is zero")
    return Figure(money(ltv.value / cac_.value))


def payback_months(cac_: Figure, avg_monthly_gp: Figure) -> Figure:
    """Months of average gross profit per client needed to earn back the acquisition cost."""
    if cac_.value is None:
        return cac_
    if avg_monthly_gp.value is None:
        return avg_monthly_gp
    if avg_monthly_gp.value <= 0:
        return Figure.none("average monthly gross profit is not positive: the cost is never paid back")
    return Figure(money(cac_.value / avg_monthly_gp.value))


def aging_bucket(age_days: int) -> str:
    for name, low, high in AGING_BUCKETS:
        if age_days >= low and (high is None or age_days <= high):
            return name
    return AGING_BUCKETS[0][0]  # issued in the future relative to the as-of date: youngest bucket


@dataclass(frozen=True)
class StageCount:
    stage_id: int
    code: str
    name: str
    order: int
    is_won: bool
    is_lost: bool
    open: int = 0
    won: int = 0
    lost: int = 0


@dataclass(frozen=True)
class FunnelRow:
    stage_id: int
    code: str
    name: str
    reached: int
    conversion_to_next: Figure
    win_rate: Figure


def funnel(stages: list[StageCount]) -> list[FunnelRow]:
    """Conversion and win rate per open stage of one pipeline, from counts of deals per current stage.

    The model keeps no stage history, so a deal "reached" every open stage up to its current one; a won
    deal reached every open stage; a lost deal is counted as having reached the first stage only.
    Win rate of a stage = won ÷ (won + lost) among the deals that reached it.
    """
    steps = sorted((s for s in stages if not s.is_won and not s.is_lost), key=lambda s: s.order)
    won_total = sum(s.won for s in stages)
    lost_total = sum(s.lost for s in stages)
    rows: list[tuple[StageCount, int, int, int]] = []
    for i, step in enumerate(steps):
        open_after = sum(s.open for s in steps[i:])
        lost_here = lost_total if i == 0 else 0
        reached = open_after + won_total + lost_here
        rows.append((step, reached, won_total, lost_here))
    out = []
    for i, (step, reached, won, lost) in enumerate(rows):
        nxt = rows[i + 1][1] if i + 1 < len(rows) else won_total
        conv = (
            Figure.none("no deals reached this stage")
            if reached == 0
            else Figure((Decimal(nxt) * 100 / reached).quantize(CENT, rounding=ROUND_HALF_UP))
        )
        closed = won + lost
        win = (
            Figure.none("no closed deals among those that reached this stage")
            if closed == 0
            else Figure((Decimal(won) * 100 / closed).quantize(CENT, rounding=ROUND_HALF_UP))
        )
        out.append(FunnelRow(step.stage_id, step.code, step.name, reached, conv, win))
    return out


def retention_pct(active: int, cohort_size: int) -> Figure:
    if cohort_size == 0:
        return Figure.none("empty cohort")
    return Figure((Decimal(active) * 100 / cohort_size).quantize(CENT, rounding=ROUND_HALF_UP))
