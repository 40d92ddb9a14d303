"""Rollups equal the raw query: on a generated dataset, after a rebuild, after events and after catch-up."""

import datetime as dt
import random
from decimal import Decimal as D

import pytest

from analytics import rollups, selectors
from analytics.models import ClientFact, CurrencyRate, FactKind, RollupState
from analytics.selectors import Filters
from hub.events import event_dispatch
from hub.models import Channel, Deal, DealStatus, DomainEvent
from hub.services import deal_update
from invoicing.models import PaymentAllocation
from invoicing.services import invoice_create_draft, invoice_issue, payment_record
from tests.analytics.dataset import MSK, invoice, pay
from tests.factories import ClientFactory, CompanyFactory, PipelineFactory, UserFactory

KINDS = (FactKind.ACCRUAL, FactKind.CASH, FactKind.DEAL, FactKind.NEW_CLIENT, FactKind.RECEIVABLE)


def _generate(seed: int = 7) -> dict:
    rng = random.Random(seed)
    company = CompanyFactory()
    pipeline = PipelineFactory()
    stages = list(pipeline.stages.all())
    managers = [UserFactory(username=f"m{i}") for i in range(3)]
    channels = [Channel.objects.create(name=f"Ch{i}", code=f"ch{i}") for i in range(3)]
    clients = []
    for _ in range(25):
        c = ClientFactory(channel=rng.choice([*channels, None]), manager=rng.choice([*managers, None]))
        c._company = company
        clients.append(c)
    for day in (dt.date(2025, 1, 1), dt.date(2025, 6, 15), dt.date(2025, 11, 3)):
        CurrencyRate.objects.create(currency="USD", date=day, rate=D(rng.randint(80, 110)) + D("0.1234"))
    start = dt.date(2025, 1, 1)
    for _ in range(120):
        c = rng.choice(clients)
        stage = rng.choice(stages)
        status = DealStatus.WON if stage.is_won else DealStatus.LOST if stage.is_lost else DealStatus.OPEN
        created = dt.datetime.combine(
            start + dt.timedelta(days=rng.randint(0, 540)), dt.time(23, 30), tzinfo=MSK
        )
        deal = Deal.objects.create(
            title="d", client=c, company=company, pipeline=pipeline, stage=stage, status=status,
            manager=rng.choice([*managers, None]), channel=rng.choice([*channels, None]),
            won_at=created if status == DealStatus.WON else None, lost_at=created if status == DealStatus.LOST else None,
        )  # fmt: skip
        Deal.objects.filter(pk=deal.pk).update(created_at=created)
        issued = created.date() + dt.timedelta(days=rng.randint(0, 20))
        net = D(rng.randint(1, 9999))  # whole roubles: SQLite's float check of net + VAT = total holds
        currency = "USD" if rng.random() < 0.25 else "RUB"
        kind = "credit_note" if rng.random() < 0.05 else "invoice"
        inv = invoice(c, issued, net, (net * D("0.22")).quantize(D("1")), (net * D("0.6")).quantize(D("1")),
                      currency=currency, deal=deal if rng.random() < 0.8 else None, kind=kind,
                      status=rng.choice(["issued", "paid", "void", "sent"]))  # fmt: skip
        if inv.status == "paid" and kind == "invoice":
            pay(inv, issued + dt.timedelta(days=rng.randint(0, 60)), inv.amount_total)
    return {"clients": clients, "channels": channels, "managers": managers, "pipeline": pipeline}


def _filters(ctx):
    periods = [
        (dt.date(2025, 1, 1), dt.date(2026, 12, 31)),
        (dt.date(2025, 3, 17), dt.date(2025, 9, 2)),
        (dt.date(2025, 5, 1), dt.date(2025, 5, 31)),
        (dt.date(2025, 7, 9), dt.date(2025, 7, 20)),
    ]
    for lo, hi in periods:
        yield Filters(lo, hi)
        yield Filters(lo, hi, channel=ctx["channels"][0].pk)
        yield Filters(lo, hi, manager=ctx["managers"][1].pk, pipeline=ctx["pipeline"].pk)


def assert_rollups_equal_raw(ctx):
    for f in _filters(ctx):
        for kind in KINDS:
            for group in ((), ("month",), ("channel_id",)):
                got = {k: v for k, v in selectors.fact_sums(kind, f, group).items() if v.n}
                want = {k: v for k, v in selectors.raw_fact_sums(kind, f, group).items() if v.n}
                assert got == want, (kind, f, group)


@pytest.fixture
def generated(db):
    ctx = _generate()
    rollups.rollups_rebuild()
    return ctx


def test_rollups_equal_the_raw_query(generated):
    assert_rollups_equal_raw(generated)


def test_first_payment_matches_the_payments(generated):
    from django.db.models import Min
    from django.db.models.functions import TruncDate

    want = dict(
        PaymentAllocation.objects.values_list("invoice__client_id")
        .annotate(first=Min(TruncDate("payment__received_at")))
        .values_list("invoice__client_id", "first")
    )
    assert dict(ClientFact.objects.values_list("client_id", "first_paid_on")) == want


def _dispatch_all():
    """Dispatch the pending events, then run the one refresh they queued (as the worker would)."""
    from analytics.handlers import REFRESH_QUEUED
    from analytics.tasks import refresh_rollups

    for event_id in DomainEvent.objects.filter(dispatched_at__isnull=True).values_list("pk", flat=True):
        event_dispatch(event_id)
    assert RollupState.objects.filter(name=REFRESH_QUEUED).count() == 1  # one refresh for the whole burst
    refresh_rollups()
    assert not RollupState.objects.filter(name=REFRESH_QUEUED).exists()


def test_events_keep_rollups_current(generated):
    # given rollups built, when a new client is invoiced and pays through the services
    channel = generated["channels"][1]
    client = ClientFactory(channel=channel)
    before = selectors.analytics_summary(filters=Filters(dt.date(2025, 1, 1), dt.date(2026, 12, 31))).rows[0]
    draft = invoice_create_draft(
        client=client, lines=[{"description": "x", "quantity": D("2"), "unit_price": D("150.00")}]
    )
    issued = invoice_issue(invoice=draft, issue_date=dt.date(2025, 8, 10))
    payment_record(
        amount=issued.amount_total,
        received_at=dt.datetime(2025, 8, 12, 9, 0, tzinfo=MSK),
        client=client,
        allocations=[{"invoice": issued}],
    )
    _dispatch_all()
    # then the figures move by exactly that invoice and payment, and still equal the raw query
    after = selectors.analytics_summary(filters=Filters(dt.date(2025, 1, 1), dt.date(2026, 12, 31))).rows[0]
    assert after["revenue_accrual"] - before["revenue_accrual"] == D("300.00")
    assert after["revenue_cash"] - before["revenue_cash"] == issued.amount_total
    assert after["new_clients"] - before["new_clients"] == 1
    assert_rollups_equal_raw(generated)


def test_deal_manager_change_moves_its_invoices(generated):
    # given an invoiced deal, when its manager changes through the service and the event is handled
    deal = Deal.objects.filter(invoices__isnull=False, manager__isnull=False).first()
    other = next(m for m in generated["managers"] if m.pk != deal.manager_id)
    deal_update(deal=deal, manager=other)
    _dispatch_all()
    # then revenue by manager follows the deal, as the raw query says
    assert_rollups_equal_raw(generated)


def test_catch_up_folds_in_changes_no_event_reported(generated):
    # given a change written behind the handlers' back (its event never dispatched)
    RollupState.objects.filter(name="facts").update(watermark=dt.datetime(2020, 1, 1, tzinfo=MSK))
    client = generated["clients"][0]
    inv = invoice(client, dt.date(2025, 4, 4), D("777.00"), D("0"), D("7.00"))
    f = Filters(dt.date(2025, 4, 1), dt.date(2025, 4, 30))
    assert selectors.fact_sums(FactKind.ACCRUAL, f) != selectors.raw_fact_sums(FactKind.ACCRUAL, f)
    # when the beat task runs
    assert rollups.rollups_catch_up() == "refreshed"
    # then the rollups equal the raw query again
    assert inv.pk
    assert_rollups_equal_raw(generated)
