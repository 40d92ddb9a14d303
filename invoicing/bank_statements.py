"""Bank statements in the 1CClientBankExchange text format (versions 1.02 and 1.03).

``statement_parse`` is pure: bytes in, a ``Statement`` (documents with the line they start on, and every
line error) out. ``bank_statement_import`` writes: only incoming payments to our own settlement accounts
become payments, each keyed by its bank document (date, number, payer account, amount) so a second upload
of the same file, or of an overlapping period, creates nothing twice. A file with a broken line is refused
whole unless the caller asks for the valid documents only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from hub import requisites
from hub.errors import Conflict
from hub.models import Company

from .models import BankStatementImport, MatchStatus, PaymentSource, StatementImportStatus

MAX_FILE_BYTES = 10 * 1024 * 1024
SUPPORTED_VERSIONS = ("1.02", "1.03")
HEADER = "1CClientBankExchange"
DOC_START = "СекцияДокумент"
DOC_END = "КонецДокумента"
ACCOUNT_START = "СекцияРасчСчет"
ACCOUNT_END = "КонецРасчСчет"
FILE_END = "КонецФайла"
BARE_KEYWORDS = {ACCOUNT_START, ACCOUNT_END, DOC_END, FILE_END}
DATE_RE = re.compile(r"^\d{2}\.\d{2}\.\d{4}$")
AMOUNT_RE = re.compile(r"^\d{1,16}(\.\d{1,2})?$")
ACCOUNT_RE = re.compile(r"^\d{20}$")


@dataclass(frozen=True)
class LineError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class StatementDocument:
    line: int
    kind: str
    fields: dict[str, str] = field(default_factory=dict)
    field_lines: dict[str, int] = field(default_factory=dict)
    number: str = ""
    date: dt.date | None = None
    amount: Decimal = Decimal("0")
    payer_inn: str = ""
    payer_account: str = ""
    payer_name: str = ""
    recipient_inn: str = ""
    recipient_account: str = ""
    received_on: dt.date | None = None
    purpose: str = ""

    @property
    def natural_key(self) -> str:
        """The bank document's identity: the same document in two files gives the same key."""
        return "/".join(
            [
                f"{self.date:%Y-%m-%d}" if self.date else "",
                self.number,
                self.payer_inn or "-",
                self.payer_account or "-",
                self.recipient_account,
                f"{self.amount:.2f}",
            ]
        )


@dataclass
class Statement:
    encoding: str = ""
    version: str = ""
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    accounts: list[str] = field(default_factory=list)
    documents: list[StatementDocument] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    # Line errors inside a document mark only that document invalid (for only-valid mode).
    invalid_documents: set[int] = field(default_factory=set)


def _decode(data: bytes) -> tuple[str, str]:
    """UTF-8 when the bytes are valid UTF-8 (with or without BOM), else Windows-1251 (or DOS cp866)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    text = data.decode("cp1251", errors="replace")
    if re.search(r"^Кодировка=DOS\s*$", text, re.MULTILINE):
        return data.decode("cp866", errors="replace"), "cp866"
    return text, "cp1251"


def _date(value: str) -> dt.date:
    if not DATE_RE.match(value):
        raise ValueError(f"date {value!r} is not dd.mm.yyyy")
    try:
        day, month, year = (int(p) for p in value.split("."))
        return dt.date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"date {value!r} does not exist") from exc


def _inn(value: str) -> str:
    value = value.strip()
    if value in ("", "0"):  # individuals' payments often carry no INN, banks write 0
        return ""
    return requisites.normalize_inn(value)


def _finish_document(doc: StatementDocument, statement: Statement) -> None:
    errors: list[LineError] = []

    def get(name: str) -> tuple[str, int]:
        return doc.fields.get(name, "").strip(), doc.field_lines.get(name, doc.line)

    number, line = get("Номер")
    if not number:
        errors.append(LineError(doc.line, "document without Номер"))
    doc.number = number
    value, line = get("Дата")
    try:
        doc.date = _date(value) if value else None
        if doc.date is None:
            errors.append(LineError(doc.line, "document without Дата"))
    except ValueError as exc:
        errors.append(LineError(line, f"Дата: {exc}"))
    value, line = get("Сумма")
    if not value:
        errors.append(LineError(doc.line, "document without Сумма"))
    elif not AMOUNT_RE.match(value.replace(",", ".")):
        errors.append(LineError(line, f"Сумма: {value!r} is not an amount such as 1200.50"))
    else:
        try:
            doc.amount = Decimal(value.replace(",", ".")).quantize(Decimal("0.01"))
        except InvalidOperation:  # pragma: no cover - the regex already refused it
            errors.append(LineError(line, f"Сумма: {value!r} is not an amount"))
        if doc.amount <= 0:
            errors.append(LineError(line, "Сумма must be greater than zero"))
    for key, attr in (("ПлательщикИНН", "payer_inn"), ("ПолучательИНН", "recipient_inn")):
        value, line = get(key)
        try:
            setattr(doc, attr, _inn(value))
        except ValueError as exc:
            errors.append(LineError(line, f"{key}: {exc}"))
    for keys, attr in (
        (("ПлательщикСчет", "ПлательщикРасчСчет"), "payer_account"),
        (("ПолучательСчет", "ПолучательРасчСчет"), "recipient_account"),
    ):
        for key in keys:
            value, line = get(key)
            if value:
                if not ACCOUNT_RE.match(value):
                    errors.append(LineError(line, f"{key}: {value!r} is not a 20-digit account"))
                setattr(doc, attr, value)
                break
    value, line = get("ДатаПоступило")
    if value:
        try:
            doc.received_on = _date(value)
        except ValueError as exc:
            errors.append(LineError(line, f"ДатаПоступило: {exc}"))
    doc.payer_name = get("Плательщик1")[0] or get("Плательщик")[0]
    purpose = get("НазначениеПлатежа")[0]
    if not purpose:
        purpose = " ".join(get(f"НазначениеПлатежа{i}")[0] for i in range(1, 7)).strip()
    doc.purpose = purpose
    statement.documents.append(doc)
    if errors:
        statement.errors.extend(errors)
        statement.invalid_documents.add(len(statement.documents) - 1)


def statement_parse(data: bytes) -> Statement:
    """Parse a whole file; every problem is a ``LineError`` naming the line, nothing is raised."""
    text, encoding = _decode(data)
    statement = Statement(encoding=encoding)
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None or lines[first].strip() != HEADER:
        statement.errors.append(LineError((first or 0) + 1, f"the file does not start with {HEADER}"))
        return statement
    doc: StatementDocument | None = None
    in_account = False
    ended = False
    for index in range(first + 1, len(lines)):
        number = index + 1
        raw = lines[index].strip()
        if not raw:
            continue
        if ended:
            statement.errors.append(LineError(number, f"content after {FILE_END}"))
            break
        key, sep, value = raw.partition("=")
        key = key.strip()
        if not sep:
            if key == DOC_END:
                if doc is None:
                    statement.errors.append(LineError(number, f"{DOC_END} without {DOC_START}"))
                else:
                    _finish_document(doc, statement)
                    doc = None
            elif key == ACCOUNT_START:
                in_account = True
            elif key == ACCOUNT_END:
                in_account = False
            elif key == FILE_END:
                ended = True
            else:
                statement.errors.append(LineError(number, f"expected Key=Value, got {raw[:60]!r}"))
                if doc is not None:
                    statement.invalid_documents.add(len(statement.documents))
            continue
        if key == DOC_START:
            if doc is not None:
                statement.errors.append(LineError(doc.line, f"document not closed with {DOC_END}"))
                _finish_document(doc, statement)
                statement.invalid_documents.add(len(statement.documents) - 1)
            doc = StatementDocument(line=number, kind=value.strip())
            continue
        if doc is not None:
            doc.fields[key] = value
            doc.field_lines[key] = number
            continue
        if in_account:
            continue
        value = value.strip()
        if key == "ВерсияФормата":
            statement.version = value
            if value not in SUPPORTED_VERSIONS:
                statement.errors.append(
                    LineError(
                        number, f"format version {value!r} is not one of {', '.join(SUPPORTED_VERSIONS)}"
                    )
                )
        elif key in ("ДатаНачала", "ДатаКонца"):
            try:
                parsed = _date(value)
            except ValueError as exc:
                statement.errors.append(LineError(number, f"{key}: {exc}"))
            else:
                if key == "ДатаНачала":
                    statement.period_start = parsed
                else:
                    statement.period_end = parsed
        elif key == "РасчСчет":
            statement.accounts.append(value)
    if doc is not None:
        statement.errors.append(LineError(doc.line, f"document not closed with {DOC_END}"))
        _finish_document(doc, statement)
        statement.invalid_documents.add(len(statement.documents) - 1)
    if not ended and not any("not closed" in e.reason for e in statement.errors):
        statement.errors.append(LineError(len(lines), f"the file does not end with {FILE_END}"))
    statement.errors.sort(key=lambda e: e.line)
    return statement


# --- import -----------------------------------------------------------------------------------------


def _received_at(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time()))


def bank_statement_import(
    *,
    data: bytes,
    file_name: str = "",
    only_valid: bool = False,
    actor=None,
    origin: str = "api",
) -> BankStatementImport:
    """Import a statement; returns the import row (status ``refused`` when nothing was imported).

    Every upload leaves a row with its counts and errors, refused ones included.
    """
    from .matching import payment_match
    from .services import payment_record

    log = BankStatementImport(
        file_name=file_name[:255],
        file_sha256=hashlib.sha256(data).hexdigest(),
        file_size=len(data),
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    if len(data) > MAX_FILE_BYTES:
        log.status = StatementImportStatus.REFUSED
        log.errors = [f"the file is {len(data)} bytes; at most {MAX_FILE_BYTES} bytes (10 MB) are accepted"]
        log.save()
        return log
    statement = statement_parse(data)
    log.encoding, log.format_version = statement.encoding, statement.version
    log.period_start, log.period_end = statement.period_start, statement.period_end
    log.documents = len(statement.documents)
    log.errors = [str(e) for e in statement.errors]
    header_broken = any(
        e.line < (statement.documents[0].line if statement.documents else 10**9) for e in statement.errors
    )
    if statement.errors and (not only_valid or header_broken or not statement.documents):
        log.status = StatementImportStatus.REFUSED
        log.save()
        return log
    companies = list(Company.objects.exclude(settlement_account=""))
    by_account = {c.settlement_account: c for c in companies}
    own_inns = {c.inn for c in Company.objects.exclude(inn="")}
    with transaction.atomic():
        for index, doc in enumerate(statement.documents):
            if index in statement.invalid_documents:
                continue
            company = by_account.get(doc.recipient_account)
            if (
                company is None
                or doc.payer_account in by_account
                or (doc.payer_inn and doc.payer_inn in own_inns)
            ):
                log.skipped += 1  # outgoing, someone else's, or a transfer between our own accounts
                continue
            try:
                payment = payment_record(
                    amount=doc.amount,
                    received_at=_received_at(doc.received_on or doc.date),
                    company=company,
                    source=PaymentSource.BANK,
                    external_id=doc.natural_key,
                    payer_name=doc.payer_name[:255],
                    payer_inn=doc.payer_inn,
                    purpose=doc.purpose,
                    actor=actor,
                    origin=origin,
                )
            except Conflict as exc:
                if exc.code != "duplicate":
                    raise
                log.duplicates += 1
                continue
            log.imported += 1
            decision = payment_match(payment=payment, actor=actor, origin=origin)
            if decision is not None and decision.status == MatchStatus.APPLIED:
                log.matched += 1
            elif decision is not None and decision.status == MatchStatus.REVIEW:
                log.waiting_review += 1
        log.status = StatementImportStatus.PARTIAL if statement.errors else StatementImportStatus.IMPORTED
        log.save()
    return log


def import_summary(log: BankStatementImport) -> dict:
    """The summary the API and the management command both return."""
    return {
        "id": log.pk,
        "status": log.status,
        "file_name": log.file_name,
        "encoding": log.encoding,
        "format_version": log.format_version,
        "period_start": log.period_start,
        "period_end": log.period_end,
        "documents": log.documents,
        "imported": log.imported,
        "duplicates": log.duplicates,
        "skipped": log.skipped,
        "matched": log.matched,
        "waiting_review": log.waiting_review,
        "errors": log.errors,
    }
