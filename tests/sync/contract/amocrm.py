"""amoCRM for the shared connector contract: two pages of companies (HAL `_links.next`)."""

from __future__ import annotations

from pathlib import Path

from werkzeug import Response

SYSTEM = "amocrm"
CONTRACT = "CONTRACTS.md §1.1"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "amocrm"


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def setup(httpserver) -> dict:
    def companies(request):
        page = request.args.get("page", "1")
        body = _fixture("companies_page2.json" if page == "2" else "companies_page1.json")
        return Response(body, content_type="application/hal+json")

    httpserver.expect_request("/api/v4/account").respond_with_data(
        _fixture("account.json"), content_type="application/hal+json"
    )
    httpserver.expect_request("/api/v4/companies").respond_with_handler(companies)
    return {
        "base_url": httpserver.url_for("/"),
        "credentials": {"token": "long-lived-token"},
        "options": {"subdomain": "romashka"},
        "stream": "clients",
        "expect_ids": ["40401297", "40401301", "40401355"],
    }
