import pytest
from rest_framework.test import APIClient

from hub.api_auth import apikey_create
from tests.factories import CompanyFactory, PipelineFactory, UserFactory


@pytest.fixture
def company(db):
    return CompanyFactory()


@pytest.fixture
def pipeline(db):
    return PipelineFactory()


@pytest.fixture
def manager(db):
    return UserFactory(username="maria")


@pytest.fixture
def write_key(db):
    _, raw = apikey_create(name="erp", scope="write")
    return raw


@pytest.fixture
def read_key(db):
    _, raw = apikey_create(name="bi", scope="read")
    return raw


@pytest.fixture
def api(write_key):
    """An API client authenticated with a write-scoped key."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {write_key}")
    return client


@pytest.fixture
def read_api(read_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {read_key}")
    return client


@pytest.fixture
def anon_api():
    return APIClient()


@pytest.fixture
def issue_invoice(company):
    """Issue an invoice for ``client``: ``quantity`` × 1,000.00 + 22 % VAT (1 → 1,220.00)."""
    import datetime as dt
    from decimal import Decimal

    from invoicing.services import invoice_create_draft, invoice_issue

    def make(
        client,
        quantity=1,
        *,
        issue_date=dt.date(2026, 1, 14),
        prefix="",
        vat_rate=Decimal("22"),
        unit_price=Decimal("1000.00"),
    ):
        draft = invoice_create_draft(
            client=client,
            lines=[
                {
                    "description": "Насос",
                    "quantity": Decimal(quantity),
                    "unit_price": unit_price,
                    "vat_rate": vat_rate,
                }
            ],
        )
        return invoice_issue(invoice=draft, issue_date=issue_date, prefix=prefix)

    return make


@pytest.fixture
def local_http():
    """A tiny HTTP server on 127.0.0.1 in a thread. ``server.respond = fn(method, path, headers, body)``
    returns ``(status, dict_or_bytes)``; every request is kept in ``server.requests``."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            server.requests.append((self.command, self.path, dict(self.headers), body))
            status, payload = server.respond(self.command, self.path, self.headers, body)
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _handle

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.requests = []
    server.respond = lambda method, path, headers, body: (200, {})
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
