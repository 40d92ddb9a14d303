"""External ids compare byte by byte (collation "C") on PostgreSQL. They are opaque identifiers, so
byte order is their natural order, and it is the order Python gives texts: a pull's lookup of a page
bounds its scan of the unique (connection, entity, external_id) index by the page's lowest and
highest id (`sync.bulk_sql.ids_in_c_order`), ~12 ms instead of ~28 ms for 10,000 refs among 100,000
when the ids run in sequence, and byte comparisons are cheaper than the database's default
collation. Uniqueness does not change: a deterministic collation already tells texts apart by their
bytes. PostgreSQL only; the model keeps the default so SQLite (which has no "C") is unaffected.
Idempotent: running it again changes nothing."""

from django.db import migrations

TABLE = "sync_externalref"


def _collate(connection, collation: str) -> None:
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation "
            "WHERE a.attrelid = %s::regclass AND a.attname = 'external_id'",
            [TABLE],
        )
        (current,) = cursor.fetchone()
        if current == collation:
            return
        quoted = '"C"' if collation == "C" else 'pg_catalog."default"'
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN external_id TYPE varchar(255) COLLATE {quoted}")


def bytewise(apps, schema_editor):
    _collate(schema_editor.connection, "C")


def default(apps, schema_editor):
    _collate(schema_editor.connection, "default")


class Migration(migrations.Migration):
    dependencies = [("sync", "0004_ref_lookup_covering")]

    operations = [migrations.RunPython(bytewise, default)]
