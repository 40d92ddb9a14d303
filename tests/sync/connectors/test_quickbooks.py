"""QuickBooks Online connector against a loopback HTTP server (real httpx client, paging, retries, tokens)."""

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
)
from sync.mapping.mapper import Rule, to_canonical, to_remote
from sync.mapping.transforms import Ref

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "quickbooks"
REALM = "9130356616931926"
BASE = f"/v3/company/{REALM}"
VERIFIER = "7f1c7e3a-61a2-4bd0-9c1e-2f0c4d1d6a9b"
NOW = dt.datetime(2026, 1, 15, 18, 0, tzinfo=dt.UTC)


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def make_connector(httpserver, *, store=None, options=None, **creds):
    values = {
        "client_id": "client-1",
        "client_secret": "secret-1",
        "refresh_token": "qbo-refresh-1",
        "realm_id": REALM,
        "access_token": "qbo-access-1",
        "access_token_expires_at": str(int(time.time()) + 3600),
        "webhook_verifier": VERIFIER,
    }
    values.update(creds)
    config = ConnectionConfig(
        name="qbo-test",
        system="quickbooks",
        base_url=httpserver.url_for("/"),
        credentials=store or MemoryCredentialStore(values),
        options={"token_url": httpserver.url_for("/oauth2/v1/tokens/bearer"), **(options or {})},
        rate_limit_per_second=1000,
        timeout_seconds=5,
        max_attempts=3,
    )
    connector = connector_class("quickbooks")(config)
    connector.clock = lambda: NOW
    connector.slept = []
    connector.http.sleep = connector.slept.append
    return connector


def rules(stream: str):
    return [Rule(**vars(m)) for m in connector_class("quickbooks").default_mappings if m.entity == stream]


def query(sql: str) -> dict:
    return {"query": sql, "minorversion": "75"}


def sign(body: bytes, key: str = VERIFIER) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


# --- reading -----------------------------------------------------------------------------------------


def test_fetch_pages_the_query_to_the_end_including_inactive_customers(httpserver):
    sql = "SELECT * FROM Customer WHERE Active IN (true, false) ORDERBY MetaData.LastUpdatedTime STARTPOSITION {} MAXRESULTS 2"
    httpserver.expect_oneshot_request(f"{BASE}/query", query_string=query(sql.format(1))).respond_with_json(
        fixture("customers_page1.json")
    )
    httpserver.expect_oneshot_request(f"{BASE}/query", query_string=query(sql.format(3))).respond_with_json(
        fixture("customers_page2.json")
    )
    connector = make_connector(httpserver, options={"page_size": 2})

    records = list(connector.fetch("clients"))

    assert [r.external_id for r in records] == ["1", "2", "3"]
    assert records[0].updated_at == dt.datetime(2026, 1, 10, 19, 20, 16, tzinfo=dt.UTC)
    assert records[1].version == "3"  # SyncToken
    first, second = (to_canonical(r.data, rules("clients")) for r in records[:2])
    assert first == {
        "name": "Amy's Bird Sanctuary",
        "legal_name": "Amy's Bird Sanctuary",
        "kind": "company",
        "email": "Birds@Intuit.com",
        "address": "4581 Finch St. Bayshore CA 94326",
        "notes": "Prefers e-mail",
        "archived": False,
    }
    assert second["archived"] is True


def test_change_feed_reads_cdc_oldest_first_with_tombstones(httpserver):
    # given changes in the last day
    httpserver.expect_oneshot_request(
        f"{BASE}/cdc",
        query_string={
            "entities": "Invoice",
            "changedSince": "2026-01-15T09:00:00+00:00",
            "minorversion": "75",
        },
    ).respond_with_json(fixture("cdc_invoices.json"))
    connector = make_connector(httpserver)

    # when
    records = list(
        connector.fetch(
            "invoices", since=dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))
        )
    )

    # then sorted by LastUpdatedTime, the deleted one a tombstone, statuses derived
    assert [(r.external_id, r.deleted) for r in records] == [("128", False), ("129", True), ("132", False)]
    voided, _, paid = records
    assert to_canonical(voided.data, rules("invoices"))["status"] == "void"
    assert to_canonical(paid.data, rules("invoices"))["status"] == "paid"


def test_a_since_older_than_30_days_falls_back_to_the_query(httpserver):
    sql = (
        "SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime >= '2025-11-01T00:00:00+00:00' "
        "ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 1000"
    )
    httpserver.expect_oneshot_request(f"{BASE}/query", query_string=query(sql)).respond_with_json(
        fixture("invoices.json")
    )
    connector = make_connector(httpserver)

    records = list(connector.fetch("invoices", since=dt.datetime(2025, 11, 1, tzinfo=dt.UTC)))

    assert [r.external_id for r in records] == ["130", "132"]
    invoice = to_canonical(records[0].data, rules("invoices"))
    assert invoice["number"] == "1037"
    assert invoice["client"] == Ref("clients", "1")
    assert invoice["status"] == "partially_paid"
    assert invoice["issue_date"] == dt.date(2026, 1, 5)
    assert (str(invoice["total"]), str(invoice["vat_total"]), str(invoice["amount_due"])) == (
        "216.00",
        "16.00",
        "116.00",
    )
    assert invoice["purpose"] == "Thank you for your business"
    assert invoice["lines"] == [
        {"description": "Sod, 10 pallets", "quantity": "10", "unit_price": "20", "vat_rate": None, "unit": ""}
    ]
    assert to_canonical(records[1].data, rules("invoices"))["status"] == "issued"


def test_a_full_cdc_answer_is_read_again_by_query_keeping_its_deletions(httpserver):
    # given CDC returns its maximum of 1000 objects, one of them deleted
    objects = [
        {
            "Id": str(i),
            "SyncToken": "0",
            "MetaData": {"LastUpdatedTime": "2026-01-15T10:00:00Z"},
            "TotalAmt": 1,
            "Balance": 1,
        }
        for i in range(999)
    ]
    objects.append(
        {"Id": "5000", "status": "Deleted", "MetaData": {"LastUpdatedTime": "2026-01-15T10:00:00Z"}}
    )
    httpserver.expect_oneshot_request(f"{BASE}/cdc").respond_with_json(
        {"CDCResponse": [{"QueryResponse": [{"Invoice": objects}]}]}
    )
    sql = (
        "SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime >= '2026-01-15T09:00:00+00:00' "
        "ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 1000"
    )
    httpserver.expect_oneshot_request(f"{BASE}/query", query_string=query(sql)).respond_with_json(
        fixture("invoices.json")
    )
    connector = make_connector(httpserver)

    records = list(connector.fetch("invoices", since=dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)))

    assert [(r.external_id, r.deleted) for r in records] == [("130", False), ("132", False), ("5000", True)]


def test_payments_map_to_the_invoice_they_pay(httpserver):
    httpserver.expect_request(f"{BASE}/query").respond_with_json(fixture("payments.json"))
    connector = make_connector(httpserver)

    (record,) = connector.fetch("payments")

    payment = to_canonical(record.data, rules("payments"))
    assert payment["invoice"] == Ref("invoices", "130")
    assert payment["client"] == Ref("clients", "1")
    assert str(payment["amount"]) == "100.00"
    assert payment["currency"] == "USD"
    assert payment["received_at"] == dt.datetime(2026, 1, 14, tzinfo=dt.UTC)
    assert payment["reference"] == "CHK-5521"


def test_a_query_that_ignores_startposition_is_a_permanent_error(httpserver):
    httpserver.expect_request(f"{BASE}/query").respond_with_json(fixture("customers_page1.json"))
    connector = make_connector(httpserver, options={"page_size": 2})

    with pytest.raises(PermanentError, match="repeats the previous page"):
        list(connector.fetch("clients"))


def test_get_reads_one_record_and_none_when_not_found(httpserver):
    invoice = fixture("invoices.json")["QueryResponse"]["Invoice"][0]
    httpserver.expect_request(f"{BASE}/invoice/130").respond_with_json({"Invoice": invoice, "time": "x"})
    httpserver.expect_request(f"{BASE}/invoice/999").respond_with_json(
        fixture("fault_not_found.json"), status=400
    )
    connector = make_connector(httpserver)

    assert connector.get("invoices", "130").version == "2"
    assert connector.get("invoices", "999") is None


# --- limits ------------------------------------------------------------------------------------------


def test_429_is_retried_after_retry_after_or_a_backoff(httpserver):
    httpserver.expect_ordered_request(f"{BASE}/companyinfo/{REALM}").respond_with_json(
        fixture("fault_throttle.json"), status=429, headers={"Retry-After": "4"}
    )
    httpserver.expect_ordered_request(f"{BASE}/companyinfo/{REALM}").respond_with_json(
        fixture("fault_throttle.json"), status=429
    )
    httpserver.expect_ordered_request(f"{BASE}/companyinfo/{REALM}").respond_with_json(
        fixture("companyinfo.json")
    )
    connector = make_connector(httpserver)

    connector.check()

    assert connector.slept[0] == 4.0
    assert len(connector.slept) == 2 and 0 <= connector.slept[1] <= 1.0  # jittered backoff, attempt 2


# --- tokens ------------------------------------------------------------------------------------------


def token_endpoint(httpserver, calls: list, *, delay: float = 0.0):
    def handler(request):
        time.sleep(delay)
        calls.append(request.form.to_dict())
        assert (request.authorization.username, request.authorization.password) == ("client-1", "secret-1")
        return Response(json.dumps(fixture("token.json")), content_type="application/json")

    httpserver.expect_request("/oauth2/v1/tokens/bearer", method="POST").respond_with_handler(handler)


def test_two_workers_with_an_expired_token_refresh_once_and_keep_the_rotated_token(httpserver):
    calls: list = []
    token_endpoint(httpserver, calls, delay=0.2)
    httpserver.expect_request(
        f"{BASE}/companyinfo/{REALM}", headers={"Authorization": "Bearer qbo-access-2"}
    ).respond_with_json(fixture("companyinfo.json"))
    store = MemoryCredentialStore(
        {
            "client_id": "client-1",
            "client_secret": "secret-1",
            "refresh_token": "qbo-refresh-1",
            "realm_id": REALM,
            "access_token": "qbo-access-1",
            "access_token_expires_at": str(int(time.time()) + 30),  # inside the safety margin
        }
    )
    workers = [make_connector(httpserver, store=store) for _ in range(2)]
    errors: list = []

    def run(connector):
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
    assert calls == [{"grant_type": "refresh_token", "refresh_token": "qbo-refresh-1"}]
    assert store.load()["refresh_token"] == "qbo-refresh-2"
    assert store.load()["access_token"] == "qbo-access-2"


def test_a_401_refreshes_once_and_a_second_401_asks_to_reconnect(httpserver):
    calls: list = []
    token_endpoint(httpserver, calls)
    httpserver.expect_request(f"{BASE}/companyinfo/{REALM}").respond_with_json(
        {
            "fault": {
                "error": [
                    {
                        "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                        "code": "3200",
                    }
                ],
                "type": "AUTHENTICATION",
            }
        },
        status=401,
    )
    connector = make_connector(httpserver)

    with pytest.raises(AuthError, match="reconnect in admin"):
        connector.check()
    assert len(calls) == 1


def test_an_expired_refresh_token_asks_to_reconnect(httpserver):
    httpserver.expect_request("/oauth2/v1/tokens/bearer", method="POST").respond_with_json(
        {"error": "invalid_grant"}, status=400
    )
    connector = make_connector(httpserver, access_token="")

    with pytest.raises(AuthError, match=r"refresh token .*reconnect in admin"):
        connector.check()


def test_a_missing_realm_is_an_auth_error(httpserver):
    with pytest.raises(AuthError, match="realm_id"):
        make_connector(httpserver, realm_id="").check()


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected"),
    [
        (200, "<!DOCTYPE html><html><title>Intuit maintenance</title></html>", "text/html", "HTML page"),
        (200, '{"QueryResponse": {"Customer": [{"Id": "1"', "application/json", "malformed JSON"),
        (200, json.dumps(fixture("fault_validation.json")), "application/json", "fault 6240"),
        (200, '{"time": "2026-01-15T08:00:00.000-08:00"}', "application/json", "no QueryResponse"),
        (400, json.dumps(fixture("fault_validation.json")), "application/json", "HTTP 400"),
    ],
)
def test_a_broken_reply_is_a_clear_permanent_error(httpserver, status, body, content_type, expected):
    httpserver.expect_request(f"{BASE}/query").respond_with_data(
        body, status=status, content_type=content_type
    )
    connector = make_connector(httpserver)

    with pytest.raises(PermanentError, match=expected):
        list(connector.fetch("clients"))


def test_a_record_without_id_is_skipped_and_the_rest_are_read(httpserver):
    page = fixture("customers_page1.json")
    page["QueryResponse"]["Customer"].insert(0, {"DisplayName": "no id"})
    httpserver.expect_request(f"{BASE}/query").respond_with_json(page)
    connector = make_connector(httpserver)

    assert [r.external_id for r in connector.fetch("clients")] == ["1", "2"]


def test_an_unreadable_timestamp_or_flag_does_not_stop_the_read(httpserver):
    page = fixture("customers_page2.json")
    page["QueryResponse"]["Customer"][0]["Active"] = "maybe"
    page["QueryResponse"]["Customer"][0]["MetaData"]["LastUpdatedTime"] = "yesterday"
    httpserver.expect_request(f"{BASE}/query").respond_with_json(page)
    connector = make_connector(httpserver)

    (record,) = connector.fetch("clients")

    assert record.updated_at is None  # an unreadable timestamp does not stop the read
    assert to_canonical(record.data, rules("clients"))["archived"] is True  # not "true": inactive


# --- writing -----------------------------------------------------------------------------------------


def recorder(httpserver, path: str, reply, *, status: int = 200):
    seen: list = []

    def handler(request):
        seen.append((request.args.to_dict(), json.loads(request.data)))
        body = reply(len(seen)) if callable(reply) else reply
        return Response(json.dumps(body), status=status, content_type="application/json")

    httpserver.expect_request(path, method="POST").respond_with_handler(handler)
    return seen


def test_a_new_customer_is_posted_and_its_id_returned(httpserver):
    customer = fixture("customers_page2.json")["QueryResponse"]["Customer"][0]
    seen = recorder(httpserver, f"{BASE}/customer", {"Customer": customer})
    connector = make_connector(httpserver)
    payload = to_remote(
        {
            "name": "Cool Cars",
            "legal_name": "Cool Cars Inc",
            "email": "cool@example.com",
            "phone": "+16505551234",
            "archived": False,
        },
        rules("clients"),
    )

    assert connector.upsert("clients", payload) == "3"
    assert seen == [
        (
            {"minorversion": "75"},
            {
                "DisplayName": "Cool Cars",
                "CompanyName": "Cool Cars Inc",
                "PrimaryEmailAddr": {"Address": "cool@example.com"},
                "PrimaryPhone": {"FreeFormNumber": "+16505551234"},
                "Active": True,
            },
        )
    ]


def test_an_invoice_update_sends_the_current_sync_token_and_tax_code_lines(httpserver):
    # given invoice 130 at SyncToken 2 and a UK-style tax code
    invoice = fixture("invoices.json")["QueryResponse"]["Invoice"][0]
    httpserver.expect_request(f"{BASE}/invoice/130", method="GET").respond_with_json({"Invoice": invoice})
    seen = recorder(httpserver, f"{BASE}/invoice", {"Invoice": {**invoice, "SyncToken": "3"}})
    connector = make_connector(httpserver, options={"tax_code": "20", "item_id": "7"})
    canonical = {
        "number": "1037",
        "client": 5,
        "currency": "GBP",
        "issue_date": dt.date(2026, 1, 5),
        "purpose": "Thanks",
        "lines": [{"description": "Consulting", "quantity": "2", "unit_price": "150.00", "vat_rate": "20"}],
    }
    payload = to_remote(canonical, rules("invoices"), resolve=lambda entity, pk: "1")

    assert connector.upsert("invoices", payload, external_id="130") == "130"

    ((_, body),) = seen
    assert body == {
        "DocNumber": "1037",
        "CustomerRef": {"value": "1"},
        "CurrencyRef": {"value": "GBP"},
        "TxnDate": "2026-01-05",
        "CustomerMemo": {"value": "Thanks"},
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": 300.0,
                "Description": "Consulting",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "7"},
                    "Qty": 2.0,
                    "UnitPrice": 150.0,
                    "TaxCodeRef": {"value": "20"},
                },
            }
        ],
        "Id": "130",
        "sparse": True,
        "SyncToken": "2",
    }


def test_a_stale_sync_token_is_read_again_and_the_update_retried_once(httpserver):
    customer = fixture("customers_page1.json")["QueryResponse"]["Customer"][1]
    tokens = iter(["3", "4"])
    httpserver.expect_request(f"{BASE}/customer/2", method="GET").respond_with_handler(
        lambda request: Response(
            json.dumps({"Customer": {**customer, "SyncToken": next(tokens)}}), content_type="application/json"
        )
    )
    seen = recorder(
        httpserver,
        f"{BASE}/customer",
        lambda n: fixture("fault_stale.json") if n == 1 else {"Customer": {**customer, "SyncToken": "5"}},
    )
    connector = make_connector(httpserver)

    assert connector.upsert("clients", {"DisplayName": "Bill's Windsurf Shop"}, external_id="2") == "2"
    assert [body["SyncToken"] for _, body in seen] == ["3", "4"]


def test_a_validation_fault_on_push_is_a_record_error(httpserver):
    recorder(httpserver, f"{BASE}/customer", fixture("fault_validation.json"), status=400)
    connector = make_connector(httpserver)

    with pytest.raises(RecordError, match="Duplicate Name Exists"):
        connector.upsert("clients", {"DisplayName": "Amy's Bird Sanctuary"})


def test_deleting_makes_a_customer_inactive_and_voids_an_invoice(httpserver):
    customer = fixture("customers_page2.json")["QueryResponse"]["Customer"][0]
    invoice = fixture("invoices.json")["QueryResponse"]["Invoice"][1]
    httpserver.expect_request(f"{BASE}/customer/3", method="GET").respond_with_json({"Customer": customer})
    httpserver.expect_request(f"{BASE}/invoice/132", method="GET").respond_with_json({"Invoice": invoice})
    customers = recorder(httpserver, f"{BASE}/customer", {"Customer": customer})
    invoices = recorder(httpserver, f"{BASE}/invoice", {"Invoice": invoice})
    connector = make_connector(httpserver)

    connector.delete("clients", "3")
    connector.delete("invoices", "132")

    assert customers == [
        ({"minorversion": "75"}, {"Id": "3", "SyncToken": "0", "sparse": True, "Active": False})
    ]
    assert invoices == [({"minorversion": "75", "operation": "void"}, {"Id": "132", "SyncToken": "0"})]


# --- webhooks ----------------------------------------------------------------------------------------


def test_a_signed_classic_notification_yields_this_companys_events(httpserver):
    connector = make_connector(httpserver)
    body = (FIXTURES / "webhook.json").read_bytes()

    assert connector.verify_webhook({"intuit-signature": sign(body)}, body) is True
    events = connector.parse_webhook({}, body)
    assert [(e.stream, e.external_id, e.action) for e in events] == [
        ("invoices", "130", "upsert"),
        ("clients", "7", "delete"),
    ]
    # a replayed delivery has the same ids: the inbox dedupes it
    assert [e.event_id for e in connector.parse_webhook({}, body)] == [e.event_id for e in events]


def test_cloudevents_payloads_are_read_too(httpserver):
    connector = make_connector(httpserver)
    body = (FIXTURES / "webhook_cloudevents.json").read_bytes()

    assert connector.verify_webhook({"Intuit-Signature": sign(body)}, body) is True
    events = connector.parse_webhook({}, body)
    assert [(e.event_id, e.stream, e.external_id, e.action) for e in events] == [
        ("88cd52a5-2ef1-4f8b-b5d3-7bcd8a3b8d21", "payments", "131", "upsert"),
        ("0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9", "invoices", "129", "delete"),
    ]


def test_a_forged_or_unsigned_notification_is_refused(httpserver):
    connector = make_connector(httpserver)
    body = (FIXTURES / "webhook.json").read_bytes()

    assert connector.verify_webhook({"intuit-signature": sign(body, key="other")}, body) is False
    assert connector.verify_webhook({"intuit-signature": sign(body)}, body.replace(b"130", b"131")) is False
    assert connector.verify_webhook({}, body) is False
    assert (
        make_connector(httpserver, webhook_verifier="").verify_webhook({"intuit-signature": sign(body)}, body)
        is False
    )


def test_a_malformed_notification_is_a_permanent_error(httpserver):
    connector = make_connector(httpserver)

    for body in (b"<xml/>", b'{"hello": "world"}', b"[1, 2]"):
        with pytest.raises(PermanentError):
            connector.parse_webhook({}, body)
