"""amoCRM connector against a loopback HTTP server answering with recorded payloads (CONTRACTS.md §1.1)."""

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

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "amocrm"
HAL = "application/hal+json"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def make(httpserver, *, credentials=None, options=None, base_url=None, max_attempts=3):
    cls = connector_class("amocrm")
    config = ConnectionConfig(
        name="amo-test",
        system="amocrm",
        base_url=base_url or httpserver.url_for("/"),
        credentials=MemoryCredentialStore(credentials if credentials is not None else {"token": "llt"}),
        options=options if options is not None else {"subdomain": "romashka", "account_id": "29085955"},
        timeout_seconds=5,
        max_attempts=max_attempts,
    )
    connector = cls(config)
    connector.sleeps = []
    connector.http.sleep = connector.sleeps.append
    connector.http.bucket = None  # the 7 req/s bucket is checked separately; no waiting here
    return connector


def rules(connector, entity):
    return [Rule(**vars(m)) for m in connector.default_mappings if m.entity == entity]


def serve_companies(httpserver):
    def companies(request):
        page = request.args.get("page", "1")
        return Response(
            fixture("companies_page2.json" if page == "2" else "companies_page1.json"), content_type=HAL
        )

    httpserver.expect_request("/api/v4/companies").respond_with_handler(companies)


def api_requests(httpserver, path):
    return [request for request, _ in httpserver.log if request.path == path]


# --- reading ------------------------------------------------------------------------------------


def test_fetch_pages_through_hal_next_links_to_the_end(httpserver):
    # given two pages of companies linked by _links.next
    serve_companies(httpserver)
    connector = make(httpserver)

    # when the whole stream is read
    records = list(connector.fetch("clients"))

    # then every company arrives once, oldest change first, with tz-aware timestamps
    assert [r.external_id for r in records] == ["40401297", "40401301", "40401355"]
    assert [r.updated_at for r in records] == sorted(r.updated_at for r in records)
    assert all(r.updated_at.tzinfo is not None for r in records)
    first, second = api_requests(httpserver, "/api/v4/companies")
    assert first.args["limit"] == "250" and first.args["page"] == "1"
    assert first.args["order[updated_at]"] == "asc"
    assert first.headers["Authorization"] == "Bearer llt"
    assert second.args["page"] == "2"
    assert "If-Modified-Since" not in first.headers


def test_the_change_feed_sends_if_modified_since_and_the_updated_at_filter(httpserver):
    # given a cursor
    serve_companies(httpserver)
    connector = make(httpserver)
    since = dt.datetime(2026, 1, 2, 8, 0, tzinfo=dt.UTC)

    # when fetching changes since it
    list(connector.fetch("clients", since=since))

    # then both the header and the filter carry the cursor
    first = api_requests(httpserver, "/api/v4/companies")[0]
    assert first.headers["If-Modified-Since"] == "Fri, 02 Jan 2026 08:00:00 GMT"
    assert first.args["filter[updated_at][from]"] == str(int(since.timestamp()))


def test_an_empty_change_feed_is_204_no_content(httpserver):
    httpserver.expect_request("/api/v4/leads").respond_with_data("", status=204)
    connector = make(httpserver)

    assert list(connector.fetch("deals", since=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))) == []


def test_a_repeated_next_link_is_a_permanent_error_not_a_loop(httpserver):
    body = json.loads(fixture("companies_page1.json"))
    httpserver.expect_request("/api/v4/companies").respond_with_json(body)  # page 2 points to page 2 again
    connector = make(httpserver)

    with pytest.raises(PermanentError, match="repeats"):
        list(connector.fetch("clients"))


def test_leads_map_to_deals_with_status_stage_amount_and_client(httpserver):
    # given leads in an open stage, won (142) and lost (143), and the pipelines list
    httpserver.expect_request("/api/v4/leads").respond_with_data(fixture("leads.json"), content_type=HAL)
    httpserver.expect_request("/api/v4/leads/pipelines").respond_with_data(
        fixture("pipelines.json"), content_type=HAL
    )
    connector = make(httpserver)

    # when read and mapped with the default mappings
    records = list(connector.fetch("deals"))
    deals = [to_canonical(r.data, rules(connector, "deals")) for r in records]

    # then status comes from the 142/143 enum, stage from the status name (or the admin's map)
    assert [d["status"] for d in deals] == ["open", "won", "lost"]
    assert [d["stage"] for d in deals] == ["Переговоры", "Won", "Lost"]
    assert deals[0]["amount"] == Decimal("25000.00") and deals[0]["currency"] == "RUB"
    assert deals[0]["client"] == Ref("clients", "40401297")
    assert deals[0]["utm_source"] == "yandex"
    assert "client" not in deals[2]  # no company linked
    assert records[0].data["pipeline_name"] == "Продажи"
    assert len(api_requests(httpserver, "/api/v4/leads/pipelines")) == 1  # read once per run
    assert api_requests(httpserver, "/api/v4/leads")[0].args["with"] == "contacts"


def test_companies_and_contacts_map_custom_fields(httpserver):
    serve_companies(httpserver)
    httpserver.expect_request("/api/v4/contacts").respond_with_data(
        fixture("contacts.json"), content_type=HAL
    )
    connector = make(httpserver)

    client = to_canonical(next(connector.fetch("clients")).data, rules(connector, "clients"))
    contact = to_canonical(next(connector.fetch("contacts")).data, rules(connector, "contacts"))

    assert client == {
        "name": "ООО «Вектор»",
        "kind": "company",
        "inn": "7707083893",
        "kpp": "773601001",
        "phone": "+74951234567",
        "email": "info@vector.example",
        "address": "Москва, ул. Тверская, 1",
        "archived": False,
    }
    assert contact["phone"] == "+79161234567"  # the first phone value, normalised to E.164
    assert contact["position"] == "Директор"
    assert contact["client"] == Ref("clients", "40401297")
    assert (contact["first_name"], contact["last_name"]) == ("Иван", "Петров")


def test_get_returns_the_record_or_none_when_gone(httpserver):
    lead = json.loads(fixture("leads.json"))["_embedded"]["leads"][1]
    httpserver.expect_request("/api/v4/leads/17658").respond_with_json(lead)
    httpserver.expect_request("/api/v4/leads/pipelines").respond_with_data(fixture("pipelines.json"))
    httpserver.expect_request("/api/v4/leads/999").respond_with_data("", status=204)
    httpserver.expect_request("/api/v4/companies/404").respond_with_json({"status": 404}, status=404)
    connector = make(httpserver)

    record = connector.get("deals", "17658")

    assert record.external_id == "17658" and record.data["status_name"] == "Успешно реализовано"
    assert connector.get("deals", "999") is None
    assert connector.get("clients", "404") is None


# --- throttling ---------------------------------------------------------------------------------


def test_429_is_retried_after_the_retry_after_delay(httpserver):
    # given one throttled reply, then the data
    httpserver.expect_ordered_request("/api/v4/contacts").respond_with_data(
        "", status=429, headers={"Retry-After": "2"}
    )
    httpserver.expect_ordered_request("/api/v4/contacts").respond_with_data(
        fixture("contacts.json"), content_type=HAL
    )
    connector = make(httpserver)

    # when reading
    records = list(connector.fetch("contacts"))

    # then the connector waited as told and went on
    assert [r.external_id for r in records] == ["7143599"]
    assert connector.sleeps == [2.0]


def test_persistent_503_ends_as_a_retryable_error(httpserver):
    httpserver.expect_request("/api/v4/contacts").respond_with_data("", status=503)
    connector = make(httpserver, max_attempts=2)

    with pytest.raises(RetryableError):
        list(connector.fetch("contacts"))
    assert len(api_requests(httpserver, "/api/v4/contacts")) == 2


def test_the_default_rate_limit_is_seven_requests_per_second(httpserver):
    cls = connector_class("amocrm")
    config = ConnectionConfig(
        name="amo-rate",
        system="amocrm",
        base_url=httpserver.url_for("/"),
        credentials=MemoryCredentialStore({"token": "t"}),
    )
    assert cls(config).http.bucket.rate == 7.0


# --- OAuth2 -------------------------------------------------------------------------------------


def oauth_credentials(**extra):
    return {
        "client_id": "cid",
        "client_secret": "secret",
        "refresh_token": "old-refresh",
        "redirect_uri": "https://hub.example/oauth/amocrm",
        "access_token": "old-access",
        "access_token_expires_at": str(int(time.time()) - 10),
        **extra,
    }


def test_an_expired_access_token_is_refreshed_and_the_rotated_pair_stored(httpserver):
    # given an expired access token
    httpserver.expect_request("/oauth2/access_token", method="POST").respond_with_data(
        fixture("token.json"), content_type="application/json"
    )
    httpserver.expect_request("/api/v4/account").respond_with_data(fixture("account.json"))
    connector = make(httpserver, credentials=oauth_credentials())

    # when the connection is checked
    connector.check()

    # then one refresh ran with the refresh grant, the new pair is stored, the API saw the new token
    (refresh,) = api_requests(httpserver, "/oauth2/access_token")
    assert refresh.get_json() == {
        "client_id": "cid",
        "client_secret": "secret",
        "grant_type": "refresh_token",
        "refresh_token": "old-refresh",
        "redirect_uri": "https://hub.example/oauth/amocrm",
    }
    stored = connector.config.credentials.load()
    assert stored["access_token"] == "new-access-token"
    assert stored["refresh_token"] == "new-refresh-token"
    assert float(stored["access_token_expires_at"]) > time.time() + 86000
    assert (
        api_requests(httpserver, "/api/v4/account")[0].headers["Authorization"] == "Bearer new-access-token"
    )


def test_two_threads_with_an_expired_token_cause_one_refresh(httpserver):
    # given two workers sharing one credential store and an expired access token
    def slow_token(request):
        time.sleep(0.2)  # the second worker arrives while the first is refreshing
        return Response(fixture("token.json"), content_type="application/json")

    httpserver.expect_request("/oauth2/access_token", method="POST").respond_with_handler(slow_token)
    httpserver.expect_request("/api/v4/account").respond_with_data(fixture("account.json"))
    store = MemoryCredentialStore(oauth_credentials())
    workers = []
    for _ in range(2):
        connector = make(httpserver)
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

    # when both check at once
    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # then the refresh token was used once and both calls went through with the new token
    assert errors == []
    assert len(api_requests(httpserver, "/oauth2/access_token")) == 1
    assert [r.headers["Authorization"] for r in api_requests(httpserver, "/api/v4/account")] == [
        "Bearer new-access-token"
    ] * 2


def test_a_401_with_a_fresh_looking_token_refreshes_once_and_retries(httpserver):
    httpserver.expect_ordered_request("/api/v4/account").respond_with_json({"status": 401}, status=401)
    httpserver.expect_ordered_request("/oauth2/access_token", method="POST").respond_with_data(
        fixture("token.json"), content_type="application/json"
    )
    httpserver.expect_ordered_request("/api/v4/account").respond_with_data(fixture("account.json"))
    creds = oauth_credentials(access_token_expires_at=str(int(time.time()) + 3600))
    connector = make(httpserver, credentials=creds)

    connector.check()

    assert connector.config.credentials.load()["refresh_token"] == "new-refresh-token"


def test_a_revoked_refresh_token_asks_the_admin_to_reconnect(httpserver):
    httpserver.expect_request("/oauth2/access_token", method="POST").respond_with_data(
        fixture("token_revoked.json"), status=400, content_type="application/problem+json"
    )
    connector = make(httpserver, credentials=oauth_credentials())

    with pytest.raises(AuthError, match="reconnect in admin"):
        connector.check()
    assert connector.config.credentials.load()["refresh_token"] == "old-refresh"  # nothing half-stored


def test_no_credentials_is_a_clear_auth_error(httpserver):
    connector = make(httpserver, credentials={})

    with pytest.raises(AuthError, match="token"):
        connector.check()


# --- writing ------------------------------------------------------------------------------------


def test_upsert_creates_with_a_list_body_and_updates_with_patch(httpserver):
    httpserver.expect_request("/api/v4/leads", method="POST").respond_with_data(
        fixture("lead_created.json"), content_type=HAL
    )
    httpserver.expect_request("/api/v4/leads/17700", method="PATCH").respond_with_json({"id": 17700})
    connector = make(httpserver)
    payload = to_remote(
        {"title": "Новая сделка", "amount": Decimal("1500.00"), "client": 7},
        rules(connector, "deals"),
        resolve=lambda entity, local: "40401297",
    )

    new_id = connector.upsert("deals", payload)
    connector.upsert("deals", {"name": "Переименована"}, external_id=new_id)

    assert new_id == "17700"
    create = api_requests(httpserver, "/api/v4/leads")[0].get_json()
    assert create == [{"name": "Новая сделка", "price": 1500, "_embedded": {"companies": [{"id": 40401297}]}}]
    assert api_requests(httpserver, "/api/v4/leads/17700")[0].get_json() == {"name": "Переименована"}


def test_a_vendor_validation_error_is_permanent_and_quotes_the_vendor(httpserver):
    httpserver.expect_request("/api/v4/companies", method="POST").respond_with_data(
        fixture("problem_validation.json"), status=400, content_type="application/problem+json"
    )
    connector = make(httpserver)

    with pytest.raises(PermanentError, match="NotSupportedChoice"):
        connector.upsert("clients", {"name": "X"})


def test_add_note_posts_a_common_note_on_the_lead(httpserver):
    httpserver.expect_request("/api/v4/leads/17657/notes", method="POST").respond_with_data(
        fixture("note_created.json"), content_type=HAL
    )
    connector = make(httpserver)

    connector.add_note("deals", "17657", "Счёт № 12 оплачен")

    body = api_requests(httpserver, "/api/v4/leads/17657/notes")[0].get_json()
    assert body == [{"note_type": "common", "params": {"text": "Счёт № 12 оплачен"}}]


def test_delete_is_refused_with_a_clear_message(httpserver):
    with pytest.raises(PermanentError, match="cannot delete"):
        make(httpserver).delete("deals", "1")


# --- bad input ----------------------------------------------------------------------------------


def test_an_html_page_is_a_clear_permanent_error(httpserver):
    httpserver.expect_request("/api/v4/contacts").respond_with_data(
        "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head></html>", content_type="text/html"
    )
    with pytest.raises(PermanentError, match="HTML page"):
        list(make(httpserver).fetch("contacts"))


def test_truncated_json_is_a_clear_permanent_error(httpserver):
    httpserver.expect_request("/api/v4/contacts").respond_with_data(
        fixture("contacts.json")[:300], content_type=HAL
    )
    with pytest.raises(PermanentError, match="expected JSON"):
        list(make(httpserver).fetch("contacts"))


def test_a_body_without_the_embedded_list_is_a_clear_error(httpserver):
    httpserver.expect_request("/api/v4/contacts").respond_with_json({"_page": 1})
    with pytest.raises(PermanentError, match=r"_embedded\.contacts"):
        list(make(httpserver).fetch("contacts"))


def test_bad_records_fail_in_the_mapper_and_the_fetch_goes_on(httpserver):
    # given a page with a record without id and one with an unparseable phone
    body = json.loads(fixture("contacts.json"))
    good = body["_embedded"]["contacts"][0]
    bad_phone = {
        **good,
        "id": 7143600,
        "custom_fields_values": [{"field_code": "PHONE", "values": [{"value": "звонить секретарю"}]}],
    }
    body["_embedded"]["contacts"] = [{"name": "без id"}, bad_phone, good]
    httpserver.expect_request("/api/v4/contacts").respond_with_json(body)
    connector = make(httpserver)

    # when fetched
    records = list(connector.fetch("contacts"))

    # then the id-less item is skipped, the rest arrive; the bad phone fails only in the mapper
    assert [r.external_id for r in records] == ["7143600", "7143599"]
    with pytest.raises(MappingError, match="phone"):
        to_canonical(records[0].data, rules(connector, "contacts"))
    assert to_canonical(records[1].data, rules(connector, "contacts"))["phone"] == "+79161234567"


def test_an_unknown_status_id_is_an_open_deal_with_a_blank_stage():
    from sync.connectors.amocrm import AmoCRMConnector

    deal_rules = [Rule(**vars(m)) for m in AmoCRMConnector.default_mappings if m.entity == "deals"]

    canonical = to_canonical({"name": "x", "status_id": 987654}, deal_rules)

    assert canonical["status"] == "open" and canonical["stage"] == ""


# --- webhooks -----------------------------------------------------------------------------------


def webhook_body() -> bytes:
    return (FIXTURES / "webhook_status_lead.form").read_bytes()


FORM = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "amoCRM-WebHook-client/1.0"}


def test_a_webhook_from_the_connected_account_is_accepted_and_parsed_into_refetch_events(httpserver):
    connector = make(httpserver)

    assert connector.verify_webhook(FORM, webhook_body()) is True
    events = connector.parse_webhook(FORM, webhook_body())

    assert [(e.stream, e.external_id, e.action) for e in events] == [
        ("deals", "17658", "upsert"),
        ("clients", "40401297", "upsert"),
        ("contacts", "7143599", "delete"),
    ]
    assert all(e.record is None for e in events)  # unsigned: the engine re-fetches by id
    assert events[0].event_id == "amocrm:leads:status:17658:1767430200"


def test_a_webhook_for_another_account_is_refused(httpserver):
    forged = webhook_body().replace(b"account%5Bsubdomain%5D=romashka", b"account%5Bsubdomain%5D=attacker")
    other_id = webhook_body().replace(b"account%5Bid%5D=29085955", b"account%5Bid%5D=1")
    connector = make(httpserver)

    assert connector.verify_webhook(FORM, forged) is False
    assert connector.verify_webhook(FORM, other_id) is False
    assert connector.verify_webhook(FORM, b"leads%5Badd%5D%5B0%5D%5Bid%5D=1") is False  # no account at all


def test_the_account_subdomain_is_taken_from_the_base_url_when_options_do_not_say(httpserver):
    connector = make(httpserver, options={}, base_url="https://romashka.amocrm.ru")
    stranger = make(httpserver, options={}, base_url="https://other.amocrm.ru")
    unknown = make(httpserver, options={})  # loopback host, nothing configured

    assert connector.verify_webhook(FORM, webhook_body()) is True
    assert stranger.verify_webhook(FORM, webhook_body()) is False
    assert unknown.verify_webhook(FORM, webhook_body()) is False


def test_a_replayed_delivery_yields_the_same_event_ids_so_the_inbox_drops_it(httpserver):
    connector = make(httpserver)

    first = [e.event_id for e in connector.parse_webhook(FORM, webhook_body())]
    again = [e.event_id for e in connector.parse_webhook(FORM, webhook_body())]

    assert first == again and len(set(first)) == len(first)


def test_a_malformed_webhook_body_is_a_permanent_error(httpserver):
    connector = make(httpserver)

    with pytest.raises(PermanentError):
        connector.parse_webhook(FORM, b'{"json": "not a form"}')
    with pytest.raises(PermanentError):
        connector.parse_webhook(FORM, b"leads%5Badd%5D%5B0%5D%5Bid%5D=abc&account%5Bid%5D=29085955")
    with pytest.raises(PermanentError):
        connector.parse_webhook(FORM, b"\xff\xfe")


def test_a_refused_long_lived_token_says_how_to_fix_it(httpserver):
    httpserver.expect_request("/api/v4/account").respond_with_json(
        {"status": 401, "title": "Unauthorized"}, status=401
    )

    with pytest.raises(AuthError, match="long-lived token"):
        make(httpserver).check()


def test_links_to_unsynced_companies_are_left_out_of_the_payload(httpserver):
    httpserver.expect_request("/api/v4/companies", method="POST").respond_with_json(
        {"_embedded": {"companies": [{"id": 40401400, "request_id": "0"}]}}
    )
    httpserver.expect_request("/api/v4/contacts", method="POST").respond_with_json(
        {"_embedded": {"contacts": [{"id": 7143700, "request_id": "0"}]}}
    )
    connector = make(httpserver)
    company = to_remote(
        {"name": "ООО Новое", "phone": "+74950000000", "email": "hi@new.example"}, rules(connector, "clients")
    )
    contact = to_remote(
        {"first_name": "Анна", "last_name": "Кузнецова", "client": 9},
        rules(connector, "contacts"),
        resolve=lambda entity, local: None,  # the company has no amoCRM id yet
    )

    assert connector.upsert("clients", company) == "40401400"
    assert connector.upsert("contacts", contact) == "7143700"

    assert api_requests(httpserver, "/api/v4/companies")[0].get_json() == [
        {
            "name": "ООО Новое",
            "custom_fields_values": [
                {"field_code": "PHONE", "values": [{"value": "+74950000000"}]},
                {"field_code": "EMAIL", "values": [{"value": "hi@new.example"}]},
            ],
        }
    ]
    assert api_requests(httpserver, "/api/v4/contacts")[0].get_json() == [
        {"first_name": "Анна", "last_name": "Кузнецова"}
    ]
