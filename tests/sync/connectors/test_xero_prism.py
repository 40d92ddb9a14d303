"""The Xero connector against a spec-driven mock of Xero's published OpenAPI (Stoplight Prism).

Prism serves the examples of `tests/fixtures/xero/xero_accounting.json` (built from XeroAPI/Xero-OpenAPI by
`scripts/peers/xero_spec.py`, request bodies inlined so Prism validates them) and validates every request
against the spec: a header or parameter that breaks Xero's contract gets a 422 (a `PermanentError`), a
body gets the spec's own 400 ValidationException (a `RecordError`). Prism keeps no state, so these tests
prove the shape of what we send and that we read what Xero documents, not workflow.

Prism is installed by `bash scripts/peers/prism_up.sh` into `.peers/prism` (or set `PRISM_BIN`). Without
it these tests skip, except under `CI=true`, where a missing Prism fails the run.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from sync.connectors import connector_class
from sync.connectors.base import ConnectionConfig, MemoryCredentialStore, RecordError
from sync.mapping.mapper import Rule, to_canonical, to_remote

pytestmark = pytest.mark.prism

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT / "tests" / "fixtures" / "xero" / "xero_accounting.json"
TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
CONTACT_ID = "5cc8cf28-567e-4d43-b287-687cfcaec47c"
INVOICE_ID = "4f7a3b2c-1d0e-4f9a-8b7c-6d5e4f3a2b1c"


def _prism_binary() -> Path | None:
    configured = os.environ.get("PRISM_BIN")
    candidate = (
        Path(configured) if configured else ROOT / ".peers" / "prism" / "node_modules" / ".bin" / "prism"
    )
    return candidate if candidate.exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def prism_url():
    binary = _prism_binary()
    if binary is None:
        reason = "Prism is not installed: run `bash scripts/peers/prism_up.sh` (or set PRISM_BIN)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    port = _free_port()
    log = open(os.devnull, "wb")  # noqa: SIM115 - closed with the process below
    process = subprocess.Popen(
        [str(binary), "mock", "--host", "127.0.0.1", "--port", str(port), str(SPEC)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"Prism exited with {process.returncode} before listening", pytrace=False)
            try:
                httpx.get(f"{url}/Organisation", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("Prism did not listen within 90 s", pytrace=False)
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def xero(prism_url):
    config = ConnectionConfig(
        name="xero-prism",
        system="xero",
        base_url=prism_url,
        credentials=MemoryCredentialStore(
            {
                "client_id": "client-1",
                "client_secret": "secret-1",
                "refresh_token": "refresh-1",
                "tenant_id": TENANT,
                "access_token": "access-1",
                "access_token_expires_at": str(int(time.time()) + 1800),
            }
        ),
        options={"account_code": "200", "tax_type": "OUTPUT2"},
        rate_limit_per_second=1000,
        timeout_seconds=60,  # Prism validates against the whole Invoice schema: seconds a request here
        max_attempts=1,
    )
    return connector_class("xero")(config)


def rules(stream: str):
    return [Rule(**vars(m)) for m in connector_class("xero").default_mappings if m.entity == stream]


def test_check_reads_the_organisation(xero):
    xero.check()


@pytest.mark.parametrize("stream", ["clients", "invoices", "payments"])
def test_fetch_with_a_change_feed_is_a_valid_request_and_every_record_maps(xero, stream):
    # given the spec's examples as the server; when we read changes since a moment
    since = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
    records = list(xero.fetch(stream, since=since))

    # then Prism accepted the request (page, order, where, If-Modified-Since, tenant header) and the
    # documented example records carry ids, aware timestamps and map with the default mappings
    assert records
    for record in records:
        assert record.external_id
        assert record.updated_at is None or record.updated_at.tzinfo is not None
        assert to_canonical(record.data, rules(stream))


def test_get_reads_one_invoice_by_id(xero):
    record = xero.get("invoices", INVOICE_ID)

    assert record is not None and record.external_id


def test_a_new_contact_and_an_update_are_valid_requests(xero):
    payload = to_remote(
        {
            "name": "Katherine Warren Ltd",
            "email": "kat@example.com",
            "phone": "+16268471294",
            "archived": False,
        },
        rules("clients"),
    )

    created = xero.upsert("clients", payload)
    updated = xero.upsert("clients", payload, external_id=CONTACT_ID)

    assert created and updated


def test_a_new_invoice_with_lines_and_an_update_are_valid_requests(xero):
    canonical = {
        "number": "INV-0041",
        "client": 17,
        "status": "issued",
        "currency": "GBP",
        "issue_date": dt.date(2026, 1, 1),
        "due_date": dt.date(2026, 1, 15),
        "purpose": "Website redesign",
        "lines": [{"description": "Design work", "quantity": "10", "unit_price": "100.00", "vat_rate": "20"}],
    }
    payload = to_remote(canonical, rules("invoices"), resolve=lambda entity, pk: CONTACT_ID)

    assert xero.upsert("invoices", payload)
    assert xero.upsert("invoices", payload, external_id=INVOICE_ID)


def test_archiving_a_contact_and_voiding_an_invoice_are_valid_requests(xero):
    xero.delete("clients", CONTACT_ID)
    xero.delete("invoices", INVOICE_ID)


def test_the_mock_refuses_a_request_that_breaks_the_contract(xero):
    # a body against the spec gets the spec's own 400 (ValidationException), which is a RecordError
    with pytest.raises(RecordError, match="400"):
        xero.upsert("invoices", {"Contact": {"ContactID": CONTACT_ID}, "LineItems": "ten hours of design"})
    with pytest.raises(RecordError, match="400"):
        xero.upsert("invoices", {"Contact": {"ContactID": "17"}})  # an id that is not a Xero uuid
    # a header against the spec gets Prism's 422: an HTTP-date If-Modified-Since (the spec says ISO 8601)
    reply = httpx.get(
        f"{xero.config.base_url}/Contacts",
        headers={
            "Authorization": "Bearer access-1",
            "Xero-Tenant-Id": TENANT,
            "If-Modified-Since": "Thu, 15 Jan 2026 09:00:00 GMT",
        },
    )
    assert reply.status_code == 422
