"""A schema-driven fuzzer (schemathesis) sends generated requests to every operation: none may get a 5xx."""

from decimal import Decimal

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from hub.api_auth import apikey_create
from hub.wsgi import application
from invoicing.services import invoice_create_draft, invoice_issue
from tests.factories import ClientFactory, CompanyFactory, DealFactory, PipelineFactory, ProductFactory

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
# Valid-looking and hostile inputs both (wrong types, out-of-range numbers, NUL bytes, extra fields).
schema.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE], allow_x00=True
)


@pytest.fixture
def wsgi_keeps_test_connection():
    """Calling the WSGI app directly would close the test's DB connection at request end, as Django's
    test client avoids by the same disconnection."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def seeded_key(db, wsgi_keeps_test_connection):
    CompanyFactory()
    PipelineFactory()
    client = ClientFactory()
    ProductFactory()
    DealFactory(client=client)
    invoice = invoice_create_draft(
        client=client, lines=[{"description": "x", "quantity": Decimal("1"), "unit_price": Decimal("10")}]
    )
    invoice_issue(invoice=invoice)
    _, raw = apikey_create(name="fuzzer", scope="write")
    return raw


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_operation_answers_with_a_server_error(case, seeded_key):
    response = case.call(headers={"Authorization": f"Bearer {seeded_key}"})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}\n{response.text[:2000]}"
    )
