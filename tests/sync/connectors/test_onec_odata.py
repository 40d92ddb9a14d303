"""1C OData connector against a loopback server speaking the 1C standard OData interface."""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal

import pytest

from sync.connectors import connector_class
from sync.connectors.base import AuthError, ConnectionConfig, MemoryCredentialStore, PermanentError
from sync.mapping.mapper import MappingError, Rule, to_canonical, to_remote
from sync.mapping.transforms import Ref
from tests.sync.contract.onec_odata import load

ROOT = "/bp/odata/standard.odata/"
CATALOG = ROOT + "Catalog_Контрагенты"
INVOICES = ROOT + "Document_СчетНаОплатуПокупателю"
PAYMENTS = ROOT + "Document_ПоступлениеНаРасчетныйСчет"
ROMASHKA = "0a6c7e2e-5b1f-11ee-8c4a-0050569f1a01"
INVOICE_45 = "7d1e0c10-6a2b-11ee-8c4a-0050569f2b01"


def make(httpserver, **options):
    cls = connector_class("onec_odata")
    config = ConnectionConfig(
        name="1c-test",
        system="onec_odata",
        base_url=httpserver.url_for(ROOT),
        credentials=MemoryCredentialStore({"username": "Администратор", "password": "secret"}),
        options=options,
        max_attempts=3,
        rate_limit_per_second=1000,  # the token bucket is shared per connection name: keep it out of the way
    )
    connector = cls(config)
    connector.sleeps = []
    connector.http.sleep = connector.sleeps.append
    return connector


def rules(connector, entity):
    return [Rule(**vars(m)) for m in connector.default_mappings if m.entity == entity]


def page(skip, top="2", orderby="Ref_Key asc", **extra):
    return {"$format": "json", "$orderby": orderby, "$top": top, "$skip": str(skip), **extra}


def test_fetch_pages_to_the_end_skips_groups_and_marks_deleted_counterparties(httpserver):
    # given two pages of the counterparties catalog (a group on page 1, a deleted one on page 2)
    httpserver.expect_request(CATALOG, query_string=page(0)).respond_with_json(load("clients_page1.json"))
    httpserver.expect_request(CATALOG, query_string=page(2)).respond_with_json(load("clients_page2.json"))
    connector = make(httpserver, page_size=2)

    # when the catalog is read
    records = list(connector.fetch("clients"))

    # then both counterparties arrive in Ref_Key order, the group does not, the deleted one is a tombstone
    assert [r.external_id for r in records] == [ROMASHKA, "0a6c7e2e-5b1f-11ee-8c4a-0050569f1a03"]
    assert [r.deleted for r in records] == [False, True]
    assert records[0].version == "AAAAAQAAAAA="
    assert records[0].updated_at is None
    assert records[0].data["Parent_Key"] is None  # the all-zero GUID is "no reference"
    # and every request carried HTTP Basic for the 1C user (UTF-8 user names work)
    auth = httpserver.log[0][0].headers["Authorization"]
    assert base64.b64decode(auth.removeprefix("Basic ")).decode() == "Администратор:secret"


def test_default_mappings_read_a_counterparty_in_bp30_field_names(httpserver):
    httpserver.expect_request(CATALOG).respond_with_json(load("clients_page2.json"))
    connector = make(httpserver)
    romashka = connector._record("clients", load("clients_page1.json")["value"][0])

    company = to_canonical(romashka.data, rules(connector, "clients"))
    person = to_canonical(next(iter(connector.fetch("clients"))).data, rules(connector, "clients"))

    assert company["name"] == "ООО Ромашка"
    assert company["legal_name"].startswith("Общество с ограниченной")
    assert (company["inn"], company["kpp"], company["kind"]) == ("7707083893", "773601001", "company")
    assert company["email"] == "buh@romashka.ru"
    assert company["phone"] == "+74951234567"
    assert company["address"].startswith("101000, Москва")
    assert company["archived"] is False
    assert (person["kind"], person["archived"], person["inn"]) == ("person", True, "500100732259")
    assert "email" not in person  # no contact rows: left out, never blanked


def test_documents_since_filter_on_date_with_lookback_in_infobase_time(httpserver):
    # given a change-feed read of invoices since 2026-02-10 12:00 UTC (15:00 Moscow), lookback 7 days
    expected = page(
        0,
        top="500",
        orderby="Date asc,Ref_Key asc",
        **{"$filter": "Date ge datetime'2026-02-03T15:00:00'"},
    )
    httpserver.expect_request(INVOICES, query_string=expected).respond_with_json(load("invoices.json"))
    connector = make(httpserver, lookback_days=7)

    records = list(connector.fetch("invoices", since=dt.datetime(2026, 2, 10, 12, 0, tzinfo=dt.UTC)))

    assert [r.external_id for r in records] == [INVOICE_45, "7d1e0c10-6a2b-11ee-8c4a-0050569f2b02"]
    invoice = to_canonical(records[0].data, rules(connector, "invoices"))
    assert invoice["number"] == "0000-000045"
    assert invoice["issue_date"] == dt.date(2026, 1, 15)
    assert invoice["client"] == Ref("clients", ROMASHKA)
    assert invoice["total"] == Decimal("12200.00")
    assert invoice["status"] == "issued"
    draft = to_canonical(records[1].data, rules(connector, "invoices"))
    assert (draft["status"], draft["total"]) == ("draft", Decimal("5000.50"))


def test_catalogs_ignore_since_and_are_reread_in_full(httpserver):
    httpserver.expect_request(CATALOG, query_string=page(0, top="500")).respond_with_json(
        load("clients_page2.json")
    )
    connector = make(httpserver)

    records = list(connector.fetch("clients", since=dt.datetime(2026, 2, 10, tzinfo=dt.UTC)))

    assert len(records) == 1
    assert "$filter" not in httpserver.log[0][0].args


def test_payments_keep_customer_receipts_only_and_link_the_invoice(httpserver):
    httpserver.expect_request(PAYMENTS).respond_with_json(load("payments.json"))
    connector = make(httpserver)

    records = list(connector.fetch("payments"))

    assert [r.data["Number"] for r in records] == ["0000-000101", "0000-000103"]  # the loan is not a payment
    paid = to_canonical(records[0].data, rules(connector, "payments"))
    assert paid["invoice"] == Ref("invoices", INVOICE_45)
    assert paid["client"] == Ref("clients", ROMASHKA)
    assert paid["amount"] == Decimal("12200.00")
    assert paid["reference"] == "512"
    assert paid["received_at"] == dt.datetime(2026, 1, 17, 6, 15, tzinfo=dt.UTC)
    advance = to_canonical(records[1].data, rules(connector, "payments"))
    assert advance["invoice"] is None  # the all-zero GUID: not linked to an invoice
    assert advance["reference"] == "0000-000103"  # no incoming number: falls back to the 1C number


def test_object_names_come_from_the_connection_options(httpserver):
    # given an УНФ-like infobase where invoices live in another document
    httpserver.expect_request(ROOT + "Document_СчетНаОплату").respond_with_json({"value": []})
    connector = make(httpserver, objects={"invoices": "Document_СчетНаОплату"})

    assert list(connector.fetch("invoices")) == []
    assert connector.objects["clients"] == "Catalog_Контрагенты"


def test_throttling_and_server_errors_are_retried_honouring_retry_after(httpserver):
    httpserver.expect_ordered_request(CATALOG).respond_with_data(
        "busy", status=429, headers={"Retry-After": "3"}
    )
    httpserver.expect_ordered_request(CATALOG).respond_with_data("down", status=503)
    httpserver.expect_ordered_request(CATALOG).respond_with_json(load("clients_page2.json"))
    connector = make(httpserver)

    records = list(connector.fetch("clients"))

    assert len(records) == 1
    assert connector.sleeps[0] == 3.0
    assert len(connector.sleeps) == 2


def test_a_server_that_ignores_skip_is_stopped_not_looped(httpserver):
    httpserver.expect_request(CATALOG).respond_with_json(load("clients_page1.json"))
    connector = make(httpserver, page_size=2)

    with pytest.raises(PermanentError, match="previous page again"):
        list(connector.fetch("clients"))


def test_vendor_errors_are_clear(httpserver):
    connector = make(httpserver)
    httpserver.expect_request(INVOICES).respond_with_json(load("error_rights.json"), status=400)
    with pytest.raises(PermanentError, match="Недостаточно прав"):
        list(connector.fetch("invoices"))

    httpserver.clear_all_handlers()
    httpserver.expect_request(INVOICES).respond_with_json(load("error_rights.json"))
    with pytest.raises(PermanentError, match="Недостаточно прав"):
        list(connector.fetch("invoices"))

    httpserver.clear_all_handlers()
    httpserver.expect_request(INVOICES).respond_with_data(
        '{"value": [{"Ref_Key": "7d1e', content_type="application/json"
    )
    with pytest.raises(PermanentError, match="expected JSON"):
        list(connector.fetch("invoices"))

    httpserver.clear_all_handlers()
    httpserver.expect_request(INVOICES).respond_with_json({"value": [{"Number": "1"}]})
    with pytest.raises(PermanentError, match="no Ref_Key"):
        list(connector.fetch("invoices"))


def test_refused_or_missing_credentials_are_auth_errors(httpserver):
    httpserver.expect_request(CATALOG).respond_with_data("Unauthorized", status=401)
    with pytest.raises(AuthError):
        make(httpserver).check()

    config = ConnectionConfig("x", "onec_odata", httpserver.url_for(ROOT), MemoryCredentialStore({}))
    with pytest.raises(AuthError, match="username"):
        connector_class("onec_odata")(config).check()


def test_a_record_that_cannot_be_mapped_fails_in_the_mapper_not_in_fetch(httpserver):
    body = load("invoices.json")
    body["value"][0]["СуммаДокумента"] = "двенадцать"
    body["value"][1]["Posted"] = "Maybe"
    httpserver.expect_request(INVOICES).respond_with_json(body)
    connector = make(httpserver)

    records = list(connector.fetch("invoices"))

    assert len(records) == 2
    with pytest.raises(MappingError, match="total"):
        to_canonical(records[0].data, rules(connector, "invoices"))
    with pytest.raises(MappingError, match="status"):
        to_canonical(records[1].data, rules(connector, "invoices"))


def test_get_returns_one_record_or_none(httpserver):
    httpserver.expect_request(INVOICES + f"(guid'{INVOICE_45}')").respond_with_json(
        load("invoices.json")["value"][0]
    )
    httpserver.expect_request(INVOICES + "(guid'11111111-1111-1111-1111-111111111111')").respond_with_json(
        {"odata.error": {"code": "-1", "message": {"value": "not found"}}}, status=404
    )
    connector = make(httpserver)

    assert connector.get("invoices", INVOICE_45).data["Number"] == "0000-000045"
    assert connector.get("invoices", "11111111-1111-1111-1111-111111111111") is None


def test_push_creates_an_invoice_with_lines_then_posts_it(httpserver):
    # given a hub invoice mapped outbound with the default mappings
    connector = make(httpserver, default_item_key="9e9e9e9e-0000-11ee-8c4a-0050569f0101")
    canonical = {
        "number": "INV-1",
        "client": 17,
        "issue_date": dt.date(2026, 2, 1),
        "total": Decimal("12200.00"),
        "status": "issued",
        "purpose": "Оплата по счёту INV-1",
        "lines": [
            {
                "description": "Консультация",
                "quantity": Decimal("2"),
                "unit_price": Decimal("6100"),
                "vat_rate": Decimal("22.00"),
            }
        ],
    }
    payload = to_remote(canonical, rules(connector, "invoices"), resolve=lambda entity, pk: ROMASHKA)
    created = load("created_invoice.json")
    httpserver.expect_request(INVOICES, method="POST").respond_with_json(created, status=201)
    post = INVOICES + f"(guid'{created['Ref_Key']}')/Post()"
    httpserver.expect_request(post, method="POST").respond_with_data("", status=200)

    # when it is pushed and posted
    external_id = connector.upsert("invoices", payload)
    connector.after_push("invoices", external_id, canonical)

    # then 1C got the document in its own field names, lines as the Товары tabular section
    assert external_id == created["Ref_Key"]
    sent = json.loads(httpserver.log[0][0].get_data())
    assert "Number" not in sent  # 1C numbers its own documents
    assert sent["Контрагент_Key"] == ROMASHKA
    assert sent["Date"] == "2026-02-01T00:00:00"
    assert sent["СуммаДокумента"] == "12200.00"
    assert sent["Товары"] == [
        {
            "LineNumber": "1",
            "Содержание": "Консультация",
            "Количество": 2.0,
            "Цена": 6100.0,
            "Сумма": 12200.0,
            "СтавкаНДС": "НДС22",
            "Номенклатура_Key": "9e9e9e9e-0000-11ee-8c4a-0050569f0101",
        }
    ]
    assert httpserver.log[1][0].args["PostingModeOperational"] == "false"


def test_push_updates_with_patch_and_delete_marks_for_deletion(httpserver):
    url = INVOICES + f"(guid'{INVOICE_45}')"
    httpserver.expect_request(url, method="PATCH").respond_with_json(load("invoices.json")["value"][0])
    connector = make(httpserver)

    assert connector.upsert("invoices", {"Комментарий": "new"}, external_id=INVOICE_45) == INVOICE_45
    connector.delete("invoices", INVOICE_45)

    assert json.loads(httpserver.log[0][0].get_data()) == {"Комментарий": "new"}
    assert json.loads(httpserver.log[1][0].get_data()) == {"DeletionMark": True}


def test_drafts_are_not_posted_and_payments_are_not_pushed(httpserver):
    connector = make(httpserver)

    connector.after_push("invoices", INVOICE_45, {"status": "draft"})
    with pytest.raises(PermanentError, match="cannot write payments"):
        connector.upsert("payments", {})

    assert httpserver.log == []


def test_1c_sends_no_webhooks(httpserver):
    connector = make(httpserver)

    with pytest.raises(PermanentError, match="no webhooks"):
        connector.parse_webhook({}, b"{}")
