"""CommerceML 2 for the 1C ⇄ site exchange (CONTRACTS.md §2.2): the protocol replies, the orders
document the hub hands to 1C, and the parser of what 1C sends back. Pure functions, no ORM.

The exchange is driven by 1C, which polls the "site" (here: the hub):

    ?type=sale&mode=checkauth   (HTTP Basic)     ► "success\\n<cookie name>\\n<cookie value>"
    ?type=sale&mode=init                         ► "zip=no\\nfile_limit=<bytes>"
    ?type=sale&mode=query                        ► <КоммерческаяИнформация> with the orders
    ?type=sale&mode=success                      ► "success" (the exported orders are acknowledged)
    ?type=sale&mode=file&filename=orders.xml     ► "success" (POST body, possibly in chunks)
    ?type=sale&mode=import&filename=orders.xml   ► "success" | "failure\\n<reason>"

Orders are documents with `ХозОперация` "Заказ товара"; 1C returns them with requisites
(`ЗначенияРеквизитов`) such as "Проведен", "ПометкаУдаления", "Отменен", "Номер оплаты по 1С",
"Дата оплаты по 1С", "Статус заказа" — the names the 1C site-exchange module writes [G/R: Bitrix and
CS-Cart modules use them; not a published schema].
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET  # building only; parsing goes through defusedxml
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

SCHEMA_VERSION = "2.08"
NAMESPACE = "urn:1C.ru:commerceml_2"
ROOT_TAG = "КоммерческаяИнформация"
ORDER_OPERATION = "Заказ товара"
DEFAULT_FILE_LIMIT = 2 * 1024 * 1024  # under Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)
CENT = Decimal("0.01")

# Requisites 1C writes on orders it sends back.
REQ_POSTED = "Проведен"
REQ_DELETED = "ПометкаУдаления"
REQ_CANCELLED = "Отменен"
REQ_PAYMENT_NUMBER = "Номер оплаты по 1С"
REQ_PAYMENT_DATE = "Дата оплаты по 1С"
REQ_NUMBER_1C = "Номер по 1С"
REQ_STATUS = "Статус заказа"


class CommerceMLError(ValueError):
    """A document that is not well-formed CommerceML; the message says what and where."""


# ---- protocol replies ---------------------------------------------------------------------------


def success(*lines: str) -> str:
    return "\n".join(("success", *lines))


def failure(reason: str) -> str:
    """`failure\\n<reason>` on one line of reason (1C shows it in its exchange log)."""
    return "failure\n" + " ".join(str(reason).split())[:500]


def checkauth_reply(cookie_name: str, cookie_value: str) -> str:
    return success(cookie_name, cookie_value)


def init_reply(*, file_limit: int = DEFAULT_FILE_LIMIT, zip_allowed: bool = False) -> str:
    return f"zip={'yes' if zip_allowed else 'no'}\nfile_limit={int(file_limit)}"


# ---- the orders document (hub ► 1C) -------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    """The buyer (`Контрагент` with `Роль` Покупатель)."""

    id: str
    name: str
    full_name: str = ""
    inn: str = ""
    kpp: str = ""
    address: str = ""
    email: str = ""
    phone: str = ""
    is_person: bool = False


@dataclass(frozen=True)
class Item:
    """One `Товар` of an order. `total` includes VAT (`УчтеноВСумме`)."""

    id: str
    name: str
    quantity: Decimal
    total: Decimal
    unit: str = "шт"
    unit_code: str = "796"
    vat_rate: Decimal | None = None
    vat_amount: Decimal = Decimal("0")
    kind: str = "Услуга"  # ТипНоменклатуры: Товар | Услуга

    @property
    def unit_price(self) -> Decimal:
        return (
            (self.total / self.quantity).quantize(CENT, rounding=ROUND_HALF_UP)
            if self.quantity
            else self.total
        )


@dataclass(frozen=True)
class Order:
    """One `Документ` of the export: an issued invoice (or a deal) as 1C's "order"."""

    id: str
    number: str
    date: dt.datetime
    party: Party
    items: tuple[Item, ...]
    total: Decimal
    currency: str = "RUB"
    vat_amount: Decimal = Decimal("0")
    comment: str = ""
    status: str = ""
    paid: bool = False
    cancelled: bool = False
    requisites: Mapping[str, str] = field(default_factory=dict)


_CURRENCY_NAMES = {"RUB": "руб"}


def _money(value: Decimal) -> str:
    return str(Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP))


def _qty(value: Decimal) -> str:
    return format(Decimal(value).normalize(), "f")


def _sub(parent: ET.Element, tag: str, text: Any = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = str(text)
    return element


def _requisites(parent: ET.Element, values: Mapping[str, str]) -> None:
    if not values:
        return
    container = _sub(parent, "ЗначенияРеквизитов")
    for name, value in values.items():
        requisite = _sub(container, "ЗначениеРеквизита")
        _sub(requisite, "Наименование", name)
        _sub(requisite, "Значение", value)


def _vat_rate_text(rate: Decimal | None) -> str:
    return "Без налога" if rate is None else _qty(rate)


def _party(parent: ET.Element, party: Party) -> None:
    element = _sub(_sub(parent, "Контрагенты"), "Контрагент")
    _sub(element, "Ид", party.id)
    _sub(element, "Наименование", party.name)
    _sub(element, "Роль", "Покупатель")
    _sub(element, "ПолноеНаименование", party.full_name or party.name)
    if not party.is_person:
        _sub(element, "ОфициальноеНаименование", party.full_name or party.name)
    if party.inn:
        _sub(element, "ИНН", party.inn)
    if party.kpp and not party.is_person:
        _sub(element, "КПП", party.kpp)
    if party.address:
        address = _sub(element, "ЮридическийАдрес" if not party.is_person else "АдресРегистрации")
        _sub(address, "Представление", party.address)
    contacts = [("Почта", party.email), ("Телефон рабочий", party.phone)]
    if any(value for _, value in contacts):
        container = _sub(element, "Контакты")
        for kind, value in contacts:
            if value:
                contact = _sub(container, "Контакт")
                _sub(contact, "Тип", kind)
                _sub(contact, "Значение", value)


def _item(parent: ET.Element, item: Item) -> None:
    element = _sub(parent, "Товар")
    _sub(element, "Ид", item.id)
    _sub(element, "Наименование", item.name)
    _sub(element, "БазоваяЕдиница", item.unit, Код=item.unit_code, НаименованиеПолное=item.unit)
    _sub(element, "ЦенаЗаЕдиницу", _money(item.unit_price))
    _sub(element, "Количество", _qty(item.quantity))
    _sub(element, "Сумма", _money(item.total))
    rates = _sub(_sub(element, "СтавкиНалогов"), "СтавкаНалога")
    _sub(rates, "Наименование", "НДС")
    _sub(rates, "Ставка", _vat_rate_text(item.vat_rate))
    if item.vat_rate is not None:
        tax = _sub(_sub(element, "Налоги"), "Налог")
        _sub(tax, "Наименование", "НДС")
        _sub(tax, "УчтеноВСумме", "true")
        _sub(tax, "Сумма", _money(item.vat_amount))
    _requisites(element, {"ВидНоменклатуры": item.kind, "ТипНоменклатуры": item.kind})


def build_orders(
    orders: Iterable[Order], *, generated_at: dt.datetime, encoding: str = "windows-1251"
) -> bytes:
    """The `mode=query` reply: a CommerceML 2 document with one `Документ` per order, encoded in
    `encoding` (windows-1251 for classic 1C modules, utf-8 for new ones; characters the encoding lacks
    become character references)."""
    root = ET.Element(
        ROOT_TAG,
        {
            "ВерсияСхемы": SCHEMA_VERSION,
            "ДатаФормирования": generated_at.replace(microsecond=0, tzinfo=None).isoformat(),
        },
    )
    for order in orders:
        document = _sub(root, "Документ")
        local = order.date.replace(tzinfo=None)  # 1C reads wall-clock time: the caller passes local time
        _sub(document, "Ид", order.id)
        _sub(document, "Номер", order.number)
        _sub(document, "Дата", local.date().isoformat())
        _sub(document, "Время", local.time().replace(microsecond=0).isoformat())
        _sub(document, "ХозОперация", ORDER_OPERATION)
        _sub(document, "Роль", "Продавец")
        _sub(document, "Валюта", _CURRENCY_NAMES.get(order.currency, order.currency))
        _sub(document, "Курс", "1")
        _sub(document, "Сумма", _money(order.total))
        _party(document, order.party)
        if order.comment:
            _sub(document, "Комментарий", order.comment)
        if order.vat_amount:
            tax = _sub(_sub(document, "Налоги"), "Налог")
            _sub(tax, "Наименование", "НДС")
            _sub(tax, "УчтеноВСумме", "true")
            _sub(tax, "Сумма", _money(order.vat_amount))
        items = _sub(document, "Товары")
        for item in order.items:
            _item(items, item)
        requisites = {
            "Статус заказа": order.status,
            "Заказ оплачен": "true" if order.paid else "false",
            "Отменен": "true" if order.cancelled else "false",
            **order.requisites,
        }
        _requisites(document, {k: v for k, v in requisites.items() if v != ""})
    ET.indent(root)
    declaration = f'<?xml version="1.0" encoding="{encoding}"?>\n'.encode("ascii")
    return declaration + ET.tostring(root, encoding=encoding, xml_declaration=False)


# ---- what 1C sends back (1C ► hub) --------------------------------------------------------------


@dataclass(frozen=True)
class ImportedDocument:
    """One `Документ` 1C uploaded: an order with its status and payment requisites."""

    id: str
    number: str
    operation: str
    date: dt.date | None
    total: Decimal | None
    currency: str
    requisites: Mapping[str, str]
    parties: tuple[Mapping[str, str], ...]
    items: tuple[Mapping[str, str], ...]

    def flag(self, name: str) -> bool:
        return self.requisites.get(name, "").strip().lower() in ("true", "истина", "да", "1")

    @property
    def posted(self) -> bool:
        return self.flag(REQ_POSTED)

    @property
    def cancelled(self) -> bool:
        return self.flag(REQ_CANCELLED) or self.flag(REQ_DELETED)

    @property
    def payment_number(self) -> str:
        return self.requisites.get(REQ_PAYMENT_NUMBER, "").strip()

    @property
    def payment_date(self) -> dt.datetime | None:
        """ "Дата оплаты по 1С": 1C writes `2026-01-17T09:15:00` or `17.01.2026 9:15:00` [G]."""
        return _parse_1c_datetime(self.requisites.get(REQ_PAYMENT_DATE, ""))

    @property
    def paid(self) -> bool:
        return self.payment_date is not None

    def as_record(self) -> dict[str, Any]:
        """The document as a plain dict in CommerceML names (for `RemoteRecord.data`)."""
        return {
            "Ид": self.id,
            "Номер": self.number,
            "ХозОперация": self.operation,
            "Дата": self.date.isoformat() if self.date else None,
            "Сумма": str(self.total) if self.total is not None else None,
            "Валюта": self.currency,
            "ЗначенияРеквизитов": [{"Наименование": k, "Значение": v} for k, v in self.requisites.items()],
            "Контрагенты": [dict(p) for p in self.parties],
            "Товары": [dict(i) for i in self.items],
        }


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _children(element: ET.Element | None, name: str) -> list[ET.Element]:
    return [] if element is None else [child for child in element if _local(child.tag) == name]


def _text(element: ET.Element, name: str) -> str:
    child = _child(element, name)
    return (child.text or "").strip() if child is not None else ""


def _flat(element: ET.Element) -> dict[str, str]:
    """Direct text children of an element as {tag: text}."""
    return {_local(child.tag): (child.text or "").strip() for child in element if len(child) == 0}


def _parse_1c_datetime(text: str) -> dt.datetime | None:
    text = text.strip()
    if not text or text.startswith("0001-01-01"):
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d.%m.%Y %H:%M:%S", "%Y-%m-%d", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(text, fmt)  # noqa: DTZ007 - 1C local time; the caller adds the zone
        except ValueError:
            continue
    raise CommerceMLError(f"unreadable date {text!r}")


def _decimal(text: str, where: str) -> Decimal | None:
    if not text:
        return None
    try:
        return Decimal(text.replace(" ", "").replace("\xa0", "").replace(",", "."))
    except InvalidOperation:
        raise CommerceMLError(f"{where}: not a number: {text!r}") from None


def parse_documents(data: bytes) -> list[ImportedDocument]:
    """The documents of a CommerceML 2 file (any encoding its XML declaration names, with or without
    the `urn:1C.ru:commerceml_2` namespace, 3.x `<Контейнер>` wrappers accepted).

    Raises `CommerceMLError` for malformed XML, forbidden constructs (entities, DTDs — defusedxml), a
    foreign root element or a document without `Ид`/`Номер`.
    """
    if not data or not data.strip():
        raise CommerceMLError("the file is empty")
    try:
        root = SafeET.fromstring(data)
    except DefusedXmlException as exc:
        raise CommerceMLError(f"forbidden XML construct ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        raise CommerceMLError(f"not well-formed XML: {exc}") from None
    except (LookupError, ValueError) as exc:  # an unknown encoding in the declaration
        raise CommerceMLError(f"unreadable XML: {exc}") from None
    if _local(root.tag) != ROOT_TAG:
        raise CommerceMLError(f"the root element is <{_local(root.tag)}>, expected <{ROOT_TAG}>")
    documents = _children(root, "Документ")
    for container in _children(root, "Контейнер"):
        documents.extend(_children(container, "Документ"))
    out: list[ImportedDocument] = []
    for index, document in enumerate(documents, start=1):
        doc_id, number = _text(document, "Ид"), _text(document, "Номер")
        if not doc_id and not number:
            raise CommerceMLError(f"document {index} has neither <Ид> nor <Номер>")
        where = f"document {number or doc_id}"
        date_text = _text(document, "Дата")
        try:
            date = dt.date.fromisoformat(date_text[:10]) if date_text else None
        except ValueError:
            raise CommerceMLError(f"{where}: bad <Дата> {date_text!r}") from None
        requisites = {
            _text(r, "Наименование"): _text(r, "Значение")
            for r in _children(_child(document, "ЗначенияРеквизитов"), "ЗначениеРеквизита")
        }
        out.append(
            ImportedDocument(
                id=doc_id,
                number=number,
                operation=_text(document, "ХозОперация"),
                date=date,
                total=_decimal(_text(document, "Сумма"), where),
                currency=_text(document, "Валюта"),
                requisites=requisites,
                parties=tuple(_flat(p) for p in _children(_child(document, "Контрагенты"), "Контрагент")),
                items=tuple(_flat(i) for i in _children(_child(document, "Товары"), "Товар")),
            )
        )
    return out


def looks_complete(data: bytes) -> bool:
    """True when an uploaded file ends its root element (all chunks have arrived)."""
    tail = data[-200:].rstrip()
    for encoding in ("utf-8", "windows-1251"):
        try:
            if tail.decode(encoding, errors="ignore").endswith(f"</{ROOT_TAG}>"):
                return True
        except LookupError:  # pragma: no cover - both codecs exist
            continue
    return False
