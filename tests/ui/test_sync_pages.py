"""The sync health page and the client page's "in other systems" panel, on real sync rows."""

import datetime as dt

import pytest
from django.utils import timezone

from sync.models import Conflict, Connection, ExternalRef, SyncIssue, SyncRun
from tests.factories import ClientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sync_rows():
    synced = timezone.make_aware(dt.datetime(2026, 11, 27, 14, 5))
    bitrix = Connection.objects.create(
        name="bitrix24-prod", system="bitrix24", role="crm", base_url="https://b24"
    )
    onec = Connection.objects.create(
        name="1c", system="onec_odata", role="accounting", base_url="https://1c",
        last_error="401 Unauthorized: token expired",
    )  # fmt: skip
    SyncRun.objects.create(connection=bitrix, started_at=synced, status="success")
    for n in range(2):
        SyncIssue.objects.create(connection=onec, entity="clients", external_id=str(n), reason="INN checksum")
    SyncIssue.objects.create(
        connection=onec, entity="clients", external_id="9", reason="old", status="resolved"
    )
    Conflict.objects.create(connection=bitrix, entity="clients", object_id=1, external_id="1", field="name",
                            policy="manual")  # fmt: skip
    return {"bitrix": bitrix, "onec": onec, "synced": synced}


def test_health_page_lists_connections_runs_issues_and_errors(
    client, root, sync_rows, django_assert_max_num_queries
):
    client.force_login(root)
    with django_assert_max_num_queries(15):
        page = client.get("/app/sync/").content.decode()
    assert "bitrix24-prod" in page and "onec_odata" in page
    assert "401 Unauthorized: token expired" in page and "status-error" in page
    assert ">2</td>" in page  # open issues of 1c (the resolved one is not counted)
    assert "status-success" in page


def test_client_page_shows_its_id_and_last_sync_in_each_system(client, maria, sync_rows):
    customer = ClientFactory(manager=maria)
    ExternalRef.objects.create(
        connection=sync_rows["bitrix"], entity="clients", external_id="CO_4711", object_id=customer.pk,
        last_synced_at=sync_rows["synced"],
    )  # fmt: skip
    client.force_login(maria)
    page = client.get(f"/app/clients/{customer.pk}/").content.decode()
    assert "In other systems" in page and "CO_4711" in page and "bitrix24-prod" in page
    assert "11/27/2026" in page


def test_managers_do_not_see_the_sync_health_page(client, maria):
    client.force_login(maria)
    assert client.get("/app/sync/").status_code == 403
