import pytest
from rest_framework.test import APIClient

from hub.api_auth import apikey_create
from tests.factories import CompanyFactory, PipelineFactory, UserFactory


@pytest.fixture
def company(db):
    return CompanyFactory()


@pytest.fixture
def pipeline(db):
    return PipelineFactory()


@pytest.fixture
def manager(db):
    return UserFactory(username="maria")


@pytest.fixture
def write_key(db):
    _, raw = apikey_create(name="erp", scope="write")
    return raw


@pytest.fixture
def read_key(db):
    _, raw = apikey_create(name="bi", scope="read")
    return raw


@pytest.fixture
def api(write_key):
    """An API client authenticated with a write-scoped key."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {write_key}")
    return client


@pytest.fixture
def read_api(read_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {read_key}")
    return client


@pytest.fixture
def anon_api():
    return APIClient()


@pytest.fixture
def issue_invoice(company):
    """Issue an invoice for ``client``: ``quantity`` × 1,000.00 + 22 % VAT (1 → 1,220.00)."""
    import datetime as dt
    from decimal import Decimal

    from invoicing.services import invoice_create_draft, invoice_issue

    def make(client, quantity=1, *, issue_date=dt.date(2026, 1, 14), prefix=""):
        draft = invoice_create_draft(
            client=client,
            lines=[
                {
                    "description": "Насос",
                    "quantity": Decimal(quantity),
                    "unit_price": Decimal("1000.00"),
                    "vat_rate": Decimal("22"),
                }
            ],
        )
        return invoice_issue(invoice=draft, issue_date=issue_date, prefix=prefix)

    return make
