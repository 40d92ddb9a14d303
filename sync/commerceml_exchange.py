"""The hub's side of the 1C CommerceML exchange: credentials, exchange state, the orders 1C collects
(selector) and the statuses/payments it hands back (service). The protocol itself is in
`sync.commerceml` (pure); the HTTP endpoint in `sync.commerceml_views`.

TODO(lead): when `sync.models.Connection`, `SyncCursor` and `SyncRun` land, read credentials from the
connection (`credentials_for`), keep `ExchangeState.last_success` in a cursor and log each exchange as
a run; until then credentials come from `settings.HUB_1C_EXCHANGE` and state lives in a JSON file
under `VAR_DIR/1c_exchange/<connection>/`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
import tempfile
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from hub.errors import ApplicationError, Conflict
from invoicing.models import (
    OPEN_INVOICE_STATUSES,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    PaymentSource,
)
from invoicing.services import invoice_void, payment_record
from sync import commerceml

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[\w.-]{1,100}$")
FILENAME_PATTERN = re.compile(r"^[\w][\w.-]{0,200}$")
STATUS_TEXT = {
    InvoiceStatus.ISSUED: "Выставлен",
    InvoiceStatus.SENT: "Отправлен",
    InvoiceStatus.PARTIALLY_PAID: "Оплачен частично",
    InvoiceStatus.PAID: "Оплачен",
    InvoiceStatus.VOID: "Отменен",
}


@dataclass(frozen=True)
class ExchangeSettings:
    """Per-connection exchange settings (`encoding`: windows-1251 for classic 1C modules, utf-8)."""

    username: str
    password: str
    encoding: str = "windows-1251"
    file_limit: int = commerceml.DEFAULT_FILE_LIMIT
    timezone: str = "Europe/Moscow"


def credentials_for(name: str) -> ExchangeSettings | None:
    """The user/password 1C must present for connection `name`; None when there is no such connection.

    The connection is an enabled `onec_commerceml` Connection (`manage.py connect onec_commerceml
    --name NAME --url ... --credential username=... --credential password=...`, options `encoding`,
    `file_limit`, `timezone`); `settings.HUB_1C_EXCHANGE = {"<name>": {...}}` is read as a fallback for
    a fixed, file-configured exchange.
    """
    from sync import crypto
    from sync.models import Connection

    connection = Connection.objects.filter(name=name, system="onec_commerceml", enabled=True).first()
    entry: Mapping[str, Any] | None
    if connection is not None:
        try:
            entry = {**(connection.options or {}), **crypto.decrypt(connection.credentials_encrypted)}
        except crypto.CredentialsUnreadable:
            return None
    else:
        configured: Mapping[str, Mapping[str, Any]] = getattr(settings, "HUB_1C_EXCHANGE", {}) or {}
        entry = configured.get(name)
    if not entry or not entry.get("username"):
        return None
    return ExchangeSettings(
        username=str(entry["username"]),
        password=str(entry.get("password", "")),
        encoding=str(entry.get("encoding") or "windows-1251"),
        file_limit=_file_limit(entry.get("file_limit")),
        timezone=str(entry.get("timezone") or "Europe/Moscow"),
    )


def _file_limit(configured: Any) -> int:
    """The chunk size 1C is told to use: never above what Django accepts as a request body
    (`DATA_UPLOAD_MAX_MEMORY_SIZE`), or the upload would be refused before the view runs."""
    limit = int(configured or commerceml.DEFAULT_FILE_LIMIT)
    ceiling = getattr(settings, "DATA_UPLOAD_MAX_MEMORY_SIZE", None)
    return min(limit, ceiling) if ceiling else limit


# ---- exchange state (TODO(lead): a SyncCursor row) ----------------------------------------------


@dataclass
class ExchangeState:
    """`last_success`: orders changed after it are exported; `pending`: the start of the export 1C has
    not acknowledged yet (becomes `last_success` on `mode=success`); `imported`: uploaded files
    already applied in this exchange (a chunked upload may be applied at `file` and again asked
    for at `import`)."""

    last_success: dt.datetime | None = None
    pending: dt.datetime | None = None
    imported: list[str] = field(default_factory=list)


def _moment(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


class ExchangeStore:
    """Files of one connection's exchange: `state.json` and the `uploads/` 1C sent."""

    def __init__(self, name: str):
        if not NAME_PATTERN.match(name):
            raise ValueError(f"bad connection name {name!r}")
        self.root = Path(settings.VAR_DIR) / "1c_exchange" / name
        self.uploads = self.root / "uploads"

    def load(self) -> ExchangeState:
        try:
            raw = json.loads((self.root / "state.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return ExchangeState()
        return ExchangeState(
            _moment(raw.get("last_success")), _moment(raw.get("pending")), list(raw.get("imported", []))
        )

    def save(self, state: ExchangeState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {
            "last_success": state.last_success.isoformat() if state.last_success else None,
            "pending": state.pending.isoformat() if state.pending else None,
            "imported": state.imported,
        }
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".state-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, self.root / "state.json")  # atomic: concurrent readers never see half a file

    def start(self) -> None:
        """`mode=init`: a new exchange; forget the previous uploads."""
        shutil.rmtree(self.uploads, ignore_errors=True)
        state = self.load()
        state.imported = []
        self.save(state)

    def path_of(self, filename: str) -> Path:
        base = filename.replace("\\", "/").rsplit("/", 1)[-1]
        if not FILENAME_PATTERN.match(base):
            raise commerceml.CommerceMLError(f"bad file name {filename!r}")
        return self.uploads / base

    def append(self, filename: str, chunk: bytes, *, limit: int) -> bytes:
        """Add one chunk of an upload; return the whole file so far."""
        path = self.path_of(filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        size = path.stat().st_size if path.exists() else 0
        if size + len(chunk) > limit * 20:
            raise commerceml.CommerceMLError(f"{path.name} is larger than {limit * 20} bytes")
        with path.open("ab") as handle:
            handle.write(chunk)
        return path.read_bytes()

    def read(self, filename: str) -> bytes:
        path = self.path_of(filename)
        if not path.exists():
            raise commerceml.CommerceMLError(f"no uploaded file {path.name}; send it with mode=file first")
        return path.read_bytes()


# ---- hub ► 1C: the orders (selector) ------------------------------------------------------------


def invoices_for_exchange(*, changed_after: dt.datetime | None) -> QuerySet[Invoice]:
    """Issued invoices (any state after draft) changed after the last acknowledged export."""
    invoices = (
        Invoice.objects.filter(kind=InvoiceKind.INVOICE)
        .exclude(status=InvoiceStatus.DRAFT)
        .select_related("client")
        .prefetch_related(Prefetch("lines", queryset=InvoiceLine.objects.select_related("product")))
        .order_by("updated_at", "pk")
    )
    if changed_after is not None:
        invoices = invoices.filter(updated_at__gt=changed_after)
    return invoices


def order_of(invoice: Invoice, *, zone: dt.tzinfo) -> commerceml.Order:
    """An invoice as the CommerceML "order" 1C imports (its buyer, lines, VAT, status)."""
    client = invoice.client
    party = commerceml.Party(
        id=f"client-{client.pk}",
        name=client.name,
        full_name=client.legal_name or client.name,
        inn=client.inn,
        kpp=client.kpp,
        address=client.address,
        email=client.email,
        phone=client.phone,
        is_person=client.kind == "person",
    )
    items = []
    for line in invoice.lines.all():
        product = line.product
        items.append(
            commerceml.Item(
                id=product.sku if product else f"line-{line.pk}",
                name=line.description,
                quantity=line.quantity,
                total=line.amount_total,
                unit=line.unit or "шт",
                vat_rate=line.vat_rate if invoice.vat_mode != "none" else None,
                vat_amount=line.vat_amount,
                kind="Товар" if product else "Услуга",
            )
        )
    stamp = invoice.issued_at or invoice.created_at
    return commerceml.Order(
        id=str(invoice.pk),
        number=invoice.number or "",
        date=timezone.localtime(stamp, zone),
        party=party,
        items=tuple(items),
        total=invoice.amount_total,
        currency=invoice.currency,
        vat_amount=invoice.vat_amount,
        comment=invoice.purpose,
        status=STATUS_TEXT.get(invoice.status, invoice.status),
        paid=invoice.status == InvoiceStatus.PAID,
        cancelled=invoice.status == InvoiceStatus.VOID,
        requisites={"Срок оплаты": invoice.due_date.isoformat()} if invoice.due_date else {},
    )


def orders_export(*, name: str, exchange: ExchangeSettings, now: dt.datetime | None = None) -> bytes:
    """`mode=query`: the orders changed since the last acknowledged export, as CommerceML bytes.
    The export's start is remembered as pending until 1C says `mode=success`."""
    store = ExchangeStore(name)
    state = store.load()
    now = now or timezone.now()
    zone = zoneinfo.ZoneInfo(exchange.timezone)
    orders = [
        order_of(invoice, zone=zone) for invoice in invoices_for_exchange(changed_after=state.last_success)
    ]
    state.pending = now
    store.save(state)
    logger.info("1c exchange %s: exporting %d orders", name, len(orders))
    return commerceml.build_orders(
        orders, generated_at=timezone.localtime(now, zone), encoding=exchange.encoding
    )


def orders_acknowledge(*, name: str) -> None:
    """`mode=success`: 1C has the export; next time only what changed after it started."""
    store = ExchangeStore(name)
    state = store.load()
    if state.pending is not None:
        state.last_success, state.pending = state.pending, None
        store.save(state)


# ---- 1C ► hub: statuses and payments (service) --------------------------------------------------


@dataclass
class ImportResult:
    documents: int = 0
    paid: int = 0
    voided: int = 0
    unchanged: int = 0
    unknown: int = 0
    problems: list[str] = field(default_factory=list)


def _invoice_for(document: commerceml.ImportedDocument) -> Invoice | None:
    found = None
    if document.id.isdigit():
        found = Invoice.objects.filter(pk=int(document.id), kind=InvoiceKind.INVOICE).first()
    if found is None and document.number:
        found = Invoice.objects.filter(number=document.number, kind=InvoiceKind.INVOICE).first()
    return found


def documents_apply(
    *, name: str, documents: Iterable[commerceml.ImportedDocument], exchange: ExchangeSettings
) -> ImportResult:
    """Apply what 1C says about our orders: a payment date ("Дата оплаты по 1С") records a payment
    of the amount due, allocated to the invoice (idempotent: the payment's external id is the 1C
    payment); "Отменен"/"ПометкаУдаления" voids an unpaid invoice. Unknown orders (created in 1C) are
    counted and skipped; a refused change is reported and the rest goes on."""
    result = ImportResult()
    zone = zoneinfo.ZoneInfo(exchange.timezone)
    origin = f"sync:{name}"
    for document in documents:
        result.documents += 1
        label = document.number or document.id
        invoice = _invoice_for(document)
        if invoice is None:
            result.unknown += 1
            continue
        try:
            if document.cancelled:
                if invoice.status in (InvoiceStatus.VOID, InvoiceStatus.DRAFT):
                    result.unchanged += 1
                elif invoice.amount_paid > 0:
                    result.problems.append(
                        f"{label}: cancelled in 1C but already paid in the hub; not voided"
                    )
                else:
                    invoice_void(invoice=invoice, reason="Отменён в 1С", origin=origin)
                    result.voided += 1
            elif (
                (paid_at := document.payment_date)
                and invoice.status in OPEN_INVOICE_STATUSES
                and invoice.amount_due > 0
            ):
                reference = document.payment_number or paid_at.strftime("%Y%m%d%H%M%S")
                try:
                    payment_record(
                        amount=invoice.amount_due,
                        received_at=timezone.make_aware(paid_at, zone),
                        currency=invoice.currency,
                        client=invoice.client,
                        company=invoice.company,
                        source=PaymentSource.SYNC,
                        external_id=f"1c:{name}:{invoice.pk}:{reference}"[:255],
                        purpose=f"Оплата по 1С № {reference}",
                        allocations=[{"invoice": invoice}],
                        origin=origin,
                    )
                    result.paid += 1
                except Conflict as exc:
                    if exc.code != "duplicate":
                        raise
                    result.unchanged += 1
            else:
                result.unchanged += 1
        except ApplicationError as exc:
            result.problems.append(f"{label}: {exc.message}")
        except commerceml.CommerceMLError as exc:
            result.problems.append(f"{label}: {exc}")
    if result.problems:
        logger.warning("1c exchange %s: %s", name, "; ".join(result.problems))
    return result


def file_import(*, name: str, filename: str, exchange: ExchangeSettings) -> ImportResult:
    """`mode=import`: parse an uploaded file and apply it (once per exchange)."""
    store = ExchangeStore(name)
    state = store.load()
    data = store.read(filename)
    base = store.path_of(filename).name
    if base in state.imported:
        return ImportResult()
    documents = commerceml.parse_documents(data)  # CommerceMLError ► the caller answers "failure"
    result = documents_apply(name=name, documents=documents, exchange=exchange)
    state = store.load()
    state.imported.append(base)
    store.save(state)
    return result


def file_receive(*, name: str, filename: str, chunk: bytes, exchange: ExchangeSettings, apply: bool) -> bool:
    """`mode=file`: store one chunk. When `apply` (the sale exchange, whose older 1C modules never
    call `mode=import`) and the file is complete, import it at once. True when it was imported."""
    store = ExchangeStore(name)
    data = store.append(filename, chunk, limit=exchange.file_limit)
    if apply and commerceml.looks_complete(data):
        file_import(name=name, filename=filename, exchange=exchange)
        return True
    return False
