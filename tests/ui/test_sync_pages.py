"""The sync health page and the "in other systems" panel read the sync models lazily: with stand-ins
shaped like the agreed models (Connection, ExternalRef, SyncRun, SyncIssue, Conflict) they show them."""

import datetime as dt
from types import SimpleNamespace

import pytest
from django.utils import timezone

from sync import views as sync_views
from tests.factories import ClientFactory

pytestmark = pytest.mark.django_db


class FakeQuerySet:
    def __init__(self, rows):
        self.rows = list(rows)

    def filter(self, **kwargs):
        return self

    def select_related(self, *args):
        return self

    def order_by(self, *args):
        return self

    def first(self):
        return self.rows[0] if self.rows else None

    def count(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)


def fake_model(rows, fields=()):
    meta = SimpleNamespace(get_fields=lambda: [SimpleNamespace(name=f) for f in fields])
    return type("Fake", (), {"objects": FakeQuerySet(rows), "_meta": meta})


@pytest.fixture
def sync_models(monkeypatch):
    bitrix = SimpleNamespace(name="Bitrix24 prod", system="bitrix24", role="crm", enabled=True, last_error="")
    onec = SimpleNamespace(
        name="1C",
        system="onec_odata",
        role="accounting",
        enabled=True,
        last_error="401 Unauthorized: token expired",
    )
    synced = timezone.make_aware(dt.datetime(2026, 11, 27, 14, 5))
    models = {
        "Connection": fake_model([bitrix, onec]),
        "ExternalRef": fake_model(
            [SimpleNamespace(connection=bitrix, external_id="CO_4711", last_synced_at=synced)]
        ),
        "SyncRun": fake_model(
            [SimpleNamespace(pk=9, started_at=synced, status="ok")], fields=("started_at",)
        ),
        "SyncIssue": fake_model([object(), object()], fields=("resolved_at",)),
        "Conflict": fake_model([], fields=("resolved_at",)),
    }
    monkeypatch.setattr(sync_views, "_model", models.get)
    return models


def test_health_page_lists_connections_runs_issues_and_errors(client, root, sync_models):
    client.force_login(root)
    page = client.get("/app/sync/").content.decode()
    assert "Bitrix24 prod" in page and "onec_odata" in page
    assert "401 Unauthorized: token expired" in page and "status-error" in page
    assert ">2</td>" in page  # open issues


def test_client_page_shows_its_id_and_last_sync_in_each_system(client, maria, sync_models):
    customer = ClientFactory(manager=maria)
    client.force_login(maria)
    page = client.get(f"/app/clients/{customer.pk}/").content.decode()
    assert "In other systems" in page and "CO_4711" in page and "Bitrix24 prod" in page
    assert "11/27/2026" in page
