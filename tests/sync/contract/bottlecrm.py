"""BottleCRM on loopback: list endpoints that replay pages recorded from a real django-crm 1.35."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from werkzeug import Request, Response

SYSTEM = "bottlecrm"
CONTRACT = (
    "CONTRACTS.md §0 (connector summary); BottleCRM's REST API recorded from a real django-crm 1.35.0 "
    "(tests/fixtures/bottlecrm/README.md)"
)
TOKEN = "bcrm_pat_recorded-test-token"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bottlecrm"
LISTS = {
    "accounts": "accounts",
    "contacts": "contacts",
    "opportunities": "opportunities",
    "invoices": "invoices",
}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def account_ids() -> list[str]:
    ids = []
    for page in ("accounts_page1", "accounts_page2"):
        body = fixture(page)
        ids += [a["id"] for a in body["active_accounts"]["open_accounts"]]
        ids += [a["id"] for a in body["closed_accounts"]["close_accounts"]]
    return ids


class FakeBottleCRM:
    """Answers like BottleCRM: pages by `offset` (page size 2, as recorded), remembers every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: Request) -> Response:
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "args": dict(request.args),
                "authorization": request.headers.get("Authorization"),
                "json": request.get_json(silent=True),
            }
        )
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return Response(
                json.dumps({"detail": "Invalid token."}), status=401, content_type="application/json"
            )
        parts = [p for p in request.path.split("/") if p]
        if len(parts) == 2 and parts[1] in LISTS:
            page = int(request.args.get("offset", 0)) // 2 + 1
            name = f"{LISTS[parts[1]]}_page{page}"
            if not (FIXTURES / f"{name}.json").exists():
                name = f"{LISTS[parts[1]]}_page1"  # past the end: BottleCRM would answer an empty page
                body = fixture(name)
                for key in ("results", "opportunities"):
                    if key in body:
                        body[key] = []
                return Response(json.dumps(body), content_type="application/json")
            return Response(json.dumps(fixture(name)), content_type="application/json")
        if len(parts) == 4 and parts[1] == "invoices" and parts[3] == "payments":
            return Response(json.dumps(fixture("invoice_payments")), content_type="application/json")
        return Response(json.dumps({"detail": "Not found."}), status=404, content_type="application/json")

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]


def setup(httpserver, fake: FakeBottleCRM | None = None) -> dict:
    import re

    fake = fake or FakeBottleCRM()
    httpserver.expect_request(re.compile("^/api/.*")).respond_with_handler(fake)
    return {
        "base_url": httpserver.url_for("/").rstrip("/"),
        "credentials": {"token": TOKEN},
        "options": {"page_size": 2},
        "stream": "clients",
        "expect_ids": sorted(account_ids(), key=lambda i: created_at(i)),
        "fake": fake,
    }


def created_at(account_id: str) -> str:
    for page in ("accounts_page1", "accounts_page2"):
        body = fixture(page)
        for a in body["active_accounts"]["open_accounts"] + body["closed_accounts"]["close_accounts"]:
            if a["id"] == account_id:
                return a["created_at"]
    raise KeyError(account_id)
