"""Shared-contract setup for MoySklad: counterparties in two pages chained by meta.nextHref."""

from __future__ import annotations

import json
from pathlib import Path

SYSTEM = "moysklad"
CONTRACT = "CONTRACTS.md §2.5"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "moysklad"
VENDOR_BASE = "https://api.moysklad.ru/api/remap/1.2"
ROOT = "/api/remap/1.2"


def load(name: str, base_url: str = VENDOR_BASE) -> dict:
    """A fixture with the vendor's API base replaced by `base_url` (the loopback server)."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8").replace(VENDOR_BASE, base_url))


def setup(httpserver) -> dict:
    base = httpserver.url_for(ROOT)
    httpserver.expect_request(ROOT + "/context/employee").respond_with_json(
        load("context_employee.json", base)
    )
    httpserver.expect_request(
        ROOT + "/entity/counterparty", query_string={"order": "updated,asc", "offset": "0", "limit": "1000"}
    ).respond_with_json(load("counterparty_page1.json", base))
    httpserver.expect_request(
        ROOT + "/entity/counterparty", query_string={"order": "updated,asc", "offset": "2", "limit": "2"}
    ).respond_with_json(load("counterparty_page2.json", base))
    return {
        "base_url": base,
        "credentials": {"token": "ms-token"},
        "stream": "clients",
        "expect_ids": [
            "12a8b923-692c-11e6-8a84-bae500000053",
            "12a8e347-692c-11e6-8a84-bae500000055",
            "4a6e0a2f-0f1c-11ee-0a80-0d6b00000001",
        ],
    }
