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
