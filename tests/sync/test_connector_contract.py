"""One contract every registered connector must pass (static shape + behaviour on a loopback server)."""

from __future__ import annotations

import datetime as dt
import importlib
import re

import pytest

from sync.connectors import systems
from sync.connectors.base import (
    STREAMS,
    AuthError,
    ConnectionConfig,
    Connector,
    MemoryCredentialStore,
    PermanentError,
    RemoteRecord,
)
from sync.mapping.canonical import ENTITIES
from sync.mapping.mapper import Rule, to_canonical
from sync.mapping.transforms import TRANSFORMS

SYSTEMS = sorted(systems())


def contract_module(system: str):
    try:
        return importlib.import_module(f"tests.sync.contract.{system}")
    except ModuleNotFoundError:
        pytest.fail(f"connector {system!r} has no tests/sync/contract/{system}.py (see README there)")


def connector_for(system: str, spec: dict) -> Connector:
    cls = systems()[system]
    config = ConnectionConfig(
        name=f"contract-{system}",
        system=system,
        base_url=spec["base_url"],
        credentials=MemoryCredentialStore(spec.get("credentials", {})),
        options=spec.get("options", {}),
        timeout_seconds=5,
        max_attempts=2,
    )
    connector = cls(config)
    connector.http.sleep = lambda seconds: None  # no real waiting between retries in tests
    return connector


@pytest.mark.parametrize("system", SYSTEMS)
def test_connector_declares_a_valid_shape(system):
    cls = systems()[system]
    assert cls.system == system
    assert cls.role in ("crm", "accounting")
    assert cls.streams, "a connector reads at least one stream"
    assert set(cls.streams) <= set(STREAMS)
    assert set(cls.push_streams) <= set(STREAMS)
    assert set(cls.required_credentials) <= set(cls.credential_keys)
    assert cls.default_mappings, "a connector proposes default mappings"
    for spec in cls.default_mappings:
        assert spec.entity in ENTITIES, spec
        assert spec.canonical_field in ENTITIES[spec.entity], spec
        assert spec.transform in TRANSFORMS, spec
        assert spec.direction in ("in", "out", "both"), spec
        assert spec.owner in ("hub", "remote"), spec
    mapped = {spec.entity for spec in cls.default_mappings}
    assert set(cls.streams) <= mapped, f"streams without mappings: {set(cls.streams) - mapped}"
    module = contract_module(system)
    assert system == module.SYSTEM
    assert "CONTRACTS.md" in module.CONTRACT or getattr(module, "HTTP", True) is False


@pytest.mark.parametrize("system", SYSTEMS)
def test_connector_pages_to_the_end_and_maps_every_record(system, httpserver):
    module = contract_module(system)
    if getattr(module, "HTTP", True) is False:
        pytest.skip(f"{system} is not an HTTP pull connector")
    spec = module.setup(httpserver)
    connector = connector_for(system, spec)

    connector.check()
    records = list(connector.fetch(spec["stream"], since=None))

    assert [r.external_id for r in records] == spec["expect_ids"]
    rules = [Rule(**vars(m)) for m in connector.default_mappings if m.entity == spec["stream"]]
    for record in records:
        assert isinstance(record, RemoteRecord)
        assert record.stream == spec["stream"]
        assert isinstance(record.external_id, str) and record.external_id
        assert record.updated_at is None or record.updated_at.tzinfo is not None
        canonical = to_canonical(record.data, rules)
        assert canonical, f"default mappings read nothing from {record.external_id}"


@pytest.mark.parametrize("system", SYSTEMS)
def test_connector_reports_refused_credentials_as_auth_error(system, httpserver):
    module = contract_module(system)
    if getattr(module, "HTTP", True) is False:
        pytest.skip(f"{system} is not an HTTP pull connector")
    spec = module.setup(httpserver)
    connector = connector_for(system, spec)
    httpserver.clear_all_handlers()
    httpserver.expect_request(re.compile(".*")).respond_with_json({"error": "invalid_token"}, status=401)

    with pytest.raises(AuthError):
        connector.check()


@pytest.mark.parametrize("system", SYSTEMS)
def test_connector_reports_an_html_page_as_a_clear_permanent_error(system, httpserver):
    module = contract_module(system)
    if getattr(module, "HTTP", True) is False:
        pytest.skip(f"{system} is not an HTTP pull connector")
    spec = module.setup(httpserver)
    connector = connector_for(system, spec)
    httpserver.clear_all_handlers()
    httpserver.expect_request(re.compile(".*")).respond_with_data(
        "<html><head><title>Maintenance</title></head></html>", content_type="text/html"
    )

    with pytest.raises(PermanentError) as caught:
        list(connector.fetch(spec["stream"], since=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    assert "HTML" in str(caught.value) or "JSON" in str(caught.value)
