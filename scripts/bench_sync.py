"""make bench-sync: clients from a CSV file through the sync engine into PostgreSQL.

The real path end to end: the `csv` connector streams the file, the engine maps ► validates ►
matches ► upserts (for pages of clients: `sync.bulk`), one `sync_run` per pass, as
`manage.py sync bench --entity clients` would run it. Three passes over one file of `--rows` clients
(valid INN with KPP, e-mail, phone, address): the first load into an empty hub, the same file again
unchanged, then the file with 1 % of the rows changed. Prints

    BENCH sync_first_load <n> records/s
    BENCH sync_unchanged <n> records/s
    BENCH sync_one_percent <n> records/s
    BENCH sync_peak_rss <n> MB
    BENCH sync_copy_floor <n> records/s

The last figure is a bound, not a pass: after each round, the clients and their links as the engine
stored them are dumped, the two tables emptied, and the rows loaded back by COPY in pages of the same
size, one transaction each, with no Python work per row. That is what PostgreSQL alone needs to store
a first load with the hub's schema (its indexes and constraints), so no first load can beat it.

The three passes run `--repeat` times (default 3), each round on a fresh copy of the migrated empty
database, and each figure is the median of the rounds: on a shared 2-core virtual machine one run
can be 25 % off the next. Every round's times are printed before the figures.

With `--memory-check` the same passes run first in a child process with half the rows, so the two
peak RSS figures show that memory is flat in the file's size (the connector and the engine stream).

The database is `--database` (default from DATABASE_URL: hub_bench_sync), migrated first.
SYNC_PAGE_SIZE (records per page and transaction) defaults to 10,000 here (500 in settings).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/hub_bench_sync"


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", "100000")))
    parser.add_argument("--database", default=None, help="database name (default: from DATABASE_URL)")
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", "3")))
    parser.add_argument("--memory-check", action="store_true", help="first run half the rows in a child")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


ARGS = _args()
URL = os.environ.get("DATABASE_URL", DEFAULT_URL)
if ARGS.database:
    URL = URL.rsplit("/", 1)[0] + "/" + ARGS.database
DB_NAME = URL.rsplit("/", 1)[1]
os.environ["DATABASE_URL"] = URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret")
os.environ.setdefault("ALLOWED_HOSTS", "localhost")
os.environ.setdefault("STATIC_MANIFEST", "false")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("SYNC_PAGE_SIZE", "10000")
# Events are queued after each page's commit; a worker would dispatch them. Nothing consumes here.
os.environ.setdefault("CELERY_BROKER_URL", "memory://")


TEMPLATE = f"{DB_NAME}_empty"


def admin(*statements: str) -> None:
    import psycopg

    with psycopg.connect(URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def fresh_database(template: str | None = None) -> None:
    """An empty database (or a copy of `template`) under DB_NAME."""
    from django.db import connections

    connections.close_all()
    copy = f' TEMPLATE "{template}"' if template else ""
    admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', f'CREATE DATABASE "{DB_NAME}"{copy}')


def inn_with_checksum(base: str) -> str:
    """Complete a 9-digit base into a valid 10-digit company INN (as tests/factories.py does)."""
    weights = (2, 4, 10, 3, 5, 9, 4, 6, 8)
    return base + str(sum(int(d) * w for d, w in zip(base, weights, strict=True)) % 11 % 10)


def write_csv(path: Path, rows: int, *, changed_every: int | None = None) -> int:
    """Stream `rows` clients to `path`; every `changed_every`-th row renamed. Returns rows changed."""
    import csv

    changed = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "name", "legal_name", "kind", "inn", "kpp", "email", "phone", "address"])
        for i in range(rows):
            name = f"Client {i:06d}"
            address = f"Moscow, Tverskaya st. {i % 200 + 1}, office {i % 97 + 1}"
            if changed_every and i % changed_every == 0:
                name += " (renamed)"
                address = address.replace("Moscow", "St Petersburg")
                changed += 1
            out.writerow(
                [
                    f"C{i:07d}",
                    name,
                    f'LLC "{name}"',
                    "company",
                    inn_with_checksum(f"77{i:07d}"),
                    "770101001",
                    f"client{i}@example.com",
                    f"+7 916 {i // 10000:03d}-{i // 100 % 100:02d}-{i % 100:02d}",
                    address,
                ]
            )
    return changed


def copy_floor(rows: int, folder: Path) -> float:
    """Records/s at which PostgreSQL stores the clients and links now in the database again, by COPY
    alone (see the module docstring). Streams through two files, so memory stays flat."""
    from itertools import islice

    import psycopg
    from django.conf import settings

    from hub.models import Client
    from sync.models import ExternalRef

    tables = (Client._meta.db_table, ExternalRef._meta.db_table)
    dumps = {table: folder / f"{table}.copy" for table in tables}
    with psycopg.connect(URL) as conn:
        for table, dump in dumps.items():
            with dump.open("wb") as out, conn.cursor().copy(f"COPY {table} TO STDOUT") as copy:
                for block in copy:
                    out.write(block)
        conn.execute(f"TRUNCATE {', '.join(tables)} CASCADE")  # (nothing else refers to them here)
        conn.commit()
        page = settings.SYNC_PAGE_SIZE
        files = [dumps[table].open("rb") for table in tables]
        try:
            started = time.perf_counter()
            while True:
                lines = [list(islice(f, page)) for f in files]
                if not any(lines):
                    break
                for table, chunk in zip(tables, lines, strict=True):
                    if chunk:
                        with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                            copy.write(b"".join(chunk))
                conn.commit()
            seconds = time.perf_counter() - started
        finally:
            for f in files:
                f.close()
            for dump in dumps.values():
                dump.unlink(missing_ok=True)
        (stored,) = conn.execute(f"SELECT COUNT(*) FROM {tables[0]}").fetchone()
    if stored != rows:
        sys.exit(f"COPY floor: {stored} clients stored again, expected {rows}")
    if not ARGS.child:
        print(f"  COPY floor: {rows:,} clients and their links stored again in {seconds:.2f} s", flush=True)
    return rows / seconds


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    if ARGS.memory_check and not ARGS.child:
        half = ARGS.rows // 2
        args = ["--rows", str(half), "--database", f"{DB_NAME}_half", "--child", "--repeat", "1"]
        child = subprocess.run(
            [sys.executable, __file__, *args],
            check=True,
            capture_output=True,
            text=True,
        )
        half_rss = next(line for line in child.stdout.splitlines() if line.startswith("BENCH sync_peak_rss"))
        print(f"memory check: {half:,} rows, peak RSS {half_rss.split()[2]} MB", flush=True)

    import django

    fresh_database()
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.db import connections

    connections.close_all()
    admin(
        f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)',
        f'CREATE DATABASE "{TEMPLATE}" TEMPLATE "{DB_NAME}"',
    )
    from django.conf import settings

    from hub.models import Client
    from sync import services

    folder = Path(settings.VAR_DIR) / "bench_sync"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"clients-{ARGS.rows}.csv"
    quiet = ARGS.child

    def sync(connection, label: str, expect: dict[str, int]) -> float:
        connection.refresh_from_db()
        profile = os.environ.get("BENCH_PROFILE")  # a path prefix: one cProfile dump per pass
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        started = time.perf_counter()
        result = services.sync_run(connection=connection, entity="clients")
        seconds = time.perf_counter() - started
        if profile:
            profiler.disable()
            profiler.dump_stats(f"{profile}.{label.split()[0]}")
        counts = vars(result.counts["clients"])
        wrong = {k: (counts[k], v) for k, v in expect.items() if counts[k] != v}
        if wrong or not result.ok:
            sys.exit(f"{label}: unexpected result {result.run.status} {result.run.error} {counts}")
        if not quiet:
            print(f"  {label}: {ARGS.rows:,} records in {seconds:.2f} s  ({result.lines()[0]})", flush=True)
        return ARGS.rows / seconds

    print(
        f"bench-sync: {ARGS.rows:,} clients, page size {settings.SYNC_PAGE_SIZE}, database {DB_NAME}, "
        f"{ARGS.repeat} round(s)",
        flush=True,
    )
    figures: dict[str, list[float]] = {"first": [], "unchanged": [], "one_percent": [], "floor": []}
    for round_ in range(1, ARGS.repeat + 1):
        if round_ > 1:
            fresh_database(TEMPLATE)
        if not quiet:
            print(f" round {round_}", flush=True)
        write_csv(path, ARGS.rows)
        connection, _ = services.connection_save(system="csv", name="bench", url=str(path))
        figures["first"].append(sync(connection, "first load", {"created": ARGS.rows, "quarantined": 0}))
        assert Client.objects.count() == ARGS.rows
        figures["unchanged"].append(
            sync(connection, "unchanged", {"unchanged": ARGS.rows, "created": 0, "updated": 0})
        )
        changed = write_csv(path, ARGS.rows, changed_every=100)
        expect = {"updated": changed, "unchanged": ARGS.rows - changed, "created": 0}
        figures["one_percent"].append(sync(connection, "1 % changed", expect))
        figures["floor"].append(copy_floor(ARGS.rows, folder))
    rss = peak_rss_mb()
    print(f"BENCH sync_first_load {statistics.median(figures['first']):.0f} records/s")
    print(f"BENCH sync_unchanged {statistics.median(figures['unchanged']):.0f} records/s")
    print(f"BENCH sync_one_percent {statistics.median(figures['one_percent']):.0f} records/s")
    print(f"BENCH sync_peak_rss {rss:.0f} MB")
    print(f"BENCH sync_copy_floor {statistics.median(figures['floor']):.0f} records/s", flush=True)
    path.unlink(missing_ok=True)
    connections.close_all()
    admin(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
    if ARGS.child:
        return
    if ARGS.memory_check:
        admin(f'DROP DATABASE IF EXISTS "{DB_NAME}_half" WITH (FORCE)')


if __name__ == "__main__":
    main()
