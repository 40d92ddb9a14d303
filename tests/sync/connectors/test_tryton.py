"""The Tryton connector on loopback: replies recorded from a real trytond 8.2 (tests/fixtures/tryton/)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from decimal import Decimal

import pytest
from werkzeug import Response

from sync.connectors import _tryton_rpc as wire
from sync.connectors.base import (
    AuthError,
    ConnectionConfig,
    MemoryCredentialStore,
    PermanentError,
    RecordError,
    RetryableError,
)
from sync.connectors.tryton import TrytonConnector
from sync.mapping.mapper import MappingError, Rule, to_canonical
from sync.mapping.transforms import Ref
from tests.sync.contract.tryton import FakeTryton, fixture, is_keyset, reply, setup


@pytest.fixture
def fake():
    return FakeTryton()


@pytest.fixture
def connector(httpserver, fake):
    spec = setup(httpserver, fake)
    config = ConnectionConfig(
        name="test-tryton",
        system="tryton",
        base_url=spec["base_url"],
        credentials=MemoryCredentialStore(spec["credentials"]),
        options=spec["options"],
        timeout_seconds=5,
        max_attempts=3,
    )
    instance = TrytonConnector(config)
    instance.sleeps = []
    instance.http.sleep = instance.sleeps.append
    return instance


def canonical(stream, data):
    return to_canonical(
        data, [Rule(**vars(m)) for m in TrytonConnector.default_mappings if m.entity == stream]
    )


def rpc_error(name, message):
    return lambda body: Response(
        json.dumps({"id": body["id"], "error": [name, [message, "", None]]}), content_type="application/json"
    )


# --- the wire format ---------------------------------------------------------------------------


def test_tagged_types_round_trip_and_datetimes_become_aware_utc():
    moscow = dt.timezone(dt.timedelta(hours=3))
    sent = json.loads(
        wire.dumps([Decimal("360.00"), dt.date(2026, 11, 28), dt.datetime(2026, 11, 28, 3, 0, tzinfo=moscow)])
    )

    assert sent[0] == {"__class__": "Decimal", "decimal": "360.00"}
    assert sent[1] == {"__class__": "date", "year": 2026, "month": 11, "day": 28}
    assert (sent[2]["day"], sent[2]["hour"]) == (28, 0)  # 03:00 in Moscow travels as 00:00 UTC, naive

    back = wire.loads(wire.dumps(sent))
    assert back[0] == Decimal("360.00")
    assert back[2] == dt.datetime(2026, 11, 28, 0, 0, tzinfo=dt.UTC)


def test_a_malformed_tagged_value_is_a_clear_error():
    with pytest.raises(ValueError, match="malformed Tryton Decimal"):
        wire.loads(b'{"result": {"__class__": "Decimal"}}')


# --- reading -----------------------------------------------------------------------------------


def test_fetch_logs_in_once_and_pages_by_keyset_to_the_end(connector, fake):
    records = list(connector.fetch("clients"))

    page1 = fixture("parties_page1")["result"]
    page2 = fixture("parties_page2")["result"]
    assert [r.external_id for r in records] == [str(p["id"]) for p in page1 + page2]
    assert fake.methods().count("common.db.login") == 1
    session = base64.b64decode(fake.calls[-1]["authorization"].removeprefix("Session ")).decode()
    uid, key = fixture("login")["result"][:2]
    assert session == f"admin:{uid}:{key}"  # login:uid:key, as common.db.login answered
    searches = [c for c in fake.calls if c["method"] == "model.party.party.search_read"]
    assert len(searches) == 2
    domain, offset, limit, order = searches[1]["params"][:4]
    assert (offset, limit, order) == (0, 2, [["last_modified_at", "ASC"], ["id", "ASC"]])
    keyset = domain[-1]
    last = page1[-1]
    assert keyset[0] == "OR"
    assert keyset[1] == [["last_modified_at", ">", last["last_modified_at"]]]
    assert keyset[2] == [["last_modified_at", "=", last["last_modified_at"]], ["id", ">", last["id"]]]
    assert all(r.updated_at.tzinfo is not None for r in records)
    # archived parties too: through the context (an `active` clause is ignored next to the keyset)
    assert all(c["params"][-1]["active_test"] is False for c in searches)


def test_parties_carry_identifiers_contact_mechanisms_and_addresses(connector):
    records = {r.external_id: r for r in connector.fetch("clients")}
    romashka = next(r for r in records.values() if r.data["name"] == "ООО Ромашка")

    assert canonical("clients", romashka.data) == {
        "name": "ООО Ромашка",
        "inn": "7707083893",
        "email": "buh@romashka.test",
        "phone": "+74951234567",
        "address": "ул. Тверская, 1",
        "archived": False,
    }
    assert all("country." not in a for a in romashka.data["addresses"])  # dotted reads flattened


def test_since_sends_the_write_or_create_date_filter_in_utc(connector, fake):
    since = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))

    list(connector.fetch("invoices", since=since))

    domain = next(c for c in fake.calls if c["method"] == "model.account.invoice.search_read")["params"][0]
    utc = {
        "__class__": "datetime",
        "year": 2026,
        "month": 11,
        "day": 28,
        "hour": 0,
        "minute": 0,
        "second": 0,
        "microsecond": 0,
    }
    assert domain[0] == ["type", "=", "out"]
    assert domain[1] == ["OR", [["write_date", ">=", utc]], [["create_date", ">=", utc]]]


def test_invoices_and_payments_map_to_canonical(connector):
    (invoice,) = list(connector.fetch("invoices"))
    mapped = canonical("invoices", invoice.data)
    assert mapped["status"] == "paid"
    assert (mapped["total"], mapped["vat_total"], mapped["amount_due"]) == (
        Decimal("360.00"),
        Decimal("60.00"),
        Decimal("0.00"),
    )
    assert mapped["number"] == "HUB-2026-0001"  # the hub's number travels in `reference`
    assert mapped["currency"] == "EUR"

    payments = [canonical("payments", r.data) for r in connector.fetch("payments")]
    assert sorted(p["amount"] for p in payments) == [Decimal("100.00"), Decimal("260.00")]
    assert {p["invoice"] for p in payments} == {Ref("invoices", invoice.external_id)}
    assert all(p["received_at"].tzinfo is not None for p in payments)


def test_a_page_that_repeats_is_refused(connector, fake):
    fake.overrides["model.party.party.search_read"] = fixture("parties_page1")["result"]

    with pytest.raises(PermanentError, match="repeats"):
        list(connector.fetch("clients"))


def test_503_with_retry_after_is_retried_after_the_asked_delay(connector, fake, httpserver):
    answered = []

    def flaky(body):
        if not answered:
            answered.append(1)
            return Response("busy", status=503, headers={"Retry-After": "7"})
        return reply(fixture("invoices")["result"], body["id"])

    fake.overrides["model.account.invoice.search_read"] = flaky

    records = list(connector.fetch("invoices"))

    assert len(records) == 1
    assert 7.0 in connector.sleeps


def test_an_expired_session_is_renewed_once_for_concurrent_callers(connector, fake):
    # given a session the server has expired, and two workers using it at the same time
    stale = "Session " + base64.b64encode(b"admin:1:stale").decode()
    connector._context = {"company": 1, "language": "en"}
    connector._session = stale
    fake.expired.add(stale)
    fake.overrides["model.party.party.search"] = [1]
    barrier = threading.Barrier(2)
    errors = []

    def work():
        try:
            barrier.wait()
            connector.model("party.party", "search", [], 0, 1, None)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then both succeed and only one new login happened
    assert errors == []
    assert fake.methods().count("common.db.login") == 1
    assert fake.calls[-1]["authorization"] != stale


def test_refused_login_is_an_auth_error_with_a_hint(connector, fake):
    fake.overrides["common.db.login"] = lambda body: Response("", status=401)

    with pytest.raises(AuthError, match="check the username and password"):
        connector.check()


def test_missing_credentials_are_an_auth_error(httpserver):
    config = ConnectionConfig(
        name="t", system="tryton", base_url=httpserver.url_for("/"), credentials=MemoryCredentialStore({})
    )

    with pytest.raises(AuthError, match="database, username, password"):
        TrytonConnector(config).check()


def test_rpc_errors_are_classified(connector, fake):
    connector._context = {"company": 1, "language": "en"}
    fake.overrides["model.party.party.read"] = lambda body: Response(
        json.dumps(fixture("error_missing_record")), content_type="application/json"
    )
    with pytest.raises(PermanentError, match="don't exist") as caught:
        connector.model("party.party", "read", [999999], ["name"])
    assert not isinstance(caught.value, RecordError)

    fake.overrides["model.party.party.create"] = rpc_error(
        "UserError", 'The value "x" for field "Type" is not valid.'
    )
    with pytest.raises(RecordError, match="Type"):
        connector.upsert("clients", {"name": "X"})

    fake.overrides["model.party.party.write"] = rpc_error("ConcurrencyException", "Records were modified")
    with pytest.raises(RetryableError):
        connector.upsert("clients", {"name": "X"}, external_id="5")


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("<html><title>Bad Gateway</title></html>", "text/html", "HTML page"),
        ('{"id": 1, "result": [{"id": 6, "na', "application/json", "malformed JSON"),
        ('{"jsonrpc": "2.0"}', "application/json", "not a JSON-RPC reply"),
    ],
)
def test_bad_replies_are_clear_permanent_errors(connector, fake, body, content_type, expected):
    fake.overrides["model.account.invoice.search_read"] = lambda _: Response(body, content_type=content_type)

    with pytest.raises(PermanentError, match=expected):
        list(connector.fetch("invoices"))


def test_an_unknown_invoice_state_fails_in_the_mapper_not_in_fetch(connector, fake):
    rows = fixture("invoices")["result"]
    rows[0]["state"] = "disputed"
    fake.overrides["model.account.invoice.search_read"] = lambda body: reply(
        [] if is_keyset(body) else rows, body["id"]
    )

    (record,) = list(connector.fetch("invoices"))

    with pytest.raises(MappingError, match="disputed"):
        canonical("invoices", record.data)


# --- writing -----------------------------------------------------------------------------------


def test_push_invoice_builds_a_complete_raw_create_then_posts_it(connector, fake):
    fake.overrides.update(
        {
            "model.party.address.search": [41],
            "model.account.account.search": [39],
            "model.account.journal.search": [1],
            "model.currency.currency.search": [1],
            "model.account.tax.search": [7],
            "model.account.invoice.create": [12],
            "model.account.invoice.read": [{"id": 12, "state": "draft"}],
            "model.account.invoice.validate_invoice": None,
            "model.account.invoice.post": None,
        }
    )

    invoice = connector.upsert(
        "invoices",
        {
            "reference": "HUB-2026-0001",
            "party": 9,
            "invoice_date": "2026-11-28",
            "currency_code": "EUR",
            "lines": [
                {"description": "Consulting", "quantity": "3", "unit_price": "100.00", "vat_rate": "20.00"}
            ],
        },
    )
    connector.after_push("invoices", invoice, {"status": "issued"})

    assert invoice == "12"
    (values,) = next(c for c in fake.calls if c["method"] == "model.account.invoice.create")["params"][0]
    assert values["type"] == "out"
    assert (values["party"], values["invoice_address"], values["account"], values["journal"]) == (
        9,
        41,
        39,
        1,
    )
    assert values["reference"] == "HUB-2026-0001"
    assert values["invoice_date"] == {"__class__": "date", "year": 2026, "month": 11, "day": 28}
    (line,) = values["lines"][0][1]
    assert line["unit_price"] == {"__class__": "Decimal", "decimal": "100.00"}
    assert (line["quantity"], line["account"], line["taxes"]) == (3.0, 39, [["add", [7]]])
    tax_search = next(c for c in fake.calls if c["method"] == "model.account.tax.search")["params"][0]
    assert ["rate", "=", {"__class__": "Decimal", "decimal": "0.2000"}] in tax_search
    assert fake.methods()[-2:] == ["model.account.invoice.validate_invoice", "model.account.invoice.post"]


def test_a_draft_hub_invoice_is_not_posted(connector, fake):
    fake.overrides["model.account.invoice.read"] = [{"id": 12, "state": "draft"}]

    connector.after_push("invoices", "12", {"status": "draft"})

    assert "model.account.invoice.post" not in fake.methods()


def test_an_invoice_for_a_party_not_in_tryton_is_a_record_error(connector):
    with pytest.raises(RecordError, match="push the client first"):
        connector.upsert("invoices", {"reference": "HUB-1", "party": None, "lines": []})


def test_pay_invoice_drives_the_wizard_through_a_partial_payment(connector, fake):
    fake.overrides.update(
        {
            "model.account.invoice.payment.method.search": [1],
            "wizard.account.invoice.pay.create": [5, "start", "end"],
            "wizard.account.invoice.pay.delete": None,
        }
    )
    states = []

    def execute(body):
        state = body["params"][2]
        states.append(state)
        if state == "start":
            return reply(
                {
                    "view": {
                        "defaults": {
                            "amount": {"__class__": "Decimal", "decimal": "360.00"},
                            "currency": 1,
                            "company.": {"rec_name": "X"},
                        }
                    }
                },
                body["id"],
            )
        if state == "choice":
            return reply(
                {"view": {"defaults": {"type": "partial", "lines": [9], "invoice": 12}, "state": "ask"}},
                body["id"],
            )
        return reply({}, body["id"])

    fake.overrides["wizard.account.invoice.pay.execute"] = execute

    connector.pay_invoice("12", Decimal("100.00"), dt.date(2026, 11, 28), description="п/п 17")

    assert states == ["start", "choice", "pay"]
    pay = [c for c in fake.calls if c["method"] == "wizard.account.invoice.pay.execute"][-1]
    data, context = pay["params"][1], pay["params"][3]
    assert data["start"]["amount"] == {"__class__": "Decimal", "decimal": "100.00"}
    assert data["start"]["description"] == "п/п 17"
    assert "company." not in data["start"]
    assert data["ask"]["type"] == "partial"
    assert (context["active_model"], context["active_id"]) == ("account.invoice", 12)
    assert fake.methods()[-1] == "wizard.account.invoice.pay.delete"
