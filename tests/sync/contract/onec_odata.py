"""Shared-contract setup for 1C OData: the counterparties catalog in two pages (a group is skipped)."""

from __future__ import annotations

import json
from pathlib import Path

SYSTEM = "onec_odata"
CONTRACT = "CONTRACTS.md §2.1"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "onec_odata"
ROOT = "/bp/odata/standard.odata/"
CATALOG = ROOT + "Catalog_Контрагенты"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def setup(httpserver) -> dict:
    page = {"$format": "json", "$orderby": "Ref_Key asc", "$top": "2"}
    httpserver.expect_request(CATALOG, query_string={"$format": "json", "$top": "1"}).respond_with_json(
        load("clients_page1.json")
    )
    httpserver.expect_request(CATALOG, query_string={**page, "$skip": "0"}).respond_with_json(
        load("clients_page1.json")
    )
    httpserver.expect_request(CATALOG, query_string={**page, "$skip": "2"}).respond_with_json(
        load("clients_page2.json")
    )
    return {
        "base_url": httpserver.url_for(ROOT),
        "credentials": {"username": "Администратор", "password": "secret"},
        "options": {"page_size": 2},
        "stream": "clients",
        "expect_ids": ["0a6c7e2e-5b1f-11ee-8c4a-0050569f1a01", "0a6c7e2e-5b1f-11ee-8c4a-0050569f1a03"],
    }
