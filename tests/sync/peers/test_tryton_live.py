"""The Tryton connector against a real trytond 8.2 (scripts/peers/tryton_up.sh)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from sync.connectors.base import AuthError
from sync.mapping.mapper import Rule, to_canonical, to_remote
from sync.mapping.transforms import Ref

pytestmark = pytest.mark.peers

INN = "7707083893"  # a valid INN (Sberbank's): Tryton checks the checksum of ru_vat identifiers


def rules(connector, stream):
    return [Rule(**vars(m)) for m in connector.default_mappings if m.entity == stream]


def canonical(connector, stream, record):
    return to_canonical(record.data, rules(connector, stream))


def remote(connector, stream, values):
    """The vendor payload the engine would push: the default mappings applied outbound."""
    return to_remote(values, rules(connector, stream), resolve=lambda entity, ref: ref.external_id)


def test_party_invoice_payment_round_trip(tryton):
    # given a real Tryton and the moment we start
    tryton.check()
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    name = f"ООО Ромашка {uuid.uuid4().hex[:8]}"

    # when the hub pushes a client as a party (through the default mappings)
    party = tryton.upsert(
        "clients",
        remote(
            tryton,
            "clients",
            {
                "name": name,
                "inn": INN,
                "email": "buh@romashka.test",
                "phone": "+74951234567",
                "address": "ул. Тверская, 1",
                "archived": False,
            },
        ),
    )

    # then the change feed brings it back, mapped to the canonical client
    clients = [r for r in tryton.fetch("clients", since=since) if r.external_id == party]
    assert len(clients) == 1
    assert clients[0].updated_at is not None and clients[0].updated_at.tzinfo is not None
    assert canonical(tryton, "clients", clients[0]) == {
        "name": name,
        "inn": INN,
        "email": "buh@romashka.test",
        "phone": "+74951234567",
        "address": "ул. Тверская, 1",
        "archived": False,
    }

    # when the hub pushes an issued invoice for it (3 × 100.00 + 20 % VAT)
    number = f"HUB-{uuid.uuid4().hex[:8]}"
    hub_invoice = {
        "number": number,
        "client": Ref("clients", party),
        "issue_date": dt.datetime.now(dt.UTC).date(),
        "currency": "EUR",
        "purpose": "Deal: website",
        "status": "issued",
        "lines": [
            {
                "description": "Consulting",
                "quantity": Decimal(3),
                "unit_price": Decimal("100.00"),
                "vat_rate": Decimal(20),
            }
        ],
    }
    invoice = tryton.upsert("invoices", remote(tryton, "invoices", hub_invoice))
    tryton.after_push("invoices", invoice, hub_invoice)

    # then Tryton validated and posted (numbered) it
    posted = canonical(tryton, "invoices", tryton.get("invoices", invoice))
    assert posted["status"] == "issued"
    assert posted["number"] == number
    assert (posted["net_total"], posted["vat_total"], posted["total"]) == (
        Decimal("300.00"),
        Decimal("60.00"),
        Decimal("360.00"),
    )
    assert posted["amount_due"] == Decimal("360.00")
    assert posted["client"] == Ref("clients", party)
    assert tryton.get("invoices", invoice).data["number"]  # Tryton's own number, set by post

    # when the accountant pays it in Tryton, in two transfers
    today = dt.datetime.now(dt.UTC).date()
    tryton.pay_invoice(invoice, Decimal("100.00"), today, description="п/п 17")
    tryton.pay_invoice(invoice, Decimal("260.00"), today, description="п/п 18")

    # then the invoice is paid and both payments come back through the change feed, tied to it
    paid = canonical(tryton, "invoices", tryton.get("invoices", invoice))
    assert paid["status"] == "paid"
    assert paid["amount_due"] == Decimal("0.00")
    payments = [
        canonical(tryton, "payments", r)
        for r in tryton.fetch("payments", since=since)
        if r.data["invoice_payment"] == int(invoice)
    ]
    assert sorted((p["amount"], p["reference"]) for p in payments) == [
        (Decimal("100.00"), "п/п 17"),
        (Decimal("260.00"), "п/п 18"),
    ]
    assert {p["invoice"] for p in payments} == {Ref("invoices", invoice)}
    assert {p["client"] for p in payments} == {Ref("clients", party)}
    assert all(p["currency"] == "EUR" and p["received_at"].date() == today for p in payments)


def test_change_feed_is_ordered_and_bounded_by_since(tryton):
    # given two parties created one after the other
    first = tryton.upsert("clients", {"name": f"Feed A {uuid.uuid4().hex[:6]}"})
    second = tryton.upsert("clients", {"name": f"Feed B {uuid.uuid4().hex[:6]}"})
    first_record = tryton.get("clients", first)

    # when reading changes since the first one's change time
    changed = list(tryton.fetch("clients", since=first_record.updated_at))

    # then both come, oldest change first, and nothing older
    ids = [r.external_id for r in changed]
    assert ids.index(first) < ids.index(second)
    assert all(r.updated_at >= first_record.updated_at for r in changed)

    # when the first is edited, it moves behind the second in the feed
    tryton.upsert("clients", {"name": "Feed A (renamed)"}, external_id=first)
    later = [r.external_id for r in tryton.fetch("clients", since=first_record.updated_at)]
    assert later.index(second) < later.index(first)


def test_archived_party_is_read_as_archived(tryton):
    party = tryton.upsert("clients", {"name": f"To archive {uuid.uuid4().hex[:6]}"})

    tryton.delete("clients", party)

    assert canonical(tryton, "clients", tryton.get("clients", party))["archived"] is True


def test_wrong_password_is_an_auth_error(tryton_env):
    from tests.sync.peers.conftest import make

    connector = make(
        "tryton",
        tryton_env["TRYTON_URL"],
        {
            "database": tryton_env["TRYTON_DATABASE"],
            "username": tryton_env["TRYTON_USER"],
            "password": "wrong",
        },
    )

    with pytest.raises(AuthError, match="check the username and password"):
        connector.check()


def test_small_pages_read_the_same_parties_as_one_big_page_archived_included(tryton_env, tryton):
    from tests.sync.peers.conftest import make

    # given at least one archived party, and a connector paging two by two
    tryton.delete("clients", tryton.upsert("clients", {"name": f"Archived {uuid.uuid4().hex[:6]}"}))
    small = make(
        "tryton",
        tryton_env["TRYTON_URL"],
        {
            "database": tryton_env["TRYTON_DATABASE"],
            "username": tryton_env["TRYTON_USER"],
            "password": tryton_env["TRYTON_PASSWORD"],
        },
        page_size=2,
    )

    # when both read every party
    paged = [r.external_id for r in small.fetch("clients")]
    whole = [r.external_id for r in tryton.fetch("clients")]

    # then the keyset pages lose and repeat nothing, archived parties included
    assert paged == whole
    assert any(r.data["active"] is False for r in tryton.fetch("clients"))
