"""factory-boy factories for the canonical model. INNs are generated with valid checksums."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from analytics.models import MarketingSpend
from hub.models import Channel, Client, Company, Contact, Deal, Pipeline, Product, Stage
from invoicing.models import Payment

_rng = random.Random(1234)


def inn_with_checksum(base: str) -> str:
    """Complete a 9-digit base into a valid 10-digit company INN."""
    weights = (2, 4, 10, 3, 5, 9, 4, 6, 8)
    check = sum(int(d) * w for d, w in zip(base, weights, strict=True)) % 11 % 10
    return base + str(check)


def person_inn(base: str) -> str:
    """Complete a 10-digit base into a valid 12-digit personal INN."""
    w1 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
    d11 = sum(int(d) * w for d, w in zip(base, w1, strict=True)) % 11 % 10
    w2 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
    s = base + str(d11)
    d12 = sum(int(d) * w for d, w in zip(s, w2, strict=True)) % 11 % 10
    return s + str(d12)


def ogrn_with_checksum(base: str) -> str:
    """Complete a 12-digit base into a valid 13-digit OGRN."""
    return base + str(int(base) % 11 % 10)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"manager{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Company

    legal_name = "ООО «Ромашка»"
    short_name = "Ромашка"
    inn = "7707083893"
    kpp = "773601001"
    ogrn = "1027700132195"
    bank_name = "ПАО Сбербанк"
    bic = "044525225"
    settlement_account = "40702810938000000001"
    correspondent_account = "30101810400000000225"
    address = "Москва, ул. Вавилова, д. 19"
    is_default = True


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Channel
        django_get_or_create = ("code",)

    name = factory.Sequence(lambda n: f"Channel {n}")
    code = factory.Sequence(lambda n: f"channel-{n}")


class ClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Client

    kind = "company"
    name = factory.Sequence(lambda n: f"Client {n}")
    inn = factory.Sequence(lambda n: inn_with_checksum(f"{500000000 + n:09d}"))
    email = factory.Sequence(lambda n: f"client{n}@example.com")
    phone = factory.Sequence(lambda n: f"+7916{n % 10_000_000:07d}")
    country = "RU"


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    client = factory.SubFactory(ClientFactory)
    first_name = "Иван"
    last_name = factory.Sequence(lambda n: f"Петров{n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    price = Decimal("1000.00")
    unit_cost = Decimal("600.00")
    vat_rate = Decimal("22.00")


class PipelineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Pipeline
        django_get_or_create = ("name",)
        skip_postgeneration_save = True

    name = "Sales"
    is_default = True

    @factory.post_generation
    def stages(self, create, extracted, **kwargs):
        if not create or self.stages.exists():
            return
        for order, (code, name, won, lost, prob) in enumerate(
            [
                ("new", "New", False, False, 10),
                ("proposal", "Proposal", False, False, 40),
                ("negotiation", "Negotiation", False, False, 70),
                ("won", "Won", True, False, 100),
                ("lost", "Lost", False, True, 0),
            ],
            start=1,
        ):
            Stage.objects.create(
                pipeline=self, code=code, name=name, order=order, is_won=won, is_lost=lost, probability=prob
            )


class DealFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Deal

    title = factory.Sequence(lambda n: f"Deal {n}")
    client = factory.SubFactory(ClientFactory)
    company = factory.LazyFunction(
        lambda: Company.objects.filter(is_default=True).first() or CompanyFactory()
    )
    pipeline = factory.SubFactory(PipelineFactory)
    stage = factory.LazyAttribute(lambda o: o.pipeline.stages.order_by("order").first())


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment

    company = factory.LazyFunction(
        lambda: Company.objects.filter(is_default=True).first() or CompanyFactory()
    )
    amount = Decimal("100.00")
    received_at = factory.LazyFunction(timezone.now)


class MarketingSpendFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MarketingSpend

    channel = factory.SubFactory(ChannelFactory)
    month = dt.date(2026, 1, 1)
    amount = Decimal("50000.00")
