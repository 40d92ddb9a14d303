"""The hand-computed dataset: small enough to work every figure out on paper (see test_figures.py)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal as D

from analytics.models import CurrencyRate, MarketingSpend
from hub.models import Channel, Client, Deal, DealStatus
from invoicing.models import Invoice, InvoiceKind, InvoiceStatus, Payment, PaymentAllocation
from tests.factories import ClientFactory, CompanyFactory, PipelineFactory, UserFactory

MSK = zoneinfo.ZoneInfo("Europe/Moscow")
_numbers = iter(range(1, 1000))


def invoice(client, issued, net, vat, cost, *, currency="RUB", status=InvoiceStatus.ISSUED, paid=D("0"),
            kind=InvoiceKind.INVOICE, deal=None):  # fmt: skip
    return Invoice.objects.create(
        company=client._company,
        client=client,
        deal=deal,
        kind=kind,
        number=None if status == InvoiceStatus.DRAFT else f"T-{next(_numbers)}",
        status=status,
        currency=currency,
        issue_date=issued,
        amount_net=net,
        vat_amount=vat,
        amount_total=net + vat,
        cost_total=cost,
        amount_paid=paid,
    )


def pay(inv, day, amount):
    p = Payment.objects.create(
        company=inv.company,
        client=inv.client,
        amount=amount,
        currency=inv.currency,
        received_at=dt.datetime(day.year, day.month, day.day, 12, 0, tzinfo=MSK),
        amount_allocated=amount,
        status="allocated",
    )
    PaymentAllocation.objects.create(payment=p, invoice=inv, amount=amount)
    return p


def build() -> dict:
    company = CompanyFactory()
    maria = UserFactory(username="maria")
    pipeline = PipelineFactory()
    ads = Channel.objects.create(name="Ads", code="ads")
    referral = Channel.objects.create(name="Referral", code="referral")
    expo = Channel.objects.create(name="Expo", code="expo")
    c1 = ClientFactory(name="c1", channel=ads, manager=maria)
    c2 = ClientFactory(name="c2", channel=ads)
    c3 = ClientFactory(name="c3", channel=referral)
    for c in (c1, c2, c3):
        c._company = company
    CurrencyRate.objects.create(currency="USD", date=dt.date(2026, 1, 1), rate=D("90"))
    CurrencyRate.objects.create(currency="USD", date=dt.date(2026, 2, 10), rate=D("100"))

    stages = {s.code: s for s in pipeline.stages.all()}

    def deal(client, code, status, created):
        d = Deal.objects.create(
            title=f"{client.name} {code}", client=client, company=company, pipeline=pipeline,
            stage=stages[code], status=status, manager=client.manager, channel=client.channel,
            won_at=created if status == DealStatus.WON else None,
            lost_at=created if status == DealStatus.LOST else None,
        )  # fmt: skip
        Deal.objects.filter(pk=d.pk).update(created_at=created)
        return d

    t = dt.datetime(2026, 1, 5, 10, 0, tzinfo=MSK)
    d1 = deal(c1, "won", DealStatus.WON, t)
    deal(c2, "won", DealStatus.WON, t)
    deal(c3, "proposal", DealStatus.OPEN, t)
    deal(c3, "new", DealStatus.OPEN, t)
    deal(c2, "lost", DealStatus.LOST, t)

    inv1 = invoice(
        c1, dt.date(2026, 1, 10), D("1000"), D("220"), D("600"), status="paid", paid=D("1220"), deal=d1
    )
    pay(inv1, dt.date(2026, 1, 15), D("1220"))
    inv2 = invoice(
        c3, dt.date(2026, 1, 20), D("10"), D("0"), D("4"), currency="USD", status="paid", paid=D("10")
    )
    pay(inv2, dt.date(2026, 2, 12), D("10"))
    inv3 = invoice(c1, dt.date(2026, 2, 5), D("500"), D("110"), D("200"), status="paid", paid=D("610"))
    pay(inv3, dt.date(2026, 2, 20), D("610"))
    inv4 = invoice(
        c2, dt.date(2026, 2, 10), D("2000"), D("440"), D("1500"), status="partially_paid", paid=D("1000")
    )
    pay(inv4, dt.date(2026, 3, 3), D("1000"))
    invoice(c1, dt.date(2026, 2, 25), D("100"), D("22"), D("40"), kind=InvoiceKind.CREDIT_NOTE)
    invoice(c2, dt.date(2026, 2, 11), D("9999"), D("0"), D("1"), status=InvoiceStatus.VOID)
    invoice(c1, None, D("777"), D("0"), D("1"), status=InvoiceStatus.DRAFT)
    inv7 = invoice(c1, dt.date(2026, 3, 5), D("300"), D("66"), D("100"), status="paid", paid=D("366"))
    pay(inv7, dt.date(2026, 3, 10), D("366"))
    invoice(c3, dt.date(2026, 4, 1), D("20"), D("0"), D("5"), currency="USD")
    invoice(c2, dt.date(2025, 12, 1), D("100"), D("22"), D("50"))

    MarketingSpend.objects.create(channel=ads, month=dt.date(2026, 1, 1), amount=D("3000"))
    MarketingSpend.objects.create(channel=ads, month=dt.date(2026, 2, 1), amount=D("1000"))
    MarketingSpend.objects.create(channel=referral, month=dt.date(2026, 1, 1), amount=D("50"), currency="USD")
    return {"ads": ads, "referral": referral, "expo": expo, "maria": maria, "pipeline": pipeline,
            "clients": (c1, c2, c3), "company": company}  # fmt: skip


__all__ = ["Client", "build"]
