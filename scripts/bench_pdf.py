"""PDF benchmark: `make bench-pdf`.

Renders the built-in Russian invoice (QR code included) from in-memory invoices, no database:
median of one-page and five-page renders in one warmed-up process, then 1,000 one-page invoices
(distinct numbers, so no cache helps) over 2 worker processes. Prints ``BENCH <name> <value> <unit>``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("STATIC_MANIFEST", "false")
os.environ.setdefault("ALLOWED_HOSTS", "localhost")

import django

django.setup()

from hub.models import Client, Company  # noqa: E402
from hub.pricing import document_totals, line_totals  # noqa: E402
from invoicing import pdf  # noqa: E402
from invoicing.models import Invoice, InvoiceLine  # noqa: E402

FIVE_PAGES = 105  # lines that fill five A4 pages of the built-in layout


def build(number: int, n_lines: int):
    company = Company(
        legal_name="ООО «Ромашка»", inn="7707083893", kpp="773601001", bank_name="ПАО Сбербанк",
        bic="044525225", settlement_account="40702810938000000001",
        correspondent_account="30101810400000000225", address="Москва, ул. Вавилова, д. 19",
    )  # fmt: skip
    client = Client(
        name="ООО «Покупатель»",
        inn="7736050003",
        kpp="773601001",
        country="RU",
        address="Москва, ул. Ленина, 1",
    )
    lines, totals = [], []
    for i in range(n_lines):
        values = dict(
            quantity=Decimal(1 + i % 7), unit_price=Decimal("1249.90") + i, discount_pct=Decimal(i % 3 * 5),
            vat_rate=Decimal("22"), unit_cost=Decimal("0"),
        )  # fmt: skip
        t = line_totals(vat_mode="on_top", **values)
        totals.append(t)
        lines.append(
            InvoiceLine(
                position=i + 1,
                description=f"Насос центробежный ЦНС-{38 + i} с электродвигателем",
                unit="шт",
                amount_net=t.amount_net,
                vat_amount=t.vat_amount,
                amount_total=t.amount_total,
                **{k: v for k, v in values.items()},
            )
        )
    doc = document_totals(totals)
    invoice = Invoice(
        company=company, client=client, number=f"2026-{number:05d}", status="issued", currency="RUB",
        vat_mode="on_top", issue_date=django.utils.timezone.localdate(), due_date=None,
        purpose=f"Оплата по счёту № 2026-{number:05d}", amount_net=doc.amount_net,
        vat_amount=doc.vat_amount, amount_total=doc.amount_total,
    )  # fmt: skip
    return invoice, lines


def render(number: int, n_lines: int) -> bytes:
    invoice, lines = build(number, n_lines)
    html_source, css = pdf.template_sources(None)
    return pdf.render_pdf(pdf.render_html(html_source, pdf.invoice_context(invoice, None, lines=lines)), css)


def timed(n_lines: int, runs: int) -> float:
    samples = []
    for i in range(runs):
        start = time.perf_counter()
        render(i + 1, n_lines)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def worker(numbers: list[int]) -> int:
    return sum(len(render(n, 5)) for n in numbers)


def main() -> None:
    import io

    from pypdf import PdfReader

    for n_lines, expected_pages in ((5, 1), (FIVE_PAGES, 5)):
        pages = len(PdfReader(io.BytesIO(render(0, n_lines))).pages)
        assert pages == expected_pages, f"{n_lines} lines gave {pages} pages, expected {expected_pages}"
    timed(5, 5)  # warm-up: fonts registered, CSS parsed, templates compiled
    print(f"BENCH pdf_one_page_median {timed(5, 40):.1f} ms", flush=True)
    print(f"BENCH pdf_five_page_median {timed(FIVE_PAGES, 10):.1f} ms", flush=True)
    total = int(os.environ.get("BENCH_PDF_COUNT", "1000"))
    chunks = [list(range(w + 1, total + 1, 2)) for w in range(2)]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(worker, chunks))
    print(f"BENCH pdf_1000_two_workers {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
