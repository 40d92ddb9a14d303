"""make bench-notify: 200 payments with a real Celery worker; seconds from payment to delivered
in-app notification and signed webhook, printed as ``BENCH notify_p50 <n> s`` / ``BENCH notify_p95 <n> s``.

Uses DATABASE_URL / CELERY_BROKER_URL from the environment (PostgreSQL + Redis in the Makefile target).
Payments arrive at a steady ``BENCH_RATE`` per second (default 5, i.e. 18,000 an hour), each naming its invoice, so each one
goes through matching ► allocation ► invoice.paid ► fan-out ► in-app + webhook.
"""

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

N = int(os.environ.get("BENCH_PAYMENTS", "200"))
RATE = float(os.environ.get("BENCH_RATE", "5"))
received: dict[str, float] = {}


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        import json

        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        received.setdefault(str(json.loads(body)["data"]["invoice"]), time.time())
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def main() -> None:
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from hub.celery import app
    from hub.models import Client, Company
    from invoicing.models import Invoice
    from invoicing.services import invoice_create_draft, invoice_issue, payment_record
    from notifications.models import Delivery, Notification, NotificationRule

    company = Company.objects.filter(is_default=True).first() or Company.objects.create(
        legal_name="ООО «Бенч»", inn="7707083893", settlement_account="40702810938000000001", is_default=True
    )
    manager, _ = get_user_model().objects.get_or_create(username="bench-manager")
    run = int(time.time())
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    NotificationRule.objects.filter(name="bench").delete()
    NotificationRule.objects.create(
        name="bench",
        event_type="invoice.paid",
        channels=["inapp", "webhook"],
        webhook_url=f"http://127.0.0.1:{server.server_address[1]}/hook",
        webhook_secret="bench",
    )
    client = Client.objects.create(name=f"Bench {run}", inn="7736050003", manager=manager)
    invoices = []
    for _ in range(N):
        draft = invoice_create_draft(
            client=client,
            company=company,
            lines=[
                {
                    "description": "x",
                    "quantity": Decimal(1),
                    "unit_price": Decimal("100.00"),
                    "vat_rate": Decimal(22),
                }
            ],
        )
        invoices.append(invoice_issue(invoice=draft))
    with app.connection_for_write() as conn:
        for queue in ("default", "sync", "documents", "notify"):
            with contextlib.suppress(Exception):
                conn.default_channel.queue_purge(queue)

    # One worker for all queues by default; BENCH_WORKERS=split runs the production layout of
    # docs/deployment.md (a worker for the general queues and one for notify). On 2 cores both saturate
    # at about 10 payments/s end to end (matching, allocation, rollups, notifications).
    def start_worker(queues: str, concurrency: int) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "hub", "worker", "-Q", queues, "--concurrency",
             str(concurrency), "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning",
             "-n", f"bench-{queues.split(',')[0]}@%h"],
            cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    if os.environ.get("BENCH_WORKERS") == "split":
        workers = [start_worker("default,sync,documents", 2), start_worker("notify", 1)]
    else:
        workers = [start_worker("default,sync,documents,notify", 2)]
    try:
        time.sleep(4)  # the worker connects
        sent: dict[str, float] = {}
        start = time.time()
        for i, invoice in enumerate(invoices):
            time.sleep(max(0.0, start + i / RATE - time.time()))
            sent[str(invoice.pk)] = time.time()
            payment_record(
                amount=invoice.amount_total,
                received_at=timezone.now(),
                source="bank",
                external_id=f"bench-{run}-{i}",
                purpose=f"Оплата по счету № {invoice.number}",
                company=company,
                client=client,
            )
        deadline = time.time() + 60
        ids = [i.pk for i in invoices]
        while time.time() < deadline:
            done = Delivery.objects.filter(
                rule__name="bench", status="sent", event__aggregate_id__in=[str(i) for i in ids]
            ).count()
            if done >= 2 * N:
                break
            time.sleep(0.5)
        inbox = {
            n.delivery.event.aggregate_id: n.created_at.timestamp()
            for n in Notification.objects.filter(delivery__rule__name="bench").select_related(
                "delivery__event"
            )
        }
        latencies = []
        for pk, t0 in sent.items():
            if pk in inbox and pk in received:
                latencies.append(max(inbox[pk], received[pk]) - t0)
        missing = N - len(latencies)
        latencies.sort()
        p50 = statistics.median(latencies)
        p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
        print(f"payments {N} at {RATE:g}/s, delivered both channels: {len(latencies)}, missing: {missing}")
        print(f"BENCH notify_p50 {p50:.3f} s")
        print(f"BENCH notify_p95 {p95:.3f} s")
        paid = Invoice.objects.filter(pk__in=ids, status="paid").count()
        print(f"invoices paid by matching: {paid}/{N}")
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=30)
        server.shutdown()


if __name__ == "__main__":
    main()
