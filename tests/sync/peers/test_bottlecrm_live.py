"""The BottleCRM connector against a real django-crm 1.35 (scripts/peers/bottlecrm_up.sh)."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
import uuid
from decimal import Decimal

import httpx
import pytest

from sync.mapping.mapper import Rule, to_canonical, to_remote
from sync.mapping.transforms import Ref

pytestmark = pytest.mark.peers

INN = "7707083893"


def rules(connector, stream):
    return [Rule(**vars(m)) for m in connector.default_mappings if m.entity == stream]


def canonical(connector, stream, record):
    return to_canonical(record.data, rules(connector, stream))


def remote(connector, stream, values):
    """The vendor payload the engine would push: the default mappings applied outbound."""
    return to_remote(values, rules(connector, stream), resolve=lambda entity, ref: ref.external_id)


@pytest.fixture
def api(bottlecrm_env):
    """A plain client playing the CRM user (what the connector must then read)."""
    with httpx.Client(
        base_url=bottlecrm_env["BOTTLECRM_URL"].rstrip("/"),
        headers={"Authorization": f"Bearer {bottlecrm_env['token']}"},
        timeout=60,
    ) as client:

        def call(method: str, path: str, body=None, token: str | None = None):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = client.request(method, path, json=body, headers=headers)
            assert response.is_success, f"{method} {path}: {response.status_code} {response.text[:300]}"
            return response.json() if response.content else None

        yield call


def test_account_contact_deal_made_in_crm_are_fetched_and_mapped(bottlecrm, api):
    # given a company with an INN, its contact and a deal created by a CRM user
    bottlecrm.check()
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    tag = uuid.uuid4().hex[:8]
    account = api(
        "POST",
        "/api/accounts/",
        {
            "name": f"ООО Ромашка {tag}",
            "email": f"buh-{tag}@romashka.test",
            "phone": "+74951234567",
            "address_line": "ул. Тверская, 1",
            "custom_fields": {"inn": INN},
        },
    )["id"]
    contact = api(
        "POST",
        "/api/contacts/",
        {
            "first_name": "Иван",
            "last_name": f"Петров {tag}",
            "email": f"ivan-{tag}@romashka.test",
            "phone": "+74957654321",
            "title": "CEO",
            "account": account,
        },
    )["id"]
    pipeline = api("GET", "/api/opportunities/pipelines/")["pipelines"][0]["id"]
    deal = api(
        "POST",
        "/api/opportunities/",
        {
            "name": f"Сайт {tag}",
            "account": account,
            "pipeline": pipeline,
            "stage": "PROPOSAL",
            "amount": "120000.00",
            "currency": "EUR",
            "probability": 50,
            "closed_on": "2026-12-31",
            "contacts": [contact],
            "assigned_to": [],
            "teams": [],
        },
    )["id"]

    # when the connector reads the CRM
    clients = {r.external_id: r for r in bottlecrm.fetch("clients", since=since)}
    contacts = {r.external_id: r for r in bottlecrm.fetch("contacts", since=since)}
    deals = {r.external_id: r for r in bottlecrm.fetch("deals", since=since)}

    # then each record is there, mapped to the canonical shape
    assert canonical(bottlecrm, "clients", clients[account]) == {
        "name": f"ООО Ромашка {tag}",
        "inn": INN,
        "email": f"buh-{tag}@romashka.test",
        "phone": "+74951234567",
        "address": "ул. Тверская, 1",
        "country": None,
        "notes": None,
        "kind": "company",
        "archived": False,
    }
    assert contacts[contact].updated_at is not None
    mapped_contact = canonical(bottlecrm, "contacts", contacts[contact])
    assert mapped_contact["client"] == Ref("clients", account)
    assert (mapped_contact["first_name"], mapped_contact["position"], mapped_contact["phone"]) == (
        "Иван",
        "CEO",
        "+74957654321",
    )
    mapped_deal = canonical(bottlecrm, "deals", deals[deal])
    assert mapped_deal["client"] == Ref("clients", account)
    assert (mapped_deal["stage"], mapped_deal["status"]) == ("Предложение / Proposal", "open")
    assert (mapped_deal["amount"], mapped_deal["currency"]) == (Decimal("120000.00"), "EUR")
    assert mapped_deal["expected_close_date"] == dt.date(2026, 12, 31)

    # when the deal is won in the CRM
    api("PATCH", f"/api/opportunities/{deal}/", {"stage": "CLOSED_WON"})

    # then it reads as won
    won = canonical(bottlecrm, "deals", bottlecrm.get("deals", deal))
    assert (won["stage"], won["status"]) == ("Успешно / Won", "won")


def test_hub_writes_and_notes(bottlecrm, api):
    # given a client and a deal the hub pushes
    tag = uuid.uuid4().hex[:8]
    account = bottlecrm.upsert(
        "clients", remote(bottlecrm, "clients", {"name": f"Hub Client {tag}", "inn": INN, "country": "RU"})
    )
    deal = bottlecrm.upsert(
        "deals",
        remote(
            bottlecrm,
            "deals",
            {
                "title": f"Hub deal {tag}",
                "client": Ref("clients", account),
                "stage": "Новая / New",
                "amount": Decimal("10.00"),
                "currency": "USD",
                "expected_close_date": dt.date(2026, 12, 31),
            },
        ),
    )
    assert canonical(bottlecrm, "deals", bottlecrm.get("deals", deal))["stage"] == "Новая / New"
    assert canonical(bottlecrm, "clients", bottlecrm.get("clients", account))["inn"] == INN

    # when the hub updates the client and notes that the invoice was paid
    bottlecrm.upsert("clients", {"email": f"hub-{tag}@client.test"}, external_id=account)
    bottlecrm.add_note("deals", deal, f"Invoice HUB-{tag} paid in full")

    # then BottleCRM shows both
    assert bottlecrm.get("clients", account).data["email"] == f"hub-{tag}@client.test"
    detail = api("GET", f"/api/opportunities/{deal}/")
    assert any(f"Invoice HUB-{tag} paid in full" in c.get("comment", "") for c in detail["comments"])
    assert bottlecrm.get("deals", "00000000-0000-0000-0000-000000000000") is None


def test_invoice_and_payment_read(bottlecrm, api):
    # given an invoice with a partial payment recorded in BottleCRM
    tag = uuid.uuid4().hex[:8]
    account = api("POST", "/api/accounts/", {"name": f"Payer {tag}"})["id"]
    contact = api("POST", "/api/contacts/", {"first_name": "Pay", "last_name": tag, "account": account})["id"]
    invoice = api(
        "POST",
        "/api/invoices/",
        {
            "invoice_title": f"Stage 1 {tag}",
            "account_id": account,
            "contact_id": contact,
            "currency": "EUR",
            "issue_date": "2026-11-28",
            "due_date": "2026-12-28",
            "line_items": [
                {"name": "Design", "description": "Design", "quantity": "1", "unit_price": "400.00"}
            ],
        },
    )["invoice"]["id"]
    api(
        "POST",
        f"/api/invoices/{invoice}/payments/",
        {
            "amount": "150.00",
            "payment_date": "2026-11-28",
            "payment_method": "BANK_TRANSFER",
            "reference_number": tag,
        },
    )

    # when the connector reads invoices and payments
    invoices = {r.external_id: r for r in bottlecrm.fetch("invoices")}
    payments = [r for r in bottlecrm.fetch("payments") if r.data["invoice"] == invoice]

    # then both are mapped: partially paid, one payment tied to the invoice and the client
    mapped = canonical(bottlecrm, "invoices", invoices[invoice])
    assert (mapped["status"], mapped["total"], mapped["paid_total"], mapped["amount_due"]) == (
        "partially_paid",
        Decimal("400.00"),
        Decimal("150.00"),
        Decimal("250.00"),
    )
    assert mapped["client"] == Ref("clients", account)
    assert len(payments) == 1
    payment = canonical(bottlecrm, "payments", payments[0])
    assert payment["invoice"] == Ref("invoices", invoice)
    assert payment["client"] == Ref("clients", account)
    assert (payment["amount"], payment["currency"], payment["reference"]) == (Decimal("150.00"), "EUR", tag)


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Receiver.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_real_signed_webhook_is_verified_and_parsed(bottlecrm, api, bottlecrm_jwt, receiver):
    # given a webhook endpoint registered on a loopback receiver (its secret stored by the connector)
    endpoint = bottlecrm.register_webhook(
        f"http://127.0.0.1:{receiver.server_port}/sync/webhooks/bottlecrm/", session_token=bottlecrm_jwt
    )
    try:
        # when an account is created in BottleCRM
        account = api("POST", "/api/accounts/", {"name": f"Hooked {uuid.uuid4().hex[:8]}"})["id"]
        for _ in range(100):
            if any(json.loads(b).get("data", {}).get("id") == account for _, b in Receiver.received):
                break
            time.sleep(0.1)
    finally:
        api("DELETE", f"/api/webhooks/{endpoint['id']}/", token=bottlecrm_jwt)

    # then the real delivery verifies, and names the account to re-fetch
    headers, body = next((h, b) for h, b in Receiver.received if json.loads(b)["data"]["id"] == account)
    assert headers["X-BottleCRM-Event"] == "account.created"
    assert bottlecrm.verify_webhook(headers, body) is True
    (event,) = bottlecrm.parse_webhook(headers, body)
    assert (event.stream, event.external_id, event.action) == ("clients", account, "upsert")
    assert event.event_id == json.loads(body)["id"]
    # a forged body, and the same delivery replayed six minutes later, are refused
    assert (
        bottlecrm.verify_webhook(headers, body.replace(account.encode(), uuid.uuid4().hex.encode())) is False
    )
    signed_at = int(headers["X-BottleCRM-Signature"].split(",")[0].removeprefix("t="))
    bottlecrm.clock = lambda: signed_at + 301
    assert bottlecrm.verify_webhook(headers, body) is False
