"""HubSpot for the shared connector contract: companies read through the search API, two pages."""

from __future__ import annotations

import json
from pathlib import Path

from werkzeug import Response

SYSTEM = "hubspot"
CONTRACT = "CONTRACTS.md §1.3 (HubSpot CRM v3)"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hubspot"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def setup(httpserver) -> dict:
    pages = {None: fixture("companies_search_page1.json"), "2": fixture("companies_search_page2.json")}

    def search(request):
        after = json.loads(request.get_data() or b"{}").get("after")
        return Response(json.dumps(pages[after]), content_type="application/json")

    httpserver.expect_request("/crm/v3/objects/companies", method="GET").respond_with_json(
        {"results": [fixture("companies_search_page1.json")["results"][0]]}
    )
    httpserver.expect_request("/crm/v3/objects/companies/search", method="POST").respond_with_handler(search)
    return {
        "base_url": httpserver.url_for(""),
        "credentials": {"token": "pat-eu1-0000"},
        "stream": "clients",
        "expect_ids": ["5001", "5002", "5003"],
    }
