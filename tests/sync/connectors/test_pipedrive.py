"""Pipedrive connector against a loopback server answering with recorded payloads (CONTRACTS.md §1.4)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from werkzeug import Response

from sync.connectors import connector_class
from sync.connectors.base import AuthError, ConnectionConfig, MemoryCredentialStore, PermanentError
from sync.mapping.mapper import MappingError, Rule, to_canonical, to_remote
from sync.mapping.transforms import Ref

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pipedrive"
TOKEN = "0123456789abcdef0123456789abcdef01234567"
CURSOR = "eyJmaWVsZCI6ImlkIiwiZmllbGRWYWx1ZSI6M30"


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def json_response(body, status=200, headers=None):
    return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")


@pytest.fixture
def make(httpserver):
    def build(credentials=None, **options):
        config = ConnectionConfig(
            name="pipedrive-test",
            system="pipedrive",
            base_url=httpserver.url_for(""),
            credentials=MemoryCredentialStore(credentials if credentials is not None else {"token": TOKEN}),
            options=options,
            timeout_seconds=5,
            max_attempts=3,
        )
        connector = connector_class("pipedrive")(config)
        connector.slept = []
        connector.http.sleep = connector.slept.append
        connector.http.bucket = None
        return connector

    return build


def rules(connector, entity):
    return [Rule(**vars(m)) for m in connector.default_mappings if m.entity == entity]


# --- reading -----------------------------------------------------------------------------------------


def test_fetch_follows_the_cursor_to_the_end_and_maps_organizations(make, httpserver):
    # given two cursor pages of organizations
    pages = {None: fixture("organizations_page1.json"), CURSOR: fixture("organizations_page2.json")}
    httpserver.expect_request("/api/v2/organizations").respond_with_handler(
        lambda request: json_response(pages[request.args.get("cursor")])
    )
    connector = make()

    # when everything is read
    records = list(connector.fetch("clients"))

    # then both pages arrive, sorted by update_time ascending, with the token header, 500 per page
    assert [r.external_id for r in records] == ["2", "3", "7"]
    first_request = httpserver.log[0][0]
    assert first_request.headers["x-api-token"] == TOKEN
    assert first_request.args.to_dict() == {"sort_by": "update_time", "sort_direction": "asc", "limit": "500"}
    assert httpserver.log[1][0].args["cursor"] == CURSOR
    assert records[0].updated_at == dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)
    assert to_canonical(records[0].data, rules(connector, "clients")) == {
        "name": "ООО Ромашка",
        "kind": "company",
        "address": "Москва, ул. Тверская, 1",
        "archived": False,
    }
    # a null address does not break the mapping
    assert "address" not in to_canonical(records[1].data, rules(connector, "clients"))


def test_change_feed_sends_updated_since_and_asks_for_recently_deleted_deals(make, httpserver):
    httpserver.expect_request("/api/v2/deals").respond_with_json(fixture("deals.json"))
    connector = make()

    records = list(connector.fetch("deals", since=dt.datetime(2026, 3, 1, 8, 30, 15, 999, tzinfo=dt.UTC)))

    args = httpserver.log[0][0].args
    assert args["updated_since"] == "2026-03-01T08:30:15Z"
    assert args["status"] == "open,won,lost,deleted"
    assert args["sort_by"] == "update_time"
    assert [(r.external_id, r.deleted) for r in records] == [("1", False), ("5", False), ("6", True)]
    deal = to_canonical(records[0].data, rules(connector, "deals"))
    assert deal["client"] == Ref("clients", "2")
    assert deal["amount"] == Decimal("150000.50")
    assert deal["status"] == "open"
    assert deal["expected_close_date"] == dt.date(2026, 4, 30)
    assert deal["stage"] == 3
    assert to_canonical(records[1].data, rules(connector, "deals"))["status"] == "won"


def test_persons_map_the_primary_email_and_phone(make, httpserver):
    httpserver.expect_request("/api/v2/persons").respond_with_json(fixture("persons.json"))
    connector = make()

    [person] = connector.fetch("contacts", since=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))

    assert to_canonical(person.data, rules(connector, "contacts")) == {
        "first_name": "Иван",
        "last_name": "Петров",
        "email": "ivan@romashka.ru",
        "phone": "+79160001122",
        "position": "Главный бухгалтер",
        "client": Ref("clients", "2"),
        "archived": False,
    }


def test_products_feed_reads_newest_first_stops_at_the_cursor_and_yields_oldest_first(make, httpserver):
    # given products sorted newest first, the third older than the cursor (a next page exists but is not needed)
    httpserver.expect_request("/api/v2/products").respond_with_json(fixture("products_desc.json"))
    connector = make()

    records = list(connector.fetch("products", since=dt.datetime(2026, 3, 1, tzinfo=dt.UTC)))

    assert [r.external_id for r in records] == ["11", "12"]
    assert len(httpserver.log) == 1
    assert httpserver.log[0][0].args["sort_direction"] == "desc"
    assert to_canonical(records[0].data, rules(connector, "products")) == {
        "sku": "SRV-1",
        "name": "Сервер",
        "unit": "шт",
        "vat_rate": Decimal("20.00"),
        "price": Decimal("50000.00"),
        "unit_cost": Decimal("32000.00"),
        "currency": "RUB",
        "archived": False,
    }


def test_deal_products_are_attached_when_asked_for(make, httpserver):
    httpserver.expect_request("/api/v2/deals").respond_with_json(fixture("deals.json"))
    httpserver.expect_request("/api/v2/deals/products").respond_with_json(fixture("deal_products.json"))
    connector = make(deal_products=True)

    deals = list(connector.fetch("deals"))

    assert httpserver.log[1][0].args["deal_ids"] == "1,5,6"
    assert [p["name"] for p in deals[0].data["products"]] == ["Сервер", "Монтаж"]
    assert deals[1].data["products"] == []


def test_a_repeated_cursor_stops_the_fetch(make, httpserver):
    page = {
        "success": True,
        "data": [{"id": 1, "update_time": "2026-03-01T00:00:00Z"}],
        "additional_data": {"next_cursor": "same"},
    }
    httpserver.expect_request("/api/v2/organizations").respond_with_json(page)

    with pytest.raises(PermanentError, match="twice"):
        list(make().fetch("clients"))


def test_get_returns_the_record_or_none_when_gone(make, httpserver):
    httpserver.expect_request("/api/v2/deals/1").respond_with_json(
        {"success": True, "data": fixture("deals.json")["data"][0]}
    )
    httpserver.expect_request("/api/v2/deals/404").respond_with_json(
        {"success": False, "error": "Deal not found", "errorCode": 404}, status=404
    )
    connector = make()

    assert connector.get("deals", "1").data["title"] == "Поставка оборудования"
    assert connector.get("deals", "404") is None


# --- throttling and errors -----------------------------------------------------------------------------


def test_429_waits_for_the_rate_limit_window_to_reset(make, httpserver):
    replies = [
        json_response(
            fixture("rate_limit_429.json"),
            status=429,
            headers={"x-ratelimit-limit": "20", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"},
        ),
        json_response(fixture("persons.json")),
    ]
    httpserver.expect_request("/api/v2/persons").respond_with_handler(lambda request: replies.pop(0))
    connector = make()

    assert [r.external_id for r in connector.fetch("contacts")] == ["47"]
    assert connector.slept == [2.0]


def test_503_is_retried_with_backoff(make, httpserver):
    replies = [
        Response("<html>503</html>", status=503, content_type="text/html"),
        json_response(fixture("persons.json")),
    ]
    httpserver.expect_request("/api/v2/persons").respond_with_handler(lambda request: replies.pop(0))
    connector = make()

    assert [r.external_id for r in connector.fetch("contacts")] == ["47"]
    assert len(connector.slept) == 1


def test_a_refused_token_is_an_auth_error(make, httpserver):
    httpserver.expect_request("/api/v1/users/me").respond_with_json(
        fixture("unauthorized_401.json"), status=401
    )

    with pytest.raises(AuthError, match="401"):
        make().check()


def test_a_missing_token_asks_the_admin_to_reconnect(make):
    with pytest.raises(AuthError, match="reconnect in admin"):
        make({}).check()


def test_a_vendor_error_body_is_a_permanent_error_with_its_message(make, httpserver):
    httpserver.expect_request("/api/v2/deals").respond_with_json(
        fixture("validation_error_400.json"), status=400
    )

    with pytest.raises(PermanentError, match="ERR_SCHEMA_VALIDATION_FAILED"):
        list(make().fetch("deals"))


@pytest.mark.parametrize(
    ("body", "ctype", "expected"),
    [
        ("<!DOCTYPE html><html><title>Maintenance</title></html>", "text/html", "HTML"),
        ('{"success": true, "data": [{"id": 1, "na', "application/json", "JSON"),
        (
            '{"success": false, "error": "Company is suspended", "data": null}',
            "application/json",
            "suspended",
        ),
        ('{"success": true, "data": {"id": 1}}', "application/json", "not a list"),
        ('{"items": []}', "application/json", "unexpected reply"),
    ],
)
def test_html_truncated_or_shapeless_replies_are_clear_errors(make, httpserver, body, ctype, expected):
    httpserver.expect_request("/api/v2/organizations").respond_with_data(body, content_type=ctype)

    with pytest.raises(PermanentError, match=expected):
        list(make().fetch("clients"))


def test_an_item_without_an_id_is_a_clear_error(make, httpserver):
    httpserver.expect_request("/api/v2/organizations").respond_with_json(
        {"success": True, "data": [{"name": "ghost"}], "additional_data": {"next_cursor": None}}
    )

    with pytest.raises(PermanentError, match="without an id"):
        list(make().fetch("clients"))


def test_an_unknown_deal_status_fails_in_the_mapper_not_in_fetch(make, httpserver):
    deal = {**fixture("deals.json")["data"][0], "status": "frozen"}
    del deal["title"]  # and a missing field is simply not mapped
    httpserver.expect_request("/api/v2/deals").respond_with_json({"success": True, "data": [deal]})
    connector = make()

    [record] = connector.fetch("deals")

    with pytest.raises(MappingError) as caught:
        to_canonical(record.data, rules(connector, "deals"))
    assert set(caught.value.reasons) == {"status"}
    assert "frozen" in caught.value.reasons["status"]


# --- writing -------------------------------------------------------------------------------------------


def test_create_a_deal_from_a_mapped_payload(make, httpserver):
    httpserver.expect_request("/api/v2/deals", method="POST").respond_with_json(fixture("deal_created.json"))
    connector = make()
    payload = to_remote(
        {"title": "New", "client": 42, "status": "open", "amount": Decimal("10.00"), "currency": "RUB"},
        rules(connector, "deals"),
        resolve=lambda entity, local_id: "2",
    )

    assert connector.upsert("deals", payload) == "77"
    assert json.loads(httpserver.log[0][0].get_data()) == {
        "title": "New",
        "org_id": 2,
        "status": "open",
        "value": 10.0,
        "currency": "RUB",
    }


def test_update_a_person_sends_boolean_primary_flags(make, httpserver):
    httpserver.expect_request("/api/v2/persons/47", method="PATCH").respond_with_json(
        {"success": True, "data": {"id": 47}}
    )
    connector = make()
    payload = to_remote({"email": "new@romashka.ru", "first_name": "Иван"}, rules(connector, "contacts"))

    assert connector.upsert("contacts", payload, external_id="47") == "47"
    sent = json.loads(httpserver.log[0][0].get_data())
    assert sent["emails"] == [{"primary": True, "value": "new@romashka.ru"}]
    assert sent["first_name"] == "Иван"


def test_a_rejected_write_is_a_permanent_error(make, httpserver):
    httpserver.expect_request("/api/v2/deals", method="POST").respond_with_json(
        fixture("validation_error_400.json"), status=400
    )

    with pytest.raises(PermanentError, match="Validation failed"):
        make().upsert("deals", {"title": "x", "status": "frozen"})


def test_delete_marks_deleted_and_tolerates_gone_records(make, httpserver):
    httpserver.expect_request("/api/v2/organizations/2", method="DELETE").respond_with_json(
        {"success": True, "data": {"id": 2}}
    )
    httpserver.expect_request("/api/v2/organizations/9", method="DELETE").respond_with_json(
        {"success": False, "error": "not found"}, status=404
    )
    connector = make()

    connector.delete("clients", "2")
    connector.delete("clients", "9")

    assert [r.method for r, _ in httpserver.log] == ["DELETE", "DELETE"]


def test_add_note_posts_escaped_html_to_the_deal(make, httpserver):
    httpserver.expect_request("/api/v1/notes", method="POST").respond_with_json(fixture("note_created.json"))

    make().add_note("deals", "1", "Invoice <2026-17> paid\nthank you")

    assert json.loads(httpserver.log[0][0].get_data()) == {
        "content": "Invoice &lt;2026-17&gt; paid<br>thank you",
        "deal_id": 1,
    }


# --- webhooks ------------------------------------------------------------------------------------------


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_webhook_basic_auth_good_forged_and_missing(make):
    connector = make({"token": TOKEN, "webhook_user": "hub", "webhook_password": "s3cret"})
    body = (FIXTURES / "webhook_deal_change.json").read_bytes()

    assert connector.verify_webhook(basic("hub", "s3cret"), body) is True
    assert connector.verify_webhook({"authorization": basic("hub", "s3cret")["Authorization"]}, body) is True
    assert connector.verify_webhook(basic("hub", "guess"), body) is False
    assert connector.verify_webhook({"Authorization": "Bearer s3cret"}, body) is False
    assert connector.verify_webhook({"Authorization": "Basic !!!"}, body) is False
    assert connector.verify_webhook({}, body) is False


def test_webhook_without_configured_auth_is_accepted_as_a_hint(make):
    body = (FIXTURES / "webhook_deal_change.json").read_bytes()

    assert make().verify_webhook({}, body) is True


def test_parse_webhook_v2_events(make):
    connector = make()

    [change] = connector.parse_webhook({}, (FIXTURES / "webhook_deal_change.json").read_bytes())
    [delete] = connector.parse_webhook({}, (FIXTURES / "webhook_person_delete.json").read_bytes())

    assert (change.stream, change.external_id, change.action, change.record) == ("deals", "1", "upsert", None)
    assert change.event_id == "deal.change:1:2026-03-05T10:00:00.123Z"
    assert (delete.stream, delete.external_id, delete.action) == ("contacts", "47", "delete")
    assert connector.parse_webhook({}, (FIXTURES / "webhook_activity_create.json").read_bytes()) == []


@pytest.mark.parametrize("body", [b"<html>", b"[]", b'{"data": {}}', b'{"meta": {"entity": "deal"}}'])
def test_parse_webhook_rejects_malformed_bodies(make, body):
    with pytest.raises(PermanentError):
        make().parse_webhook({}, body)
