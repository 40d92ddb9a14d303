"""Admin for sync: every page renders; credentials are write-only; review actions work."""

from __future__ import annotations

import pytest
from django.urls import reverse

from hub.models import Client
from sync import crypto, services
from sync.models import Conflict, Connection, ExternalRef, FieldMapping, InboundEvent, SyncIssue, SyncRun
from tests.factories import inn_with_checksum


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def messages_of(response) -> str:
    return " | ".join(str(m) for m in response.context["messages"])


def url(model, view, *args):
    return reverse(f"admin:sync_{model._meta.model_name}_{view}", args=args)


@pytest.mark.django_db
def test_every_sync_admin_page_renders_and_credentials_are_never_shown(staff, crm, remote):
    remote.put("clients", title="Bad", tax_id="123")
    remote.put("clients", title="ACME", tax_id=inn_with_checksum("770708389"))
    services.sync_run(connection=crm)
    InboundEvent.objects.create(connection=crm, event_id="e1", entity="clients", external_id="1")
    Conflict.objects.create(connection=crm, entity="clients", object_id=1, external_id="1", field="name",
                            hub_value="a", remote_value="b", policy="manual")  # fmt: skip

    for model in (Connection, SyncRun, SyncIssue, Conflict, InboundEvent, ExternalRef):
        assert staff.get(url(model, "changelist")).status_code == 200, model
        obj = model.objects.first()
        page = staff.get(url(model, "change", obj.pk))
        assert page.status_code == 200, model
        assert b"s3cret" not in page.content
    assert staff.get(url(Connection, "add")).status_code == 200


@pytest.mark.django_db
def test_a_connection_added_in_admin_stores_credentials_encrypted_and_gets_default_mappings(staff, remote):
    response = staff.post(
        url(Connection, "add"),
        {
            "name": "crm2", "system": "memory", "role": "crm", "base_url": "memory://x", "enabled": "on",
            "conflict_policy": "owner_wins", "options": "{}", "new_credentials": "token=good\nwebhook_secret=abc",
            "schedule_minutes": "10", "paused_reason": "",
            "mappings-TOTAL_FORMS": "0", "mappings-INITIAL_FORMS": "0",
        },
    )  # fmt: skip

    assert response.status_code == 302, response.content[:2000]
    connection = Connection.objects.get(name="crm2")
    assert crypto.decrypt(connection.credentials_encrypted) == {"token": "good", "webhook_secret": "abc"}
    assert FieldMapping.objects.filter(connection=connection).exists()
    assert connection.periodic_task.interval.every == 10


@pytest.mark.django_db
def test_admin_actions_retry_dry_run_and_preview(staff, crm, remote):
    bad = remote.put("clients", title="Bad", tax_id="123")
    services.sync_run(connection=crm)
    issue = SyncIssue.objects.get()
    remote.put("clients", bad, tax_id=inn_with_checksum("770708389"))

    response = staff.post(
        url(SyncIssue, "changelist"), {"action": "retry", "_selected_action": [issue.pk]}, follow=True
    )

    assert "created: 1" in messages_of(response)
    assert Client.objects.count() == 1

    response = staff.post(
        url(Connection, "changelist"), {"action": "dry_run", "_selected_action": [crm.pk]}, follow=True
    )
    assert "clients created=0" in messages_of(response)
    response = staff.post(
        url(Connection, "changelist"),
        {"action": "preview_mapping", "_selected_action": [crm.pk]},
        follow=True,
    )
    assert "not mapped" in messages_of(response)
