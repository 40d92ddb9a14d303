"""The flagship flow, end to end against a real BottleCRM (CRM) and a real Tryton (accounting).

A company with an INN, its contact and a deal are created in BottleCRM ► `sync crm` brings them into the
hub, matching the company to the hub client that already has that INN ► the client goes to Tryton as a
party ► an invoice issued in the hub for the deal is pushed to Tryton, validated and posted ► the
accountant pays it in Tryton ► `sync books` brings the payment into the hub, allocated to the invoice ►
the BottleCRM deal gets a note that it was paid ► a second sync of both reports only `unchanged`.

Outbox events are dispatched in-process between steps (`drain`), exactly as the worker would.
"""

from __future__ import annotations

import datetime as dt
import random
import subprocess
import uuid
from decimal import Decimal
from io import StringIO
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command
from django.utils import timezone

from hub.events import event_dispatch
from hub.models import Client, Contact, Deal, DomainEvent, Pipeline, Stage
from invoicing.models import Invoice, InvoiceStatus, Payment
from invoicing.services import invoice_issue_from_deal
from sync.models import Connection, ExternalRef
from sync.services import connector_for
from tests.factories import ClientFactory, inn_with_checksum

pytestmark = pytest.mark.peers
ROOT = Path(__file__).resolve().parents[3]
STAGES = [  # the hub's pipeline, named as the bottlecrm connection's default stage map expects
    ("new", "Новая / New", False, False),
    ("qualified", "Квалификация / Qualified", False, False),
    ("proposal", "Предложение / Proposal", False, False),
    ("negotiation", "Переговоры / Negotiation", False, False),
    ("won", "Успешно / Won", True, False),
    ("lost", "Проиграна / Lost", False, True),
]


def sync(name: str) -> list[str]:
    out = StringIO()
    call_command("sync", name, stdout=out)
    return out.getvalue().splitlines()


def drain() -> None:
    """Run every handler of every pending outbox event (the Celery worker's job), until none is left."""
    for _ in range(20):
        pending = list(DomainEvent.objects.filter(dispatched_at__isnull=True).values_list("pk", flat=True))
        if not pending:
            return
        for pk in pending:
            event_dispatch(pk)
    pytest.fail("outbox did not drain")


def counts(lines: list[str]) -> dict[str, dict[str, int]]:
    parsed = {}
    for line in lines:
        entity, *pairs = line.split()
        parsed[entity] = {k: int(v) for k, v in (p.split("=") for p in pairs)}
    return parsed


@pytest.fixture
def crm_org_token(bottlecrm_env) -> str:
    """A BottleCRM organisation of this test alone: the connection sees only what the test creates."""
    made = subprocess.run(
        ["bash", str(ROOT / "scripts/peers/bottlecrm_org.sh"), f"Flagship {uuid.uuid4().hex[:8]}"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    return made.stdout.strip()


@pytest.fixture
def hub_pipeline(db):
    pipeline = Pipeline.objects.create(name="Sales", is_default=True)
    for order, (code, name, won, lost) in enumerate(STAGES, start=1):
        Stage.objects.create(pipeline=pipeline, code=code, name=name, order=order, is_won=won, is_lost=lost)
    return pipeline


def test_crm_to_hub_to_accounting_and_back(bottlecrm_env, tryton_env, crm_org_token, company, hub_pipeline):
    tag = uuid.uuid4().hex[:6]
    inn = inn_with_checksum(f"{random.randrange(10**8, 10**9):09d}")
    started = timezone.now() - dt.timedelta(seconds=5)
    # given a client the hub already has (by INN)
    existing = ClientFactory(name=f"Ромашка {tag} (hub)", inn=inn, email=f"buh-{tag}@romashka.test", phone="")

    # and, in BottleCRM, the same company with its INN in a custom field, a contact and a deal
    crm = httpx.Client(
        base_url=bottlecrm_env["BOTTLECRM_URL"],
        headers={"Authorization": f"Bearer {crm_org_token}"},
        timeout=60,
    )

    def api(method, path, body=None):
        response = crm.request(method, path, json=body)
        assert response.is_success, f"{method} {path}: {response.status_code} {response.text[:300]}"
        return response.json()

    account = api("POST", "/api/accounts/", {
        "name": f"ООО Ромашка {tag}", "email": f"buh-{tag}@romashka.test", "custom_fields": {"inn": inn},
    })["id"]  # fmt: skip
    contact = api("POST", "/api/contacts/", {
        "first_name": "Иван", "last_name": f"Петров{tag}", "email": f"ivan-{tag}@romashka.test", "account": account,
    })["id"]  # fmt: skip
    pipeline = api("GET", "/api/opportunities/pipelines/")["pipelines"][0]["id"]
    deal_id = api("POST", "/api/opportunities/", {
        "name": f"Насосы {tag}", "account": account, "pipeline": pipeline, "stage": "PROPOSAL",
        "amount": "5000.00", "currency": "EUR", "probability": 60, "closed_on": "2026-12-31",
        "contacts": [contact], "assigned_to": [], "teams": [],
    })["id"]  # fmt: skip

    # and both systems connected
    call_command("connect", "bottlecrm", "--name", "crm", "--url", bottlecrm_env["BOTTLECRM_URL"],
                 "--credential", f"token={crm_org_token}", stdout=StringIO())  # fmt: skip
    call_command(
        "connect", "tryton", "--name", "books", "--url", tryton_env["TRYTON_URL"], "--role", "accounting",
        "--credential", f"database={tryton_env['TRYTON_DATABASE']}",
        "--credential", f"username={tryton_env['TRYTON_USER']}",
        "--credential", f"password={tryton_env['TRYTON_PASSWORD']}",
        "--option", f"history_from={started.isoformat()}",  # this Tryton holds other tests' books too
        stdout=StringIO(),
    )  # fmt: skip

    # when the CRM is synced
    first = counts(sync("crm"))
    drain()

    # then the company is the existing hub client (matched by INN), not a duplicate
    assert first["clients"]["created"] == 0 and first["clients"]["quarantined"] == 0
    assert Client.objects.filter(inn=inn).count() == 1
    client = Client.objects.get(inn=inn)
    assert client.pk == existing.pk and client.name == f"ООО Ромашка {tag}", "the CRM owns the name"
    assert ExternalRef.objects.get(connection__name="crm", entity="clients").external_id == account
    assert Contact.objects.get(client=client).email == f"ivan-{tag}@romashka.test"
    deal = Deal.objects.get(client=client)
    assert (
        deal.stage.code == "proposal" and deal.amount_total == Decimal("5000.00") and deal.currency == "EUR"
    )

    # and the client went to Tryton as a party (pushed by the outbox handler)
    party = ExternalRef.objects.get(
        connection__name="books", entity="clients", object_id=client.pk
    ).external_id
    books = connector_for(Connection.objects.get(name="books"))
    tryton_party = books.get("clients", party)
    assert tryton_party is not None and tryton_party.data["name"] == f"ООО Ромашка {tag}"

    # when the accounting side is synced, the party comes back as the same client, unchanged
    second = counts(sync("books"))
    assert second["clients"]["created"] == 0 and second["clients"]["updated"] == 0
    assert Client.objects.count() == 1

    # when the hub issues the invoice for the deal
    invoice, _ = invoice_issue_from_deal(deal=deal, origin="ui")
    drain()

    # then it is in Tryton, validated and posted, with the same total
    tryton_invoice_id = ExternalRef.objects.get(
        connection__name="books", entity="invoices", object_id=invoice.pk
    ).external_id
    posted = books.get("invoices", tryton_invoice_id)
    assert posted.data["state"] == "posted"
    assert posted.data["reference"] == invoice.number
    assert Decimal(str(posted.data["total_amount"])) == invoice.amount_total == Decimal("5000.00")

    # when the accountant pays it in Tryton and the books are synced
    books.pay_invoice(tryton_invoice_id, invoice.amount_total, dt.date.today())
    third = counts(sync("books"))
    drain()

    # then the payment is in the hub, allocated to the invoice, which is paid
    assert third["payments"]["created"] == 1
    payment = Payment.objects.get()
    assert payment.amount == Decimal("5000.00") and payment.currency == "EUR"
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID and invoice.amount_paid == invoice.amount_total
    assert payment.allocations.get().invoice == invoice

    # and the CRM deal carries a note saying it was paid
    detail = api("GET", f"/api/opportunities/{deal_id}/")
    comments = [c.get("comment", "") for c in detail.get("comments", [])]
    assert any(f"Invoice {invoice.number} paid" in c for c in comments), comments

    # when both are synced again right away, nothing is created, changed, in conflict or quarantined
    for name in ("crm", "books"):
        again = counts(sync(name))
        for entity, figures in again.items():
            assert figures["created"] == figures["updated"] == 0, (name, entity, figures)
            assert figures["conflicts"] == figures["quarantined"] == 0, (name, entity, figures)
        drain()
    assert Invoice.objects.count() == 1 and Payment.objects.count() == 1 and Client.objects.count() == 1
