"""Server time and queries of every manager UI page on the demo data (median of 5 after a warm-up).

Run against a database holding ``seed_demo`` data (PostgreSQL for figures worth quoting):
    DATABASE_URL=postgres://... python scripts/bench_ui.py
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from hub.models import Client as Customer  # noqa: E402
from hub.models import Deal  # noqa: E402
from invoicing.models import Invoice  # noqa: E402


def main() -> None:
    users = get_user_model().objects
    admin = users.filter(is_superuser=True).first() or users.create_superuser("bench-ui-admin", "", None)
    manager = users.filter(groups__name="Manager").order_by("id").first()
    ids = {
        "client": Customer.objects.filter(manager=manager).order_by("id").first().pk,
        "deal": Deal.objects.filter(manager=manager).order_by("id").first().pk,
        "invoice": Invoice.objects.filter(client__manager=manager)
        .exclude(status="draft")
        .order_by("id")
        .first()
        .pk,
    }
    pages = [
        "/app/", "/app/clients/", "/app/clients/?q=%D0%9E%D0%9E%D0%9E", "/app/clients/{client}/", "/app/deals/",
        "/app/deals/board/", "/app/deals/{deal}/", "/app/invoices/", "/app/invoices/{invoice}/",
        "/app/invoices/{invoice}/preview/", "/app/payments/", "/app/notifications/", "/app/notifications/unread/",
        "/app/dashboards/", *(f"/app/dashboards/?part={p}" for p in ("kpis", "charts", "tops", "receivables", "cohorts")),
        "/app/sync/",
    ]  # fmt: skip
    print(f"{'user':<14} {'page':<38} {'status':>6} {'median ms':>10} {'max ms':>8} {'queries':>8}")
    for user in (admin, manager):
        client = Client()
        client.force_login(user)
        client.cookies["django_language"] = "ru"
        for template in pages:
            url = template.format(**ids)
            client.get(url)
            times = []
            for _ in range(5):
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    response = client.get(url)
                    times.append((time.perf_counter() - started) * 1000)
            print(
                f"{user.username:<14} {url:<38} {response.status_code:>6} {statistics.median(times):>10.1f}"
                f" {max(times):>8.1f} {len(queries):>8}"
            )


if __name__ == "__main__":
    main()
