"""`make bench-analytics`: the figures over a million deals on PostgreSQL.

  database hub_bench_analytics (created if missing) ► migrate ► generate in SQL, unless the data is there
  (1,000,000 deals with 3,000,000 lines, 100,000 clients, invoices for won deals with their lines,
  payments, 36 months of marketing spend and daily USD rates) ► ANALYZE ► rebuild the rollups
  ► check rollups = raw query ► time every figure 20 times over the full range and the last quarter.

Prints `BENCH analytics_<figure>_<range>_p95 <n> ms` (and _p50) per figure and range, plus the time of
the generation, of a full rollup rebuild and of one incremental refresh. `--regenerate` drops the data
and generates it again; BENCH_DEALS scales the data set (default 1,000,000).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = os.environ.get("BENCH_DB", "hub_bench_analytics")
os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
os.environ.setdefault("SECRET_KEY", "bench")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("ALLOWED_HOSTS", "localhost")
os.environ.setdefault("STATIC_MANIFEST", "false")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("CELERY_BROKER_URL", "memory://")
os.environ["DJANGO_SETTINGS_MODULE"] = "hub.settings"
sys.path.insert(0, str(ROOT))

RUNS = 20


def say(msg: str) -> None:
    print(f"bench-analytics: {msg}", file=sys.stderr, flush=True)


def ensure_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone():
            say(f"creating database {DB_NAME}")
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


GENERATE = """
SELECT setseed(0.42);
TRUNCATE hub_company, auth_user, hub_channel, hub_pipeline, hub_stage, hub_product, hub_client, hub_deal,
    hub_dealline, invoicing_invoice, invoicing_invoiceline, invoicing_payment, invoicing_paymentallocation,
    analytics_marketingspend, analytics_currencyrate, hub_domainevent
    RESTART IDENTITY CASCADE;
CREATE TEMP TABLE bench_period AS
    SELECT (date_trunc('month', current_date) - interval '35 months')::date AS start, current_date AS stop;
INSERT INTO hub_company (created_at, updated_at, legal_name, short_name, inn, kpp, ogrn, foreign_tax_id, address,
    bank_name, bic, settlement_account, correspondent_account, vat_mode, default_currency, is_default)
VALUES (now(), now(), 'ООО «Бенч»', 'Бенч', '', '', '', '', '', '', '', '', '', 'on_top', 'RUB', true);
INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active,
    date_joined)
SELECT '!', false, 'manager' || g, '', '', '', false, true, now() FROM generate_series(1, 20) g;
INSERT INTO hub_channel (created_at, updated_at, name, code, is_active)
SELECT now(), now(), 'Channel ' || g, 'channel-' || g, true FROM generate_series(1, 10) g;
INSERT INTO hub_pipeline (created_at, updated_at, name, is_default)
SELECT now(), now(), 'Pipeline ' || g, g = 1 FROM generate_series(1, 3) g;
INSERT INTO hub_stage (created_at, updated_at, name, code, "order", is_won, is_lost, probability, pipeline_id)
SELECT now(), now(), s.name, s.code, s.ord, s.code = 'won', s.code = 'lost', s.prob, p.id
FROM hub_pipeline p CROSS JOIN (VALUES ('New', 'new', 1, 10), ('Proposal', 'proposal', 2, 40),
    ('Negotiation', 'negotiation', 3, 70), ('Won', 'won', 4, 100), ('Lost', 'lost', 5, 0)) s(name, code, ord, prob)
ORDER BY p.id, s.ord;
INSERT INTO hub_product (created_at, updated_at, sku, name, unit, price, unit_cost, currency, vat_rate, is_active)
SELECT now(), now(), 'SKU-' || g, 'Product ' || g, 'шт', 200 + g * 97 % 5000, (200 + g * 97 % 5000) * 0.6,
    'RUB', 22, true
FROM generate_series(1, 50) g;
INSERT INTO hub_client (created_at, updated_at, kind, name, legal_name, inn, kpp, ogrn, foreign_tax_id, country,
    email, phone, address, vat_mode, notes, channel_id, manager_id)
SELECT now(), now(), 'company', 'Client ' || g, '', '', '', '', '', 'RU', '', '', '', '', '',
    CASE WHEN g % 20 = 0 THEN NULL ELSE 1 + g % 10 END, 1 + (g * 7) % 20
FROM generate_series(1, %(clients)s) g;
INSERT INTO hub_deal (id, created_at, updated_at, title, status, currency, vat_mode, utm_source, utm_medium,
    utm_campaign, amount_net, vat_amount, amount_total, cost_total, won_at, lost_at, lost_reason, channel_id,
    client_id, company_id, manager_id, pipeline_id, stage_id)
SELECT g, ts, ts, 'Deal ' || g, status, CASE WHEN g % 10 = 0 THEN 'USD' ELSE 'RUB' END, 'on_top', 'yandex', 'cpc',
    'campaign-' || (g % 40), 0, 0, 0, 0,
    CASE WHEN status = 'won' THEN ts + interval '3 days' END, CASE WHEN status = 'lost' THEN ts + interval '5 days' END,
    '', CASE WHEN g % 20 = 0 THEN NULL ELSE 1 + (client % 10) END, client, 1, 1 + (g * 11) % 20, pipeline,
    (pipeline - 1) * 5 + CASE status WHEN 'won' THEN 4 WHEN 'lost' THEN 5 ELSE 1 + g % 3 END
FROM (
    SELECT g, 1 + g % 3 AS pipeline, 1 + floor(random() * %(clients)s)::int AS client,
        (SELECT start FROM bench_period) + random() * ((SELECT stop - start FROM bench_period) - 4)
            * interval '1 day' + interval '9 hours' AS ts,
        CASE WHEN r < 0.55 THEN 'won' WHEN r < 0.70 THEN 'lost' ELSE 'open' END AS status
    FROM (SELECT g, random() AS r FROM generate_series(1, %(deals)s) g) x
) d;
INSERT INTO hub_dealline (position, description, unit, quantity, unit_price, discount_pct, vat_rate, unit_cost,
    amount_net, vat_amount, amount_total, cost_total, deal_id, product_id)
SELECT pos, 'Line', 'шт', qty, price, 0, 22, cost, qty * price, round(qty * price * 0.22, 2),
    qty * price + round(qty * price * 0.22, 2), qty * cost, deal, product
FROM (
    SELECT 1 + (g - 1) % 3 AS pos, 1 + (g - 1) / 3 AS deal, 1 + (g * 31) % 50 AS product, 1 + g % 5 AS qty,
        (100 + (g * 17) % 900)::numeric AS price, round((100 + (g * 17) % 900) * 0.6, 2) AS cost
    FROM generate_series(1, %(deals)s * 3) g
) l;
CREATE TEMP TABLE bench_deal_totals AS
SELECT deal_id, sum(amount_net) AS net, sum(vat_amount) AS vat, sum(cost_total) AS cost
FROM hub_dealline GROUP BY deal_id;
INSERT INTO invoicing_invoice (created_at, updated_at, kind, number, sequence_year, sequence_number, status,
    currency, vat_mode, issue_date, due_date, purpose, amount_net, vat_amount, amount_total, cost_total, amount_paid,
    issued_at, client_id, company_id, deal_id)
SELECT d.won_at, d.won_at, 'invoice', 'B-' || d.id, NULL, NULL, s.status, d.currency, 'on_top',
    d.won_at::date, d.won_at::date + 10, '', t.net, t.vat, t.net + t.vat, t.cost,
    CASE s.status WHEN 'paid' THEN t.net + t.vat WHEN 'partially_paid' THEN round((t.net + t.vat) / 2, 2) ELSE 0 END,
    d.won_at, d.client_id, 1, d.id
FROM hub_deal d JOIN bench_deal_totals t ON t.deal_id = d.id
CROSS JOIN LATERAL (SELECT CASE WHEN d.id % 100 < 80 THEN 'paid' WHEN d.id % 100 < 88 THEN 'partially_paid'
    WHEN d.id % 100 < 94 THEN 'sent' WHEN d.id % 100 < 97 THEN 'issued' ELSE 'void' END AS status) s
WHERE d.status = 'won' ORDER BY d.id;
INSERT INTO invoicing_invoice (created_at, updated_at, kind, number, status, currency, vat_mode, issue_date,
    purpose, amount_net, vat_amount, amount_total, cost_total, amount_paid, issued_at, client_id, company_id, deal_id,
    credit_note_for_id)
SELECT i.created_at + interval '20 days', i.created_at + interval '20 days', 'credit_note', 'CN-' || i.id, 'issued',
    i.currency, 'on_top', i.issue_date + 20, '', round(i.amount_net / 10, 2), round(i.vat_amount / 10, 2),
    round(i.amount_net / 10, 2) + round(i.vat_amount / 10, 2), round(i.cost_total / 10, 2), 0,
    i.issued_at + interval '20 days', i.client_id, 1, i.deal_id, i.id
FROM invoicing_invoice i WHERE i.id % 100 = 7 AND i.issue_date + 20 <= current_date;
INSERT INTO invoicing_invoiceline (position, description, unit, quantity, unit_price, discount_pct, vat_rate,
    unit_cost, amount_net, vat_amount, amount_total, cost_total, invoice_id, product_id)
SELECT l.position, l.description, l.unit, l.quantity, l.unit_price, 0, l.vat_rate, l.unit_cost, l.amount_net,
    l.vat_amount, l.amount_total, l.cost_total, i.id, l.product_id
FROM invoicing_invoice i JOIN hub_dealline l ON l.deal_id = i.deal_id WHERE i.kind = 'invoice';
INSERT INTO invoicing_payment (id, created_at, updated_at, source, external_id, amount, currency, received_at,
    payer_name, payer_inn, purpose, amount_allocated, status, client_id, company_id)
SELECT i.id, ts, ts, 'bank', '', i.amount_paid, i.currency, ts, '', '', '', i.amount_paid, 'allocated',
    i.client_id, 1
FROM (SELECT *, least(issued_at + (floor(random() * 40) || ' days')::interval + interval '3 hours', now())
    AS ts FROM invoicing_invoice WHERE amount_paid > 0) i;
INSERT INTO invoicing_paymentallocation (id, amount, created_at, invoice_id, payment_id)
SELECT p.id, p.amount, p.created_at, p.id, p.id FROM invoicing_payment p;
SELECT setval(pg_get_serial_sequence('invoicing_payment', 'id'), (SELECT max(id) FROM invoicing_payment));
SELECT setval(pg_get_serial_sequence('invoicing_paymentallocation', 'id'),
    (SELECT max(id) FROM invoicing_paymentallocation));
SELECT setval(pg_get_serial_sequence('hub_deal', 'id'), (SELECT max(id) FROM hub_deal));
INSERT INTO analytics_marketingspend (created_at, updated_at, month, amount, currency, channel_id)
SELECT now(), now(), m::date, CASE WHEN c.id = 10 THEN 2000 + c.id * 10 ELSE 150000 + c.id * 10000 END
    + floor(random() * 50000), CASE WHEN c.id = 10 THEN 'USD' ELSE 'RUB' END, c.id
FROM hub_channel c CROSS JOIN generate_series((SELECT start FROM bench_period),
    (SELECT stop FROM bench_period), interval '1 month') m;
"""


RATES = """
INSERT INTO analytics_currencyrate (currency, date, rate)
SELECT 'USD', d::date, round((90 + 10 * sin(extract(epoch FROM d) / 2592000))::numeric, 4)
FROM generate_series((date_trunc('month', current_date) - interval '35 months')::date - 10, current_date,
    interval '1 day') d
"""


def ensure_rates() -> None:
    """Daily USD rates over the data's 36 months (kept apart: a schema reset of analytics loses them)."""
    from django.db import connection

    from analytics.models import CurrencyRate

    if not CurrencyRate.objects.exists():
        with connection.cursor() as cursor:
            cursor.execute(RATES)


def generate(deals: int) -> None:
    from django.db import connection, transaction

    clients = max(deals // 10, 100)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in GENERATE.split(";\n"):
            if statement.strip():
                cursor.execute(
                    statement.replace("%(clients)s", str(clients)).replace("%(deals)s", str(deals))
                )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    seconds = time.perf_counter() - started
    print(f"BENCH analytics_generate_s {seconds:.1f} s", flush=True)


def counts() -> dict:
    from hub.models import Client, Deal, DealLine
    from invoicing.models import Invoice, Payment

    return {
        "deals": Deal.objects.count(),
        "deal_lines": DealLine.objects.count(),
        "clients": Client.objects.count(),
        "invoices": Invoice.objects.count(),
        "payments": Payment.objects.count(),
    }


def timed(fn, runs: int = RUNS) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[math.ceil(0.95 * len(samples)) - 1]  # nearest rank
    return statistics.median(samples), p95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regenerate", action="store_true", help="drop the data and generate it again")
    parser.add_argument("--skip-rebuild", action="store_true", help="reuse the rollups already built")
    args = parser.parse_args()
    deals = int(os.environ.get("BENCH_DEALS", "1000000"))

    ensure_database()
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], check=True, cwd=ROOT)
    import django

    django.setup()
    from django.db import connection

    from analytics import rollups, selectors
    from analytics.models import FactDaily, FactKind, FactMonthly
    from analytics.selectors import Filters
    from hub.models import Deal
    from invoicing.models import Invoice

    have = Deal.objects.count()
    if args.regenerate or have != deals:
        say(f"generating {deals:,} deals (have {have:,})")
        generate(deals)
        args.skip_rebuild = False
    else:
        say(f"reusing the {have:,} deals already in {DB_NAME} (--regenerate to start again)")
    ensure_rates()
    say(", ".join(f"{k} {v:,}" for k, v in counts().items()))

    if not args.skip_rebuild or not FactMonthly.objects.exists():
        started = time.perf_counter()
        rollups.rollups_rebuild()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE analytics_factdaily, analytics_factmonthly, analytics_cohortmonthly,"
                           " analytics_clientfact, analytics_clientmonth")  # fmt: skip
        print(f"BENCH analytics_rollup_rebuild_s {time.perf_counter() - started:.1f} s", flush=True)
    say(f"rollup rows: daily {FactDaily.objects.count():,}, monthly {FactMonthly.objects.count():,}")

    # One incremental refresh: what an invoice event costs (its day, its client, its cohort).
    invoice = Invoice.objects.filter(kind="invoice", amount_paid__gt=0).order_by("-id").first()
    p50, p95 = timed(lambda: rollups.rollups_refresh_for(invoice_ids=[invoice.pk]), runs=5)
    print(f"BENCH analytics_refresh_one_invoice_p95 {p95:.1f} ms", flush=True)

    from django.utils import timezone

    today = timezone.localdate()
    first = Invoice.objects.order_by("issue_date").values_list("issue_date", flat=True).first()
    quarter_start = (today.replace(day=1) - dt.timedelta(days=62)).replace(day=1)
    ranges = {"full": Filters(first, today), "quarter": Filters(quarter_start, today)}

    # Rollups must equal the raw query at this scale too.
    for kind in (FactKind.ACCRUAL, FactKind.CASH, FactKind.DEAL):
        for f in ranges.values():
            if selectors.fact_sums(kind, f, ("month",)) != selectors.raw_fact_sums(kind, f, ("month",)):
                say(f"FAILED: rollup differs from the raw query for {kind} {f}")
                return 1
    print("BENCH analytics_rollup_equals_raw 1 bool", flush=True)

    started = time.perf_counter()
    selectors.raw_fact_sums(FactKind.ACCRUAL, ranges["full"])
    print(
        f"BENCH analytics_raw_revenue_full_once {(time.perf_counter() - started) * 1000:.0f} ms", flush=True
    )

    figures = {
        "summary": selectors.analytics_summary,
        "channels": selectors.analytics_channels,
        "revenue": selectors.analytics_revenue,
        "cac": selectors.analytics_cac,
        "ltv": selectors.analytics_ltv,
        "ar_aging": selectors.analytics_ar_aging,
        "funnel": selectors.analytics_funnel,
        "cohorts": selectors.analytics_cohorts,
    }
    worst = 0.0
    for name, selector in figures.items():
        for range_name, f in ranges.items():
            selector(filters=f)  # warm
            p50, p95 = timed(lambda selector=selector, f=f: selector(filters=f))
            worst = max(worst, p95)
            print(f"BENCH analytics_{name}_{range_name}_p50 {p50:.1f} ms", flush=True)
            print(f"BENCH analytics_{name}_{range_name}_p95 {p95:.1f} ms", flush=True)
    # The same dashboards narrowed by a filter: a manager reads the detailed rollup level.
    from hub.models import Channel

    manager = Deal.objects.exclude(manager=None).values_list("manager_id", flat=True).first()
    channel = Channel.objects.order_by("pk").values_list("pk", flat=True).first()
    full = ranges["full"]
    for label, f in (
        ("manager", Filters(full.date_from, full.date_to, manager=manager)),
        ("channel", Filters(full.date_from, full.date_to, channel=channel)),
    ):
        for name in ("summary", "channels", "funnel"):
            figures[name](filters=f)
            p50, p95 = timed(lambda name=name, f=f: figures[name](filters=f))
            worst = max(worst, p95)
            print(f"BENCH analytics_{name}_full_by_{label}_p95 {p95:.1f} ms", flush=True)
    say(f"worst p95 {worst:.1f} ms (target ≤ 50 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
