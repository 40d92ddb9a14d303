"""The sync engine against an in-memory CRM: pull, match, quarantine, conflicts, echo, push, dry run."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from hub import services as hub_services
from hub.models import Client, Contact, Deal, DomainEvent
from sync import crypto, services
from sync.connectors.base import RetryableError
from sync.models import Conflict, ConflictStatus, ExternalRef, RunStatus, SyncCursor, SyncIssue, SyncRun
from tests.factories import ClientFactory, inn_with_checksum

INN_A = inn_with_checksum("770708389")
INN_B = inn_with_checksum("500100732")


def run(connection, **kwargs):
    connection.refresh_from_db()
    return services.sync_run(connection=connection, **kwargs)


def counts(result, entity):
    return vars(result.counts[entity])


@pytest.mark.django_db
class TestPull:
    def test_first_pull_creates_clients_contacts_and_deals_then_a_second_pull_changes_nothing(
        self, crm, remote
    ):
        acme = remote.put("clients", title="ACME", tax_id=INN_A, mail="info@acme.test", tel="8 916 123-45-67")
        remote.put("contacts", company=acme, name="Jane Doe", mail="jane@acme.test")
        remote.put("deals", company=acme, name="Pumps", stage="NEW", value="5000.00")

        first = run(crm)

        assert first.run.status == RunStatus.SUCCESS
        assert first.lines() == [
            "clients created=1 updated=0 unchanged=0 conflicts=0 quarantined=0",
            "contacts created=1 updated=0 unchanged=0 conflicts=0 quarantined=0",
            "deals created=1 updated=0 unchanged=0 conflicts=0 quarantined=0",
        ]
        client = Client.objects.get(inn=INN_A)
        assert (client.name, client.email, client.phone) == ("ACME", "info@acme.test", "+79161234567")
        contact = Contact.objects.get(client=client)
        assert (contact.first_name, contact.last_name) == ("Jane", "Doe")
        deal = Deal.objects.get(client=client)
        assert deal.stage.code == "new" and deal.amount_total == Decimal("5000.00")
        assert DomainEvent.objects.filter(type="client.created", origin="sync:crm").count() == 1

        events_before = DomainEvent.objects.count()
        second = run(crm)

        assert all(c.created == c.updated == c.quarantined == 0 for c in second.counts.values())
        assert counts(second, "clients")["unchanged"] == 1
        assert DomainEvent.objects.count() == events_before, "an idempotent pull emits no event"

    def test_cursor_is_stored_and_the_next_run_reads_only_changes(self, crm, remote):
        remote.put("clients", title="A", tax_id=INN_A)
        run(crm)
        cursor = SyncCursor.objects.get(connection=crm, stream="clients")
        assert cursor.position is not None

        remote.put("clients", title="B", tax_id=INN_B)
        result = run(crm, entity="clients")

        # the last record of the previous page is read again (>= cursor) and found unchanged
        assert counts(result, "clients")["created"] == 1
        assert counts(result, "clients")["unchanged"] <= 1

    def test_an_existing_hub_client_is_matched_by_inn_not_duplicated(self, crm, remote):
        existing = ClientFactory(name="ACME Ltd", inn=INN_A, email="old@acme.test")
        remote.put("clients", title="ACME", tax_id=INN_A)

        result = run(crm)

        assert counts(result, "clients")["created"] == 0
        assert Client.objects.filter(inn=INN_A).count() == 1
        ref = ExternalRef.objects.get(connection=crm, entity="clients")
        assert ref.object_id == existing.pk
        existing.refresh_from_db()
        assert existing.name == "ACME", "the CRM owns the name"

    def test_matching_falls_back_to_email_then_phone(self, crm, remote):
        by_mail = ClientFactory(inn="", email="buyer@shop.test", phone="")
        by_phone = ClientFactory(inn="", email="", phone="+79160000001")
        remote.put("clients", title="Shop", mail="Buyer@Shop.test")
        remote.put("clients", title="Kiosk", tel="+7 916 000-00-01")

        run(crm)

        linked = dict(ExternalRef.objects.filter(connection=crm).values_list("object_id", "entity"))
        assert by_mail.pk in linked and by_phone.pk in linked
        assert Client.objects.count() == 2

    def test_two_equally_good_matches_go_to_review(self, crm, remote):
        ClientFactory(inn="", email="dup@x.test")
        ClientFactory(inn="", email="dup@x.test")
        remote.put("clients", title="Dup", mail="dup@x.test")

        result = run(crm)

        issue = SyncIssue.objects.get(connection=crm)
        assert issue.kind == "ambiguous" and "several hub records match by e-mail" in issue.reason
        assert counts(result, "clients")["quarantined"] == 1
        assert result.run.status == RunStatus.PARTIAL

    def test_an_invalid_record_is_quarantined_and_the_rest_of_the_batch_goes_on(self, crm, remote):
        remote.put("clients", title="Bad INN", tax_id="7707083890")
        remote.put("clients", title="No phone", tel="call me")
        remote.put("clients", title="Good", tax_id=INN_B)

        result = run(crm)

        assert counts(result, "clients")["created"] == 1
        assert counts(result, "clients")["quarantined"] == 2
        reasons = sorted(SyncIssue.objects.values_list("reason", flat=True))
        assert any("INN checksum does not match" in r for r in reasons)
        assert any("not a phone number" in r for r in reasons)
        assert Client.objects.get().name == "Good"

    def test_a_quarantined_record_is_resolved_when_it_comes_back_fixed(self, crm, remote):
        bad = remote.put("clients", title="Bad INN", tax_id="7707083890")
        run(crm)
        remote.put("clients", bad, tax_id=INN_A)

        run(crm)

        assert SyncIssue.objects.get().status == "resolved"
        assert Client.objects.filter(inn=INN_A).exists()

    def test_a_contact_whose_client_is_missing_is_quarantined_with_the_reason(self, crm, remote):
        remote.put("contacts", company="999", name="Lost Soul")

        result = run(crm)

        assert counts(result, "contacts")["quarantined"] == 1
        assert "clients 999 is not in the hub" in SyncIssue.objects.get().reason

    def test_a_remote_tombstone_archives_the_client(self, crm, remote):
        acme = remote.put("clients", title="ACME", tax_id=INN_A)
        run(crm)
        remote.put("clients", acme, deleted=True)

        run(crm)

        assert Client.objects.get(inn=INN_A).archived_at is not None
        assert ExternalRef.objects.get(external_id=acme).deleted_at is not None


@pytest.mark.django_db
class TestConflicts:
    def setup_synced(self, crm, remote):
        acme = remote.put("clients", title="ACME", tax_id=INN_A, mail="a@acme.test")
        run(crm)
        return acme, Client.objects.get(inn=INN_A)

    def test_owner_wins_when_both_sides_changed_a_field(self, crm, remote):
        acme, client = self.setup_synced(crm, remote)
        hub_services.client_update(client=client, name="ACME (hub)", email="hub@acme.test", origin="ui")
        remote.put("clients", acme, title="ACME (crm)", mail="crm@acme.test")

        result = run(crm, entity="clients")

        client.refresh_from_db()
        assert client.name == "ACME (crm)", "the CRM owns the name"
        assert client.email == "hub@acme.test", "the hub owns the e-mail"
        assert counts(result, "clients")["conflicts"] == 2
        statuses = dict(Conflict.objects.values_list("field", "status"))
        assert statuses == {"name": ConflictStatus.TOOK_THEIRS, "email": ConflictStatus.KEPT_OURS}

    def test_manual_policy_keeps_both_until_a_person_decides(self, crm, remote):
        crm.conflict_policy = "manual"
        crm.save()
        acme, client = self.setup_synced(crm, remote)
        hub_services.client_update(client=client, name="Hub name", origin="ui")
        remote.put("clients", acme, title="CRM name")

        run(crm, entity="clients")

        client.refresh_from_db()
        assert client.name == "Hub name"
        conflict = Conflict.objects.get(field="name")
        assert conflict.status == ConflictStatus.OPEN
        assert (conflict.hub_value, conflict.remote_value) == ("Hub name", "CRM name")

        services.conflict_resolve(conflict=conflict, take="theirs")

        client.refresh_from_db()
        assert client.name == "CRM name"
        assert Conflict.objects.get().status == ConflictStatus.TOOK_THEIRS

    def test_newest_change_wins_under_the_newest_policy(self, crm, remote):
        crm.conflict_policy = "newest_wins"
        crm.save()
        acme, client = self.setup_synced(crm, remote)
        hub_services.client_update(client=client, email="hub@acme.test", origin="ui")
        remote.clock = remote.clock.replace(year=2030)  # the CRM's change is later
        remote.put("clients", acme, mail="crm@acme.test")

        run(crm, entity="clients")

        client.refresh_from_db()
        assert client.email == "crm@acme.test"

    def test_a_change_made_only_in_the_hub_is_not_undone_by_the_pull(self, crm, remote):
        acme, client = self.setup_synced(crm, remote)
        hub_services.client_update(client=client, name="Renamed in hub", origin="ui")
        remote.put("clients", acme, mail="a@acme.test")  # touched, same content except version

        run(crm, entity="clients")

        client.refresh_from_db()
        assert client.name == "Renamed in hub"
        assert not Conflict.objects.exists()


@pytest.mark.django_db
class TestPush:
    def test_hub_clients_are_pushed_once_and_their_echo_is_recognised(self, crm, remote):
        client = ClientFactory(name="Hub Only", inn=INN_B, email="hub@only.test")

        first = run(crm, entity="clients")

        assert counts(first, "clients")["pushed_created"] == 1
        _stream, external_id, payload = remote.upserts[-1]
        assert payload["title"] == "Hub Only" and payload["tax_id"] == INN_B and external_id is None
        assert ExternalRef.objects.get(connection=crm, object_id=client.pk)

        second = run(crm, entity="clients")

        assert len(remote.upserts) == 1, "nothing changed: nothing pushed again"
        assert counts(second, "clients")["created"] == 0
        assert counts(second, "clients")["updated"] == 0, "the echo of our own push is not an update"

    def test_a_change_pulled_from_a_connection_is_never_pushed_back_to_it(self, crm, remote):
        acme = remote.put("clients", title="ACME", tax_id=INN_A)
        run(crm)
        client = Client.objects.get(inn=INN_A)

        results = services.push_changes(entity="clients", object_id=client.pk, origin="sync:crm")
        assert results == {}
        results = services.push_changes(entity="clients", object_id=client.pk, origin="ui")
        assert results == {"crm": "unchanged"}
        assert remote.upserts == []
        assert acme in remote.tables["clients"]

    def test_a_hub_edit_is_pushed_by_the_event_handler(self, crm, remote):
        acme = remote.put("clients", title="ACME", tax_id=INN_A)
        run(crm)
        client = Client.objects.get(inn=INN_A)

        hub_services.client_update(client=client, email="new@acme.test", origin="ui")
        results = services.push_changes(entity="clients", object_id=client.pk, origin="ui")

        assert results == {"crm": "updated"}
        assert remote.upserts[-1][1] == acme and remote.upserts[-1][2]["mail"] == "new@acme.test"

    def test_archiving_in_the_hub_sends_a_tombstone(self, crm, remote):
        acme = remote.put("clients", title="ACME", tax_id=INN_A)
        run(crm)
        client = Client.objects.get(inn=INN_A)

        services.tombstone_push(entity="clients", object_id=client.pk, origin="ui")

        assert remote.deleted == [("clients", acme)]

    def test_a_paid_invoice_leaves_a_note_on_the_crm_deal(self, crm, remote):
        acme = remote.put("clients", title="ACME", tax_id=INN_A)
        deal_id = remote.put("deals", company=acme, name="Pumps", stage="NEW", value="100")
        run(crm)
        deal = Deal.objects.get()

        services.note_to_crm(entity="deals", object_id=deal.pk, text="Invoice 1 paid")

        assert remote.notes == [("deals", deal_id, "Invoice 1 paid")]


@pytest.mark.django_db
class TestRuns:
    def test_the_push_phase_reads_refs_per_chunk_not_per_object(self, crm, remote):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        from django.utils import timezone

        from sync import engine

        def push_phase_queries(n: int) -> int:
            Client.objects.all().delete()
            ExternalRef.objects.all().delete()
            SyncCursor.objects.all().delete()
            for i in range(n):
                ClientFactory(name=f"Hub {i}", inn="", email=f"c{i}@hub.test")
            run(crm, entity="clients")  # pushes them all: each has its ref and pushed hash now
            SyncCursor.objects.filter(stream="push:clients").update(position=None)
            ctx = engine.Context(connection=crm, connector=services.connector_for(crm))
            with CaptureQueriesContext(connection) as queries:
                engine.push_stream(ctx, "clients", started_at=timezone.now())
            assert vars(ctx.count("clients"))["pushed_updated"] == 0
            assert vars(ctx.count("clients"))["pushed_created"] == 0
            return len(queries)

        assert push_phase_queries(3) == push_phase_queries(40)

    def test_a_push_decided_on_a_stale_hint_reads_the_ref_again(self, crm, remote):
        from sync import engine

        client = ClientFactory(name="Hub Only", inn=INN_B, email="hub@only.test")
        run(crm, entity="clients")
        ref = ExternalRef.objects.get(connection=crm, object_id=client.pk)
        stale = ExternalRef(pk=ref.pk, object_id=client.pk, pushed_hash="old")  # read before a push
        ctx = engine.Context(
            connection=crm, connector=services.connector_for(crm), run=SyncRun.objects.first(), dry_run=False
        )

        assert engine.push_object(ctx, "clients", client, hint=stale) == "unchanged"
        assert len(remote.upserts) == 1, "the ref as it is now says unchanged: nothing sent again"

    def test_dry_run_reports_the_plan_and_writes_nothing(self, crm, remote):
        remote.put("clients", title="ACME", tax_id=INN_A)
        remote.put("clients", title="Bad", tax_id="123")
        ClientFactory(name="To push", inn=INN_B)

        result = run(crm, dry_run=True)

        assert counts(result, "clients")["created"] == 1
        assert counts(result, "clients")["quarantined"] == 1
        assert counts(result, "clients")["pushed_created"] == 1
        assert Client.objects.count() == 1
        assert not ExternalRef.objects.exists() and not SyncIssue.objects.exists()
        assert SyncCursor.objects.filter(position__isnull=False).count() == 0
        assert remote.upserts == []
        assert SyncRun.objects.get().dry_run

    def test_an_unreachable_remote_fails_the_run_clearly_and_keeps_the_cursor(self, crm, remote):
        remote.put("clients", title="A", tax_id=INN_A)
        run(crm)
        position = SyncCursor.objects.get(stream="clients").position
        remote.put("clients", title="B", tax_id=INN_B)
        remote.fail = RetryableError("GET /clients: cannot reach the server (connection refused)")

        result = run(crm)

        assert result.run.status == RunStatus.FAILED
        assert "cannot reach the server" in result.run.error
        crm.refresh_from_db()
        assert "cannot reach the server" in crm.last_error and crm.enabled
        assert SyncCursor.objects.get(stream="clients").position == position
        assert Client.objects.count() == 1

        remote.fail = None
        assert run(crm).run.status == RunStatus.SUCCESS
        crm.refresh_from_db()
        assert crm.last_error == ""
        assert Client.objects.count() == 2

    def test_a_failure_mid_stream_keeps_pages_already_persisted(self, crm, remote, settings):
        settings.SYNC_PAGE_SIZE = 2
        for i in range(5):
            remote.put("clients", title=f"C{i}", mail=f"c{i}@x.test")
        remote.fail, remote.fail_after = RetryableError("503 from the CRM"), 4

        result = run(crm, entity="clients")

        assert result.run.status == RunStatus.FAILED
        assert Client.objects.count() == 4, "two full pages were committed with their cursor"
        remote.fail = remote.fail_after = None
        run(crm, entity="clients")
        assert Client.objects.count() == 5

    def test_refused_credentials_pause_the_connection(self, crm, remote):
        services.credentials_set(connection=crm, values={"token": "expired"})

        result = run(crm)

        crm.refresh_from_db()
        assert result.run.status == RunStatus.FAILED
        assert not crm.enabled and "token refused" in crm.paused_reason

    def test_credentials_are_encrypted_at_rest(self, crm):
        crm.refresh_from_db()
        assert "good" not in crm.credentials_encrypted and "s3cret" not in crm.credentials_encrypted
        assert crypto.decrypt(crm.credentials_encrypted)["token"] == "good"
        assert services.credential_keys(connection=crm) == ["token", "webhook_secret"]

    def test_only_one_run_per_connection_at_a_time(self, crm):
        assert services._claim(crm)
        with pytest.raises(services.RunBusy):
            services.sync_run(connection=crm)


@pytest.mark.django_db
def test_history_from_makes_the_first_pull_skip_older_records(crm, remote):
    remote.put("clients", title="Old", tax_id=INN_A)
    crm.options = {"history_from": (remote.clock + dt.timedelta(seconds=30)).isoformat()}
    crm.save()
    remote.put("clients", title="New", tax_id=INN_B)

    result = run(crm, entity="clients")

    assert counts(result, "clients")["created"] == 1
    assert list(Client.objects.values_list("name", flat=True)) == ["New"]


@pytest.mark.django_db
def test_the_crm_note_notification_channel_leaves_the_note_through_the_connection(crm, remote):
    from notifications.channels import CrmNoteTransport
    from notifications.models import Delivery

    acme = remote.put("clients", title="ACME", tax_id=INN_A)
    deal_id = remote.put("deals", company=acme, name="Pumps", stage="NEW", value="100")
    run(crm)
    deal = Deal.objects.get()
    event = DomainEvent.objects.filter(aggregate_type="hub.deal", aggregate_id=str(deal.pk)).first()

    CrmNoteTransport().send(Delivery(event=event, channel="crm_note", title="Paid", body="Invoice 7 is paid"))

    assert remote.notes == [("deals", deal_id, "Paid\nInvoice 7 is paid")]


@pytest.mark.django_db
def test_stored_credentials_are_read_once_per_connector_and_kept_fresh_by_updates(
    crm, django_assert_num_queries
):
    store = services.DbCredentialStore(crm.pk)
    with django_assert_num_queries(1):
        assert store.load()["token"] == "good"
        assert store.load()["token"] == "good"

    store.update(lambda current: {"token": "rotated"})

    with django_assert_num_queries(0):
        assert store.load()["token"] == "rotated"
    assert services.DbCredentialStore(crm.pk).load()["token"] == "rotated"


@pytest.mark.django_db
def test_a_push_sweep_reads_deals_and_invoices_with_a_fixed_number_of_queries(company, pipeline):
    """What `read` needs (a deal's stage, an invoice's lines) comes with the objects: a sweep over
    2 or 12 of them costs the same number of queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from invoicing.services import invoice_issue_from_deal
    from sync.entities import ENTITIES

    line = {"description": "Pump", "quantity": Decimal("1"), "unit_price": Decimal("100.00")}

    def queries_to_read(n: int) -> tuple[int, int]:
        for i in range(n - Deal.objects.count()):
            deal = hub_services.deal_create(title=f"D{i}", client=ClientFactory(), lines=[line, line])
            invoice_issue_from_deal(deal=deal)
        counted = []
        for name in ("deals", "invoices"):
            handler = ENTITIES[name]
            with CaptureQueriesContext(connection) as queries:
                read = [
                    handler.read(o) for o in handler.readable(handler.queryset()).iterator(chunk_size=200)
                ]
            assert len(read) == n and all(r.get("stage") or r.get("lines") for r in read)
            counted.append(len(queries))
        return tuple(counted)

    assert queries_to_read(2) == queries_to_read(12)
