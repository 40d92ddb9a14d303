"""Invoices as PDF: a Django template laid out by WeasyPrint, inside a sandbox.

The sandbox has two walls. The HTML is a Django template compiled by an engine without template
loaders (``{% include %}``/``{% extends %}`` find nothing, ``{% load %}`` knows no libraries) and fed
plain data, not model instances. WeasyPrint fetches through ``StaticOnlyFetcher``: files under the
project's ``STATICFILES_DIRS`` and ``data:`` URIs (the QR code), nothing else; any other URL stops the
rendering with ``SandboxViolation`` and becomes a ``ValidationFailed`` naming the template field.

Speed: parsed stylesheets (with their ``@font-face`` fonts registered once) and compiled templates
are cached per process by content hash, and static files are read once. Font subsetting stays on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import mimetypes
import threading
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from django.conf import settings
from django.template import Context, Engine, Template, TemplateDoesNotExist, TemplateSyntaxError
from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from hub.errors import ValidationFailed

from . import qr
from .words import amount_in_words

# fontTools logs every table it subsets at INFO: thousands of lines per invoice, and slow.
logging.getLogger("fontTools").setLevel(logging.WARNING)

BUILTIN_DIR = Path(settings.BASE_DIR) / "templates" / "invoicing"
RU_MONTHS = [
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
]


class SandboxViolation(FatalURLFetchingError):
    """A template asked for something outside the project's static files. Stops the rendering."""

    def __init__(self, url: str):
        super().__init__(url)
        self.url = url


@cache
def static_roots() -> tuple[Path, ...]:
    return tuple(Path(d).resolve() for d in settings.STATICFILES_DIRS)


def static_path(name: str) -> Path | None:
    """The file ``name`` (relative, e.g. ``fonts/DejaVuSans.ttf``) among the static roots, if any."""
    for root in static_roots():
        path = (root / name).resolve()
        if path.is_relative_to(root) and path.is_file():
            return path
    return None


@cache
def _static_bytes(path: Path) -> bytes:
    return path.read_bytes()


class StaticOnlyFetcher(URLFetcher):
    """Serves ``file:`` URLs inside the static roots and ``data:`` URIs; refuses everything else."""

    def __init__(self):
        super().__init__(allowed_protocols=("file", "data"), fail_on_errors=True)

    def fetch(self, url, headers=None):
        scheme = url.split(":", 1)[0].lower()
        if scheme == "data":
            return super().fetch(url, headers)
        if scheme == "file":
            path = Path(url2pathname(urlsplit(url).path)).resolve()
            if any(path.is_relative_to(root) for root in static_roots()) and path.is_file():
                kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                return URLFetcherResponse(url, body=_static_bytes(path), headers={"Content-Type": kind})
        raise SandboxViolation(url)


_local = threading.local()


def _fetcher() -> StaticOnlyFetcher:
    # URLFetcher keeps per-request state: one per thread.
    if not hasattr(_local, "fetcher"):
        _local.fetcher = StaticOnlyFetcher()
    return _local.fetcher


def base_url() -> str:
    return static_roots()[0].as_uri() + "/"


# --- templates ------------------------------------------------------------------------------------

SANDBOX = Engine(dirs=[], app_dirs=False, loaders=[], libraries={}, autoescape=True, debug=False)


@cache
def builtin_source(name: str) -> str:
    return (BUILTIN_DIR / name).read_text(encoding="utf-8")


def template_sources(template) -> tuple[str, str]:
    """(html, css) of an ``InvoiceTemplate`` (or None: the Russian built-in)."""
    layout = getattr(template, "layout", "ru") or "ru"
    html = (getattr(template, "html", "") or "").strip() or builtin_source(f"invoice_{layout}.html")
    css = (getattr(template, "css", "") or "").strip() or builtin_source("invoice.css")
    return html, css


def _sha(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


_compiled: dict[str, Template] = {}
_stylesheets: dict[str, CSS] = {}
_lock = threading.Lock()
FONT_CONFIG = FontConfiguration()


def _compile(html: str) -> Template:
    key = _sha(html)
    template = _compiled.get(key)
    if template is None:
        try:
            template = SANDBOX.from_string(html)
        except TemplateSyntaxError as exc:
            raise ValidationFailed(
                f"The invoice template does not compile: {exc}", fields={"template.html": [str(exc)]}
            ) from exc
        _compiled[key] = template
    return template


def render_html(html: str, context: dict[str, Any]) -> str:
    try:
        return _compile(html).render(Context(context, autoescape=True))
    except TemplateDoesNotExist as exc:
        message = f"Templates may not include or extend files ({exc})."
        raise ValidationFailed(message, fields={"template.html": [message]}) from exc
    except TemplateSyntaxError as exc:
        raise ValidationFailed(str(exc), fields={"template.html": [str(exc)]}) from exc


def _refused(exc: SandboxViolation, field: str) -> ValidationFailed:
    message = f"The template may use only the project's static files; refused to fetch {exc.url[:200]!r}."
    return ValidationFailed(message, fields={field: [message]}, code="template_sandbox")


def stylesheet(css: str) -> CSS:
    key = _sha(css)
    sheet = _stylesheets.get(key)
    if sheet is None:
        with _lock:
            sheet = _stylesheets.get(key)
            if sheet is None:
                try:
                    sheet = CSS(
                        string=css, base_url=base_url(), url_fetcher=_fetcher(), font_config=FONT_CONFIG
                    )
                except SandboxViolation as exc:
                    raise _refused(exc, "template.css") from None
                _stylesheets[key] = sheet
    return sheet


def render_pdf(html: str, css: str) -> bytes:
    """Lay out rendered HTML with the (cached) stylesheet. Sandbox violations are refused."""
    sheet = stylesheet(css)
    try:
        return HTML(string=html, base_url=base_url(), url_fetcher=_fetcher()).write_pdf(
            stylesheets=[sheet], font_config=FONT_CONFIG
        )
    except SandboxViolation as exc:
        # Images and backgrounds are fetched while laying out: name the source that asked for it.
        asked = Path(urlsplit(exc.url).path).name or exc.url
        raise _refused(exc, "template.css" if asked in css else "template.html") from None


# --- what goes on the page ------------------------------------------------------------------------


def fmt_money(value: Decimal, lang: str) -> str:
    text = f"{value:,.2f}"
    return text.replace(",", " ").replace(".", ",") if lang == "ru" else text


def fmt_quantity(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    return text


def fmt_date(value: dt.date | None, lang: str) -> str:
    if value is None:
        return ""
    if lang == "ru":
        return f"{value.day} {RU_MONTHS[value.month - 1]} {value.year} г."
    return value.strftime("%d %B %Y").lstrip("0")


@dataclass
class Printable:
    html: str
    css: str
    key: str


def _party(obj, *, legal_name: str) -> dict[str, str]:
    return {
        "name": legal_name,
        "inn": obj.inn,
        "kpp": obj.kpp,
        "tax_id": obj.foreign_tax_id,
        "address": obj.address,
    }


def invoice_context(invoice, template, lines=None) -> dict[str, Any]:
    """Plain data for the template: strings and lists, no model instances."""
    layout = getattr(template, "layout", "ru") or "ru"
    lang = "ru" if layout == "ru" else "en"
    lines = list(invoice.lines.all()) if lines is None else lines
    company, client = invoice.company, invoice.client
    on_top = invoice.vat_mode == "on_top"
    rows = []
    for i, ln in enumerate(lines, start=1):
        rows.append(
            {
                "n": i,
                "description": ln.description,
                "quantity": fmt_quantity(ln.quantity),
                "unit": ln.unit,
                "price": fmt_money(ln.unit_price, lang),
                "discount": f"{ln.discount_pct.normalize():f}" if ln.discount_pct else "",
                "vat_rate": f"{ln.vat_rate.normalize():f}",
                "amount": fmt_money(ln.amount_net if on_top else ln.amount_total, lang),
            }
        )
    by_rate: dict[Decimal, Decimal] = {}
    for ln in lines:
        if ln.vat_amount:
            by_rate[ln.vat_rate] = by_rate.get(ln.vat_rate, Decimal("0.00")) + ln.vat_amount
    vat_rows = [
        {"rate": f"{rate.normalize():f}", "amount": fmt_money(amount, lang)}
        for rate, amount in sorted(by_rate.items(), reverse=True)
    ]
    payment_string = (
        qr.invoice_payment_string(invoice) if (layout == "ru" and template_show_qr(template)) else None
    )
    logo_name = getattr(template, "logo", "")
    logo_url = ""
    if logo_name:
        path = static_path(logo_name)
        if path is None:
            raise ValidationFailed(
                f"No static file {logo_name!r} for the logo.",
                fields={"template.logo": [f"No such file among the static files: {logo_name}."]},
            )
        logo_url = path.as_uri()
    original = invoice.credit_note_for
    return {
        "lang": lang,
        "number": invoice.number or ("черновик" if lang == "ru" else "draft"),
        "is_draft": invoice.number is None,
        "is_void": invoice.status == "void",
        "is_credit_note": invoice.kind == "credit_note",
        "original_number": original.number if original else "",
        "issue_date": fmt_date(invoice.issue_date, lang),
        "due_date": fmt_date(invoice.due_date, lang),
        "currency": invoice.currency,
        "currency_label": "руб." if invoice.currency == "RUB" and lang == "ru" else invoice.currency,
        "purpose": invoice.purpose,
        "payment_url": getattr(invoice, "payment_url", ""),
        "basis": invoice.deal.title if invoice.deal_id else "",
        "supplier": {
            **_party(company, legal_name=company.legal_name),
            "bank_name": company.bank_name,
            "bic": company.bic,
            "account": company.settlement_account,
            "corr_account": company.correspondent_account,
        },
        "buyer": _party(client, legal_name=client.legal_name or client.name),
        "lines": rows,
        "has_discount": any(ln.discount_pct for ln in lines),
        "vat_mode": invoice.vat_mode,
        "vat_rows": vat_rows,
        "amount_net": fmt_money(invoice.amount_net, lang),
        "vat_amount": fmt_money(invoice.vat_amount, lang),
        "amount_total": fmt_money(invoice.amount_total, lang),
        "subtotal": fmt_money(invoice.amount_net if on_top else invoice.amount_total, lang),
        "count": len(rows),
        "amount_words": amount_in_words(invoice.amount_total, currency=invoice.currency, lang=lang),
        "qr": qr.qr_png_data_uri(payment_string) if payment_string else "",
        "logo_url": logo_url,
        "director_name": getattr(template, "director_name", ""),
        "accountant_name": getattr(template, "accountant_name", ""),
        "payment_terms": getattr(template, "payment_terms", ""),
    }


def template_show_qr(template) -> bool:
    return getattr(template, "show_qr", True)


def invoice_printable(invoice, template) -> Printable:
    html_source, css = template_sources(template)
    html = render_html(html_source, invoice_context(invoice, template))
    return Printable(html=html, css=css, key=_sha(html, css))


def template_hash(template) -> str:
    html, css = template_sources(template)
    return _sha(html, css, getattr(template, "logo", ""), getattr(template, "layout", "ru"))
