"""QuickBooks Online for the shared connector contract: customers read by query in pages of two."""

from __future__ import annotations

import json
from pathlib import Path

SYSTEM = "quickbooks"
CONTRACT = "CONTRACTS.md §2.6"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "quickbooks"
REALM = "9130356616931926"
QUERY = (
    "SELECT * FROM Customer WHERE Active IN (true, false) ORDERBY MetaData.LastUpdatedTime "
    "STARTPOSITION {start} MAXRESULTS 2"
)


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def setup(httpserver) -> dict:
    headers = {"Authorization": "Bearer qbo-access-1"}
    base = f"/v3/company/{REALM}"
    httpserver.expect_request(
        f"{base}/companyinfo/{REALM}", query_string={"minorversion": "75"}, headers=headers
    ).respond_with_json(fixture("companyinfo.json"))
    for page, start in ((1, 1), (2, 3)):
        httpserver.expect_request(
            f"{base}/query",
            query_string={"query": QUERY.format(start=start), "minorversion": "75"},
            headers=headers,
        ).respond_with_json(fixture(f"customers_page{page}.json"))
    return {
        "base_url": httpserver.url_for("/"),
        "credentials": {
            "client_id": "client-1",
            "client_secret": "secret-1",
            "refresh_token": "qbo-refresh-1",
            "realm_id": REALM,
            "access_token": "qbo-access-1",
            "access_token_expires_at": "4102444800",
        },
        "options": {"page_size": 2, "token_url": httpserver.url_for("/oauth2/v1/tokens/bearer")},
        "stream": "clients",
        "expect_ids": ["1", "2", "3"],
    }
