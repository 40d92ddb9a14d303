"""Webhook inbox, the public commands, scheduled runs and the csv connector."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from hub.models import Client, Contact, Deal
from sync import services
from sync.models import Connection, ExternalRef, InboundEvent, SyncIssue
from tests.factories import inn_with_checksum
from tests.sync.memory_connector import MemoryConnector, sign

INN_A = inn_with_checksum("770708389")
INN_B = inn_with_checksum("500100732")


def deliver(client, body: bytes, signature: str, name="crm"):
    return client.post(
        f"/sync/webhooks/{name}/",
        data=body,
        content_type="application/json",
        HTTP_X_MEMORY_SIGNATURE=signature,
    )


@pytest.mark.django_db
class TestWebhooks:
    def test_a_signed_delivery_is_stored_once_and_applied_by_re_fetching(
        self, client, crm, remote, monkeypatch
    ):
        queued = []
        monkeypatch.setattr(services, "_queue_inbound", queued.append)
        acme = remote.put("clients", title="ACME", tax_id=INN_A)
        body = json.dumps([{"event": "evt-1", "stream": "clients", "id": acme}]).encode()

        with django_capture_on_commit():
            reply = deliver(client, body, sign("s3cret", body))
            again = deliver(client, body, sign("s3cret", body))

        assert reply.status_code == 200 and reply.json()["stored"] == 1
        assert again.status_code == 200 and again.json()["duplicates"] == 1
        inbound = InboundEvent.objects.get()
        assert (inbound.entity, inbound.external_id, inbound.status) == ("clients", acme, "pending")
        assert queued == [inbound.pk]

        assert services.inbound_process(inbound_id=inbound.pk) == "created"
        assert Client.objects.get(inn=INN_A).name == "ACME"
        inbound.refresh_from_db()
        assert inbound.status == "processed"
        assert services.inbound_process(inbound_id=inbound.pk) == "skipped", "processing is idempotent"

    def test_a_forged_signature_is_refused_and_recorded(self, client, crm):
        body = json.dumps([{"event": "evt-x", "stream": "clients", "id": "1"}]).encode()

        reply = deliver(client, body, sign("wrong-secret", body))

        assert reply.status_code == 401
        rejected = InboundEvent.objects.get()
        assert rejected.status == "rejected" and "not authentic" in rejected.error
        assert not Client.objects.exists()

    def test_a_malformed_body_gets_a_clear_400_and_is_recorded(self, client, crm):
        body = b"{not json"

        reply = deliver(client, body, sign("s3cret", body))

        assert reply.status_code == 400 and "not JSON" in reply.json()["error"]
        assert InboundEvent.objects.get().status == "failed"

    def test_unknown_connection_is_404_and_oversized_body_is_413(self, client, crm, settings):
        assert (
            client.post("/sync/webhooks/nope/", data=b"{}", content_type="application/json").status_code
            == 404
        )
        settings.SYNC_WEBHOOK_MAX_BYTES = 10
        body = b"[" + b" " * 20 + b"]"
        assert deliver(client, body, sign("s3cret", body)).status_code == 413

    def test_a_record_deleted_remotely_before_processing_becomes_a_tombstone(self, crm, remote):
        acme = remote.put("clients", title="ACME", tax_id=INN_A)
        services.sync_run(connection=crm, entity="clients")
        del remote.tables["clients"][acme]
        inbound = InboundEvent.objects.create(
            connection=crm, event_id="e2", entity="clients", external_id=acme
        )

        assert services.inbound_process(inbound_id=inbound.pk) == "archived"
        assert Client.objects.get(inn=INN_A).archived_at is not None


class django_capture_on_commit:
    """Run on_commit callbacks at the end of the block (the test runs inside a transaction)."""

    def __enter__(self):
        from django.db import connection

        self.connection = connection
        self.start = len(connection.run_on_commit)
        return self

    def __exit__(self, *exc):
        callbacks = self.connection.run_on_commit[self.start :]
        self.connection.run_on_commit[self.start :] = []
        for _sids, func, _robust in callbacks:
            func()


@pytest.mark.django_db
class TestCommands:
    def test_connect_creates_then_updates_a_connection_with_default_mappings(self, remote, company, pipeline):
        out = StringIO()
        call_command(
            "connect", "memory", "--name", "crm", "--url", "memory://x", "--credential", "token=good",
            "--every", "15", stdout=out,
        )  # fmt: skip
        assert "created connection crm (memory, crm)" in out.getvalue()
        assert "credentials stored encrypted: token" in out.getvalue()
        connection = Connection.objects.get(name="crm")
        assert connection.mappings.count() == len(MemoryConnector.default_mappings)
        task = PeriodicTask.objects.get(pk=connection.periodic_task_id)
        assert (
            task.task == "sync.run_connection"
            and task.interval.every == 15
            and json.loads(task.args) == [connection.pk]
        )

        out = StringIO()
        call_command(
            "connect", "memory", "--name", "crm", "--url", "memory://y", "--role", "accounting", stdout=out
        )
        connection.refresh_from_db()
        assert "updated connection crm (memory, accounting)" in out.getvalue()
        assert connection.base_url == "memory://y"
        assert services.credential_keys(connection=connection) == ["token"], "credentials were kept"

    def test_connect_refuses_unknown_systems_and_credentials(self, remote, db):
        with pytest.raises(CommandError, match="unknown system 'nope'"):
            call_command("connect", "nope", "--name", "x", "--url", "http://x")
        with pytest.raises(CommandError, match="takes no credential password"):
            call_command("connect", "memory", "--name", "x", "--url", "m://", "--credential", "password=1")
        with pytest.raises(CommandError, match="needs the credential"):
            call_command("connect", "memory", "--name", "x", "--url", "m://")
        with pytest.raises(CommandError, match="KEY=VALUE"):
            call_command("connect", "memory", "--name", "x", "--url", "m://", "--credential", "token")

    def test_sync_prints_one_line_per_entity_and_exits_zero(self, crm, remote):
        remote.put("clients", title="ACME", tax_id=INN_A)
        out = StringIO()

        call_command("sync", "crm", stdout=out)

        lines = out.getvalue().splitlines()
        assert lines[0] == "clients created=1 updated=0 unchanged=0 conflicts=0 quarantined=0"
        assert [line.split()[0] for line in lines] == ["clients", "contacts", "deals"]

        out = StringIO()
        call_command("sync", "crm", "--entity", "clients", stdout=out)
        assert out.getvalue().splitlines() == [
            "clients created=0 updated=0 unchanged=1 conflicts=0 quarantined=0"
        ]

    def test_sync_dry_run_says_so_and_writes_nothing(self, crm, remote):
        remote.put("clients", title="ACME", tax_id=INN_A)
        out = StringIO()

        call_command("sync", "crm", "--dry-run", stdout=out)

        assert "clients created=1" in out.getvalue() and "dry run: nothing was written" in out.getvalue()
        assert not Client.objects.exists()

    def test_sync_fails_with_a_non_zero_exit_when_the_run_fails(self, crm, remote):
        from sync.connectors.base import RetryableError

        remote.fail = RetryableError("cannot reach the server")
        with pytest.raises(CommandError, match="sync failed: cannot reach the server"):
            call_command("sync", "crm")
        with pytest.raises(CommandError, match="no connection named"):
            call_command("sync", "missing")
        with pytest.raises(CommandError, match="Unknown entity"):
            call_command("sync", "crm", "--entity", "unicorns")

    def test_the_scheduled_task_runs_the_connection_and_skips_a_paused_one(self, crm, remote):
        from sync.tasks import run_connection

        remote.put("clients", title="ACME", tax_id=INN_A)
        assert run_connection(crm.pk)["status"] == "success"
        services.connection_pause(connection=crm, reason="maintenance")
        assert run_connection(crm.pk) == {"skipped": "paused or deleted"}


@pytest.mark.django_db
class TestCsvConnector:
    def write(self, tmp_path, name, text, encoding="utf-8"):
        (tmp_path / name).write_text(text, encoding=encoding)

    def test_clients_contacts_and_deals_are_imported_from_a_folder_of_csv_files(
        self, tmp_path, company, pipeline
    ):
        self.write(
            tmp_path,
            "clients.csv",
            f"id;name;inn;email;phone\nc1;ООО Ромашка;{INN_A};a@r.ru;8 (916) 111-22-33\nc2;Bad;123;;\n",
        )
        self.write(
            tmp_path, "contacts.csv", "id,client_id,first_name,last_name,email\np1,c1,Иван,Петров,ivan@r.ru\n"
        )
        self.write(tmp_path, "deals.csv", 'id,client_id,title,stage,amount\nd1,c1,Насосы,new,"12 500,50"\n')
        connection, _ = services.connection_save(system="csv", name="backfill", url=str(tmp_path))

        result = services.sync_run(connection=connection)

        assert result.lines() == [
            "clients created=1 updated=0 unchanged=0 conflicts=0 quarantined=1",
            "contacts created=1 updated=0 unchanged=0 conflicts=0 quarantined=0",
            "deals created=1 updated=0 unchanged=0 conflicts=0 quarantined=0",
        ]
        client = Client.objects.get(inn=INN_A)
        assert client.phone == "+79161112233"
        assert Contact.objects.get().client == client
        assert str(Deal.objects.get().amount_total) == "12500.50"
        assert "INN" in SyncIssue.objects.get(external_id="c2").reason

        again = services.sync_run(connection=connection)
        assert again.lines()[0] == "clients created=0 updated=0 unchanged=1 conflicts=0 quarantined=1"

    def test_xlsx_and_a_cp1251_file_error(self, tmp_path, company):
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        sheet.append(["id", "name", "inn"])
        sheet.append([1, "Excel Ltd", INN_B])
        book.save(tmp_path / "clients.xlsx")
        connection, _ = services.connection_save(system="csv", name="xl", url=str(tmp_path))

        assert services.sync_run(connection=connection).lines()[0].startswith("clients created=1")
        assert ExternalRef.objects.get(connection=connection).external_id == "1"

        self.write(tmp_path, "broken.csv", "id,name\n1,Ромашка\n", encoding="cp1251")
        bad, _ = services.connection_save(
            system="csv", name="bad", url=str(tmp_path / "broken.csv"), options={"stream": "clients"}
        )
        result = services.sync_run(connection=bad)
        assert result.run.status == "failed" and "is not utf-8-sig text" in result.run.error

    def test_a_file_broken_halfway_keeps_the_pages_read_before_it(self, tmp_path, company, settings):
        # given 1,000 good rows (read a page ahead, 100 a page), then bytes that are not UTF-8
        settings.SYNC_PAGE_SIZE = 100
        good = "id,name\n" + "".join(f"{n},Client {n}\n" for n in range(1, 1001))
        (tmp_path / "clients.csv").write_bytes(good.encode() + b"1001,\xcf\xf0\xe8\xec\xe5\xf0\n")
        connection, _ = services.connection_save(system="csv", name="half", url=str(tmp_path / "clients.csv"))

        # when it is pulled
        result = services.sync_run(connection=connection)

        # then the run fails with the file's error, and the pages read before the bad bytes are stored
        assert result.run.status == "failed" and "is not utf-8-sig text" in result.run.error
        stored = Client.objects.count()
        assert stored >= 100 and stored % 100 == 0
        assert ExternalRef.objects.filter(connection=connection).count() == stored

    def test_the_mapping_preview_shows_used_and_unused_columns(self, tmp_path, company):
        self.write(tmp_path, "clients.csv", f"id,name,inn,fax\n1,Ромашка,{INN_A},123\n2,Bad,999,\n")
        connection, _ = services.connection_save(system="csv", name="p", url=str(tmp_path))

        preview = services.mapping_preview(connection=connection, entity="clients", limit=5)

        assert preview["columns"] == ["id", "name", "inn", "fax"]
        assert preview["unmapped"] == ["fax", "id"]
        assert preview["rows"][0]["canonical"]["inn"] == INN_A
        assert "INN" in preview["rows"][1]["error"]
        assert not Client.objects.exists(), "a preview writes nothing"
