"""Tryton on loopback: a JSON-RPC endpoint that replays replies recorded from a real trytond 8.2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from werkzeug import Request, Response

SYSTEM = "tryton"
CONTRACT = (
    "CONTRACTS.md §0 (connector summary); Tryton's JSON-RPC recorded from a real trytond 8.2 "
    "(tests/fixtures/tryton/README.md)"
)
DATABASE = "hub_tryton"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "tryton"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def reply(result: Any, request_id: Any = 1) -> Response:
    return Response(json.dumps({"id": request_id, "result": result}), content_type="application/json")


def is_keyset(body: dict[str, Any]) -> bool:
    """Whether a search_read asks for the page after a (last_modified_at, id) position."""
    return '["last_modified_at",">"' in json.dumps(body, separators=(",", ":"))


def _party_filter(rows: list[dict[str, Any]], domain: list[Any]) -> list[dict[str, Any]]:
    ids = next((clause[2] for clause in domain if clause[:2] == ["party", "in"]), None)
    return [row for row in rows if ids is None or row["party"] in ids]


class FakeTryton:
    """Answers like trytond: dispatches on the JSON-RPC method, remembers every call it got."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.overrides: dict[str, Any] = {}
        self.expired: set[str] = set()  # Authorization values the server answers 401 to

    def __call__(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        self.calls.append({**body, "authorization": request.headers.get("Authorization")})
        method, params = body["method"], body["params"]
        if request.headers.get("Authorization") in self.expired:
            return Response("", status=401)
        if method in self.overrides:
            override = self.overrides[method]
            return override(body) if callable(override) else reply(override, body["id"])
        keyset = is_keyset(body)
        if method == "common.db.login":
            return reply(fixture("login")["result"], body["id"])
        if method == "model.res.user.get_preferences":
            return reply(fixture("preferences")["result"], body["id"])
        if method == "model.party.party.search_read":
            return reply(fixture("parties_page2" if keyset else "parties_page1")["result"], body["id"])
        for model in ("identifiers", "contact_mechanisms", "addresses"):
            name = {
                "identifiers": "identifier",
                "contact_mechanisms": "contact_mechanism",
                "addresses": "address",
            }
            if method == f"model.party.{name[model]}.search_read":
                return reply(_party_filter(fixture(f"party_{model}")["result"], params[0]), body["id"])
        if method == "model.account.invoice.search_read":
            return reply([] if keyset else fixture("invoices")["result"], body["id"])
        if method == "model.account.move.line.search_read":
            return reply([] if keyset else fixture("payments")["result"], body["id"])
        return Response(
            json.dumps({"id": body["id"], "error": ["UserError", [f"unknown method {method}", "", None]]}),
            content_type="application/json",
        )

    def methods(self) -> list[str]:
        return [call["method"] for call in self.calls]


def setup(httpserver, fake: FakeTryton | None = None) -> dict:
    fake = fake or FakeTryton()
    httpserver.expect_request(f"/{DATABASE}/rpc/", method="POST").respond_with_handler(fake)
    page1 = [str(row["id"]) for row in fixture("parties_page1")["result"]]
    page2 = [str(row["id"]) for row in fixture("parties_page2")["result"]]
    return {
        "base_url": httpserver.url_for("/").rstrip("/"),
        "credentials": {"database": DATABASE, "username": "admin", "password": "admin"},
        "options": {"page_size": 2},
        "stream": "clients",
        "expect_ids": page1 + page2,
        "fake": fake,
    }
