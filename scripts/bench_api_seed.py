"""Seed the benchmark database: 5 channels, 20 managers and N clients (default 100,000), fast.

Run by ``scripts/bench_api.sh`` against a freshly migrated, empty database (``DATABASE_URL`` points at
``hub_bench``). Clients go in through PostgreSQL ``COPY`` (psycopg 3) in batches of 5,000 rows, which takes
a couple of seconds for 100,000 rows; on another database engine it falls back to ``bulk_create``.

The column list is taken from the model, so a column the model gains later is filled with its Python
default; only the fields that matter for the API are generated here. The values satisfy the table's
check constraints: INN is 10 (company) or 12 (person) digits and unique, KPP matches
``^\\d{4}[0-9A-Z]{2}\\d{3}$`` (companies only), phones are E.164, e-mails are unique.

Usage: python scripts/bench_api_seed.py [--clients 100000] [--batch 5000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from hub.models import Channel, Client  # noqa: E402

CHANNELS = [
    ("Context advertising", "context-ads"),
    ("Referral", "referral"),
    ("Exhibition", "exhibition"),
    ("Cold calls", "cold-calls"),
    ("Website", "website"),
]
FIRST = ["Ivan", "Anna", "Petr", "Olga", "Sergey", "Maria", "Dmitry", "Elena", "Alexey", "Natalia"]
LAST = ["Ivanov", "Petrova", "Sidorov", "Smirnova", "Kuznetsov", "Popova", "Volkov", "Sokolova"]
WORDS = [
    "Alfa",
    "Vektor",
    "Stroy",
    "Tekh",
    "Servis",
    "Logistik",
    "Prom",
    "Trade",
    "Soft",
    "Agro",
    "Mega",
    "Nord",
]
FORMS = ["LLC", "JSC", "PJSC"]
CITIES = ["Moscow", "Saint Petersburg", "Kazan", "Novosibirsk", "Yekaterinburg", "Samara", "Tver"]
STREETS = ["Lenina", "Mira", "Sadovaya", "Tverskaya", "Pushkina", "Gagarina"]


def seed_reference(n_managers: int) -> tuple[list[int], list[int]]:
    channels = Channel.objects.bulk_create([Channel(name=name, code=code) for name, code in CHANNELS])
    User = get_user_model()
    password = make_password(None)  # unusable: these users never log in
    managers = User.objects.bulk_create(
        [
            User(
                username=f"manager{i:02d}",
                first_name=FIRST[i % len(FIRST)],
                last_name=LAST[i % len(LAST)],
                email=f"manager{i:02d}@bench.example",
                password=password,
                is_staff=True,
            )
            for i in range(1, n_managers + 1)
        ]
    )
    return [c.pk for c in channels], [u.pk for u in managers]


def client_values(i: int, rnd: random.Random, channel_ids: list[int], manager_ids: list[int], now) -> dict:
    """The generated fields of client number ``i`` (0-based); the rest take the model defaults."""
    created = now - timedelta(seconds=rnd.randint(0, 2 * 365 * 86400))
    updated = min(now, created + timedelta(seconds=rnd.randint(0, 90 * 86400)))
    city = rnd.choice(CITIES)
    address = f"{city}, {rnd.choice(STREETS)} st., {rnd.randint(1, 150)}, office {rnd.randint(1, 500)}"
    if i % 5 == 4:  # every fifth client is a person (individual entrepreneur): 12-digit INN, no KPP
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        name = f"{last} {first}"
        values = {
            "kind": "person",
            "name": name,
            "legal_name": f"IE {name}",
            "inn": f"{500000000000 + i:012d}",
            "kpp": "",
            "ogrn": f"{300000000000000 + i:015d}",
        }
    else:
        word = f"{rnd.choice(WORDS)}{rnd.choice(WORDS).lower()}"
        values = {
            "kind": "company",
            "name": f"{word} {i}",
            "legal_name": f'{rnd.choice(FORMS)} "{word} {i}"',
            "inn": f"{7700000000 + i:010d}",
            "kpp": f"{7701 + i % 90:04d}01001",
            "ogrn": f"{1027700000000 + i:013d}",
        }
    values.update(
        {
            "country": "RU",
            "email": f"client{i}@bench.example",
            "phone": f"+7916{i:07d}",
            "address": address,
            "manager_id": manager_ids[i % len(manager_ids)],
            "channel_id": channel_ids[i % len(channel_ids)],
            "created_at": created,
            "updated_at": updated,
        }
    )
    return values


def _fields():
    """Concrete columns except the primary key, in model order."""
    return [f for f in Client._meta.concrete_fields if not f.primary_key]


def _default(field):
    return field.get_default() if field.has_default() or field.null or field.blank else None


def seed_clients_copy(n: int, batch: int, rnd, channel_ids, manager_ids) -> None:
    fields = _fields()
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(Client._meta.db_table)
    defaults = {f.attname: _default(f) for f in fields}
    now = timezone.now()
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
        for start in range(0, n, batch):
            with transaction.atomic(), raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for i in range(start, min(start + batch, n)):
                    values = client_values(i, rnd, channel_ids, manager_ids, now)
                    copy.write_row([values.get(f.attname, defaults[f.attname]) for f in fields])


def seed_clients_orm(n: int, batch: int, rnd, channel_ids, manager_ids) -> None:
    now = timezone.now()
    for start in range(0, n, batch):
        rows = [
            Client(**client_values(i, rnd, channel_ids, manager_ids, now))
            for i in range(start, min(start + batch, n))
        ]
        # auto_now/auto_now_add overwrite the generated timestamps here; acceptable for a fallback.
        Client.objects.bulk_create(rows, batch_size=batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--managers", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    if Client.objects.exists():
        sys.exit("bench_api_seed: the database already has clients; run it on a fresh database")
    rnd = random.Random(args.seed)
    t0 = time.monotonic()
    channel_ids, manager_ids = seed_reference(args.managers)
    if connection.vendor == "postgresql":
        seed_clients_copy(args.clients, args.batch, rnd, channel_ids, manager_ids)
    else:
        seed_clients_orm(args.clients, args.batch, rnd, channel_ids, manager_ids)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    count = Client.objects.count()
    print(
        f"seeded {count} clients, {len(channel_ids)} channels, {len(manager_ids)} managers "
        f"in {time.monotonic() - t0:.1f}s",
        flush=True,
    )
    if count != args.clients:
        sys.exit(f"bench_api_seed: expected {args.clients} clients, found {count}")


if __name__ == "__main__":
    main()
