"""Many rows in few statements, for the bulk pull (`sync.bulk`): lookups by an array parameter, COPY
for new rows (PostgreSQL; `bulk_create` elsewhere) and pipelined updates."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.db import connection, models

_SEPARATOR = "\x1f"  # (unit separator) not in any id in practice; checked, else an array


def in_clause(column: str, values: list[Any]) -> tuple[str, list[Any]]:
    """`column IN values`: one array parameter on PostgreSQL, a parameter each elsewhere. Texts go as
    one string split by the server (`string_to_array`): psycopg builds an array parameter element by
    element in Python, which costs more than the lookup's own planning."""
    if connection.vendor == "postgresql":
        if values and "" not in values:
            try:
                joined = _SEPARATOR.join(values)
            except TypeError:  # not all texts
                joined = ""
            if joined and joined.count(_SEPARATOR) == len(values) - 1:
                return f"{column} = ANY(string_to_array(%s, E'\\x1f'))", [joined]
        return f"{column} = ANY(%s)", [values]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


def select(sql: str, params: list[Any], *, probe: bool = False) -> list[tuple]:
    """Rows of a lookup by an array parameter. On PostgreSQL the statement is never prepared: the
    settings prepare a statement from its second run (`prepare_threshold`), and after five runs the
    server may keep a generic plan, in which `= ANY($n)` is a parameter the planner cannot hash, so
    each row is compared with the whole array (10,000 refs x 100,000 rows: ~15 s a page, seen on a
    freshly loaded table without statistics). Unprepared, the array is a constant the planner hashes
    whatever the statistics: ~40 ms for a page of 10,000 against 100,000 rows.

    `probe`: look each value up in an index rather than scan the table (`enable_seqscan` off for
    this statement). The planner prices a scan of the whole table with the array hashed below 10,000
    index probes, but the scan grows with the table and the probes only with the page: for clients
    matched by INN, e-mail and phone, 15-22 ms instead of 35-70 ms a page at 100,000 clients."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            return _select_unprepared(cursor.cursor, sql, params, probe=probe)
        cursor.execute(sql, params)
        return cursor.fetchall()


def _select_unprepared(raw: Any, sql: str, params: list[Any], *, probe: bool) -> list[tuple]:
    with connection.wrap_database_errors:  # psycopg's errors as Django's, as through Django's cursor
        if probe:
            raw.execute("SET LOCAL enable_seqscan = off")
        raw.execute(sql, params, prepare=False)
        rows = raw.fetchall()
        if probe:  # (when the lookup fails, rolling its transaction back undoes the SET LOCAL)
            raw.execute("RESET enable_seqscan")
        return rows


def insert_rows(model: type[models.Model], rows: list[dict[str, Any]], *, now) -> None:
    """Insert rows (dicts by attname; missing columns take the field default) and set each row's "id":
    COPY on PostgreSQL with ids drawn from the table's sequence first, `bulk_create` elsewhere."""
    fields = list(model._meta.concrete_fields)
    defaults = {f.attname: f.get_default() for f in fields if f.attname != "id"}
    stamps = [f.attname for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    needed = defaults.keys()
    for row in rows:
        if not row.keys() >= needed:  # (a whole row, as `sync.bulk` builds a client's, is left alone)
            for name, value in defaults.items():
                row.setdefault(name, value)
        for name in stamps:
            row[name] = now
    if connection.vendor != "postgresql":
        objs = [model(**row) for row in rows]
        model.objects.bulk_create(objs, batch_size=500)
        for row, obj in zip(rows, objs, strict=True):
            row["id"] = obj.pk
        return
    table = model._meta.db_table
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [_sequence(model), len(rows)]
        )
        for row, (pk,) in zip(rows, cursor.fetchall(), strict=True):
            row["id"] = pk
        columns = ", ".join(quote(f.column) for f in fields)
        jsons = {f.attname for f in fields if isinstance(f, models.JSONField)}
        names = [f.attname for f in fields]
        # (psycopg's errors as Django's: a refused row is an IntegrityError the caller can handle)
        with (
            connection.wrap_database_errors,
            cursor.cursor.copy(f"COPY {quote(table)} ({columns}) FROM STDIN") as copy_in,
        ):
            write = copy_in.write_row
            if not jsons:
                for row in rows:
                    write([row[name] for name in names])
                return
            for row in rows:
                write([json.dumps(row[n]) if n in jsons and row[n] is not None else row[n] for n in names])


_CATALOG: dict[tuple[str, str, tuple], Any] = {}
_COLLATION = (
    "SELECT c.collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation "
    "WHERE a.attrelid = %s::regclass AND a.attname = %s"
)


def catalog(sql: str, *params: Any) -> Any:
    """The first value a catalog query gives (None for no row), read once per database and process:
    what it reads (a column's collation, a table's sequence) changes only with a migration."""
    key = (connection.settings_dict["NAME"], sql, params)
    if key not in _CATALOG:
        with connection.cursor() as cursor:
            cursor.execute(sql, list(params))
            row = cursor.fetchone()
        _CATALOG[key] = row[0] if row else None
    return _CATALOG[key]


def column_collation(table: str, column: str) -> str | None:
    """The name of a column's collation ("default" when it has none of its own); PostgreSQL."""
    return catalog(_COLLATION, table, column)


def ids_in_c_order(model: type[models.Model]) -> bool:
    """Whether the model's `external_id` is compared byte by byte (collation "C", PostgreSQL; see
    migration sync/0005): then Python's `min` and `max` of some ids bound them in the index's own
    order, and a lookup may scan only that range."""
    if connection.vendor != "postgresql":
        return False
    return column_collation(model._meta.db_table, "external_id") in ("C", "POSIX")


def _sequence(model: type[models.Model]) -> str:
    """The name of the sequence behind the model's id: called in the per-row `nextval`,
    `pg_get_serial_sequence` is evaluated for each row (it is only stable), ~45 ms for 10,000 ids
    against ~6 ms for the name given."""
    return catalog("SELECT pg_get_serial_sequence(%s, %s)", model._meta.db_table, model._meta.pk.column)


def update_rows(model: type[models.Model], objs: list[models.Model], names: Iterable[str]) -> None:
    """`UPDATE ... SET <names> WHERE id` for each object, as one batch (`executemany`: pipelined on
    PostgreSQL); cheaper than `bulk_update`'s CASE per field and row."""
    fields = [model._meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    sets = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    params = [
        [*(f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields), obj.pk] for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {quote(model._meta.db_table)} SET {sets} WHERE id = %s", params)
