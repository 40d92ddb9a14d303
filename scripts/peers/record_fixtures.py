"""Record real replies of the peers into tests/fixtures/<system>/ (run against the servers the *_up.sh
scripts start; the recorded files are committed, so the loopback tests need no server).

    TRYTON_URL=... TRYTON_DATABASE=... python scripts/peers/record_fixtures.py tryton
    BOTTLECRM_URL=... BOTTLECRM_TOKEN_FILE=... python scripts/peers/record_fixtures.py bottlecrm

Each file is the exact JSON body the server sent (Tryton: the whole JSON-RPC reply, tagged types
included), so a fixture can be replayed byte for byte.
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
    conn.upsert("clients", {"name": "Initech LLC", "contact_mechanisms": [{"type": "email", "value": "a@initech.test"}]})
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
            "lines": [{"description": "Consulting", "quantity": "3", "unit_price": "100.00", "vat_rate": "20"}],
        },
    )
    save("tryton", "invoice_create", rec.last("account.invoice.create"))
    conn.after_push("invoices", invoice, {"status": "issued"})
    conn.pay_invoice(invoice, Decimal("100.00"), dt.datetime.now(dt.UTC).date(), description="Платёжное поручение 17")
    conn.pay_invoice(invoice, Decimal("260.00"), dt.datetime.now(dt.UTC).date(), description="Платёжное поручение 18")
    list(conn.fetch("invoices", since=since))
    save("tryton", "invoices", rec.last("account.invoice.search_read", nonempty=True))
    list(conn.fetch("payments", since=since))
    save("tryton", "payments", rec.last("account.move.line.search_read", nonempty=True))
    try:
        conn.model("party.party", "read", [999999], ["name"])
    except Exception as exc:  # noqa: BLE001 - recording the error reply is the point
        print("expected error:", exc)
    save("tryton", "error_missing_record", rec.last("[999999]"))


def record_bottlecrm() -> None:
    raise SystemExit("see record_bottlecrm in the BottleCRM section (added with the connector)")


if __name__ == "__main__":
    {"tryton": record_tryton, "bottlecrm": record_bottlecrm}[sys.argv[1]]()
