"""Pipedrive for the shared connector contract: organizations over two v2 cursor pages."""

from __future__ import annotations

import json
from pathlib import Path

from werkzeug import Response

SYSTEM = "pipedrive"
CONTRACT = "CONTRACTS.md §1.4 (Pipedrive API v2)"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pipedrive"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def setup(httpserver) -> dict:
    pages = {
        None: fixture("organizations_page1.json"),
        "eyJmaWVsZCI6ImlkIiwiZmllbGRWYWx1ZSI6M30": fixture("organizations_page2.json"),
    }

    def organizations(request):
        return Response(json.dumps(pages[request.args.get("cursor")]), content_type="application/json")

    httpserver.expect_request("/api/v1/users/me").respond_with_json(fixture("users_me.json"))
    httpserver.expect_request("/api/v2/organizations").respond_with_handler(organizations)
    return {
        "base_url": httpserver.url_for(""),
        "credentials": {"token": "0123456789abcdef0123456789abcdef01234567"},
        "stream": "clients",
        "expect_ids": ["2", "3", "7"],
    }
