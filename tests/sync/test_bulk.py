"""The set-based pull of clients (sync.bulk) against the per-record path (engine.apply_record).

The equivalence tests run one scenario twice in the same database, each time inside a savepoint that
is rolled back: once record by record, once in bulk, and compare everything a user or the next run
can see: counts, clients, ExternalRefs (hashes, snapshots), quarantine and conflicts. They run on
whichever database the suite uses (SQLite locally, PostgreSQL with DATABASE_URL: the COPY path).
"""

from __future__ import annotations

import re

import pytest
from django.db import IntegrityError, connection, transaction

from hub import services as hub_services
from hub.models import Client, DomainEvent
from sync import bulk, event_handlers, services
from sync.engine import content_hash, to_canonical
from sync.mapping.mapper import Rule, compile_canonical
from sync.models import Conflict, ExternalRef, FieldMapping, SyncCursor, SyncIssue
from tests.factories import ClientFactory, inn_with_checksum, person_inn
from tests.sync import memory_connector

PER_RECORD = 10**9
INN_X = inn_with_checksum("770708389")
INN_Y = inn_with_checksum("500100732")


class _Rollback(Exception):
    pass


def run(connection_, **kwargs):
    connection_.refresh_from_db()
    return services.sync_run(connection=connection_, entity="clients", **kwargs)


def outcome() -> dict:
    """Everything observable, with hub ids replaced by the client's content (ids differ per branch)."""
    clients = {c.pk: c for c in Client.objects.all()}

    def who(pk):
        c = clients.get(pk)
        return None if c is None else (c.name, c.inn, c.email, c.phone)

    return {
        "clients": sorted(
            (
                c.kind,
                c.name,
                c.legal_name,
                c.inn,
                c.kpp,
                c.ogrn,
                c.country,
                c.email,
                c.phone,
                c.address,
                c.archived_at is not None,
            )
            for c in clients.values()
        ),
        "refs": sorted(
            (
                r.external_id,
                who(r.object_id),
                r.content_hash,
                r.pushed_hash,
                r.source_hash,
                r.snapshot,
                r.remote_version,
                r.deleted_at is None,
            )
            for r in ExternalRef.objects.all()
        ),
        "issues": sorted(
            (
                i.external_id,
                i.kind,
                re.sub(r"#(\d+)", lambda m: str(who(int(m[1]))), i.reason),
                i.status,
                i.attempts,
            )
            for i in SyncIssue.objects.all()
        ),
        "conflicts": sorted(
            (
                c.external_id,
                who(c.object_id),
                c.field,
                str(c.base_value),
                str(c.hub_value),
                str(c.remote_value),
                c.status,
            )
            for c in Conflict.objects.all()
        ),
    }


def both_ways(settings, scenario) -> tuple[dict, dict]:
    """(per-record, bulk): the scenario's run counts and final outcome, each in a rolled-back savepoint."""
    results = []
    for minimum in (PER_RECORD, 1):
        settings.SYNC_BULK_MIN_RECORDS = minimum
        memory_connector.REMOTE.__init__()
        try:
            with transaction.atomic():
                counts = scenario()
                results.append({"counts": counts, **outcome()})
                raise _Rollback
        except _Rollback:
            pass
    return results[0], results[1]


def plain(remote, n: int, **extra) -> str:
    return remote.put(
        "clients",
        title=f"Client {n}",
        tax_id=inn_with_checksum(f"6{n:08d}"),
        mail=f"c{n}@shop.test",
        tel=f"+7 916 555-{n // 100:02d}-{n % 100:02d}",
        **extra,
    )


def lines(result) -> list[str]:
    return result.lines()


@pytest.mark.django_db
class TestSameResultsAsRecordByRecord:
    def scenario(self, crm, remote):
        """Three runs: a first load full of edge cases, a round of changes on both sides, a quiet run."""
        ClientFactory(name="Existing by INN", inn=INN_X, kpp="", email="", phone="")
        ClientFactory(name="Existing by mail", inn="", email="buyer@shop.test", phone="")
        ClientFactory(name="Dup 1", inn="", email="dup@x.test", phone="")
        ClientFactory(name="Dup 2", inn="", email="dup@x.test", phone="")
        ids = [plain(remote, n) for n in range(30)]
        remote.put("clients", title="Matched by INN", tax_id=INN_X, mail="new@inn.test")
        remote.put("clients", title="Matched by mail", mail="Buyer@Shop.test")
        remote.put("clients", title="Ambiguous", mail="dup@x.test")
        bad_inn = remote.put("clients", title="Bad INN", tax_id="7707083890")
        remote.put("clients", title="Not a phone", tel="call me")
        remote.put("clients", title="Impossible number", tel="+7 000 000-00-00")
        remote.put("clients", title="Twin A", mail="twin@x.test")
        remote.put("clients", title="Twin B", mail="TWIN@x.test")
        remote.put("clients", title="Archived", tax_id=INN_Y, archived="true")
        remote.put("clients", title="A person", tax_id=person_inn("7707083893"))
        remote.put("clients", title="Branch", tax_id=inn_with_checksum("123456789"), kpp="123401001")
        remote.put("clients", title="", mail="nameless@x.test")
        remote.put("clients", title="Person with KPP", tax_id=person_inn("5001007320"), kpp="500101001")
        counts = [lines(run(crm))]

        # both sides change things
        for n in (1, 2, 3):
            remote.put("clients", ids[n], title=f"Client {n} renamed")
        client = Client.objects.get(name="Client 4")
        hub_services.client_update(client=client, name="Hub name", email="hub4@shop.test", origin="ui")
        remote.put("clients", ids[4], title="CRM name", mail="crm4@shop.test")
        remote.put("clients", ids[5], deleted=True)
        remote.put("clients", bad_inn, tax_id=inn_with_checksum("222333444"))
        remote.put("clients", title="Same INN as client 6", tax_id=inn_with_checksum("600000006"))
        remote.put("clients", ids[7], tel="8 (916) 555-77-77")
        remote.put("clients", ids[8], title="")  # now invalid: quarantined, the hub keeps its name
        counts.append(lines(run(crm)))
        counts.append(lines(run(crm)))
        return counts

    def test_a_first_load_with_edge_cases_a_round_of_changes_and_a_quiet_run(self, crm, remote, settings):
        per_record, in_bulk = both_ways(settings, lambda: self.scenario(crm, remote))

        assert in_bulk == per_record
        first, second, third = per_record["counts"]
        # (pushes count too: the two unlinked hub clients go to the CRM on the first run)
        assert first == ["clients created=36 updated=2 unchanged=0 conflicts=0 quarantined=7"]
        assert second == ["clients created=1 updated=6 unchanged=2 conflicts=2 quarantined=3"]
        assert third == ["clients created=0 updated=1 unchanged=0 conflicts=0 quarantined=1"]
        assert len(in_bulk["refs"]) == 39 and len(in_bulk["issues"]) == 9

    def test_small_pages_give_the_same_results(self, crm, remote, settings):
        settings.SYNC_PAGE_SIZE = 7

        per_record, in_bulk = both_ways(settings, lambda: self.scenario(crm, remote))

        assert in_bulk == per_record

    def test_the_newest_wins_and_manual_policies_give_the_same_results(self, crm, remote, settings):
        for policy in ("newest_wins", "manual"):
            crm.conflict_policy = policy
            crm.save()

            per_record, in_bulk = both_ways(settings, lambda: self.scenario(crm, remote))

            assert in_bulk == per_record


@pytest.mark.django_db
class TestBulkPath:
    def test_a_page_emits_one_batch_event_instead_of_one_per_client(self, crm, remote, settings):
        settings.SYNC_BULK_MIN_RECORDS = 1
        for n in range(5):
            plain(remote, n)
        remote.put("clients", title="Bad INN", tax_id="7707083890")

        run(crm)

        created = sorted(Client.objects.values_list("pk", flat=True))
        event = DomainEvent.objects.get(type="clients.synced")
        assert event.origin == "sync:crm"
        assert sorted(event.payload["created"]) == created and event.payload["updated"] == []
        assert not DomainEvent.objects.filter(type__startswith="client.").exists()

        remote.put("clients", "101", title="Renamed")
        run(crm)

        latest = DomainEvent.objects.filter(type="clients.synced").order_by("-pk").first()
        assert latest.payload == {
            "created": [],
            "updated": [ExternalRef.objects.get(external_id="101").object_id],
        }

    def test_small_pages_keep_one_event_per_client(self, crm, remote, settings):
        settings.SYNC_BULK_MIN_RECORDS = 100
        plain(remote, 1)

        run(crm)

        assert DomainEvent.objects.filter(type="client.created").count() == 1
        assert not DomainEvent.objects.filter(type="clients.synced").exists()

    def test_quarantine_and_ambiguity_keep_their_readable_reasons(self, crm, remote, settings):
        settings.SYNC_BULK_MIN_RECORDS = 1
        ClientFactory(inn="", email="dup@x.test")
        ClientFactory(inn="", email="dup@x.test")
        plain(remote, 1)
        remote.put("clients", title="Bad INN", tax_id="7707083890")
        remote.put("clients", title="Dup", mail="dup@x.test")
        remote.put("clients", title="Twin A", mail="twin@x.test")
        remote.put("clients", title="Twin B", mail="twin@x.test")

        result = run(crm)

        # created: client 1 and Twin A pulled, the two unlinked hub clients pushed
        assert result.lines() == ["clients created=4 updated=0 unchanged=0 conflicts=0 quarantined=3"]
        reasons = dict(SyncIssue.objects.values_list("kind", "reason").order_by("pk")[:1])
        assert "INN checksum does not match" in reasons["invalid"]
        ambiguous = list(SyncIssue.objects.filter(kind="ambiguous").values_list("reason", flat=True))
        assert any("several hub records match by e-mail" in r for r in ambiguous)
        assert any("already linked to another record of crm" in r for r in ambiguous)

    def test_the_database_refusing_a_page_falls_back_to_record_by_record(
        self, crm, remote, settings, monkeypatch
    ):
        settings.SYNC_BULK_MIN_RECORDS = 1
        for n in range(3):
            plain(remote, n)

        def refuse(*args, **kwargs):
            raise IntegrityError("duplicate key value violates unique constraint")

        monkeypatch.setattr(bulk, "insert_rows", refuse)
        result = run(crm)

        assert result.lines() == ["clients created=3 updated=0 unchanged=0 conflicts=0 quarantined=0"]
        assert Client.objects.count() == 3 and ExternalRef.objects.count() == 3
        assert DomainEvent.objects.filter(type="client.created").count() == 3

    def test_new_clients_take_ids_the_hub_keeps_using(self, crm, remote, settings):
        settings.SYNC_BULK_MIN_RECORDS = 1
        for n in range(3):
            plain(remote, n)
        run(crm)

        later = ClientFactory()

        assert later.pk > max(Client.objects.exclude(pk=later.pk).values_list("pk", flat=True))
        if connection.vendor == "postgresql":
            assert Client.objects.count() == 4  # rows came in by COPY with ids from the sequence

    def test_an_unchanged_record_under_a_changed_mapping_is_mapped_again(self, crm, remote, settings):
        settings.SYNC_BULK_MIN_RECORDS = 1
        for n in range(3):
            plain(remote, n)
        run(crm)
        FieldMapping.objects.filter(connection=crm, entity="clients", canonical_field="name").update(
            transform="template", params={"template": "{title} Ltd"}
        )
        SyncCursor.objects.filter(connection=crm).update(position=None)  # read everything again

        result = run(crm)

        assert result.lines()[0].startswith("clients created=0 updated=3 unchanged=0")
        assert sorted(Client.objects.values_list("name", flat=True)) == [f"Client {n} Ltd" for n in range(3)]
        SyncCursor.objects.filter(connection=crm).update(position=None)
        assert run(crm).lines()[0].startswith("clients created=0 updated=0 unchanged=3")

    def test_a_dry_run_writes_nothing(self, crm, remote, settings):
        settings.SYNC_BULK_MIN_RECORDS = 1
        for n in range(3):
            plain(remote, n)

        result = run(crm, dry_run=True)

        assert result.lines() == ["clients created=3 updated=0 unchanged=0 conflicts=0 quarantined=0"]
        assert not Client.objects.exists() and not ExternalRef.objects.exists()


@pytest.mark.django_db
class TestBatchEventPush:
    def test_the_push_handler_sends_each_client_of_a_batch_to_the_other_connections(
        self, crm, remote, settings
    ):
        settings.SYNC_BULK_MIN_RECORDS = 1
        books, _ = services.connection_save(
            system="memory", name="books", url="memory://books", credentials={"token": "good"}
        )
        for n in range(3):
            plain(remote, n)
        run(crm)
        event = DomainEvent.objects.get(type="clients.synced")
        pushed_before = len(remote.upserts)

        event_handlers.push(event)

        assert len(remote.upserts) == pushed_before + 3
        linked = ExternalRef.objects.filter(connection=books, entity="clients")
        assert sorted(linked.values_list("object_id", flat=True)) == sorted(event.payload["created"])
        assert (
            not ExternalRef.objects.filter(connection=crm)
            .exclude(object_id__in=event.payload["created"])
            .exists()
        ), "nothing went back to crm, the batch's origin"


def test_compiled_mappings_map_exactly_like_to_canonical():
    rules = [
        Rule("clients", "name", "name"),
        Rule("clients", "legal.name", "legal_name"),
        Rule("clients", "kind", "kind", "in", "enum", {"map": {"ip": "person"}, "default": "company"}),
        Rule("clients", "phone", "phone", "in", "phone", {"region": "RU"}),
        Rule("clients", "country", "country", "in", "default", {"value": "RU"}),
        Rule("clients", "", "notes", "in", "template", {"template": "{name} / {legal.name}"}),
        Rule("clients", "", "address", "in", "constant", {"value": "Moscow"}),
        Rule("clients", "mail", "email", "out"),
        Rule("clients", "alt_name", "name"),
    ]
    records = [
        {"name": " ACME ", "legal": {"name": "LLC ACME"}, "kind": "ip", "phone": "8 916 123-45-67"},
        {"name": "", "alt_name": "Second source", "country": ""},
        {"phone": "call me"},
        {},
    ]
    compiled = compile_canonical(rules)
    for record in records:
        try:
            expected = to_canonical(record, rules)
        except Exception as exc:  # the same error, the same message
            with pytest.raises(type(exc)) as raised:
                compiled(record)
            assert str(raised.value) == str(exc)
            continue
        assert compiled(record) == expected
        assert bulk.fast_content_hash(compiled(record)) == content_hash(expected)


def test_bulk_takes_only_large_pages_of_clients(settings):
    settings.SYNC_BULK_MIN_RECORDS = 3
    page = [memory_connector.RemoteRecord(stream="clients", external_id=str(i), data={}) for i in range(3)]

    assert bulk.takes("clients", page)
    assert not bulk.takes("clients", page[:2])
    assert not bulk.takes("contacts", page)


@pytest.mark.django_db
def test_a_csv_file_with_duplicates_and_bad_rows_gives_the_same_results(tmp_path, settings, company):
    # given a file where one id repeats, two rows share an e-mail, one INN is wrong, one row changes later
    path = tmp_path / "clients.csv"
    rows = [
        "id;name;inn;kpp;email;phone",
        f"1;Alpha;{INN_X};770101001;alpha@x.test;+7 916 100-00-01",
        f"2;Beta;{inn_with_checksum('111222333')};;beta@x.test;8 916 100-00-02",
        "3;Gamma;7707083890;;gamma@x.test;",
        "4;Delta;;;alpha@x.test;",
        f"1;Alpha again;{INN_X};770101001;alpha@x.test;+7 916 100-00-01",
        ";No id;;;noid@x.test;",
        f"5;Epsilon;{INN_Y};;eps@x.test;+7 916 100-00-05",
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    csv_connection, _ = services.connection_save(system="csv", name="file", url=str(path))

    def scenario():
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        first = run(csv_connection).lines()
        path.write_text("\n".join([*rows, "5;Epsilon renamed;;;eps@x.test;"]) + "\n", encoding="utf-8")
        return [first, run(csv_connection).lines()]

    per_record, in_bulk = both_ways(settings, scenario)

    assert in_bulk == per_record
    assert per_record["counts"] == [
        ["clients created=4 updated=1 unchanged=0 conflicts=0 quarantined=2"],
        ["clients created=0 updated=3 unchanged=3 conflicts=0 quarantined=2"],  # id 1 flips twice, 5 once
    ]


def test_csv_records_carry_their_row_text_and_equal_texts_mean_equal_data(tmp_path):
    # given a file with a quoted comma, a short row and a row that differs from another in one cell
    from sync.connectors.base import ConnectionConfig, MemoryCredentialStore
    from sync.connectors.csv_files import CsvConnector

    path = tmp_path / "clients.csv"
    path.write_text(
        'id,name,email\n1,"Alpha, LLC",a@x.test\n2,Beta\n3,"Alpha, LLC",a@x.test\n', encoding="utf-8"
    )
    config = ConnectionConfig(name="f", system="csv", base_url=str(path), credentials=MemoryCredentialStore())

    # when the connector reads it
    records = list(CsvConnector(config).fetch("clients"))

    # then each record's source is the exact header and row, so equal sources mean equal data
    assert [r.data for r in records] == [
        {"id": "1", "name": "Alpha, LLC", "email": "a@x.test"},
        {"id": "2", "name": "Beta", "email": ""},
        {"id": "3", "name": "Alpha, LLC", "email": "a@x.test"},
    ]
    assert records[0].source == repr(["id", "name", "email"]) + "\n" + "1\x00Alpha, LLC\x00a@x.test"
    assert len({r.source for r in records}) == 3
    assert records[0] == memory_connector.RemoteRecord(
        stream="clients", external_id="1", data=records[0].data
    )
    assert vars(records[0]) == vars(
        memory_connector.RemoteRecord("clients", "1", records[0].data, source=records[0].source)
    )


def test_csv_records_make_their_data_when_first_read_and_equal_records_made_at_once(tmp_path):
    # given a file whose id column appears twice (the record's data keeps the last, as a dict would)
    import copy
    import pickle

    from sync.connectors.base import ConnectionConfig, MemoryCredentialStore
    from sync.connectors.csv_files import CsvConnector

    path = tmp_path / "clients.csv"
    path.write_text("id,name,id\n1,Alpha,A-1\n2,Beta,\n", encoding="utf-8")
    config = ConnectionConfig(name="f", system="csv", base_url=str(path), credentials=MemoryCredentialStore())

    # when the connector reads it
    first, second = CsvConnector(config).fetch("clients")

    # then the ids are the last id column's (a blank one: the row number), before any data is made
    assert (first.external_id, second.external_id) == ("A-1", "row-3")
    assert "data" not in vars(first)
    # a copy, a pickled record and the record itself all make the same data, once
    assert pickle.loads(pickle.dumps(first)) == copy.copy(first) == first
    assert first.data == {"id": "A-1", "name": "Alpha"}
    assert first.data is first.data
    assert first == memory_connector.RemoteRecord("clients", "A-1", {"id": "A-1", "name": "Alpha"})
    assert repr(second) == repr(memory_connector.RemoteRecord("clients", "row-3", {"id": "", "name": "Beta"}))
    assert not hasattr(first, "missing")
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = first.missing


def test_a_csv_row_whose_text_holds_a_nul_keeps_an_exact_source(tmp_path):
    # given two rows that would join to the same text if a NUL inside a value were taken as a separator
    from sync.connectors.base import ConnectionConfig, MemoryCredentialStore
    from sync.connectors.csv_files import CsvConnector

    path = tmp_path / "clients.csv"
    path.write_text("id,a,b\n1,x\x00,y\n1,x,\x00y\n", encoding="utf-8")
    config = ConnectionConfig(name="f", system="csv", base_url=str(path), credentials=MemoryCredentialStore())

    # when the connector reads them
    first, second = CsvConnector(config).fetch("clients")

    # then their sources differ, as their data do
    assert first.data != second.data
    assert first.source != second.source
    assert first.source.endswith(repr(["1", "x\x00", "y"]))


@pytest.mark.django_db
def test_unchanged_csv_rows_are_told_by_their_row_text_and_old_data_hashes_are_refreshed(tmp_path, settings):
    # given a csv connection whose file was pulled once, its refs then hashed the former way (the data)
    from sync.engine import Context, record_source_hash, source_hash

    path = tmp_path / "clients.csv"
    rows = ["id;name;email"] + [f"{n};Client {n};c{n}@x.test" for n in range(1, 6)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    csv_connection, _ = services.connection_save(system="csv", name="file", url=str(path))

    def scenario():
        first = run(csv_connection).lines()
        ctx = Context(connection=csv_connection, connector=services.connector_for(csv_connection))
        fingerprint = ctx.rules_fingerprint("clients")
        records = {r.external_id: r for r in ctx.connector.fetch("clients")}
        raw = {k: record_source_hash(r, fingerprint) for k, r in records.items()}
        stored = dict(ExternalRef.objects.values_list("external_id", "source_hash"))
        for ref in ExternalRef.objects.all():
            ref.source_hash = source_hash(records[ref.external_id].data, fingerprint)
            ref.save(update_fields=["source_hash"])
        # when it is pulled again, twice
        second = run(csv_connection).lines()
        refreshed = dict(ExternalRef.objects.values_list("external_id", "source_hash"))
        third = run(csv_connection).lines()
        return [first, second, third, stored == raw, refreshed == raw]

    per_record, in_bulk = both_ways(settings, scenario)

    # then both ways store the row's hash, find every row unchanged and refresh the former hashes
    assert in_bulk == per_record
    assert per_record["counts"] == [
        ["clients created=5 updated=0 unchanged=0 conflicts=0 quarantined=0"],
        ["clients created=0 updated=0 unchanged=5 conflicts=0 quarantined=0"],
        ["clients created=0 updated=0 unchanged=5 conflicts=0 quarantined=0"],
        True,
        True,
    ]


@pytest.mark.django_db
def test_an_unchanged_page_is_told_by_one_count_and_writes_nothing(tmp_path, settings):
    # given a csv file pulled once in bulk
    from django.test.utils import CaptureQueriesContext

    settings.SYNC_BULK_MIN_RECORDS = 1
    path = tmp_path / "clients.csv"
    path.write_text("id,name,email\n" + "".join(f"{n},Client {n},c{n}@x.test\n" for n in range(1, 6)))
    csv_connection, _ = services.connection_save(system="csv", name="file", url=str(path))
    assert run(csv_connection).lines() == [
        "clients created=5 updated=0 unchanged=0 conflicts=0 quarantined=0"
    ]

    # when it is pulled again unchanged
    with CaptureQueriesContext(connection) as queries:
        second = run(csv_connection).lines()

    # then every row is unchanged, and neither the clients, the refs nor the quarantine were touched
    assert second == ["clients created=0 updated=0 unchanged=5 conflicts=0 quarantined=0"]
    touched = [
        q["sql"]
        for q in queries.captured_queries
        if re.search(r"\b(hub_client|sync_externalref|sync_syncissue)\b", q["sql"])
        and re.match(r"\s*(INSERT|UPDATE|DELETE)", q["sql"], re.IGNORECASE)
    ]
    assert touched == []
    assert not [q for q in queries.captured_queries if "sync_syncissue" in q["sql"]]
    lookups = [q["sql"] for q in queries.captured_queries if "sync_externalref" in q["sql"]]
    if connection.vendor == "sqlite":  # (on PostgreSQL the lookups bypass Django's query log)
        assert len(lookups) == 1 and "COUNT(*)" in lookups[0]


@pytest.mark.django_db
def test_lookups_by_many_ids_find_every_id_whatever_its_text(settings):
    # given refs whose external ids are plain, hold the separator the lookup joins ids with, or are blank
    from sync.bulk_sql import in_clause, select

    conn, _ = services.connection_save(system="csv", name="ids", url="/tmp/none.csv")
    ids = ["a", "b\x1fc", "", "d,e", "quote'd", "тест"]
    for n, external_id in enumerate(ids, start=1):
        ExternalRef.objects.create(connection=conn, entity="clients", external_id=external_id, object_id=n)

    def found(values, **kwargs):
        in_sql, params = in_clause("external_id", values)
        sql = f"SELECT external_id FROM sync_externalref WHERE connection_id = %s AND {in_sql}"
        return sorted(row[0] for row in select(sql, [conn.pk, *params], **kwargs))

    # when they are looked up together, in groups, by index probes or not
    # then each lookup finds exactly the ids asked for
    assert found(ids) == sorted(ids)
    assert found(["a", "d,e", "тест", "missing"]) == sorted(["a", "d,e", "тест"])
    assert found(["b\x1fc", "a"]) == ["a", "b\x1fc"]
    assert found([""]) == [""]
    assert found(["quote'd"], probe=True) == ["quote'd"]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW enable_seqscan")
            assert cursor.fetchone()[0] == "on"  # the probe's setting ends with its statement


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # (like every transactional test here)
def test_a_large_pull_leaves_the_tables_vacuumed_and_analyzed(tmp_path, settings):
    # given a csv file of 5 clients and a vacuum threshold of 3 written clients
    settings.SYNC_BULK_MIN_RECORDS = 1
    settings.SYNC_VACUUM_AFTER = 3
    path = tmp_path / "clients.csv"
    path.write_text("id,name\n" + "".join(f"{n},Client {n}\n" for n in range(1, 6)))
    csv_connection, _ = services.connection_save(system="csv", name="file", url=str(path))

    # when it is pulled, then pulled again unchanged
    first = run(csv_connection).lines()
    second = run(csv_connection).lines()

    # then the first pull vacuumed the refs and clients (on PostgreSQL), and nothing else changed
    assert first == ["clients created=5 updated=0 unchanged=0 conflicts=0 quarantined=0"]
    assert second == ["clients created=0 updated=0 unchanged=5 conflicts=0 quarantined=0"]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relname, vacuum_count > 0, analyze_count > 0 FROM pg_stat_user_tables "
                "WHERE relname IN ('sync_externalref', 'hub_client') ORDER BY relname"
            )
            assert cursor.fetchall() == [("hub_client", True, True), ("sync_externalref", True, True)]


@pytest.mark.django_db
def test_the_covering_refs_index_migration_is_idempotent_and_reversible():
    import importlib
    from types import SimpleNamespace

    migration = importlib.import_module("sync.migrations.0004_ref_lookup_covering")
    editor = SimpleNamespace(connection=connection)

    def definition():
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'sync_ref_external'")
            return cursor.fetchone()[0]

    # given the migrated database; when the migration runs again, then nothing changes
    before = definition()
    migration.covering(None, editor)
    assert definition() == before
    # when it is reversed and applied again, then the index is plain, then covering as before
    migration.plain(None, editor)
    if before is not None:
        assert "INCLUDE" in before and "INCLUDE" not in definition()
    migration.covering(None, editor)
    assert definition() == before


@pytest.mark.django_db
def test_a_page_lookup_bounded_by_its_lowest_and_highest_id_finds_every_ref():
    # given refs whose ids sort differently byte by byte and by language (case, accents, scripts)
    import random
    from types import SimpleNamespace

    from sync import bulk
    from sync.bulk_sql import ids_in_c_order, select

    conn, _ = services.connection_save(system="csv", name="order", url="/tmp/none.csv")
    ids = [
        "A",
        "a",
        "Z",
        "z",
        "0",
        "9",
        "É",
        "é",
        "e",
        "Я",
        "я",
        "ß",
        "~",
        " a",
        "a ",
        "😀",
        "a-1",
        "a_1",
        "ä",
    ]
    for n, external_id in enumerate(ids, start=1):
        ExternalRef.objects.create(connection=conn, entity="clients", external_id=external_id, object_id=n)
    page = bulk._Page.__new__(bulk._Page)
    page.ctx = SimpleNamespace(connection=conn)

    # when pages of them are looked up (bounded by their min and max where the ids compare by bytes)
    # then each lookup finds exactly its page's refs
    assert ids_in_c_order(ExternalRef) == (connection.vendor == "postgresql")
    rng = random.Random(5)
    for _ in range(40):
        wanted = rng.sample(ids, rng.randrange(1, len(ids) + 1))
        where, params = page._where([*wanted, "missing"])
        rows = select(f"SELECT external_id FROM sync_externalref WHERE {where}", params)
        assert sorted(row[0] for row in rows) == sorted(wanted)


@pytest.mark.django_db
def test_the_bytewise_external_id_migration_is_idempotent_and_reversible():
    import importlib
    from types import SimpleNamespace

    from sync import bulk_sql

    migration = importlib.import_module("sync.migrations.0005_ref_external_id_bytewise")
    editor = SimpleNamespace(connection=connection)

    def collation():
        if connection.vendor != "postgresql":
            return None
        bulk_sql._CATALOG.clear()  # (read afresh: the migration changes it)
        return bulk_sql.column_collation("sync_externalref", "external_id")

    # given the migrated database; when the migration runs again, then nothing changes
    before = collation()
    assert before in (None, "C")
    migration.bytewise(None, editor)
    assert collation() == before
    # when it is reversed and applied again, then the ids compare by the default collation, then by bytes
    try:
        migration.default(None, editor)
        if before is not None:
            assert collation() == "default"
            assert not bulk_sql.ids_in_c_order(ExternalRef)
    finally:
        migration.bytewise(None, editor)
    assert collation() == before


@pytest.mark.django_db
def test_a_failing_probe_lookup_raises_its_own_error():
    # given a lookup by index probes that the database refuses
    from django.db import DatabaseError

    from sync.bulk_sql import select

    # when it runs, then its own error surfaces (not one about the aborted transaction)
    with pytest.raises(DatabaseError, match="no_such_column"), transaction.atomic():
        select("SELECT no_such_column FROM sync_externalref", [], probe=True)


@pytest.mark.django_db
def test_a_row_the_database_refuses_in_a_bulk_insert_is_an_integrity_error():
    # given a client row that breaks a database rule (a phone not in E.164)
    from django.utils import timezone

    from sync.bulk_sql import insert_rows

    row = {"kind": "company", "name": "Broken", "country": "RU", "phone": "not a phone", "vat_mode": ""}

    # when it is inserted the bulk way (COPY on PostgreSQL), then it is Django's IntegrityError, the
    # one `bulk.apply_page` falls back on
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows(Client, [row], now=timezone.now())
