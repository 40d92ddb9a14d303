"""Xero connector against a loopback HTTP server (real httpx client, paging, retries, token refresh)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import threading
import time
from pathlib import Path

import pytest
from werkzeug import Response

from sync.connectors import connector_class
from sync.connectors.base import (
    AuthError,
    ConnectionConfig,
    MemoryCredentialStore,
    PermanentError,
    RecordError,
    RetryableError,
)
from sync.connectors.xero import normalise_dates, parse_xero_date
from sync.mapping.mapper import MappingError, Rule, to_canonical, to_remote
from sync.mapping.transforms import Ref

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "xero"
TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
BEARER = {"Authorization": "Bearer xero-access-1", "Xero-Tenant-Id": TENANT}
WEBHOOK_KEY = "Wq2fBmR3r6dYt0x8Zc5VpLk9Hs1Ju4NaEg7Tb2Mo6Qi3Xy8Dw0Fh5Kl1Rn9Sv4Ue7Gj2Pc6Yz0Ax3Bd8Cm5Ef1"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def make_connector(httpserver, *, store=None, options=None, **creds):
    values = {
        "client_id": "client-1",
        "client_secret": "secret-1",
        "refresh_token": "xero-refresh-1",
        "tenant_id": TENANT,
        "access_token": "xero-access-1",
        "access_token_expires_at": str(int(time.time()) + 1800),
        "webhook_key": WEBHOOK_KEY,
    }
    values.update(creds)
    config = ConnectionConfig(
        name="xero-test",
        system="xero",
        base_url=httpserver.url_for("/"),
        credentials=store or MemoryCredentialStore(values),
        options={"token_url": httpserver.url_for("/connect/token"), **(options or {})},
        rate_limit_per_second=1000,
        timeout_seconds=5,
        max_attempts=3,
    )
    connector = connector_class("xero")(config)
    connector.slept = []
    connector.http.sleep = connector.slept.append
    return connector


def rules(stream: str, direction: str = "in"):
    cls = connector_class("xero")
    return [Rule(**vars(m)) for m in cls.default_mappings if m.entity == stream]


def sign(body: bytes, key: str = WEBHOOK_KEY) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


# --- dates -------------------------------------------------------------------------------------------


def test_xero_dates_are_read_as_utc_instants():
    assert parse_xero_date("/Date(1503348544227+0000)/") == dt.datetime(
        2017, 8, 21, 20, 49, 4, 227000, tzinfo=dt.UTC
    )
    assert parse_xero_date("/Date(1551399323399)/").tzinfo is dt.UTC
    assert normalise_dates({"Date": "/Date(1767225600000+0000)/", "Name": "/Date(x)/", "n": [1]}) == {
        "Date": "2026-01-01T00:00:00+00:00",
        "Name": "/Date(x)/",
        "n": [1],
    }
    with pytest.raises(ValueError):
        parse_xero_date("2026-01-01")


# --- reading -----------------------------------------------------------------------------------------


def test_fetch_pages_to_the_end_and_maps_contacts(httpserver):
    # given two pages of two contacts (the second one short)
    for page in (1, 2):
        httpserver.expect_oneshot_request(
            "/Contacts",
            query_string={"page": str(page), "order": "UpdatedDateUTC ASC", "pageSize": "2"},
            headers=BEARER,
        ).respond_with_json(fixture(f"contacts_page{page}.json"))
    connector = make_connector(httpserver, options={"page_size": 2})

    # when
    records = list(connector.fetch("clients"))

    # then every page was read, oldest change first, with aware timestamps
    assert [r.updated_at for r in records] == sorted(r.updated_at for r in records)
    assert records[0].updated_at == dt.datetime(2026, 1, 13, 10, 26, 40, tzinfo=dt.UTC)
    canonical = [to_canonical(r.data, rules("clients")) for r in records]
    assert canonical[0] == {
        "name": "Katherine Warren Ltd",
        "kind": "company",
        "foreign_tax_id": "GB123456789",
        "email": "kat.warren@clampett.com",
        "address": "12 High Street Palo Alto CA 94020",
        "archived": False,
    }
    assert canonical[1]["archived"] is True
    assert len(canonical) == 3


def test_fetch_stops_on_a_short_first_page_of_100(httpserver):
    httpserver.expect_oneshot_request(
        "/Contacts", query_string={"page": "1", "order": "UpdatedDateUTC ASC"}
    ).respond_with_json(fixture("contacts_page2.json"))
    connector = make_connector(httpserver)

    assert [r.external_id for r in connector.fetch("clients")] == ["a1f8e7a4-8d4f-4b8e-9d0e-2b1b9a3c4d5e"]


def test_change_feed_sends_if_modified_since_and_the_accrec_filter(httpserver):
    # given invoices changed since a moment in Moscow time
    httpserver.expect_oneshot_request(
        "/Invoices",
        query_string={"page": "1", "order": "UpdatedDateUTC ASC", "where": 'Type=="ACCREC"'},
        headers={**BEARER, "If-Modified-Since": "2026-01-15T06:00:00+00:00"},
    ).respond_with_json(fixture("invoices_page1.json"))
    connector = make_connector(httpserver)
    since = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))

    # when
    records = list(connector.fetch("invoices", since=since))

    # then the header is ISO 8601 in UTC and the invoices map, lines included
    assert [r.external_id for r in records] == [
        "4f7a3b2c-1d0e-4f9a-8b7c-6d5e4f3a2b1c",
        "7e6d5c4b-3a29-4817-a6b5-c4d3e2f1a0b9",
    ]
    first = to_canonical(records[0].data, rules("invoices"))
    assert first["number"] == "INV-0041"
    assert first["client"] == Ref("clients", "5cc8cf28-567e-4d43-b287-687cfcaec47c")
    assert first["status"] == "issued"
    assert first["issue_date"] == dt.date(2026, 1, 1)
    assert first["due_date"] == dt.date(2026, 1, 15)
    assert (str(first["total"]), str(first["amount_due"]), str(first["paid_total"])) == (
        "1200.00",
        "700.00",
        "500.00",
    )
    assert first["lines"] == [
        {
            "description": "Design work",
            "quantity": "10.0",
            "unit_price": "100.0",
            "vat_rate": "20.00",
            "unit": "",
        }
    ]
    assert to_canonical(records[1].data, rules("invoices"))["status"] == "draft"


def test_payments_of_receivables_map_and_a_deleted_one_is_a_tombstone(httpserver):
    httpserver.expect_oneshot_request(
        "/Payments",
        query_string={"page": "1", "order": "UpdatedDateUTC ASC", "where": 'PaymentType=="ACCRECPAYMENT"'},
    ).respond_with_json(fixture("payments.json"))
    connector = make_connector(httpserver)

    live, deleted = list(connector.fetch("payments"))

    assert (live.deleted, deleted.deleted) == (False, True)
    payment = to_canonical(live.data, rules("payments"))
    assert payment["invoice"] == Ref("invoices", "4f7a3b2c-1d0e-4f9a-8b7c-6d5e4f3a2b1c")
    assert payment["client"] == Ref("clients", "5cc8cf28-567e-4d43-b287-687cfcaec47c")
    assert str(payment["amount"]) == "500.00"
    assert payment["currency"] == "GBP"
    assert payment["received_at"] == dt.datetime(2026, 1, 14, tzinfo=dt.UTC)
    assert payment["reference"] == "BACS 0041"


def test_a_server_that_ignores_paging_is_a_permanent_error(httpserver):
    full_page = fixture("contacts_page1.json")
    httpserver.expect_request("/Contacts").respond_with_json(full_page)
    connector = make_connector(httpserver, options={"page_size": 2})

    with pytest.raises(PermanentError, match="repeats page 1"):
        list(connector.fetch("clients"))


def test_get_returns_one_record_and_none_when_gone(httpserver):
    invoice = fixture("invoices_page1.json")
    invoice["Invoices"] = invoice["Invoices"][:1]
    httpserver.expect_request("/Invoices/4f7a3b2c-1d0e-4f9a-8b7c-6d5e4f3a2b1c").respond_with_json(invoice)
    httpserver.expect_request("/Invoices/00000000-0000-0000-0000-000000000000").respond_with_data(
        "The resource you're looking for cannot be found", status=404
    )
    connector = make_connector(httpserver)

    assert (
        connector.get("invoices", "4f7a3b2c-1d0e-4f9a-8b7c-6d5e4f3a2b1c").data["InvoiceNumber"] == "INV-0041"
    )
    assert connector.get("invoices", "00000000-0000-0000-0000-000000000000") is None


# --- limits ------------------------------------------------------------------------------------------


def test_a_minute_limit_429_waits_retry_after_then_goes_on(httpserver):
    # given Xero's minute limit is hit once, then a 503 once
    httpserver.expect_ordered_request("/Organisation").respond_with_data(
        "", status=429, headers={"Retry-After": "7", "X-Rate-Limit-Problem": "Minute"}
    )
    httpserver.expect_ordered_request("/Organisation").respond_with_data(
        "", status=503, headers={"Retry-After": "2"}
    )
    httpserver.expect_ordered_request("/Organisation").respond_with_json(fixture("organisation.json"))
    connector = make_connector(httpserver)

    # when
    connector.check()

    # then it waited as long as Xero asked, twice
    assert connector.slept == [7.0, 2.0]


def test_a_daily_limit_429_gives_up_now_and_says_so(httpserver):
    httpserver.expect_request("/Organisation").respond_with_data(
        "", status=429, headers={"Retry-After": "43200", "X-Rate-Limit-Problem": "Daily"}
    )
    connector = make_connector(httpserver)

    with pytest.raises(RetryableError, match="Daily limit") as caught:
        connector.check()
    assert caught.value.retry_after == 43200
    assert connector.slept == []


# --- tokens ------------------------------------------------------------------------------------------


def token_endpoint(httpserver, calls: list, *, delay: float = 0.0):
    def handler(request):
        time.sleep(delay)
        calls.append(request.form.to_dict())
        assert request.authorization.username == "client-1"
        assert request.authorization.password == "secret-1"
        return Response(json.dumps(fixture("token.json")), content_type="application/json")

    httpserver.expect_request("/connect/token", method="POST").respond_with_handler(handler)


def test_an_expired_token_is_refreshed_once_for_two_workers_and_the_rotated_token_kept(httpserver):
    # given an expired access token shared by two workers
    calls: list = []
    token_endpoint(httpserver, calls, delay=0.2)
    httpserver.expect_request(
        "/Organisation", headers={"Authorization": "Bearer xero-access-2", "Xero-Tenant-Id": TENANT}
    ).respond_with_json(fixture("organisation.json"))
    store = MemoryCredentialStore(
        {
            "client_id": "client-1",
            "client_secret": "secret-1",
            "refresh_token": "xero-refresh-1",
            "tenant_id": TENANT,
            "access_token": "xero-access-1",
            "access_token_expires_at": str(int(time.time()) - 10),
        }
    )
    workers = [make_connector(httpserver, store=store) for _ in range(2)]
    errors: list = []

    def run(connector):
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

    # then one refresh, with the stored refresh token, and the rotated one is stored
    assert errors == []
    assert calls == [{"grant_type": "refresh_token", "refresh_token": "xero-refresh-1"}]
    stored = store.load()
    assert stored["refresh_token"] == "xero-refresh-2"
    assert stored["access_token"] == "xero-access-2"
    assert int(stored["access_token_expires_at"]) > time.time() + 1700


def test_a_401_refreshes_and_retries_once(httpserver):
    calls: list = []
    token_endpoint(httpserver, calls)
    httpserver.expect_request("/Organisation", headers=BEARER).respond_with_json(
        {"Title": "Unauthorized", "Status": 401, "Detail": "TokenExpired"}, status=401
    )
    httpserver.expect_request(
        "/Organisation", headers={"Authorization": "Bearer xero-access-2"}
    ).respond_with_json(fixture("organisation.json"))
    connector = make_connector(httpserver)

    connector.check()

    assert len(calls) == 1


def test_a_revoked_refresh_token_asks_the_admin_to_reconnect(httpserver):
    httpserver.expect_request("/connect/token", method="POST").respond_with_json(
        {"error": "invalid_grant"}, status=400
    )
    connector = make_connector(httpserver, access_token_expires_at="0")

    with pytest.raises(AuthError, match="reconnect in admin"):
        connector.check()


def test_a_missing_tenant_is_an_auth_error(httpserver):
    connector = make_connector(httpserver, tenant_id="")

    with pytest.raises(AuthError, match="tenant_id"):
        connector.check()


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("<html><head><title>Xero is down for maintenance</title></head></html>", "text/html", "HTML page"),
        ('{"Contacts": [{"ContactID": "5cc8cf28', "application/json", "malformed JSON"),
        ("[]", "application/json", "expected a JSON object"),
    ],
)
def test_a_broken_reply_is_a_clear_permanent_error(httpserver, body, content_type, expected):
    httpserver.expect_request("/Contacts").respond_with_data(body, content_type=content_type)
    connector = make_connector(httpserver)

    with pytest.raises(PermanentError, match=expected):
        list(connector.fetch("clients"))


def test_a_record_without_id_is_skipped_and_an_unknown_status_fails_in_the_mapper(httpserver):
    page = fixture("invoices_page1.json")
    page["Invoices"][0]["Status"] = "ON_HOLD"
    page["Invoices"].insert(1, {"InvoiceNumber": "INV-NOID"})
    httpserver.expect_request("/Invoices").respond_with_json(page)
    connector = make_connector(httpserver)

    records = list(connector.fetch("invoices"))

    assert [r.data["InvoiceNumber"] for r in records] == ["INV-0041", "INV-0042"]
    with pytest.raises(MappingError) as caught:
        to_canonical(records[0].data, rules("invoices"))
    assert "ON_HOLD" in str(caught.value) and "status" in caught.value.reasons


def test_a_vendor_validation_error_on_push_is_a_record_error(httpserver):
    httpserver.expect_request("/Contacts", method="PUT").respond_with_json(
        fixture("validation_error.json"), status=400
    )
    connector = make_connector(httpserver)

    with pytest.raises(RecordError, match="Email address must be valid"):
        connector.upsert("clients", {"Name": "Bad mail", "EmailAddress": "nope"})


# --- writing -----------------------------------------------------------------------------------------


def test_pushing_a_new_invoice_puts_it_with_lines_and_an_idempotency_key(httpserver):
    # given a canonical invoice mapped out with the default mappings
    seen: list = []

    def handler(request):
        seen.append((dict(request.headers), json.loads(request.data)))
        reply = fixture("invoices_page1.json")
        reply["Invoices"] = reply["Invoices"][:1]
        return Response(json.dumps(reply), content_type="application/json")

    httpserver.expect_request("/Invoices", method="PUT").respond_with_handler(handler)
    connector = make_connector(httpserver, options={"account_code": "200", "tax_type": "OUTPUT2"})
    canonical = {
        "number": "INV-0041",
        "client": 17,
        "status": "issued",
        "currency": "GBP",
        "issue_date": dt.date(2026, 1, 1),
        "due_date": dt.date(2026, 1, 15),
        "total": "1200.00",
        "purpose": "Website redesign, phase 1",
        "lines": [{"description": "Design work", "quantity": "10", "unit_price": "100.00", "vat_rate": "20"}],
    }
    payload = to_remote(
        canonical, rules("invoices"), resolve=lambda entity, pk: "5cc8cf28-567e-4d43-b287-687cfcaec47c"
    )

    # when
    external_id = connector.upsert("invoices", payload)

    # then
    assert external_id == "4f7a3b2c-1d0e-4f9a-8b7c-6d5e4f3a2b1c"
    headers, body = seen[0]
    assert headers["Idempotency-Key"]
    assert body == {
        "Invoices": [
            {
                "InvoiceNumber": "INV-0041",
                "Contact": {"ContactID": "5cc8cf28-567e-4d43-b287-687cfcaec47c"},
                "Status": "AUTHORISED",
                "CurrencyCode": "GBP",
                "Date": "2026-01-01",
                "DueDate": "2026-01-15",
                "Reference": "Website redesign, phase 1",
                "Type": "ACCREC",
                "LineItems": [
                    {
                        "Description": "Design work",
                        "Quantity": 10.0,
                        "UnitAmount": 100.0,
                        "AccountCode": "200",
                        "TaxType": "OUTPUT2",
                    }
                ],
            }
        ]
    }


def test_updating_a_contact_posts_to_its_id_and_archiving_sets_its_status(httpserver):
    posted: list = []

    def handler(request):
        posted.append(json.loads(request.data))
        return Response(json.dumps(fixture("contacts_page2.json")), content_type="application/json")

    httpserver.expect_request(
        "/Contacts/a1f8e7a4-8d4f-4b8e-9d0e-2b1b9a3c4d5e", method="POST"
    ).respond_with_handler(handler)
    connector = make_connector(httpserver)
    payload = to_remote(
        {"name": "Bruce Banner Consulting", "phone": "+14155551212", "archived": False}, rules("clients")
    )

    assert connector.upsert("clients", payload, external_id="a1f8e7a4-8d4f-4b8e-9d0e-2b1b9a3c4d5e") == (
        "a1f8e7a4-8d4f-4b8e-9d0e-2b1b9a3c4d5e"
    )
    connector.delete("clients", "a1f8e7a4-8d4f-4b8e-9d0e-2b1b9a3c4d5e")

    assert posted[0]["Contacts"][0] == {
        "Name": "Bruce Banner Consulting",
        "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": "+14155551212"}],
        "ContactStatus": "ACTIVE",
        "ContactID": "a1f8e7a4-8d4f-4b8e-9d0e-2b1b9a3c4d5e",
    }
    assert posted[1]["Contacts"][0]["ContactStatus"] == "ARCHIVED"


def test_deleting_a_draft_invoice_deletes_it(httpserver):
    page = fixture("invoices_page1.json")
    page["Invoices"] = page["Invoices"][1:]  # the DRAFT
    invoice_id = "7e6d5c4b-3a29-4817-a6b5-c4d3e2f1a0b9"
    httpserver.expect_request(f"/Invoices/{invoice_id}", method="GET").respond_with_json(page)
    posted: list = []

    def handler(request):
        posted.append(json.loads(request.data))
        return Response(json.dumps(page), content_type="application/json")

    httpserver.expect_request(f"/Invoices/{invoice_id}", method="POST").respond_with_handler(handler)
    connector = make_connector(httpserver)

    connector.delete("invoices", invoice_id)

    assert posted == [{"Invoices": [{"InvoiceID": invoice_id, "Status": "DELETED"}]}]


# --- webhooks ----------------------------------------------------------------------------------------


def test_a_correctly_signed_delivery_verifies_and_parses_this_tenants_events(httpserver):
    connector = make_connector(httpserver)
    body = (FIXTURES / "webhook.json").read_bytes()

    assert connector.verify_webhook({"X-Xero-Signature": sign(body)}, body) is True
    events = connector.parse_webhook({}, body)
    assert [(e.stream, e.external_id, e.action, e.record) for e in events] == [
        ("invoices", "4f7a3b2c-1d0e-4f9a-8b7c-6d5e4f3a2b1c", "upsert", None),
        ("clients", "5cc8cf28-567e-4d43-b287-687cfcaec47c", "upsert", None),
    ]
    # a replayed delivery yields the same event ids, so the inbox dedupes it
    assert [e.event_id for e in connector.parse_webhook({}, body)] == [e.event_id for e in events]
    assert len({e.event_id for e in events}) == 2


def test_intent_to_receive_passes_only_when_correctly_signed(httpserver):
    connector = make_connector(httpserver)
    body = (FIXTURES / "webhook_intent_to_receive.json").read_bytes()

    assert connector.verify_webhook({"x-xero-signature": sign(body)}, body) is True
    assert connector.verify_webhook({"x-xero-signature": sign(body, key="wrong-key")}, body) is False
    assert connector.parse_webhook({}, body) == []


def test_a_forged_or_unsigned_delivery_is_refused(httpserver):
    connector = make_connector(httpserver)
    body = (FIXTURES / "webhook.json").read_bytes()
    tampered = body.replace(b"UPDATE", b"DELETE")

    assert connector.verify_webhook({"x-xero-signature": sign(body)}, tampered) is False
    assert connector.verify_webhook({}, body) is False
    assert (
        make_connector(httpserver, webhook_key="").verify_webhook({"x-xero-signature": sign(body)}, body)
        is False
    )


def test_a_malformed_webhook_body_is_a_permanent_error(httpserver):
    connector = make_connector(httpserver)

    with pytest.raises(PermanentError):
        connector.parse_webhook({}, b"not json")
    with pytest.raises(PermanentError):
        connector.parse_webhook({}, b'{"entropy": "x"}')
