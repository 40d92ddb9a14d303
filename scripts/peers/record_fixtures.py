"""Record real replies of the peers into tests/fixtures/<system>/ (run against the servers the *_up.sh
scripts start; the recorded files are committed, so the loopback tests need no server).

    TRYTON_URL=... TRYTON_DATABASE=... python scripts/peers/record_fixtures.py tryton
    BOTTLECRM_URL=... BOTTLECRM_TOKEN_FILE=... python scripts/peers/record_fixtures.py bottlecrm

Each file is the JSON body the server sent, pretty-printed (Tryton: the whole JSON-RPC reply, tagged
types included; BottleCRM: the form catalogues a list also sends, such as 246 countries, cut to three).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sync.connectors import connector_class  # noqa: E402
from sync.connectors.base import ConnectionConfig, MemoryCredentialStore  # noqa: E402


class Recorder:
    """Keeps every request/response pair the connector's httpx client makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[httpx.Request, bytes, int]] = []

    def hook(self, response: httpx.Response) -> None:
        response.read()
        self.calls.append((response.request, response.content, response.status_code))

    def last(self, match: str, *, nonempty: bool = False) -> bytes:
        """The latest reply to a request containing `match` (with `nonempty`: whose result is not [])."""
        for request, body, _status in reversed(self.calls):
            if match in request.content.decode(errors="replace") or match in str(request.url):
                if nonempty and json.loads(body).get("result") == []:
                    continue
                return body
        raise LookupError(match)


def save(system: str, name: str, body: bytes) -> None:
    path = ROOT / "tests" / "fixtures" / system / f"{name}.json"
    document = json.loads(body)
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    print("wrote", path.relative_to(ROOT))


def connector(system: str, base_url: str, credentials: dict[str, str], **options: Any):
    config = ConnectionConfig(
        name=f"record-{system}",
        system=system,
        base_url=base_url,
        credentials=MemoryCredentialStore(credentials),
        options=options,
    )
    instance = connector_class(system)(config)
    recorder = Recorder()
    instance.http.client.event_hooks["response"] = [recorder.hook]
    return instance, recorder


def record_tryton() -> None:
    creds = {
        "database": os.environ.get("TRYTON_DATABASE", "hub_tryton"),
        "username": os.environ.get("TRYTON_USER", "admin"),
        "password": os.environ.get("TRYTON_PASSWORD", "admin"),
    }
    conn, rec = connector("tryton", os.environ.get("TRYTON_URL", "http://127.0.0.1:8001"), creds, page_size=2)
    conn.check()
    save("tryton", "login", rec.last("common.db.login"))
    save("tryton", "preferences", rec.last("get_preferences"))
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    first = conn.upsert(
        "clients",
        {
            "name": "ООО Ромашка",
            "identifiers": [{"type": "ru_vat", "code": "7707083893"}],
            "contact_mechanisms": [
                {"type": "email", "value": "buh@romashka.test"},
                {"type": "phone", "value": "+74951234567"},
            ],
            "addresses": [{"street": "ул. Тверская, 1", "city": "Москва", "postal_code": "125009"}],
        },
    )
    conn.upsert("clients", {"name": "Globex SARL", "addresses": [{"street": "1 rue de la Paix"}]})
    conn.upsert(
        "clients",
        {"name": "Initech LLC", "contact_mechanisms": [{"type": "email", "value": "a@initech.test"}]},
    )
    fetched = list(conn.fetch("clients", since=since))
    # the details of every fetched party in one reply per model (the loopback server filters by party)
    conn._parties_detail([{"id": int(r.external_id)} for r in fetched])
    pages = [body for request, body, _ in rec.calls if b"party.party.search_read" in request.content]
    save("tryton", "parties_page1", pages[0])
    save("tryton", "parties_page2", pages[1])
    save("tryton", "party_identifiers", rec.last("party.identifier.search_read", nonempty=True))
    save("tryton", "party_contact_mechanisms", rec.last("party.contact_mechanism.search_read", nonempty=True))
    save("tryton", "party_addresses", rec.last("party.address.search_read", nonempty=True))

    invoice = conn.upsert(
        "invoices",
        {
            "reference": "HUB-2026-0001",
            "party": int(first),
            "invoice_date": dt.datetime.now(dt.UTC).date().isoformat(),
            "description": "Сделка: сайт",
            "currency_code": "EUR",
            "lines": [
                {"description": "Consulting", "quantity": "3", "unit_price": "100.00", "vat_rate": "20"}
            ],
        },
    )
    save("tryton", "invoice_create", rec.last("account.invoice.create"))
    conn.after_push("invoices", invoice, {"status": "issued"})
    conn.pay_invoice(
        invoice, Decimal("100.00"), dt.datetime.now(dt.UTC).date(), description="Платёжное поручение 17"
    )
    conn.pay_invoice(
        invoice, Decimal("260.00"), dt.datetime.now(dt.UTC).date(), description="Платёжное поручение 18"
    )
    list(conn.fetch("invoices", since=since))
    save("tryton", "invoices", rec.last("account.invoice.search_read", nonempty=True))
    list(conn.fetch("payments", since=since))
    save("tryton", "payments", rec.last("account.move.line.search_read", nonempty=True))
    try:
        conn.model("party.party", "read", [999999], ["name"])
    except Exception as exc:
        print("expected error:", exc)
    save("tryton", "error_missing_record", rec.last("[999999]"))


def _trim(document: Any) -> Any:
    """The list endpoints also send form catalogues (246 countries, industries...): keep three of each."""
    if isinstance(document, dict):
        return {
            k: (
                v[:3]
                if k in ("countries", "industries", "lead_source", "currency", "stage")
                and isinstance(v, list)
                else v
            )
            for k, v in document.items()
        }
    return document


def save_trimmed(system: str, name: str, body: bytes) -> None:
    save(system, name, json.dumps(_trim(json.loads(body))).encode())


def record_bottlecrm() -> None:
    token_file = os.environ.get("BOTTLECRM_TOKEN_FILE", str(ROOT / ".peers" / "bottlecrm" / "token"))
    token = os.environ.get("BOTTLECRM_TOKEN") or Path(token_file).read_text().strip()
    url = os.environ.get("BOTTLECRM_URL", "http://127.0.0.1:8002")
    conn, rec = connector("bottlecrm", url, {"token": token}, page_size=2)
    conn.check()
    tag = dt.datetime.now(dt.UTC).strftime("%H%M%S")
    romashka = conn.upsert(
        "clients",
        {
            "name": f"ООО Ромашка {tag}",
            "email": "buh@romashka.test",
            "phone": "+74951234567",
            "address_line": "ул. Тверская, 1",
            "city": "Москва",
            "custom_fields": {"inn": "7707083893"},
        },
    )
    globex = conn.upsert(
        "clients", {"name": f"Globex SARL {tag}", "email": "billing@globex.test", "city": "Paris"}
    )
    initech = conn.upsert("clients", {"name": f"Initech LLC {tag}", "custom_fields": {"inn": "500100732259"}})
    conn.delete("clients", initech)  # archived: listed under closed_accounts
    conn.upsert("clients", {"name": f"Umbrella Corp {tag}", "website": "https://umbrella.test"})
    ivan = conn.upsert(
        "contacts",
        {
            "first_name": "Иван",
            "last_name": "Петров",
            "email": "ivan@romashka.test",
            "phone": "+74957654321",
            "title": "Генеральный директор",
            "account": romashka,
        },
    )
    conn.upsert(
        "contacts", {"first_name": "Jane", "last_name": "Doe", "email": "jane@globex.test", "account": globex}
    )
    pipelines = conn._call("GET", "/api/opportunities/pipelines/")
    save("bottlecrm", "pipelines", json.dumps(pipelines).encode())
    deal = conn.upsert(
        "deals",
        {
            "name": f"Сайт для Ромашки {tag}",
            "account": romashka,
            "stage": "PROPOSAL",
            "amount": "120000.00",
            "currency": "EUR",
            "probability": 50,
            "closed_on": "2026-12-31",
            "contacts": [ivan],
        },
    )
    won = conn.upsert(
        "deals",
        {
            "name": f"Globex support {tag}",
            "account": globex,
            "stage": "PROSPECTING",
            "amount": "5000.00",
            "currency": "USD",
            "closed_on": "2026-12-15",
        },
    )
    conn.upsert("deals", {"stage": "CLOSED_WON"}, external_id=won)
    conn.add_note("deals", deal, "Счёт HUB-2026-0001 оплачен")
    created = conn._call(
        "POST",
        "/api/invoices/",
        {
            "invoice_title": f"Сайт, этап 1 {tag}",
            "account_id": romashka,
            "contact_id": ivan,
            "opportunity_id": deal,
            "currency": "EUR",
            "issue_date": "2026-11-28",
            "due_date": "2026-12-28",
            "line_items": [
                {"name": "Дизайн", "description": "Дизайн", "quantity": "1", "unit_price": "40000.00"}
            ],
        },
    )
    invoice = created["invoice"]["id"]
    conn._call(
        "POST",
        f"/api/invoices/{invoice}/payments/",
        {
            "amount": "15000.00",
            "payment_date": "2026-11-28",
            "payment_method": "BANK_TRANSFER",
            "reference_number": "п/п 17",
        },
    )
    for stream in ("clients", "contacts", "deals", "invoices", "payments"):
        list(conn.fetch(stream))
    name = {"clients": "accounts", "contacts": "contacts", "deals": "opportunities", "invoices": "invoices"}
    for endpoint in name.values():
        pages: dict[str, bytes] = {}  # offset ► the last reply for it (page size 2)
        for request, body, _ in rec.calls:
            path, limit = request.url.path, request.url.params.get("limit")
            if request.method == "GET" and path == f"/api/{endpoint}/" and limit == "2":
                pages[request.url.params["offset"]] = body
        for number, offset in enumerate(sorted(pages, key=int), start=1):
            save_trimmed("bottlecrm", f"{endpoint}_page{number}", pages[offset])
    save("bottlecrm", "invoice_payments", rec.last(f"/api/invoices/{invoice}/payments/"))
    conn.get("clients", romashka)
    save_trimmed("bottlecrm", "account_detail", rec.last(f"/api/accounts/{romashka}/"))
    conn.get("deals", deal)
    save_trimmed("bottlecrm", "opportunity_detail", rec.last(f"/api/opportunities/{deal}/"))
    record_bottlecrm_webhook(conn, url)
    print(
        "ids:", {"romashka": romashka, "globex": globex, "initech": initech, "deal": deal, "invoice": invoice}
    )


def record_bottlecrm_webhook(conn: Any, url: str) -> None:
    """A real signed delivery: register a loopback receiver (with the signed-in JWT BottleCRM requires for
    webhook management), cause an account.created, keep headers + raw body + the endpoint's secret."""
    import http.server
    import threading
    import time

    jwt = (
        Path(os.environ.get("BOTTLECRM_JWT_FILE", str(ROOT / ".peers" / "bottlecrm" / "jwt")))
        .read_text()
        .strip()
    )
    received: list[tuple[dict[str, str], bytes]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append((dict(self.headers), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = conn.register_webhook(f"http://127.0.0.1:{server.server_port}/hooks/", session_token=jwt)
    try:
        conn.upsert("clients", {"name": f"Hooli {time.time():.0f}", "custom_fields": {"inn": "7736207543"}})
        for _ in range(100):
            if received:
                break
            time.sleep(0.1)
    finally:
        conn._call("DELETE", f"/api/webhooks/{endpoint['id']}/", token=jwt)
        server.shutdown()
    headers, body = received[0]
    keep = (
        "Content-Type",
        "User-Agent",
        "X-BottleCRM-Event",
        "X-BottleCRM-Delivery",
        "X-BottleCRM-Signature",
    )
    document = {
        "secret": conn.config.credentials.load()["webhook_secret"],
        "headers": {k: v for k, v in headers.items() if k in keep},
        "body": body.decode(),
    }
    save("bottlecrm", "webhook_account_created", json.dumps(document).encode())


if __name__ == "__main__":
    {"tryton": record_tryton, "bottlecrm": record_bottlecrm}[sys.argv[1]]()
