"""Bitrix24 for the shared connector contract: two `start` pages of companies over an incoming webhook."""

from __future__ import annotations

import json
from pathlib import Path

from werkzeug import Response

SYSTEM = "bitrix24"
CONTRACT = "CONTRACTS.md §1.2"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bitrix24"
WEBHOOK = "/rest/1/k3y5ecr3t0000000/"


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def setup(httpserver) -> dict:
    def companies(request):
        start = (request.get_json(silent=True) or {}).get("start", 0)
        body = _fixture("companies_page2.json" if str(start) == "50" else "companies_page1.json")
        return Response(body, content_type="application/json")

    httpserver.expect_request(f"{WEBHOOK}scope.json").respond_with_data(
        _fixture("scope.json"), content_type="application/json"
    )
    httpserver.expect_request(f"{WEBHOOK}crm.company.list.json").respond_with_handler(companies)
    httpserver.expect_request(f"{WEBHOOK}crm.requisite.list.json").respond_with_data(
        _fixture("requisites.json"), content_type="application/json"
    )
    assert json.loads(_fixture("companies_page1.json"))["next"] == 50
    return {
        "base_url": httpserver.url_for(WEBHOOK),
        "credentials": {"application_token": "51856fefc120afa4b628cc82d3935cce"},
        "options": {},
        "stream": "clients",
        "expect_ids": ["101", "102", "155"],
    }
