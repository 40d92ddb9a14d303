"""Bitrix24 connector against a loopback HTTP server answering with recorded payloads (CONTRACTS.md §1.2)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from werkzeug import Response

from sync.connectors import connector_class
from sync.connectors.base import (
    AuthError,
    ConnectionConfig,
    MemoryCredentialStore,
    PermanentError,
    RetryableError,
)
from sync.mapping.mapper import MappingError, Rule, to_canonical, to_remote
from sync.mapping.transforms import Ref

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bitrix24"
HOOK = "/rest/1/k3y5ecr3t0000000/"
APP_TOKEN = "51856fefc120afa4b628cc82d3935cce"
JSON = "application/json"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def make(httpserver, *, credentials=None, options=None, base_url=None, max_attempts=3):
    config = ConnectionConfig(
        name="b24-test",
        system="bitrix24",
        base_url=base_url or httpserver.url_for(HOOK),
        credentials=MemoryCredentialStore(
            credentials if credentials is not None else {"application_token": APP_TOKEN}
        ),
        options=options or {},
        timeout_seconds=5,
        max_attempts=max_attempts,
    )
    connector = connector_class("bitrix24")(config)
    connector.sleeps = []
    connector.http.sleep = connector.sleeps.append
    connector.http.bucket = None  # the 2 req/s bucket is checked separately; no waiting here
    return connector


def rules(connector, entity):
    return [Rule(**vars(m)) for m in connector.default_mappings if m.entity == entity]


def calls(httpserver, method, prefix=HOOK):
    return [r.get_json() for r, _ in httpserver.log if r.path == f"{prefix}{method}.json"]


def serve(httpserver, method, name_or_body, *, prefix=HOOK, status=200):
    body = name_or_body if isinstance(name_or_body, str) and name_or_body.startswith("{") else None
    httpserver.expect_request(f"{prefix}{method}.json").respond_with_data(
        body or fixture(name_or_body), status=status, content_type=JSON
    )


def serve_companies(httpserver, prefix=HOOK):
    def companies(request):
        start = request.get_json().get("start")
        return Response(
            fixture("companies_page2.json" if start == 50 else "companies_page1.json"), content_type=JSON
        )

    httpserver.expect_request(f"{prefix}crm.company.list.json").respond_with_handler(companies)
    serve(httpserver, "crm.requisite.list", "requisites.json", prefix=prefix)


# --- reading ------------------------------------------------------------------------------------


def test_companies_page_with_start_to_the_end_and_carry_their_requisites(httpserver):
    # given two pages of companies (next: 50) and their requisites
    serve_companies(httpserver)
    connector = make(httpserver)

    # when the whole stream is read
    records = list(connector.fetch("clients"))

    # then every company arrives once, oldest change first, tz-aware, with INN/KPP from its requisite
    assert [r.external_id for r in records] == ["101", "102", "155"]
    assert [r.updated_at for r in records] == sorted(r.updated_at for r in records)
    assert records[0].updated_at == dt.datetime(2026, 1, 2, 6, 0, tzinfo=dt.UTC)
    first, second = calls(httpserver, "crm.company.list")
    assert (first["start"], second["start"]) == (0, 50)
    assert first["order"] == {"DATE_MODIFY": "ASC", "ID": "ASC"}
    assert first["select"] == ["*", "UF_*", "PHONE", "EMAIL"]
    assert "filter" not in first
    requisite_calls = calls(httpserver, "crm.requisite.list")
    assert [c["filter"] for c in requisite_calls] == [
        {"ENTITY_TYPE_ID": 4, "@ENTITY_ID": [101, 102]},
        {"ENTITY_TYPE_ID": 4, "@ENTITY_ID": [155]},
    ]
    client = to_canonical(records[0].data, rules(connector, "clients"))
    assert client == {
        "name": "ООО «Вектор»",
        "kind": "company",
        "legal_name": "Общество с ограниченной ответственностью «Вектор»",
        "inn": "7707083893",
        "kpp": "773601001",
        "ogrn": "1027700132195",
        "phone": "+74951234567",
        "email": "info@vector.example",
        "address": "Москва, ул. Тверская, 1",
        "notes": "ключевой клиент",
    }
    assert records[2].data["REQUISITES"] == []


def test_the_change_feed_filters_on_date_modify(httpserver):
    serve(httpserver, "crm.contact.list", "contacts.json")
    connector = make(httpserver)
    since = dt.datetime(2026, 1, 2, 7, 0, tzinfo=dt.UTC)

    records = list(connector.fetch("contacts", since=since))

    assert [r.external_id for r in records] == ["22044"]
    (sent,) = calls(httpserver, "crm.contact.list")
    assert sent["filter"] == {">=DATE_MODIFY": "2026-01-02T07:00:00+00:00"}
    contact = to_canonical(records[0].data, rules(connector, "contacts"))
    assert contact["client"] == Ref("clients", "101")
    assert (contact["last_name"], contact["first_name"], contact["middle_name"]) == (
        "Петров",
        "Иван",
        "Сергеевич",
    )
    assert contact["phone"] == "+79161234567"


def test_the_fast_export_pages_by_id_with_start_minus_one(httpserver):
    # given 50 + 3 contacts, served by `>ID`
    rows = [{"ID": str(i), "NAME": f"N{i}", "DATE_MODIFY": "2026-01-02T10:00:00+03:00"} for i in range(1, 54)]

    def contacts(request):
        after = request.get_json()["filter"][">ID"]
        page = [r for r in rows if int(r["ID"]) > after][:50]
        return Response(json.dumps({"result": page}), content_type=JSON)

    httpserver.expect_request(f"{HOOK}crm.contact.list.json").respond_with_handler(contacts)
    connector = make(httpserver, options={"fast_export": True})

    # when a full read runs in fast mode
    records = list(connector.fetch("contacts"))

    # then two requests without counting (start=-1), the second after the last id of the first
    assert [r.external_id for r in records] == [str(i) for i in range(1, 54)]
    sent = calls(httpserver, "crm.contact.list")
    assert [(c["start"], c["filter"][">ID"], c["order"]) for c in sent] == [
        (-1, 0, {"ID": "ASC"}),
        (-1, 50, {"ID": "ASC"}),
    ]


def test_deals_carry_product_rows_from_one_batch_and_map_status_and_stage(httpserver):
    # given three deals (open in category 1, won, lost) and their product rows
    serve(httpserver, "crm.deal.list", "deals.json")
    serve(httpserver, "batch", "batch_productrows.json")
    connector = make(httpserver)

    # when read and mapped
    records = list(connector.fetch("deals"))
    deals = [to_canonical(r.data, rules(connector, "deals")) for r in records]

    # then one batch read the rows of the whole page
    (batch,) = calls(httpserver, "batch")
    assert batch["cmd"] == {
        "d13142": "crm.deal.productrows.get?id=13142",
        "d13143": "crm.deal.productrows.get?id=13143",
        "d13144": "crm.deal.productrows.get?id=13144",
    }
    assert records[0].data["PRODUCT_ROWS"][0]["PRODUCT_NAME"] == "Сервер R740"
    assert records[1].data["PRODUCT_ROWS"] == []
    # and status follows the stage semantics, the stage its id (or the admin's map)
    assert [d["status"] for d in deals] == ["open", "won", "lost"]
    assert [d["stage"] for d in deals] == ["C1:NEW", "Won", "C1:LOSE"]
    assert deals[0]["amount"] == Decimal("25000.00") and deals[1]["amount"] == Decimal("120000.50")
    assert deals[0]["client"] == Ref("clients", "101")
    assert deals[0]["expected_close_date"] == dt.date(2026, 1, 31)
    assert (deals[0]["utm_source"], deals[0]["utm_medium"]) == ("yandex", "cpc")
    assert deals[2]["client"] is None  # COMPANY_ID "0" means no company


def test_smart_invoices_are_read_with_crm_item_list_entity_type_31(httpserver):
    serve(httpserver, "crm.item.list", "invoices.json")
    connector = make(httpserver)

    records = list(connector.fetch("invoices", since=dt.datetime(2026, 1, 3, tzinfo=dt.UTC)))
    invoices = [to_canonical(r.data, rules(connector, "invoices")) for r in records]

    (sent,) = calls(httpserver, "crm.item.list")
    assert sent["entityTypeId"] == 31
    assert sent["filter"] == {">=updatedTime": "2026-01-03T00:00:00+00:00"}
    assert sent["order"] == {"updatedTime": "ASC", "id": "ASC"}
    assert [r.external_id for r in records] == ["5", "6"]
    assert invoices[0]["status"] == "paid" and invoices[0]["total"] == Decimal("24400.00")
    assert invoices[0]["deal"] == Ref("deals", "13142") and invoices[0]["client"] == Ref("clients", "101")
    assert (invoices[0]["issue_date"], invoices[0]["due_date"]) == (dt.date(2026, 1, 3), dt.date(2026, 1, 13))
    assert invoices[1]["status"] == "issued"  # a custom stage falls back to the enum default
    assert invoices[1]["client"] is None and invoices[1]["total"] == Decimal("1000.50")


def test_get_reads_one_record_and_none_when_not_found(httpserver):
    deal = json.loads(fixture("deals.json"))["result"][0]
    serve(httpserver, "crm.deal.get", json.dumps({"result": deal}))
    serve(httpserver, "batch", "batch_productrows.json")
    serve(httpserver, "crm.company.get", "error_not_found.json", status=400)
    item = json.loads(fixture("invoices.json"))["result"]["items"][0]
    serve(httpserver, "crm.item.get", json.dumps({"result": {"item": item}}))
    connector = make(httpserver)

    record = connector.get("deals", "13142")

    assert record.external_id == "13142" and record.data["PRODUCT_ROWS"]
    assert connector.get("clients", "999") is None
    assert connector.get("invoices", "5").data["accountNumber"] == "5"
    assert calls(httpserver, "crm.item.get") == [{"entityTypeId": 31, "id": "5"}]


def test_a_repeated_next_offset_is_a_permanent_error_not_a_loop(httpserver):
    body = json.loads(fixture("companies_page1.json"))
    body["next"] = 0  # points back at the first page
    serve(httpserver, "crm.company.list", json.dumps(body))
    serve(httpserver, "crm.requisite.list", "requisites.json")

    with pytest.raises(PermanentError, match="repeats"):
        list(make(httpserver).fetch("clients"))


# --- throttling ---------------------------------------------------------------------------------


def test_query_limit_exceeded_503_is_retried(httpserver):
    # given the leaky bucket overflowing once
    httpserver.expect_ordered_request(f"{HOOK}crm.contact.list.json").respond_with_data(
        fixture("error_query_limit.json"), status=503, content_type=JSON
    )
    httpserver.expect_ordered_request(f"{HOOK}crm.contact.list.json").respond_with_data(
        fixture("contacts.json"), content_type=JSON
    )
    connector = make(httpserver)

    records = list(connector.fetch("contacts"))

    assert [r.external_id for r in records] == ["22044"]
    assert len(connector.sleeps) == 1  # one backoff pause between the attempts


def test_429_honours_retry_after(httpserver):
    httpserver.expect_ordered_request(f"{HOOK}crm.contact.list.json").respond_with_json(
        {
            "error": "OPERATION_TIME_LIMIT",
            "error_description": "Method is blocked due to operation time limit.",
        },
        status=429,
        headers={"Retry-After": "3"},
    )
    httpserver.expect_ordered_request(f"{HOOK}crm.contact.list.json").respond_with_data(
        fixture("contacts.json"), content_type=JSON
    )
    connector = make(httpserver)

    assert len(list(connector.fetch("contacts"))) == 1
    assert connector.sleeps == [3.0]


def test_a_bucket_that_stays_full_ends_as_a_retryable_error(httpserver):
    serve(httpserver, "crm.contact.list", "error_query_limit.json", status=503)
    connector = make(httpserver, max_attempts=2)

    with pytest.raises(RetryableError, match="QUERY_LIMIT_EXCEEDED"):
        list(connector.fetch("contacts"))


def test_query_limit_in_a_200_body_is_retryable_too(httpserver):
    serve(httpserver, "crm.contact.list", "error_query_limit.json")

    with pytest.raises(RetryableError):
        list(make(httpserver).fetch("contacts"))


def test_the_default_rate_limit_follows_the_leaky_bucket_drain(httpserver):
    config = ConnectionConfig(
        name="b24-rate",
        system="bitrix24",
        base_url=httpserver.url_for(HOOK),
        credentials=MemoryCredentialStore(),
    )
    assert connector_class("bitrix24")(config).http.bucket.rate == 2.0


# --- auth ---------------------------------------------------------------------------------------


def oauth_credentials(**extra):
    return {
        "client_id": "local.abc",
        "client_secret": "s3cret",
        "refresh_token": "old-refresh",
        "access_token": "old-access",
        "access_token_expires_at": str(int(time.time()) - 5),
        "application_token": APP_TOKEN,
        **extra,
    }


def oauth_connector(httpserver, credentials=None):
    return make(
        httpserver,
        base_url=httpserver.url_for("/"),
        credentials=credentials or oauth_credentials(),
        options={"oauth_url": httpserver.url_for("/oauth/token/")},
    )


def test_an_oauth_app_refreshes_an_expired_token_and_sends_it_as_auth(httpserver):
    # given an OAuth2 app whose access token expired
    httpserver.expect_request("/oauth/token/", method="GET").respond_with_data(
        fixture("token.json"), content_type=JSON
    )
    serve(httpserver, "scope", "scope.json", prefix="/rest/")
    connector = oauth_connector(httpserver)

    # when the connection is checked
    connector.check()

    # then the refresh grant ran once, the rotated pair is stored, the call carried the new token
    (refresh,) = [r for r, _ in httpserver.log if r.path == "/oauth/token/"]
    assert dict(refresh.args) == {
        "grant_type": "refresh_token",
        "client_id": "local.abc",
        "client_secret": "s3cret",
        "refresh_token": "old-refresh",
    }
    stored = connector.config.credentials.load()
    assert (stored["access_token"], stored["refresh_token"]) == ("new-access-token", "new-refresh-token")
    assert float(stored["access_token_expires_at"]) > time.time() + 3500
    assert calls(httpserver, "scope", prefix="/rest/") == [{"auth": "new-access-token"}]


def test_two_threads_with_an_expired_token_cause_one_refresh(httpserver):
    def slow_token(request):
        time.sleep(0.2)
        return Response(fixture("token.json"), content_type=JSON)

    httpserver.expect_request("/oauth/token/").respond_with_handler(slow_token)
    serve(httpserver, "scope", "scope.json", prefix="/rest/")
    store = MemoryCredentialStore(oauth_credentials())
    workers = []
    for _ in range(2):
        connector = oauth_connector(httpserver)
        connector.config = ConnectionConfig(**{**vars(connector.config), "credentials": store})
        workers.append(connector)
    barrier = threading.Barrier(2)
    errors = []

    def run(connector):
        barrier.wait()
        try:
            connector.check()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len([r for r, _ in httpserver.log if r.path == "/oauth/token/"]) == 1
    assert calls(httpserver, "scope", prefix="/rest/") == [{"auth": "new-access-token"}] * 2


def test_an_expired_token_401_refreshes_once_and_retries(httpserver):
    httpserver.expect_ordered_request("/rest/scope.json").respond_with_data(
        fixture("error_expired_token.json"), status=401, content_type=JSON
    )
    httpserver.expect_ordered_request("/oauth/token/").respond_with_data(
        fixture("token.json"), content_type=JSON
    )
    httpserver.expect_ordered_request("/rest/scope.json").respond_with_data(
        fixture("scope.json"), content_type=JSON
    )
    connector = oauth_connector(
        httpserver, oauth_credentials(access_token_expires_at=str(int(time.time()) + 999))
    )

    connector.check()

    assert connector.config.credentials.load()["refresh_token"] == "new-refresh-token"
    assert [c["auth"] for c in calls(httpserver, "scope", prefix="/rest/")] == [
        "old-access",
        "new-access-token",
    ]


def test_an_invalid_grant_asks_the_admin_to_reconnect(httpserver):
    httpserver.expect_request("/oauth/token/").respond_with_data(
        fixture("token_invalid_grant.json"), status=400, content_type=JSON
    )
    connector = oauth_connector(httpserver)

    with pytest.raises(AuthError, match="reconnect in admin"):
        connector.check()
    assert connector.config.credentials.load()["refresh_token"] == "old-refresh"


def test_without_webhook_url_or_oauth_credentials_the_error_says_what_to_set(httpserver):
    connector = make(httpserver, base_url="https://romashka.bitrix24.ru", credentials={})

    with pytest.raises(AuthError, match="incoming-webhook URL"):
        connector.check()


def test_a_webhook_without_the_crm_scope_is_refused_at_check(httpserver):
    serve(httpserver, "scope", json.dumps({"result": ["user_brief", "task"]}))

    with pytest.raises(AuthError, match="crm"):
        make(httpserver).check()


# --- writing ------------------------------------------------------------------------------------


def test_upsert_adds_then_updates_with_fields(httpserver):
    serve(httpserver, "crm.deal.add", json.dumps({"result": 13200}))
    serve(httpserver, "crm.deal.update", json.dumps({"result": True}))
    connector = make(httpserver)
    payload = to_remote(
        {"title": "Новая сделка", "amount": Decimal("1500.00"), "currency": "RUB", "client": 7},
        rules(connector, "deals"),
        resolve=lambda entity, local: "101",
    )

    new_id = connector.upsert("deals", payload)
    connector.upsert("deals", {"TITLE": "Переименована"}, external_id=new_id)

    assert new_id == "13200"
    assert calls(httpserver, "crm.deal.add") == [
        {
            "fields": {
                "TITLE": "Новая сделка",
                "OPPORTUNITY": "1500.00",
                "CURRENCY_ID": "RUB",
                "COMPANY_ID": "101",
            }
        }
    ]
    assert calls(httpserver, "crm.deal.update") == [{"id": "13200", "fields": {"TITLE": "Переименована"}}]


def test_a_new_phone_replaces_the_first_one_in_place_instead_of_piling_up(httpserver):
    # given a company whose phone changed in the hub and whose e-mail did not
    company = json.loads(fixture("companies_page1.json"))["result"][0]
    serve(httpserver, "crm.company.get", json.dumps({"result": company}))
    serve(httpserver, "crm.company.update", json.dumps({"result": True}))
    connector = make(httpserver)
    payload = to_remote(
        {"name": "ООО «Вектор»", "phone": "+74950000000", "email": "info@vector.example"},
        rules(connector, "clients"),
    )

    connector.upsert("clients", payload, external_id="101")

    (update,) = calls(httpserver, "crm.company.update")
    assert update["fields"] == {
        "TITLE": "ООО «Вектор»",
        "PHONE": [{"ID": "501", "VALUE": "+74950000000", "VALUE_TYPE": "WORK"}],
    }


def test_a_new_company_gets_typed_multi_fields(httpserver):
    serve(httpserver, "crm.company.add", json.dumps({"result": 160}))
    connector = make(httpserver)
    payload = to_remote({"name": "ООО Новое", "email": "hello@new.example"}, rules(connector, "clients"))

    assert connector.upsert("clients", payload) == "160"
    assert calls(httpserver, "crm.company.add")[0]["fields"]["EMAIL"] == [
        {"VALUE_TYPE": "WORK", "VALUE": "hello@new.example"}
    ]


def test_a_vendor_field_error_is_permanent_and_quotes_the_vendor(httpserver):
    serve(httpserver, "crm.company.add", "error_field.json", status=400)

    with pytest.raises(PermanentError, match="обязательно"):
        make(httpserver).upsert("clients", {"TITLE": ""})


def test_smart_invoices_are_not_written(httpserver):
    with pytest.raises(PermanentError, match="read only"):
        make(httpserver).upsert("invoices", {"title": "x"})


def test_delete_removes_and_tolerates_an_already_deleted_record(httpserver):
    serve(httpserver, "crm.contact.delete", json.dumps({"result": True}))
    serve(httpserver, "crm.deal.delete", "error_not_found.json", status=400)
    connector = make(httpserver)

    connector.delete("contacts", "22044")
    connector.delete("deals", "1")

    assert calls(httpserver, "crm.contact.delete") == [{"id": "22044"}]


def test_add_note_writes_a_timeline_comment(httpserver):
    serve(httpserver, "crm.timeline.comment.add", json.dumps({"result": 991}))
    connector = make(httpserver)

    connector.add_note("deals", "13142", "Счёт № 5 оплачен")

    assert calls(httpserver, "crm.timeline.comment.add") == [
        {"fields": {"ENTITY_ID": 13142, "ENTITY_TYPE": "deal", "COMMENT": "Счёт № 5 оплачен"}}
    ]


# --- bad input ----------------------------------------------------------------------------------


def test_an_html_page_is_a_clear_permanent_error(httpserver):
    httpserver.expect_request(f"{HOOK}crm.contact.list.json").respond_with_data(
        "<html><head><title>Портал на обслуживании</title></head></html>", content_type="text/html"
    )
    with pytest.raises(PermanentError, match="HTML page"):
        list(make(httpserver).fetch("contacts"))


def test_truncated_json_is_a_clear_permanent_error(httpserver):
    httpserver.expect_request(f"{HOOK}crm.contact.list.json").respond_with_data(
        fixture("contacts.json")[:200], content_type=JSON
    )
    with pytest.raises(PermanentError, match="expected JSON"):
        list(make(httpserver).fetch("contacts"))


def test_a_result_that_is_not_a_list_is_a_clear_error(httpserver):
    serve(httpserver, "crm.contact.list", json.dumps({"result": {"oops": 1}}))

    with pytest.raises(PermanentError, match="expected a list"):
        list(make(httpserver).fetch("contacts"))


def test_bad_rows_fail_in_the_mapper_and_the_fetch_goes_on(httpserver):
    body = json.loads(fixture("contacts.json"))
    good = body["result"][0]
    bad_phone = {**good, "ID": "22045", "PHONE": [{"ID": "9", "VALUE": "спросить у секретаря"}]}
    body["result"] = [{"NAME": "без ID"}, bad_phone, good]
    serve(httpserver, "crm.contact.list", json.dumps(body))
    connector = make(httpserver)

    records = list(connector.fetch("contacts"))

    assert [r.external_id for r in records] == ["22045", "22044"]
    with pytest.raises(MappingError, match="phone"):
        to_canonical(records[0].data, rules(connector, "contacts"))


def test_a_batch_error_for_one_deal_leaves_the_others_intact(httpserver):
    serve(httpserver, "crm.deal.list", "deals.json")
    batch = json.loads(fixture("batch_productrows.json"))
    del batch["result"]["result"]["d13143"]
    batch["result"]["result_error"] = {"d13143": {"error": "", "error_description": "Access denied."}}
    serve(httpserver, "batch", json.dumps(batch))

    records = list(make(httpserver).fetch("deals"))

    assert [("PRODUCT_ROWS" in r.data) for r in records] == [True, False, True]


# --- webhooks (event handlers) ------------------------------------------------------------------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def event(name="event_deal_update.form", ts=None) -> bytes:
    return fixture(name).replace("__TS__", str(int(ts if ts is not None else time.time()))).encode()


def test_an_event_with_the_stored_application_token_is_accepted_and_parsed(httpserver):
    connector = make(httpserver, options={"domain": "romashka.bitrix24.ru"})
    body = event()

    assert connector.verify_webhook(FORM, body) is True
    (parsed,) = connector.parse_webhook(FORM, body)
    assert (parsed.stream, parsed.external_id, parsed.action, parsed.record) == (
        "deals",
        "13142",
        "upsert",
        None,
    )


def test_a_json_shaped_smart_invoice_event_is_accepted_too(httpserver):
    connector = make(httpserver)
    body = event("event_invoice_update.json")

    assert connector.verify_webhook({"Content-Type": JSON}, body) is True
    (parsed,) = connector.parse_webhook({"Content-Type": JSON}, body)
    assert (parsed.stream, parsed.external_id) == ("invoices", "5")


def test_a_forged_application_token_is_refused(httpserver):
    forged = event().replace(APP_TOKEN.encode(), b"0" * 32)
    connector = make(httpserver)

    assert connector.verify_webhook(FORM, forged) is False
    assert make(httpserver, credentials={}).verify_webhook(FORM, event()) is False  # nothing stored
    assert make(httpserver, options={"domain": "other.bitrix24.ru"}).verify_webhook(FORM, event()) is False


def test_a_replayed_event_is_refused_when_old_and_deduplicated_when_recent(httpserver):
    connector = make(httpserver)
    old = event(ts=time.time() - 2 * 3600)
    future = event(ts=time.time() + 3600)
    recent = event()

    assert connector.verify_webhook(FORM, old) is False
    assert connector.verify_webhook(FORM, future) is False
    assert [e.event_id for e in connector.parse_webhook(FORM, recent)] == [
        e.event_id for e in connector.parse_webhook(FORM, recent)
    ]


def test_events_the_hub_does_not_sync_are_ignored_and_garbage_is_an_error(httpserver):
    connector = make(httpserver)
    install = b"event=ONAPPINSTALL&data%5BVERSION%5D=1&ts=1&auth%5Bapplication_token%5D=x"
    other_item = event("event_invoice_update.json").replace(b'"31"', b'"1220"')
    delete = b"event=ONCRMCONTACTDELETE&data%5BFIELDS%5D%5BID%5D=22044&ts=1"

    assert connector.parse_webhook(FORM, install) == []
    assert connector.parse_webhook({"Content-Type": JSON}, other_item) == []
    assert [(e.stream, e.action) for e in connector.parse_webhook(FORM, delete)] == [("contacts", "delete")]
    with pytest.raises(PermanentError):
        connector.parse_webhook(FORM, b"hello")
    with pytest.raises(PermanentError):
        connector.parse_webhook(FORM, b"event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=")
    with pytest.raises(PermanentError):
        connector.parse_webhook({"Content-Type": JSON}, b'{"event": ')


def test_the_webhook_secret_in_the_url_and_oauth_secrets_never_reach_the_logs(httpserver, caplog):
    # given an incoming-webhook connection and an OAuth one, both logging at INFO
    serve(httpserver, "crm.contact.list", "contacts.json")
    httpserver.expect_request("/oauth/token/").respond_with_data(fixture("token.json"), content_type=JSON)
    serve(httpserver, "scope", "scope.json", prefix="/rest/")
    caplog.set_level("INFO", logger="sync.http")

    # when both talk to the portal
    list(make(httpserver).fetch("contacts"))
    oauth_connector(httpserver).check()

    # then our client logs the requests without the secrets, and httpx (which would not redact) is quiet
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name in ("sync.http", "httpx", "httpcore"))
    assert "crm.contact.list.json" in ours
    for secret in ("k3y5ecr3t0000000", "s3cret", "old-refresh", "new-access-token"):
        assert secret not in ours


def test_a_deleted_incoming_webhook_says_how_to_fix_it(httpserver):
    serve(
        httpserver,
        "scope",
        json.dumps({"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"}),
        status=401,
    )

    with pytest.raises(AuthError, match="incoming-webhook URL"):
        make(httpserver).check()


def test_an_error_body_with_an_empty_code_still_counts_as_an_error(httpserver):
    serve(httpserver, "crm.company.get", "error_not_found.json")  # HTTP 200, `"error": ""`

    assert make(httpserver).get("clients", "404") is None
