"""The BottleCRM connector on loopback: pages and a webhook recorded from a real django-crm 1.35."""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal

import pytest
from werkzeug import Response

from sync.connectors.base import AuthError, ConnectionConfig, MemoryCredentialStore, PermanentError
from sync.connectors.bottlecrm import BottleCRMConnector
from sync.mapping.mapper import MappingError, Rule, to_canonical
from sync.mapping.transforms import Ref
from tests.sync.contract.bottlecrm import TOKEN, FakeBottleCRM, account_ids, fixture, setup


@pytest.fixture
def fake():
    return FakeBottleCRM()


def make(base_url: str, credentials: dict, **options) -> BottleCRMConnector:
    config = ConnectionConfig(
        name="test-bottlecrm",
        system="bottlecrm",
        base_url=base_url,
        credentials=MemoryCredentialStore(credentials),
        options={"page_size": 2, **options},
        timeout_seconds=5,
        max_attempts=3,
    )
    connector = BottleCRMConnector(config)
    connector.sleeps = []
    connector.http.sleep = connector.sleeps.append
    return connector


@pytest.fixture
def connector(httpserver, fake):
    spec = setup(httpserver, fake)
    return make(spec["base_url"], spec["credentials"])


def canonical(stream, data):
    return to_canonical(
        data, [Rule(**vars(m)) for m in BottleCRMConnector.default_mappings if m.entity == stream]
    )


# --- reading -----------------------------------------------------------------------------------


def test_accounts_page_to_the_end_with_active_and_archived_lists(connector, fake):
    records = list(connector.fetch("clients"))

    assert sorted(r.external_id for r in records) == sorted(account_ids())
    offsets = [r["args"].get("offset") for r in fake.requests if r["path"] == "/api/accounts/"]
    assert offsets == ["0", "2"]
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in fake.requests)
    archived = [r for r in records if canonical("clients", r.data)["archived"]]
    assert len(archived) == 1  # the one under closed_accounts
    assert all(r.updated_at is None for r in records)  # accounts carry no updated_at


def test_an_account_maps_with_its_inn_from_the_custom_field(connector):
    romashka = next(r for r in connector.fetch("clients") if r.data["name"].startswith("ООО Ромашка"))

    mapped = canonical("clients", romashka.data)

    assert mapped["inn"] == "7707083893"
    assert (mapped["email"], mapped["phone"], mapped["kind"]) == (
        "buh@romashka.test",
        "+74951234567",
        "company",
    )
    assert mapped["address"] == "ул. Тверская, 1"


def test_contacts_are_filtered_by_updated_at_client_side_and_sorted(connector):
    everything = list(connector.fetch("contacts"))
    stamps = sorted(r.updated_at for r in everything)
    assert [r.updated_at for r in everything] == stamps  # oldest change first

    later = list(connector.fetch("contacts", since=stamps[-1]))

    assert [r.external_id for r in later] == [everything[-1].external_id]
    mapped = canonical("contacts", everything[0].data)
    assert isinstance(mapped["client"], Ref)


def test_deals_map_stage_codes_and_won_status(connector):
    deals = [canonical("deals", r.data) for r in connector.fetch("deals")]

    by_stage = {d["stage"]: d for d in deals}
    assert by_stage["Предложение / Proposal"]["status"] == "open"
    assert by_stage["Успешно / Won"]["status"] == "won"
    assert by_stage["Предложение / Proposal"]["amount"] == Decimal("120000.00")
    assert all(isinstance(d["client"], Ref) for d in deals)


def test_invoices_and_payments_are_read(connector, fake):
    (invoice,) = list(connector.fetch("invoices"))
    mapped = canonical("invoices", invoice.data)
    assert (mapped["status"], mapped["total"], mapped["paid_total"]) == (
        "partially_paid",
        Decimal("40000.00"),
        Decimal("15000.00"),
    )

    (payment,) = list(connector.fetch("payments"))
    paid = canonical("payments", payment.data)
    assert paid["invoice"] == Ref("invoices", invoice.external_id)
    assert paid["client"] == mapped["client"]
    assert (paid["amount"], paid["currency"], paid["reference"]) == (Decimal("15000.00"), "EUR", "п/п 17")
    assert f"/api/invoices/{invoice.external_id}/payments/" in fake.paths()


def test_a_page_that_repeats_is_refused(httpserver):
    body = fixture("contacts_page1")
    body["count"] = 1000  # the server claims more, but answers the same page for every offset
    httpserver.expect_request("/api/contacts/").respond_with_json(body)
    connector = make(httpserver.url_for("/").rstrip("/"), {"token": TOKEN})

    with pytest.raises(PermanentError, match="repeats"):
        list(connector.fetch("contacts"))


def test_a_server_that_caps_the_limit_still_pages_everything(httpserver):
    everything = fixture("contacts_page1")

    def capped(request):  # answers one item per page, whatever limit we ask
        offset = int(request.args["offset"])
        body = {**everything, "results": everything["results"][offset : offset + 1]}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/api/contacts/").respond_with_handler(capped)
    connector = make(httpserver.url_for("/").rstrip("/"), {"token": TOKEN}, page_size=100)

    ids = sorted(r.external_id for r in connector.fetch("contacts"))

    assert ids == sorted(c["id"] for c in everything["results"])
    assert [r.query_string.decode() for r, _ in httpserver.log] == [
        "limit=100&offset=0",
        "limit=100&offset=1",
    ]


def test_429_with_retry_after_is_retried_after_the_asked_delay(httpserver):
    httpserver.expect_ordered_request("/api/invoices/").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "3"}
    )
    httpserver.expect_ordered_request("/api/invoices/").respond_with_json(fixture("invoices_page1"))
    connector = make(httpserver.url_for("/").rstrip("/"), {"token": TOKEN})

    assert len(list(connector.fetch("invoices"))) == 1
    assert 3.0 in connector.sleeps  # (the rate limiter may add its own short waits)


def test_a_refused_token_is_an_auth_error_that_says_what_to_do(httpserver):
    httpserver.expect_request(re.compile("^/api/.*")).respond_with_json(
        {"detail": "Given token not valid for any token type", "code": "token_not_valid"}, status=401
    )
    connector = make(httpserver.url_for("/").rstrip("/"), {"token": "expired.jwt"})

    with pytest.raises(AuthError, match="personal access token"):
        connector.check()


def test_no_token_is_an_auth_error(httpserver):
    with pytest.raises(AuthError, match="no token"):
        make(httpserver.url_for("/").rstrip("/"), {}).check()


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("<!DOCTYPE html><html><title>Server Error (500)</title></html>", "text/html", "HTML page"),
        ('{"count": 2, "results": [{"id": "a"', "application/json", "malformed JSON|expected JSON"),
        ('{"count": 2, "results": {"id": "a"}}', "application/json", "expected a list at results"),
    ],
)
def test_bad_replies_are_clear_permanent_errors(httpserver, body, content_type, expected):
    httpserver.expect_request("/api/invoices/").respond_with_data(body, content_type=content_type)
    connector = make(httpserver.url_for("/").rstrip("/"), {"token": TOKEN})

    with pytest.raises(PermanentError, match=expected):
        list(connector.fetch("invoices"))


def test_a_vendor_error_body_is_kept_in_the_error(httpserver):
    httpserver.expect_request("/api/accounts/", method="POST").respond_with_json(
        {"error": True, "errors": {"name": ["Account already exists with this name"]}}, status=400
    )
    connector = make(httpserver.url_for("/").rstrip("/"), {"token": TOKEN})

    with pytest.raises(PermanentError, match="already exists"):
        connector.upsert("clients", {"name": "Globex"})


def test_an_item_without_id_is_skipped_not_fatal(httpserver):
    body = fixture("contacts_page1")
    body["results"] = [{"first_name": "Nobody"}, *body["results"]]
    httpserver.expect_request("/api/contacts/").respond_with_json(body)
    connector = make(httpserver.url_for("/").rstrip("/"), {"token": TOKEN}, page_size=100)

    assert len(list(connector.fetch("contacts"))) == len(body["results"]) - 1


def test_unknown_stage_or_status_fails_in_the_mapper_not_in_fetch(httpserver):
    body = fixture("opportunities_page1")
    body["opportunities"][0]["stage"] = "DEMO_BOOKED"  # a custom pipeline stage nobody mapped
    httpserver.expect_request("/api/opportunities/").respond_with_json(body)
    connector = make(httpserver.url_for("/").rstrip("/"), {"token": TOKEN}, page_size=100)

    records = list(connector.fetch("deals"))

    assert len(records) == len(body["opportunities"])
    with pytest.raises(MappingError, match="DEMO_BOOKED"):
        canonical("deals", records[0].data)


def test_get_reads_the_detail_and_answers_none_when_gone(httpserver):
    detail = fixture("opportunity_detail")
    deal = detail["opportunity_obj"]["id"]
    httpserver.expect_request(f"/api/opportunities/{deal}/").respond_with_json(detail)
    httpserver.expect_request("/api/opportunities/gone/").respond_with_json({"error": True}, status=404)
    connector = make(httpserver.url_for("/").rstrip("/"), {"token": TOKEN})

    assert connector.get("deals", deal).data["stage"] == "PROPOSAL"
    assert connector.get("deals", "gone") is None


# --- writing -----------------------------------------------------------------------------------


def test_upsert_add_note_and_archive_send_what_bottlecrm_expects(httpserver):
    seen = []

    def record(request):
        seen.append((request.method, request.path, request.get_json(silent=True)))
        if request.method == "POST" and request.path == "/api/opportunities/":
            return Response(json.dumps({"error": False, "id": "d-1"}), content_type="application/json")
        return Response(json.dumps({"error": False}), content_type="application/json")

    httpserver.expect_request(re.compile("^/api/.*")).respond_with_handler(record)
    connector = make(httpserver.url_for("/").rstrip("/"), {"token": TOKEN})

    deal = connector.upsert(
        "deals", {"name": "Site", "account": "a-1", "stage": "PROSPECTING", "amount": "10.00"}
    )
    connector.upsert("deals", {"stage": "CLOSED_WON"}, external_id=deal)
    connector.add_note("deals", deal, "Invoice HUB-1 paid")
    connector.delete("deals", deal)

    assert deal == "d-1"
    assert seen[0] == (
        "POST",
        "/api/opportunities/",
        {
            "name": "Site",
            "account": "a-1",
            "stage": "PROSPECTING",
            "amount": "10.00",
            "contacts": [],
            "assigned_to": [],
            "teams": [],
        },
    )
    assert seen[1] == ("PATCH", "/api/opportunities/d-1/", {"stage": "CLOSED_WON"})
    assert seen[2] == ("POST", "/api/opportunities/d-1/", {"comment": "Invoice HUB-1 paid"})
    assert seen[3] == ("PATCH", "/api/opportunities/d-1/", {"is_active": False})


def test_register_webhook_stores_the_secret_sent_once(httpserver):
    httpserver.expect_request("/api/webhooks/", method="POST").respond_with_json(
        {
            "id": "w-1",
            "url": "https://hub.test/sync/webhooks/crm/",
            "secret": "whsec_abc",
            "secret_hint": "whsec_...abc",
        },
        status=201,
    )
    connector = make(httpserver.url_for("/").rstrip("/"), {"token": TOKEN})

    connector.register_webhook("https://hub.test/sync/webhooks/crm/", session_token="signed-in.jwt")

    assert connector.config.credentials.load()["webhook_secret"] == "whsec_abc"
    (request, _response) = httpserver.log[-1]
    assert request.headers["Authorization"] == "Bearer signed-in.jwt"
    assert "account.created" in request.get_json()["events"]


# --- webhooks ----------------------------------------------------------------------------------


@pytest.fixture
def delivery():
    """A real delivery recorded from BottleCRM: headers, raw body, and the endpoint's secret."""
    recorded = fixture("webhook_account_created")
    signed_at = int(recorded["headers"]["X-BottleCRM-Signature"].split(",")[0].removeprefix("t="))
    return recorded, signed_at


def hooked(secret: str | None, now: int) -> BottleCRMConnector:
    connector = make("http://127.0.0.1:9", {"token": TOKEN, **({"webhook_secret": secret} if secret else {})})
    connector.clock = lambda: now
    return connector


def test_a_real_delivery_verifies(delivery):
    recorded, signed_at = delivery
    connector = hooked(recorded["secret"], signed_at + 2)

    assert connector.verify_webhook(recorded["headers"], recorded["body"].encode()) is True


def test_our_signature_equals_the_servers(delivery):
    recorded, signed_at = delivery

    ours = BottleCRMConnector.sign(recorded["secret"], signed_at, recorded["body"].encode())

    assert ours == recorded["headers"]["X-BottleCRM-Signature"]


def test_a_forged_body_or_secret_is_refused(delivery):
    recorded, signed_at = delivery
    forged = recorded["body"].replace("Hooli", "Evil").encode()

    assert hooked(recorded["secret"], signed_at).verify_webhook(recorded["headers"], forged) is False
    assert (
        hooked("whsec_wrong", signed_at).verify_webhook(recorded["headers"], recorded["body"].encode())
        is False
    )
    assert hooked(None, signed_at).verify_webhook(recorded["headers"], recorded["body"].encode()) is False
    unsigned = {k: v for k, v in recorded["headers"].items() if k != "X-BottleCRM-Signature"}
    assert hooked(recorded["secret"], signed_at).verify_webhook(unsigned, recorded["body"].encode()) is False


def test_a_replay_outside_five_minutes_is_refused(delivery):
    recorded, signed_at = delivery
    body = recorded["body"].encode()

    assert hooked(recorded["secret"], signed_at + 300).verify_webhook(recorded["headers"], body) is True
    assert hooked(recorded["secret"], signed_at + 301).verify_webhook(recorded["headers"], body) is False
    assert hooked(recorded["secret"], signed_at - 301).verify_webhook(recorded["headers"], body) is False


def test_header_names_are_case_insensitive(delivery):
    recorded, signed_at = delivery
    lower = {k.lower(): v for k, v in recorded["headers"].items()}

    assert hooked(recorded["secret"], signed_at).verify_webhook(lower, recorded["body"].encode()) is True


def test_parse_names_the_record_to_refetch_with_the_stable_event_id(delivery):
    recorded, _ = delivery
    body = json.loads(recorded["body"])

    (event,) = hooked(None, 0).parse_webhook(recorded["headers"], recorded["body"].encode())

    assert (event.stream, event.external_id, event.action) == ("clients", body["data"]["id"], "upsert")
    assert event.event_id == body["id"] != recorded["headers"]["X-BottleCRM-Delivery"]
    assert event.record is None  # the payload has no custom fields (no INN): re-fetch


@pytest.mark.parametrize(
    ("event", "stream", "action"),
    [
        ("deal.won", "deals", "upsert"),
        ("contact.deleted", "contacts", "delete"),
        ("invoice.paid", "invoices", "upsert"),
    ],
)
def test_parse_routes_events_to_streams(delivery, event, stream, action):
    recorded, _ = delivery
    body = copy.deepcopy(json.loads(recorded["body"]))
    body["event"] = event

    (parsed,) = hooked(None, 0).parse_webhook({}, json.dumps(body).encode())

    assert (parsed.stream, parsed.action) == (stream, action)


def test_parse_ignores_pings_and_unsynced_events_and_refuses_garbage(delivery):
    recorded, _ = delivery
    body = json.loads(recorded["body"])
    connector = hooked(None, 0)

    assert connector.parse_webhook({}, json.dumps({**body, "event": "ping"}).encode()) == []
    assert connector.parse_webhook({}, json.dumps({**body, "event": "ticket.created"}).encode()) == []
    with pytest.raises(PermanentError, match="not JSON"):
        connector.parse_webhook({}, b"<html>")
    with pytest.raises(PermanentError, match=r"no data\.id"):
        connector.parse_webhook({}, json.dumps({**body, "data": {}}).encode())
