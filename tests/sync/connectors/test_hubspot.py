"""HubSpot connector against a loopback server answering with recorded payloads (CONTRACTS.md §1.3)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
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
from sync.mapping.mapper import MappingError, Rule, to_canonical
from sync.mapping.transforms import Ref

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hubspot"
NOW = dt.datetime(2026, 3, 5, 10, 0, tzinfo=dt.UTC)


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def json_response(body, status=200, headers=None):
    return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")


def body_of(request) -> dict:
    return json.loads(request.get_data() or b"{}")


@pytest.fixture
def make(httpserver):
    def build(credentials=None, **options):
        config = ConnectionConfig(
            name="hubspot-test",
            system="hubspot",
            base_url=httpserver.url_for(""),
            credentials=MemoryCredentialStore(credentials or {"token": "pat-na1-secret"}),
            options=options,
            timeout_seconds=5,
            max_attempts=3,
        )
        connector = connector_class("hubspot")(config)
        connector.slept = []
        connector.http.sleep = connector.slept.append
        connector.http.bucket = None  # no rate-limit waiting in tests
        connector.clock = NOW.timestamp
        return connector

    return build


def no_archived(httpserver, obj):
    httpserver.expect_request(
        f"/crm/v3/objects/{obj}",
        method="GET",
        query_string={"archived": "true", "limit": "100", "properties": "hs_object_id"},
    ).respond_with_json({"results": []})


def rules(connector, entity):
    return [Rule(**vars(m)) for m in connector.default_mappings if m.entity == entity]


def record(item_id, stamp, **props):
    return {
        "id": item_id,
        "properties": {"name": f"Co {item_id}", "hs_lastmodifieddate": stamp, **props},
        "updatedAt": stamp,
        "archived": False,
    }


# --- reading -----------------------------------------------------------------------------------------


def test_fetch_pages_to_the_end_oldest_first_and_maps_companies(make, httpserver):
    # given two pages of companies behind the search API
    pages = {None: fixture("companies_search_page1.json"), "2": fixture("companies_search_page2.json")}
    seen = []

    def search(request):
        body = body_of(request)
        seen.append(body)
        return json_response(pages[body.get("after")])

    httpserver.expect_request("/crm/v3/objects/companies/search", method="POST").respond_with_handler(search)
    connector = make()

    # when everything is read
    records = list(connector.fetch("clients"))

    # then both pages arrive in order, with the bearer token, sorted ascending, no filter
    assert [r.external_id for r in records] == ["5001", "5002", "5003"]
    assert [r.updated_at for r in records] == sorted(r.updated_at for r in records)
    assert all(r.updated_at.tzinfo is not None for r in records)
    assert seen[0]["filterGroups"] == []
    assert seen[0]["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    assert "inn" in seen[0]["properties"]
    assert httpserver.log[0][0].headers["Authorization"] == "Bearer pat-na1-secret"
    canonical = to_canonical(records[0].data, rules(connector, "clients"))
    assert canonical == {
        "name": "ООО Ромашка",
        "kind": "company",
        "phone": "+74951234567",
        "address": "ул. Тверская, 1",
        "inn": "7707083893",
        "kpp": "770701001",
        "archived": False,
    }


def test_change_feed_filters_on_the_last_modified_property_of_each_object(make, httpserver):
    # given contacts (which use `lastmodifieddate`, not `hs_lastmodifieddate`)
    seen = []

    def search(request):
        seen.append(body_of(request))
        return json_response(fixture("contacts_search.json"))

    httpserver.expect_request("/crm/v3/objects/contacts/search", method="POST").respond_with_handler(search)
    no_archived(httpserver, "contacts")
    connector = make()
    since = dt.datetime(2024, 9, 1, 0, 0, 0, 500, tzinfo=dt.UTC)

    # when reading changes since a moment
    records = list(connector.fetch("contacts", since=since))

    # then the search filters GTE that moment in epoch ms and sorts on the same property
    assert seen[0]["filterGroups"] == [
        {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1725148800000"}]}
    ]
    assert seen[0]["sorts"][0]["propertyName"] == "lastmodifieddate"
    assert records[0].updated_at == dt.datetime(2024, 9, 11, 13, 27, 39, 356000, tzinfo=dt.UTC)
    canonical = to_canonical(records[0].data, rules(connector, "contacts"))
    assert canonical["client"] == Ref("clients", "5001")
    assert canonical["email"] == "testperson@hubspot.com"
    assert canonical["phone"] == "+79160001122"
    assert canonical["position"] == "CFO"


def test_records_archived_since_the_cursor_come_as_tombstones_in_change_order(make, httpserver):
    # given two live changes and, in the recycle bin over two list pages, one old and one recent deletion
    httpserver.expect_request("/crm/v3/objects/companies/search", method="POST").respond_with_json(
        {"results": [record("1", "2026-03-02T00:00:00Z"), record("2", "2026-03-04T00:00:00Z")]}
    )
    bin_pages = {
        None: {
            "results": [
                {
                    **record("8", "2026-01-01T00:00:00Z"),
                    "archived": True,
                    "archivedAt": "2026-01-02T00:00:00Z",
                }
            ],
            "paging": {"next": {"after": "MTAw", "link": "?after=MTAw"}},
        },
        "MTAw": {
            "results": [
                {
                    **record("9", "2026-02-01T00:00:00Z"),
                    "archived": True,
                    "archivedAt": "2026-03-03T00:00:00Z",
                }
            ]
        },
    }
    httpserver.expect_request("/crm/v3/objects/companies", method="GET").respond_with_handler(
        lambda request: json_response(bin_pages[request.args.get("after")])
    )
    connector = make()

    # when reading changes since March 1st
    records = list(connector.fetch("clients", since=dt.datetime(2026, 3, 1, tzinfo=dt.UTC)))

    # then the recent deletion sits between the two live changes and the old one is not repeated
    assert [(r.external_id, r.deleted) for r in records] == [("1", False), ("9", True), ("2", False)]
    assert records[1].updated_at == dt.datetime(2026, 3, 3, tzinfo=dt.UTC)
    assert httpserver.log[1][0].args["archived"] == "true"
    assert to_canonical(records[1].data, rules(connector, "clients"))["archived"] is True


def test_search_restarts_from_the_last_timestamp_at_the_result_cap(make, httpserver):
    # given more changes than one search query may return (cap shrunk to 4 results, 2 per page)
    t1, t2, t3, t4 = (f"2026-03-0{d}T00:00:00.000Z" for d in (1, 2, 3, 4))
    t3_ms = str(int(dt.datetime(2026, 3, 3, tzinfo=dt.UTC).timestamp() * 1000))
    first = {
        None: {"results": [record("1", t1), record("2", t2)], "paging": {"next": {"after": "2"}}},
        "2": {"results": [record("3", t3), record("4", t3)], "paging": {"next": {"after": "4"}}},
    }
    restarted = {"results": [record("3", t3), record("4", t3), record("5", t4)]}
    seen = []

    def search(request):
        body = body_of(request)
        seen.append(body)
        if body["filterGroups"]:
            assert body["filterGroups"][0]["filters"][0]["value"] == t3_ms
            assert "after" not in body
            return json_response(restarted)
        return json_response(first[body.get("after")])

    httpserver.expect_request("/crm/v3/objects/companies/search", method="POST").respond_with_handler(search)
    connector = make()
    connector.page_size, connector.search_cap = 2, 4

    # when reading everything
    ids = [r.external_id for r in connector.fetch("clients")]

    # then the restart from t3 neither loses nor repeats a record
    assert ids == ["1", "2", "3", "4", "5"]
    assert len(seen) == 3


def test_search_cap_with_every_result_at_one_moment_is_a_clear_error(make, httpserver):
    same = "2026-03-01T00:00:00.000Z"
    page = {"results": [record("1", same), record("2", same)], "paging": {"next": {"after": "2"}}}
    httpserver.expect_request("/crm/v3/objects/companies/search", method="POST").respond_with_json(page)
    connector = make()
    connector.page_size, connector.search_cap = 2, 2

    with pytest.raises(PermanentError, match="same moment"):
        list(connector.fetch("clients"))


def test_a_repeated_page_token_stops_the_fetch(make, httpserver):
    page = {"results": [record("1", "2026-03-01T00:00:00Z")], "paging": {"next": {"after": "7"}}}
    httpserver.expect_request("/crm/v3/objects/companies/search", method="POST").respond_with_json(page)

    with pytest.raises(PermanentError, match="twice"):
        list(make().fetch("clients"))


def test_deals_carry_their_primary_company_and_line_items(make, httpserver):
    # given two deals, their company associations (primary first after sorting) and line items
    httpserver.expect_request("/crm/v3/objects/deals/search", method="POST").respond_with_json(
        fixture("deals_search.json")
    )
    asked = {}

    def companies(request):
        asked["companies"] = body_of(request)
        return json_response(fixture("deal_company_associations.json"))

    httpserver.expect_request("/crm/v4/associations/deals/companies/batch/read").respond_with_handler(
        companies
    )
    httpserver.expect_request("/crm/v4/associations/deals/line_items/batch/read").respond_with_json(
        fixture("deal_line_item_associations.json")
    )

    def line_items(request):
        asked["line_items"] = body_of(request)
        return json_response(fixture("line_items_batch_read.json"))

    httpserver.expect_request("/crm/v3/objects/line_items/batch/read").respond_with_handler(line_items)
    no_archived(httpserver, "deals")
    connector = make()

    # when deals are read
    deals = list(connector.fetch("deals", since=dt.datetime(2026, 3, 1, tzinfo=dt.UTC)))

    # then each deal knows its client and its lines, and maps to canonical values
    assert asked["companies"] == {"inputs": [{"id": "9001"}, {"id": "9002"}]}
    assert asked["line_items"]["inputs"] == [{"id": "7001"}, {"id": "7002"}]
    first, second = (to_canonical(d.data, rules(connector, "deals")) for d in deals)
    assert first["client"] == Ref("clients", "5001")  # the primary (typeId 5), not the first listed
    assert first["amount"] == Decimal("150000.50")
    assert first["status"] == "open"
    assert first["stage"] == "contractsent"
    assert first["expected_close_date"] == dt.date(2026, 4, 30)
    assert second["status"] == "won"
    assert second["client"] == Ref("clients", "5002")
    assert [li["properties"]["name"] for li in deals[0].data["line_items"]] == ["Сервер", "Монтаж"]
    assert deals[1].data["line_items"] == []


def test_batch_reads_are_split_into_hundreds(make, httpserver):
    # given a page of 150 deals, each with one line item
    deals = [record(str(i), "2026-03-01T00:00:00Z") for i in range(1, 151)]
    httpserver.expect_request("/crm/v3/objects/deals/search").respond_with_json({"results": deals})
    sizes = {"companies": [], "line_items": [], "read": []}

    def associations(kind):
        def handler(request):
            inputs = body_of(request)["inputs"]
            sizes[kind].append(len(inputs))
            results = [{"from": {"id": i["id"]}, "to": [{"toObjectId": int(i["id"]) + 1000}]} for i in inputs]
            return json_response({"status": "COMPLETE", "results": results}, status=207)

        return handler

    def read(request):
        inputs = body_of(request)["inputs"]
        sizes["read"].append(len(inputs))
        return json_response({"results": [{"id": i["id"], "properties": {}} for i in inputs]})

    httpserver.expect_request("/crm/v4/associations/deals/companies/batch/read").respond_with_handler(
        associations("companies")
    )
    httpserver.expect_request("/crm/v4/associations/deals/line_items/batch/read").respond_with_handler(
        associations("line_items")
    )
    httpserver.expect_request("/crm/v3/objects/line_items/batch/read").respond_with_handler(read)

    records = list(make().fetch("deals"))

    assert sizes == {"companies": [100, 50], "line_items": [100, 50], "read": [100, 50]}
    assert records[149].data["associations"]["companies"]["results"] == [
        {"id": "1150", "type": "deal_to_company"}
    ]
    assert records[149].data["line_items"] == [{"id": "1150", "properties": {}}]


def test_products_map_price_sku_and_cost(make, httpserver):
    httpserver.expect_request("/crm/v3/objects/products/search", method="POST").respond_with_json(
        fixture("products_search.json")
    )
    connector = make()

    [product] = connector.fetch("products")

    assert to_canonical(product.data, rules(connector, "products")) == {
        "sku": "SRV-1",
        "name": "Сервер",
        "price": Decimal("50000.00"),
        "unit_cost": Decimal("32000.00"),
        "archived": False,
    }


def test_get_returns_a_deal_with_associations_and_none_when_gone(make, httpserver):
    httpserver.expect_request("/crm/v3/objects/deals/9001", method="GET").respond_with_json(
        fixture("deal_get.json")
    )
    httpserver.expect_request("/crm/v3/objects/deals/404", method="GET").respond_with_json(
        {"status": "error", "message": "Object not found", "category": "OBJECT_NOT_FOUND"}, status=404
    )
    httpserver.expect_request("/crm/v4/associations/deals/companies/batch/read").respond_with_json(
        fixture("deal_company_associations.json")
    )
    httpserver.expect_request("/crm/v4/associations/deals/line_items/batch/read").respond_with_json(
        {"status": "COMPLETE", "results": []}
    )
    connector = make()

    deal = connector.get("deals", "9001")

    assert deal.external_id == "9001"
    assert httpserver.log[0][0].args["associations"] == "companies"
    assert to_canonical(deal.data, rules(connector, "deals"))["client"] == Ref("clients", "5001")
    assert connector.get("deals", "404") is None


# --- throttling and errors -----------------------------------------------------------------------------


def test_429_is_retried_after_the_delay_hubspot_asks_for(make, httpserver):
    # given one 10-secondly rate-limit reply, then data
    replies = [
        json_response(fixture("rate_limit_429.json"), status=429, headers={"Retry-After": "3"}),
        json_response(fixture("products_search.json")),
    ]
    httpserver.expect_request("/crm/v3/objects/products/search").respond_with_handler(
        lambda r: replies.pop(0)
    )
    connector = make()

    records = list(connector.fetch("products"))

    assert [r.external_id for r in records] == ["3001"]
    assert connector.slept == [3.0]


def test_503_is_retried_with_backoff(make, httpserver):
    replies = [Response("upstream down", status=503), json_response(fixture("products_search.json"))]
    httpserver.expect_request("/crm/v3/objects/products/search").respond_with_handler(
        lambda r: replies.pop(0)
    )
    connector = make()

    assert [r.external_id for r in connector.fetch("products")] == ["3001"]
    assert len(connector.slept) == 1


def test_the_daily_limit_is_reported_as_such(make, httpserver):
    httpserver.expect_request("/crm/v3/objects/products/search").respond_with_json(
        fixture("rate_limit_daily_429.json"), status=429
    )

    with pytest.raises(RetryableError, match="daily API limit"):
        list(make().fetch("products"))


def test_a_vendor_error_body_is_a_permanent_error_with_the_message(make, httpserver):
    httpserver.expect_request("/crm/v3/objects/deals/search").respond_with_json(
        fixture("validation_error_400.json"), status=400
    )

    with pytest.raises(PermanentError, match="PROPERTY_DOESNT_EXIST"):
        list(make().fetch("deals"))


@pytest.mark.parametrize(
    ("body", "ctype", "expected"),
    [
        ("<html><title>Bad gateway</title></html>", "text/html", "HTML"),
        ('{"results": [{"id": "1", "proper', "application/json", "JSON"),
        ('{"message": "ok"}', "application/json", "unexpected reply"),
    ],
)
def test_html_truncated_or_shapeless_replies_are_clear_errors(make, httpserver, body, ctype, expected):
    httpserver.expect_request("/crm/v3/objects/companies/search").respond_with_data(body, content_type=ctype)

    with pytest.raises(PermanentError, match=expected):
        list(make().fetch("clients"))


def test_a_record_without_an_id_is_a_clear_error(make, httpserver):
    httpserver.expect_request("/crm/v3/objects/companies/search").respond_with_json(
        {"results": [{"properties": {"name": "ghost"}}]}
    )

    with pytest.raises(PermanentError, match="without an id"):
        list(make().fetch("clients"))


def test_a_bad_field_fails_in_the_mapper_not_in_fetch(make, httpserver):
    bad = record("1", "2026-03-01T00:00:00Z", phone="call me maybe")
    httpserver.expect_request("/crm/v3/objects/companies/search").respond_with_json({"results": [bad]})
    connector = make()

    [fetched] = connector.fetch("clients")  # fetch is fine

    with pytest.raises(MappingError) as caught:
        to_canonical(fetched.data, rules(connector, "clients"))
    assert "phone" in caught.value.reasons


# --- OAuth ---------------------------------------------------------------------------------------------

OAUTH = {"client_id": "cid", "client_secret": "csecret", "refresh_token": "rt-1"}


def test_an_expired_access_token_is_refreshed_once_for_concurrent_workers(make, httpserver):
    # given an expired OAuth access token and two workers reading at once
    refreshes = []

    def token(request):
        refreshes.append(dict(request.form))
        time.sleep(0.2)  # a slow token endpoint: the other worker waits on the credential lock
        return json_response(fixture("oauth_token.json"))

    httpserver.expect_request("/oauth/v1/token", method="POST").respond_with_handler(token)
    httpserver.expect_request("/crm/v3/objects/companies").respond_with_json({"results": []})
    connector = make({**OAUTH, "access_token": "old", "access_token_expires_at": "0"})
    store = connector.config.credentials
    errors = []

    def work():
        try:
            connector.check()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then one refresh happened, the rotated refresh token is stored, both calls used the new token
    assert errors == []
    assert len(refreshes) == 1
    assert refreshes[0] == {
        "grant_type": "refresh_token",
        "client_id": "cid",
        "client_secret": "csecret",
        "refresh_token": "rt-1",
    }
    stored = store.load()
    assert stored["refresh_token"] == "rt-rotated-2"
    assert stored["access_token"].startswith("CJSP5qf1")
    assert float(stored["access_token_expires_at"]) == NOW.timestamp() + 1800
    api_calls = [r for r, _ in httpserver.log if r.path == "/crm/v3/objects/companies"]
    assert {r.headers["Authorization"] for r in api_calls} == {f"Bearer {stored['access_token']}"}


def test_a_401_with_a_fresh_looking_token_refreshes_and_retries_once(make, httpserver):
    replies = [
        json_response({"status": "error", "category": "EXPIRED_AUTHENTICATION"}, status=401),
        json_response({"results": []}),
    ]
    httpserver.expect_request("/crm/v3/objects/companies").respond_with_handler(lambda r: replies.pop(0))
    httpserver.expect_request("/oauth/v1/token", method="POST").respond_with_json(fixture("oauth_token.json"))
    expires = str(int(NOW.timestamp()) + 1000)
    connector = make({**OAUTH, "access_token": "revoked", "access_token_expires_at": expires})

    connector.check()

    auth = [r.headers["Authorization"] for r, _ in httpserver.log if r.path == "/crm/v3/objects/companies"]
    assert auth[0] == "Bearer revoked"
    assert auth[1].startswith("Bearer CJSP5qf1")


def test_a_revoked_refresh_token_asks_the_admin_to_reconnect(make, httpserver):
    httpserver.expect_request("/oauth/v1/token", method="POST").respond_with_json(
        fixture("oauth_bad_refresh_token.json"), status=400
    )

    with pytest.raises(AuthError, match=r"BAD_REFRESH_TOKEN.*reconnect in admin"):
        make(dict(OAUTH)).check()


def test_missing_credentials_name_what_is_missing(make):
    with pytest.raises(AuthError, match="refresh_token"):
        make({"client_id": "cid", "client_secret": "s"}).check()


# --- writing -------------------------------------------------------------------------------------------


def test_create_a_deal_with_its_primary_company(make, httpserver):
    sent = {}

    def create(request):
        sent.update(body_of(request))
        return json_response({"id": "9100", "properties": {}}, status=201)

    httpserver.expect_request("/crm/v3/objects/deals", method="POST").respond_with_handler(create)
    payload = {
        "properties": {"dealname": "New", "amount": "10.00", "dealstage": "appointmentscheduled"},
        "associations": {"companies": {"results": [{"id": "5001"}]}},
    }

    assert make().upsert("deals", payload) == "9100"
    assert sent == {
        "properties": {"dealname": "New", "amount": "10.00", "dealstage": "appointmentscheduled"},
        "associations": [
            {
                "to": {"id": "5001"},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}],
            }
        ],
    }


def test_a_cleared_property_is_sent_as_an_empty_string(make, httpserver):
    httpserver.expect_request("/crm/v3/objects/companies/5001", method="PATCH").respond_with_json(
        {"id": "5001"}
    )

    make().upsert("clients", {"properties": {"phone": None, "name": "ООО Ромашка"}}, external_id="5001")

    assert json.loads(httpserver.log[0][0].get_data()) == {"properties": {"phone": "", "name": "ООО Ромашка"}}


def test_update_patches_properties_and_sets_the_company(make, httpserver):
    httpserver.expect_request("/crm/v3/objects/deals/9001", method="PATCH").respond_with_json({"id": "9001"})
    httpserver.expect_request(
        "/crm/v4/objects/deals/9001/associations/default/companies/5002", method="PUT"
    ).respond_with_json({"status": "COMPLETE", "results": []})
    payload = {"properties": {"amount": "5.00"}, "associations": {"companies": {"results": [{"id": "5002"}]}}}

    assert make().upsert("deals", payload, external_id="9001") == "9001"
    assert json.loads(httpserver.log[0][0].get_data()) == {"properties": {"amount": "5.00"}}
    assert httpserver.log[1][0].method == "PUT"


def test_delete_archives_and_tolerates_a_record_already_gone(make, httpserver):
    httpserver.expect_request("/crm/v3/objects/companies/5001", method="DELETE").respond_with_data(
        "", status=204
    )
    httpserver.expect_request("/crm/v3/objects/companies/5999", method="DELETE").respond_with_data(
        "", status=404
    )
    connector = make()

    connector.delete("clients", "5001")
    connector.delete("clients", "5999")

    assert [r.method for r, _ in httpserver.log] == ["DELETE", "DELETE"]


def test_add_note_creates_a_note_associated_to_the_deal(make, httpserver):
    httpserver.expect_request("/crm/v3/objects/notes", method="POST").respond_with_json(
        {"id": "n1"}, status=201
    )

    make().add_note("deals", "9001", "Invoice 2026-17 paid")

    assert json.loads(httpserver.log[0][0].get_data()) == {
        "properties": {"hs_note_body": "Invoice 2026-17 paid", "hs_timestamp": "2026-03-05T10:00:00Z"},
        "associations": [
            {
                "to": {"id": "9001"},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}],
            }
        ],
    }


# --- webhooks ------------------------------------------------------------------------------------------

URI = "https://hub.example.com/sync/webhooks/hubspot-main/?a=1"


def signed_headers(body: bytes, *, secret="csecret", stamp=None, method="POST", uri=URI):
    stamp = str(stamp if stamp is not None else int(NOW.timestamp() * 1000))
    message = method.encode() + uri.encode() + body + stamp.encode()
    signature = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": signature,
        "X-HubSpot-Request-Timestamp": stamp,
        "X-Hub-Method": method,
        "X-Hub-Uri": uri,
    }


def test_webhook_signature_good_forged_and_replayed(make):
    connector = make({"token": "pat", "client_secret": "csecret"})
    body = (FIXTURES / "webhook_events.json").read_bytes()

    assert connector.verify_webhook(signed_headers(body), body) is True
    # forged: another secret, or the body changed after signing
    assert connector.verify_webhook(signed_headers(body, secret="guess"), body) is False
    assert connector.verify_webhook(signed_headers(body), body.replace(b"9001", b"9002")) is False
    # replayed: a valid signature older than 5 minutes
    old = int((NOW - dt.timedelta(minutes=6)).timestamp() * 1000)
    assert connector.verify_webhook(signed_headers(body, stamp=old), body) is False
    # signed for another URI or method
    headers = signed_headers(body)
    headers["X-Hub-Uri"] = "https://evil.example.com/"
    assert connector.verify_webhook(headers, body) is False
    # missing headers
    assert connector.verify_webhook({"Content-Type": "application/json"}, body) is False


def test_webhook_uri_with_encoded_characters_is_decoded_before_checking(make):
    connector = make({"token": "pat", "client_secret": "csecret"})
    body = b"[]"
    headers = signed_headers(body, uri="https://hub.example.com/hook?x=a:b")
    headers["X-Hub-Uri"] = "https://hub.example.com/hook?x=a%3Ab"

    assert connector.verify_webhook(headers, body) is True


def test_webhook_without_a_client_secret_is_refused(make):
    body = b"[]"
    assert make({"token": "pat"}).verify_webhook(signed_headers(body), body) is False


def test_parse_webhook_turns_events_into_refetch_hints(make):
    body = (FIXTURES / "webhook_events.json").read_bytes()

    events = make().parse_webhook({}, body)

    assert [(e.event_id, e.stream, e.external_id, e.action) for e in events] == [
        ("1001", "deals", "9001", "upsert"),
        ("1002", "clients", "5004", "upsert"),
        ("1003", "contacts", "100451", "delete"),
        ("1005", "deals", "9002", "upsert"),  # association change: re-fetch the deal
        ("1006", "clients", "5001", "upsert"),  # merge: the survivor is re-read...
        ("1006:merged:5003", "clients", "5003", "delete"),  # ...and the merged-away company archived
    ]  # the line item event is not a stream of ours
    assert all(e.record is None for e in events)


@pytest.mark.parametrize("body", [b"<html>", b'{"objectId": null}', b'"text"', b'[{"eventId": 1}]'])
def test_parse_webhook_rejects_malformed_bodies(make, body):
    with pytest.raises(PermanentError):
        make().parse_webhook({}, body)
