"""timestamptz values read through ``hub.pg_timestamps`` are the datetimes Django's own loader builds."""

import datetime

import pytest
from django.db import DataError, connection
from django.db.backends.postgresql.psycopg_any import BaseTzLoader

from hub.pg_timestamps import UtcTimestamptzLoader

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only"),
]

SAMPLES = [
    "2025-07-19 08:10:38.230799+00",
    "2025-07-19 08:10:38+03",
    "2025-07-19 08:10:38.5-02:30",
    "1850-01-01 00:00:00+02:30:17",  # a zone's local mean time, with seconds in the offset
    "0500-01-01 00:00:00+00",
]


def _load(sql: str, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def test_utc_sessions_use_the_fast_loader():
    # Given the default settings (USE_TZ, no database TIME_ZONE), when a connection is opened,
    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(1184, 0)  # timestamptz, text
    # then timestamptz goes through the fromisoformat loader, which Django leaves on every cursor.
    assert loader is UtcTimestamptzLoader
    with connection.cursor() as cursor:
        assert cursor.cursor.adapters.get_loader(1184, 0) is UtcTimestamptzLoader


@pytest.mark.parametrize("text", SAMPLES)
def test_values_match_djangos_loader(text):
    # Given a timestamp as PostgreSQL writes it in a UTC session,
    fast = _load("SELECT %s::timestamptz", [text])

    # when Django's own loader reads the same value,
    class DjangoUtcLoader(BaseTzLoader):
        timezone = datetime.UTC

    connection.connection.adapters.register_loader("timestamptz", DjangoUtcLoader)
    try:
        with connection.cursor() as cursor:
            cursor.cursor.adapters.register_loader("timestamptz", DjangoUtcLoader)
            cursor.execute("SELECT %s::timestamptz", [text])
            expected = cursor.fetchone()[0]
    finally:
        connection.connection.adapters.register_loader("timestamptz", UtcTimestamptzLoader)
    # then both give the same aware datetime, in UTC.
    assert fast == expected
    assert fast.tzinfo is datetime.UTC


@pytest.mark.parametrize("text", ["infinity", "0044-03-15 12:00:00+00 BC"])
def test_values_python_cannot_hold_fail_as_before(text):
    # Given a value fromisoformat refuses and Python cannot represent, when it is read,
    # then the old way takes over and psycopg's own error surfaces.
    with pytest.raises(DataError, match="timestamp too"):
        _load("SELECT %s::timestamptz", [text])
