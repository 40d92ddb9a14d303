import pytest

from tests.factories import ClientFactory


@pytest.fixture
def buyer(db):
    return ClientFactory(
        name="ООО «Покупатель»", inn="7736050003", kpp="773601001", address="Москва, ул. Ленина, 1"
    )
