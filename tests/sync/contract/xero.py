"""Xero for the shared connector contract: Contacts in two pages of two, recorded in Xero's field names."""

from __future__ import annotations

import json
from pathlib import Path

SYSTEM = "xero"
CONTRACT = "CONTRACTS.md §2.7"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "xero"
TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def setup(httpserver) -> dict:
    headers = {"Xero-Tenant-Id": TENANT, "Authorization": "Bearer xero-access-1"}
    httpserver.expect_request("/Organisation", headers=headers).respond_with_json(
        fixture("organisation.json")
    )
    for page in (1, 2):
        httpserver.expect_request(
            "/Contacts",
            query_string={"page": str(page), "order": "UpdatedDateUTC ASC", "pageSize": "2"},
            headers=headers,
        ).respond_with_json(fixture(f"contacts_page{page}.json"))
    return {
        "base_url": httpserver.url_for("/"),
        "credentials": {
            "client_id": "client-1",
            "client_secret": "secret-1",
            "refresh_token": "xero-refresh-1",
            "tenant_id": TENANT,
            "access_token": "xero-access-1",
            "access_token_expires_at": "4102444800",
        },
        "options": {"page_size": 2, "token_url": httpserver.url_for("/connect/token")},
        "stream": "clients",
        "expect_ids": [
            "5cc8cf28-567e-4d43-b287-687cfcaec47c",
            "3ec601ad-eddc-4ccb-a8ac-736e88293b1b",
            "a1f8e7a4-8d4f-4b8e-9d0e-2b1b9a3c4d5e",
        ],
    }
