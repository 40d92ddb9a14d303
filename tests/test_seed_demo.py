"""``seed_demo`` (deterministic, valid, consistent, once only) and ``ensure_admin``."""

import datetime as dt
import hashlib
import io
from collections import Counter, defaultdict
from decimal import Decimal

import phonenumbers
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db.models import Sum
from stdnum.ru import inn as stdnum_inn
from stdnum.ru import ogrn as stdnum_ogrn

from analytics.models import MarketingSpend
from hub import demo
from hub.models import (
    Channel,
    Client,
    Company,
    Contact,
    Deal,
    DealLine,
    DomainEvent,
    Pipeline,
    Product,
    Stage,
)
from hub.pricing import document_totals, line_totals
from invoicing.models import Invoice, InvoiceLine, NumberSequence, Payment, PaymentAllocation
from tests.factories import ClientFactory

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 3, 15)


def seed(today: dt.date = TODAY) -> str:
    out = io.StringIO()
    call_command("seed_demo", f"--today={today:%Y-%m-%d}", stdout=out)
    return out.getvalue()


def digest() -> str:
    """A fingerprint of the seeded data by natural keys (ids differ between databases)."""
    h = hashlib.sha256()
    rows = [
        *Client.objects.order_by("name", "inn").values_list(
            "name", "legal_name", "inn", "kpp", "ogrn", "foreign_tax_id", "phone", "email", "created_at"
        ),
        *Contact.objects.order_by("client__name", "last_name", "first_name", "email").values_list(
            "client__name", "last_name", "first_name", "email", "phone"
        ),
        *Deal.objects.order_by("created_at", "title").values_list(
            "title",
            "client__inn",
            "status",
            "stage__code",
            "amount_net",
            "vat_amount",
            "amount_total",
            "cost_total",
            "created_at",
            "updated_at",
            "won_at",
            "lost_at",
            "utm_source",
        ),
        *Invoice.objects.order_by("number").values_list(
            "number",
            "client__name",
            "amount_total",
            "amount_paid",
            "status",
            "issue_date",
            "due_date",
            "paid_at",
        ),
        *Payment.objects.order_by("external_id").values_list(
            "external_id", "amount", "received_at", "purpose"
        ),
        *MarketingSpend.objects.order_by("channel__code", "month").values_list(
            "channel__code", "month", "amount"
        ),
    ]
    for row in rows:
        h.update(repr(row).encode())
    return h.hexdigest()


def delete_demo() -> None:
    PaymentAllocation.objects.all().delete()
    Payment.objects.all().delete()
    InvoiceLine.objects.all().delete()
    Invoice.objects.all().delete()
    NumberSequence.objects.all().delete()
    DealLine.objects.all().delete()
    Deal.objects.all().delete()
    Contact.objects.all().delete()
    Client.objects.all().delete()
    MarketingSpend.objects.all().delete()
    Product.objects.all().delete()
    Stage.objects.all().delete()
    Pipeline.objects.all().delete()
    Channel.objects.all().delete()
    Company.objects.all().delete()
    get_user_model().objects.filter(username__in=[m[0] for m in demo.MANAGERS]).delete()


def test_seed_demo_creates_a_consistent_valid_data_set():
    output = seed()
    assert "200 clients" in output and "1000 deals" in output

    company = Company.objects.get()
    assert company.is_default and stdnum_inn.is_valid(company.inn) and stdnum_ogrn.is_valid(company.ogrn)
    assert (
        company.bic == "044525225" and len(company.settlement_account) == 20 and company.correspondent_account
    )

    managers = get_user_model().objects.filter(username__in=[m[0] for m in demo.MANAGERS])
    assert managers.count() == 4
    assert set(Group.objects.get(name="Manager").user_set.all()) == set(managers)
    assert not any(m.has_usable_password() for m in managers)

    stages = {s.code: s for s in Stage.objects.filter(pipeline__name="Продажи / Sales")}
    assert set(stages) == {"new", "qualified", "proposal", "negotiation", "won", "lost"}
    assert stages["won"].is_won and stages["lost"].is_lost

    assert Channel.objects.count() == 5
    assert MarketingSpend.objects.count() == 18 * 5
    months = sorted(set(MarketingSpend.objects.values_list("month", flat=True)))
    assert len(months) == 18 and months[-1] == TODAY.replace(day=1) and all(m.day == 1 for m in months)

    products = list(Product.objects.all())
    assert len(products) >= 20
    assert sum(p.unit_cost < p.price for p in products) >= len(products) - 2
    assert {p.vat_rate for p in products} == {Decimal("22.00"), Decimal("10.00"), Decimal("0.00")}

    # Clients: valid Russian requisites, foreign ones without an INN, phones valid in E.164.
    clients = list(Client.objects.all())
    assert len(clients) == 200
    foreign = [c for c in clients if c.country != "RU"]
    assert 15 <= len(foreign) <= 25 and {c.country for c in foreign} <= {"DE", "US", "GB", "KZ"}
    assert all(c.foreign_tax_id and not c.inn for c in foreign)
    russian = [c for c in clients if c.country == "RU"]
    assert all(stdnum_inn.is_valid(c.inn) and stdnum_ogrn.is_valid(c.ogrn) for c in russian)
    companies = [c for c in russian if len(c.inn) == 10]
    assert len(companies) > 100 and all(len(c.kpp) == 9 and len(c.ogrn) == 13 for c in companies)
    entrepreneurs = [c for c in russian if len(c.inn) == 12]
    assert entrepreneurs and all(c.kind == "person" and not c.kpp for c in entrepreneurs)
    contacts = list(Contact.objects.all())
    for phone in [c.phone for c in clients] + [c.phone for c in contacts]:
        parsed = phonenumbers.parse(phone)
        assert phonenumbers.is_valid_number(parsed)
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == phone
    for obj in clients + contacts:  # e-mail format and the model's own constraints
        obj.full_clean(exclude=["manager", "channel", "merged_into", "client"])
    per_client = Counter(c.client_id for c in contacts)
    assert all(1 <= per_client[c.pk] <= 2 for c in clients)
    assert all(c.manager_id and c.channel_id for c in clients)

    # Deals: spread over the 18 months, statuses in step with stages and timestamps, totals from lines.
    deals = list(Deal.objects.select_related("stage"))
    assert len(deals) == 1000
    status = Counter(d.status for d in deals)
    assert 300 <= status["won"] <= 420 and 150 <= status["lost"] <= 280 and status["open"] >= 300
    assert all(months[0] <= d.created_at.date() < TODAY for d in deals)
    for d in deals:
        assert d.stage.is_won == (d.status == "won") and d.stage.is_lost == (d.status == "lost")
        assert (d.won_at is not None) == (d.status == "won") and (d.lost_at is not None) == (
            d.status == "lost"
        )
        closed = d.won_at or d.lost_at
        assert closed is None or d.created_at < closed < dt.datetime.combine(TODAY, dt.time(), closed.tzinfo)
    assert Deal.objects.exclude(utm_source="").exists()

    lines_by_deal = defaultdict(list)
    for line in DealLine.objects.all():
        lines_by_deal[line.deal_id].append(line)
    for d in deals:
        lines = lines_by_deal[d.pk]
        assert 1 <= len(lines) <= 4
        recomputed = document_totals(
            line_totals(
                quantity=ln.quantity,
                unit_price=ln.unit_price,
                discount_pct=ln.discount_pct,
                vat_rate=ln.vat_rate,
                unit_cost=ln.unit_cost,
                vat_mode=d.vat_mode,
            )
            for ln in lines
        )
        stored_lines = document_totals(lines)
        for field in ("amount_net", "vat_amount", "amount_total", "cost_total"):
            assert getattr(d, field) == getattr(recomputed, field) == getattr(stored_lines, field), (d, field)

    # Invoices: gapless numbers per year in order of issue, totals equal to their lines and the deal.
    invoices = list(Invoice.objects.select_related("deal").order_by("issued_at"))
    assert 0.8 * status["won"] <= len(invoices) <= status["won"]
    by_year = defaultdict(list)
    for inv in invoices:
        assert inv.deal.status == "won" and inv.amount_total == inv.deal.amount_total
        assert inv.number == f"{inv.issue_date.year}-{inv.sequence_number:05d}"
        assert inv.sequence_year == inv.issue_date.year
        assert inv.purpose.startswith(f"Оплата по счёту № {inv.number}")
        assert 5 <= (inv.due_date - inv.issue_date).days <= 14
        by_year[inv.sequence_year].append(inv.sequence_number)
    sequences = dict(NumberSequence.objects.filter(prefix="").values_list("year", "last_number"))
    assert set(sequences) == set(by_year)
    for year, numbers in by_year.items():
        assert numbers == list(range(1, len(numbers) + 1)), year  # consecutive, in order of issue
        assert sequences[year] == len(numbers)
    line_sums = {
        row["invoice"]: row
        for row in InvoiceLine.objects.values("invoice").annotate(
            net=Sum("amount_net"), total=Sum("amount_total")
        )
    }
    assert all(
        line_sums[i.pk]["total"] == i.amount_total and line_sums[i.pk]["net"] == i.amount_net
        for i in invoices
    )

    # Payments: what is paid equals what is allocated; some partial, some overdue.
    allocated = dict(
        PaymentAllocation.objects.values("invoice").annotate(s=Sum("amount")).values_list("invoice", "s")
    )
    for inv in invoices:
        assert inv.amount_paid == allocated.get(inv.pk, Decimal("0.00"))
        expected = (
            "paid" if inv.amount_paid == inv.amount_total else "partially_paid" if inv.amount_paid else None
        )
        assert inv.status == expected if expected else inv.status in ("issued", "sent")
        assert (inv.paid_at is not None) == (inv.status == "paid")
    statuses = Counter(i.status for i in invoices)
    assert statuses["paid"] > len(invoices) / 2 and statuses["partially_paid"] >= 5
    overdue = [i for i in invoices if i.status in ("issued", "sent", "partially_paid") and i.due_date < TODAY]
    assert len(overdue) >= 5
    per_payment = dict(
        PaymentAllocation.objects.values("payment").annotate(s=Sum("amount")).values_list("payment", "s")
    )
    payments = list(Payment.objects.all())
    for p in payments:
        assert p.source == "bank" and p.external_id.startswith("bank:")
        assert p.amount_allocated == per_payment.get(p.pk, Decimal("0.00")) <= p.amount
        assert p.status == (
            "allocated"
            if p.amount_allocated == p.amount
            else "partially_allocated"
            if p.amount_allocated
            else "unallocated"
        )
        assert p.received_at.date() < TODAY
    assert len({p.external_id for p in payments}) == len(payments)
    paying = [p for p in payments if p.pk in per_payment]
    assert all("Оплата по счёту №" in p.purpose and p.payer_inn == p.client.inn for p in paying)

    assert not DomainEvent.objects.exists()  # seeding bypasses the services and their events


def test_seed_demo_runs_once_and_is_deterministic():
    seed()
    first = digest()
    counts = {
        m: m.objects.count() for m in (Client, Contact, Deal, DealLine, Invoice, Payment, MarketingSpend)
    }

    assert seed().strip() == "Demo data already present; nothing to do."
    assert {m: m.objects.count() for m in counts} == counts

    delete_demo()
    assert digest() != first
    seed()
    assert digest() == first


def test_seed_demo_leaves_a_database_with_other_data_alone():
    ClientFactory()
    assert "only seeded into an empty database" in seed()
    assert not Deal.objects.exists() and not Company.objects.exists() and Client.objects.count() == 1


def test_seed_demo_rejects_a_malformed_date():
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("seed_demo", "--today=15.03.2026", stdout=io.StringIO())


# --- ensure_admin ------------------------------------------------------------------------------


@pytest.fixture
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def ensure_admin() -> str:
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue().strip()


def test_ensure_admin_prints_a_generated_password_once(monkeypatch, fast_hasher):
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("ADMIN_USERNAME", raising=False)
    first = ensure_admin()
    assert first.startswith("Administrator: admin / ")
    password = first.removeprefix("Administrator: admin / ")
    assert len(password) >= 12

    user = get_user_model().objects.get(username="admin")
    assert user.is_superuser and user.is_staff and user.check_password(password)
    assert user.groups.filter(name="Administrator").exists()
    hashed = user.password

    second = ensure_admin()
    assert second == "Administrator admin exists (password unchanged)"
    assert password not in second
    user.refresh_from_db()
    assert user.password == hashed


def test_ensure_admin_takes_the_password_from_the_environment(monkeypatch, fast_hasher):
    monkeypatch.setenv("ADMIN_USERNAME", "boss")
    monkeypatch.setenv("ADMIN_PASSWORD", "first-Secret-42")
    assert "first-Secret-42" not in ensure_admin()
    user = get_user_model().objects.get(username="boss")
    assert user.is_superuser and user.check_password("first-Secret-42")

    hashed = user.password
    assert ensure_admin() == "Administrator boss exists (password unchanged)"
    user.refresh_from_db()
    assert user.password == hashed  # an unchanged password is not re-hashed (sessions survive restarts)

    monkeypatch.setenv("ADMIN_PASSWORD", "second-Secret-42")
    assert "password set from ADMIN_PASSWORD" in ensure_admin()
    user.refresh_from_db()
    assert user.check_password("second-Secret-42") and not user.check_password("first-Secret-42")


@pytest.mark.django_db
def test_demo_invoices_carry_vat_rates_valid_on_their_issue_date():
    # given the demo over a period that spans the 2026 change from 20 % to 22 %
    from invoicing.models import Invoice
    from invoicing.services import vat_rates_valid

    call_command("seed_demo", "--today", "2026-03-15", stdout=io.StringIO())
    # then every issued invoice's lines use a rate in force on its issue date
    checked = 0
    for invoice in Invoice.objects.exclude(vat_mode="none").prefetch_related("lines"):
        valid = vat_rates_valid(on=invoice.issue_date)
        assert {ln.vat_rate for ln in invoice.lines.all()} <= valid, invoice.number
        checked += 1
    assert checked > 100
