"""MoySklad connector against a loopback server speaking JSON API 1.2."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from decimal import Decimal

import pytest
from werkzeug import Response

from sync.connectors import connector_class
from sync.connectors.base import AuthError, ConnectionConfig, MemoryCredentialStore, PermanentError
from sync.mapping.mapper import MappingError, Rule, to_canonical, to_remote
from sync.mapping.transforms import Ref
from tests.sync.contract.moysklad import ROOT, load

ACCOUNT = "1185513e-692c-11e6-8a84-bae500000001"
ROMASHKA = "12a8b923-692c-11e6-8a84-bae500000053"
ORDER_45 = "5b3d8b1c-1a2b-11ee-0a80-0d6b00000010"
INVOICE_45 = "0cb8d047-f664-11e5-8a84-bae500000095"
ORG = "850c8195-f504-11e5-8a84-bae50000015e"
MSK = dt.timezone(dt.timedelta(hours=3))


def make(httpserver, credentials=None, **options):
    config = ConnectionConfig(
        name="ms-test",
        system="moysklad",
        base_url=httpserver.url_for(ROOT),
        credentials=MemoryCredentialStore({"token": "ms-token"} if credentials is None else credentials),
        options=options,
        max_attempts=3,
        rate_limit_per_second=1000,
    )
    connector = connector_class("moysklad")(config)
    connector.sleeps = []
    connector.http.sleep = connector.sleeps.append
    return connector


def fixture(httpserver, name):
    return load(name, httpserver.url_for(ROOT))


def rules(connector, entity):
    return [Rule(**vars(m)) for m in connector.default_mappings if m.entity == entity]


def serve_counterparties(httpserver, first_page=None):
    httpserver.expect_request(
        ROOT + "/entity/counterparty", query_string={"order": "updated,asc", "offset": "0", "limit": "1000"}
    ).respond_with_response(
        first_page or Response(json.dumps(fixture(httpserver, "counterparty_page1.json")))
    )
    httpserver.expect_request(
        ROOT + "/entity/counterparty", query_string={"order": "updated,asc", "offset": "2", "limit": "2"}
    ).respond_with_json(fixture(httpserver, "counterparty_page2.json"))


def test_fetch_follows_next_href_with_gzip_and_bearer_token(httpserver):
    # given the first page arrives gzip-compressed, as api.moysklad.ru sends it
    page1 = gzip.compress(json.dumps(fixture(httpserver, "counterparty_page1.json")).encode())
    serve_counterparties(
        httpserver,
        Response(
            page1, headers={"Content-Encoding": "gzip", "Content-Type": "application/json;charset=utf-8"}
        ),
    )
    connector = make(httpserver)

    records = list(connector.fetch("clients"))

    # then all three pages' rows arrive oldest change first, with Moscow-time updated_at
    assert [r.external_id for r in records] == [
        ROMASHKA,
        "12a8e347-692c-11e6-8a84-bae500000055",
        "4a6e0a2f-0f1c-11ee-0a80-0d6b00000001",
    ]
    assert records[0].updated_at == dt.datetime(2026, 1, 10, 9, 0, tzinfo=MSK)
    assert records[1].updated_at == dt.datetime(2026, 1, 12, 14, 30, 15, 250000, tzinfo=MSK)
    assert [r.updated_at for r in records] == sorted(r.updated_at for r in records)
    assert records[1].version == "2026-01-12 14:30:15.250"
    # and the server saw the mandatory gzip header and the bearer token on every request
    for request, _ in httpserver.log:
        assert "gzip" in request.headers["Accept-Encoding"]
        assert request.headers["Authorization"] == "Bearer ms-token"


def test_default_mappings_read_counterparties(httpserver):
    serve_counterparties(httpserver)
    connector = make(httpserver)

    legal, entrepreneur, person = (
        to_canonical(r.data, rules(connector, "clients")) for r in connector.fetch("clients")
    )

    assert (legal["name"], legal["kind"], legal["inn"], legal["kpp"]) == (
        'ООО "Ромашка"',
        "company",
        "7707083893",
        "773601001",
    )
    assert legal["ogrn"] == "1027700132195"
    assert legal["address"] == "101000, Россия, г Москва, ул Мясницкая, 1"  # the legal address wins
    assert legal["phone"] == "+74951234567"
    assert legal["notes"] == "ключевой клиент"
    assert (entrepreneur["kind"], entrepreneur["ogrn"]) == ("company", "304500116000157")
    assert (person["kind"], person["archived"], person["phone"]) == ("person", True, "+79161234567")


def test_since_becomes_an_updated_filter_in_moscow_time(httpserver):
    httpserver.expect_request(
        ROOT + "/entity/invoiceout",
        query_string={
            "order": "updated,asc",
            "offset": "0",
            "limit": "1000",
            "filter": "updated>=2026-02-10 15:00:00",
        },
    ).respond_with_json(fixture(httpserver, "invoiceout.json"))
    connector = make(httpserver)

    records = list(connector.fetch("invoices", since=dt.datetime(2026, 2, 10, 12, 0, tzinfo=dt.UTC)))

    assert [r.external_id for r in records] == [INVOICE_45, "2ee1ce22-019e-11e6-9464-e4de0000007d"]
    paid = to_canonical(records[0].data, rules(connector, "invoices"))
    assert paid["number"] == "00045"
    assert paid["issue_date"] == dt.date(2026, 1, 15)
    assert paid["due_date"] == dt.date(2026, 1, 25)
    assert paid["client"] == Ref("clients", ROMASHKA)
    assert paid["deal"] == Ref("deals", ORDER_45)
    assert (paid["total"], paid["vat_total"], paid["paid_total"]) == (
        Decimal("12200.00"),
        Decimal("2200.00"),
        Decimal("12200.00"),
    )
    assert paid["status"] == "issued"
    unposted = to_canonical(records[1].data, rules(connector, "invoices"))
    assert (unposted["status"], unposted["total"]) == ("draft", Decimal("5000.50"))
    assert "deal" not in unposted


def test_orders_expand_the_state_for_stage_and_outcome(httpserver):
    httpserver.expect_request(
        ROOT + "/entity/customerorder",
        query_string={"order": "updated,asc", "offset": "0", "limit": "100", "expand": "state"},
    ).respond_with_json(fixture(httpserver, "customerorder.json"))
    connector = make(httpserver)

    new, done = (to_canonical(r.data, rules(connector, "deals")) for r in connector.fetch("deals"))

    assert (new["title"], new["stage"], new["status"], new["amount"]) == (
        "00045",
        "Новый",
        "open",
        Decimal("12200.00"),
    )
    assert new["client"] == Ref("clients", ROMASHKA)
    assert new["expected_close_date"] == dt.date(2026, 2, 1)
    assert (done["stage"], done["status"]) == ("Выполнен", "won")


def test_payments_link_the_invoice_they_settle(httpserver):
    httpserver.expect_request(ROOT + "/entity/paymentin").respond_with_json(
        fixture(httpserver, "paymentin.json")
    )
    connector = make(httpserver)

    paid, advance = (to_canonical(r.data, rules(connector, "payments")) for r in connector.fetch("payments"))

    assert paid["invoice"] == Ref("invoices", INVOICE_45)
    assert paid["client"] == Ref("clients", ROMASHKA)
    assert paid["amount"] == Decimal("12200.00")
    assert paid["reference"] == "512"
    assert paid["received_at"] == dt.datetime(2026, 1, 17, 6, 15, tzinfo=dt.UTC)
    assert "invoice" not in advance  # linked to an order only
    assert (advance["reference"], advance["amount"]) == ("00013", Decimal("1000.00"))


def test_throttling_honours_x_lognex_retry_after_in_milliseconds(httpserver):
    busy = fixture(httpserver, "error_rate_limit.json")
    url = ROOT + "/entity/paymentin"
    httpserver.expect_ordered_request(url).respond_with_json(
        busy, status=429, headers={"X-Lognex-Retry-After": "1500"}
    )
    httpserver.expect_ordered_request(url).respond_with_data("Service Unavailable", status=503)
    httpserver.expect_ordered_request(url).respond_with_json(fixture(httpserver, "paymentin.json"))
    connector = make(httpserver)

    records = list(connector.fetch("payments"))

    assert len(records) == 2
    assert connector.sleeps[0] == 1.5
    assert len(connector.sleeps) == 2


def test_a_repeated_or_foreign_next_href_stops_the_fetch(httpserver):
    page = fixture(httpserver, "counterparty_page1.json")
    page["meta"]["nextHref"] = page["meta"]["href"].replace("offset=0", "offset=2")
    httpserver.expect_request(ROOT + "/entity/counterparty").respond_with_json(page)
    with pytest.raises(PermanentError, match="nextHref repeats"):
        list(make(httpserver).fetch("clients"))

    httpserver.clear_all_handlers()
    page["meta"]["nextHref"] = "https://evil.example/api/remap/1.2/entity/counterparty?offset=2"
    httpserver.expect_request(ROOT + "/entity/counterparty").respond_with_json(page)
    with pytest.raises(PermanentError, match="leaves the API"):
        list(make(httpserver).fetch("clients"))


def test_vendor_errors_are_clear(httpserver):
    url = ROOT + "/entity/counterparty"
    httpserver.expect_request(url).respond_with_json(fixture(httpserver, "error_auth.json"), status=401)
    with pytest.raises(AuthError, match="1056"):
        list(make(httpserver).fetch("clients"))

    httpserver.clear_all_handlers()
    httpserver.expect_request(url).respond_with_data(
        '{"meta": {"size": 3}, "rows": [{"id": "12a8', content_type="application/json"
    )
    with pytest.raises(PermanentError, match="expected JSON"):
        list(make(httpserver).fetch("clients"))

    httpserver.clear_all_handlers()
    httpserver.expect_request(url).respond_with_json({"meta": {}, "rows": [{"name": "no id"}]})
    with pytest.raises(PermanentError, match="no id"):
        list(make(httpserver).fetch("clients"))

    httpserver.clear_all_handlers()
    httpserver.expect_request(url).respond_with_json(
        {"meta": {}, "rows": [{"id": ROMASHKA, "updated": "вчера"}]}
    )
    with pytest.raises(PermanentError, match="bad 'updated'"):
        list(make(httpserver).fetch("clients"))

    with pytest.raises(AuthError, match="no MoySklad token"):
        make(httpserver, credentials={}).check()


def test_an_unknown_enum_value_fails_in_the_mapper_not_in_fetch(httpserver):
    page = fixture(httpserver, "counterparty_page2.json")
    page["rows"][0]["companyType"] = "cooperative"
    httpserver.expect_request(ROOT + "/entity/counterparty").respond_with_json(page)
    connector = make(httpserver)

    [record] = list(connector.fetch("clients"))

    with pytest.raises(MappingError, match="cooperative"):
        to_canonical(record.data, rules(connector, "clients"))


def test_check_learns_the_account_id_that_verifies_webhooks(httpserver):
    httpserver.expect_request(ROOT + "/context/employee").respond_with_json(
        fixture(httpserver, "context_employee.json")
    )
    connector = make(httpserver)
    body = json.dumps(fixture(httpserver, "webhook_update.json")).encode()

    assert connector.verify_webhook({}, body) is False  # account unknown yet: refuse
    connector.check()

    assert connector.config.credentials.load()["account_id"] == ACCOUNT
    assert connector.verify_webhook({}, body) is True
    forged = json.loads(body)
    forged["events"][1]["accountId"] = "00000000-0000-0000-0000-000000000bad"
    assert connector.verify_webhook({}, json.dumps(forged).encode()) is False
    assert connector.verify_webhook({}, b"<html>") is False
    assert connector.verify_webhook({}, b'{"events": []}') is False


def test_parse_webhook_yields_hints_to_refetch(httpserver):
    connector = make(httpserver, account_id=ACCOUNT)
    body = json.dumps(fixture(httpserver, "webhook_update.json")).encode()

    events = connector.parse_webhook({}, body)
    replayed = connector.parse_webhook({}, body)

    assert [(e.stream, e.external_id, e.action, e.record) for e in events] == [
        ("invoices", INVOICE_45, "upsert", None),
        ("clients", "4a6e0a2f-0f1c-11ee-0a80-0d6b00000001", "delete", None),
    ]  # the product event is not ours
    assert [e.event_id for e in replayed] == [e.event_id for e in events]  # a replay dedupes
    with pytest.raises(PermanentError, match="events"):
        connector.parse_webhook({}, b"not json")
    with pytest.raises(PermanentError, match=r"meta\.href"):
        connector.parse_webhook({}, b'{"events": [{"action": "UPDATE"}]}')


def test_get_refetches_one_record_or_none(httpserver):
    invoice = fixture(httpserver, "invoiceout.json")["rows"][0]
    httpserver.expect_request(ROOT + f"/entity/invoiceout/{INVOICE_45}").respond_with_json(invoice)
    missing = "00000000-0000-0000-0000-000000000404"
    httpserver.expect_request(ROOT + f"/entity/invoiceout/{missing}").respond_with_json(
        {"errors": [{"error": "Объект не найден", "code": 1021}]}, status=404
    )
    connector = make(httpserver)

    assert connector.get("invoices", INVOICE_45).data["agent"]["id"] == ROMASHKA
    assert connector.get("invoices", missing) is None


def test_push_creates_a_counterparty_without_echoing_a_webhook(httpserver):
    httpserver.expect_request(ROOT + "/entity/counterparty", method="POST").respond_with_json(
        fixture(httpserver, "created_counterparty.json")
    )
    connector = make(httpserver)
    payload = to_remote(
        {
            "name": 'ООО "Лютик"',
            "kind": "company",
            "inn": "7728168971",
            "phone": "+74951112233",
            "archived": False,
        },
        rules(connector, "clients"),
    )

    external_id = connector.upsert("clients", payload)

    request = httpserver.log[0][0]
    sent = json.loads(request.get_data())
    assert external_id == "9f1c2d3e-4b5a-11ee-0a80-0d6b00000077"
    assert sent == {
        "name": 'ООО "Лютик"',
        "companyType": "legal",
        "inn": "7728168971",
        "phone": "+74951112233",
        "archived": False,
    }
    assert request.headers["X-Lognex-WebHook-Disable"] == "true"


def test_push_an_invoice_needs_our_legal_entity_and_sends_meta_references(httpserver):
    canonical = {"number": "INV-7", "client": 5, "issue_date": dt.date(2026, 2, 1), "purpose": "Счёт INV-7"}
    without_org = make(httpserver)
    payload = to_remote(canonical, rules(without_org, "invoices"), resolve=lambda entity, pk: ROMASHKA)
    with pytest.raises(PermanentError, match="organization_id"):
        without_org.upsert("invoices", payload)

    httpserver.expect_request(ROOT + "/entity/invoiceout", method="POST").respond_with_json(
        {"id": INVOICE_45}
    )
    connector = make(httpserver, organization_id=ORG)
    assert connector.upsert("invoices", payload) == INVOICE_45

    sent = json.loads(httpserver.log[0][0].get_data())
    base = httpserver.url_for(ROOT)
    assert sent["agent"] == {
        "meta": {
            "href": f"{base}/entity/counterparty/{ROMASHKA}",
            "type": "counterparty",
            "mediaType": "application/json",
        }
    }
    assert sent["organization"]["meta"]["href"] == f"{base}/entity/organization/{ORG}"
    assert (sent["name"], sent["moment"], sent["description"]) == (
        "INV-7",
        "2026-02-01 00:00:00",
        "Счёт INV-7",
    )


def test_vendor_validation_errors_on_push_are_permanent(httpserver):
    httpserver.expect_request(ROOT + f"/entity/invoiceout/{INVOICE_45}", method="PUT").respond_with_json(
        fixture(httpserver, "error_validation.json"), status=412
    )
    with pytest.raises(PermanentError, match="organization"):
        make(httpserver).upsert("invoices", {"description": "x"}, external_id=INVOICE_45)


def test_archive_counterparties_delete_documents_and_add_notes(httpserver):
    httpserver.expect_request(ROOT + f"/entity/counterparty/{ROMASHKA}", method="PUT").respond_with_json(
        {"id": ROMASHKA}
    )
    httpserver.expect_request(ROOT + f"/entity/invoiceout/{INVOICE_45}", method="DELETE").respond_with_data(
        "", status=200
    )
    httpserver.expect_request(
        ROOT + f"/entity/counterparty/{ROMASHKA}/notes", method="POST"
    ).respond_with_json({"id": "n1"})
    connector = make(httpserver)

    connector.delete("clients", ROMASHKA)
    connector.delete("invoices", INVOICE_45)
    connector.add_note("clients", ROMASHKA, "Счёт 00045 оплачен")

    assert json.loads(httpserver.log[0][0].get_data()) == {"archived": True}
    assert httpserver.log[1][0].method == "DELETE"
    assert json.loads(httpserver.log[2][0].get_data()) == {"description": "Счёт 00045 оплачен"}
    with pytest.raises(PermanentError):
        connector.upsert("payments", {})
