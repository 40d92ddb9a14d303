import pytest

from sync.connectors import register, unregister
from tests.sync import memory_connector


@pytest.fixture
def remote():
    """A fresh in-memory CRM registered as system `memory` for the test."""
    memory_connector.REMOTE.__init__()
    register(memory_connector.MemoryConnector)
    yield memory_connector.REMOTE
    unregister("memory")


@pytest.fixture
def crm(db, remote, company, pipeline):
    from sync import services

    connection, _ = services.connection_save(
        system="memory",
        name="crm",
        url="memory://crm",
        credentials={"token": "good", "webhook_secret": "s3cret"},
    )
    return connection
