"""1C:Enterprise through its standard OData interface (CONTRACTS.md §2.1).

The infobase publishes `…/odata/standard.odata/`; every catalog and document added to the OData
composition is an entity set (`Catalog_Контрагенты`, `Document_СчетНаОплатуПокупателю`, …) keyed by a
`Ref_Key` GUID. Object names differ between 1C products (Бухгалтерия 3.0, УНФ, УТ), so the stream ►
entity set table is `config.options["objects"]` over the БП 3.0 defaults below; field names are the
connection's field mappings (seeded with the БП 3.0 names of `default_mappings`).

Change feed: 1C has no "modified at" on catalogs. Every fetch re-reads catalogs in full and documents
from `since - lookback_days` by their `Date`; `DataVersion` (the record's revision) is the `version`
the engine compares to skip unchanged records, and `updated_at` stays None (1C never says *when* a
record changed). `DeletionMark` is a tombstone. Records are yielded in a stable order (`Ref_Key` for
catalogs, `Date` then `Ref_Key` for documents).

Writing: `upsert` POSTs (create) or PATCHes (update) the entity set; `after_push` posts a pushed
invoice (`…/Post()`); `delete` sets `DeletionMark` (1C's own "mark for deletion", never a physical
DELETE). Invoice lines arrive from the mapper as canonical rows under `Товары` and are written as
1C tabular-section rows (1C cannot create tabular rows on their own).
"""

from __future__ import annotations

import base64
import datetime as dt
import zoneinfo
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from sync.connectors import register
from sync.connectors.base import (
    AuthError,
    ConnectionConfig,
    Connector,
    MappingSpec,
    PermanentError,
    RecordError,
    RemoteRecord,
)
from sync.http import HttpClient

EMPTY_REF = "00000000-0000-0000-0000-000000000000"
DEFAULT_OBJECTS = {
    "clients": "Catalog_Контрагенты",
    "invoices": "Document_СчетНаОплатуПокупателю",
    "payments": "Document_ПоступлениеНаРасчетныйСчет",
}
DOCUMENT_PREFIX = "Document_"
DEFAULT_PAGE_SIZE = 500
DEFAULT_LOOKBACK_DAYS = 30
# Incoming bank receipts that are customer payments (others: loans, refunds from suppliers, …).
DEFAULT_PAYMENT_OPERATIONS = ("ОплатаПокупателя",)
DEFAULT_VAT_RATES = {"22": "НДС22", "20": "НДС20", "10": "НДС10", "7": "НДС7", "5": "НДС5", "0": "НДС0"}

_MOSCOW = {"tz": "Europe/Moscow", "format": "%Y-%m-%dT%H:%M:%S"}
_DATE = {"format": "%Y-%m-%dT%H:%M:%S"}


def _contact(kind: str) -> str:
    return f"КонтактнаяИнформация[Тип={kind}].Представление"


@register
class OneCODataConnector(Connector):
    system = "onec_odata"
    title = "1C:Enterprise (OData)"
    role = "accounting"
    streams = ("clients", "invoices", "payments")
    push_streams = ("clients", "invoices")
    credential_keys = ("username", "password")
    required_credentials = ("username",)
    default_rate_limit = 5.0  # 1C has no documented limit; one infobase server is easy to overload
    signs_webhooks = False
    default_mappings = (
        # Catalog_Контрагенты ► clients
        MappingSpec("clients", "Description", "name"),
        MappingSpec("clients", "НаименованиеПолное", "legal_name"),
        MappingSpec("clients", "ИНН", "inn"),
        MappingSpec("clients", "КПП", "kpp"),
        MappingSpec(
            "clients",
            "ЮридическоеФизическоеЛицо",
            "kind",
            transform="enum",
            params={"map": {"ЮридическоеЛицо": "company", "ФизическоеЛицо": "person"}, "default": "company"},
        ),
        MappingSpec("clients", _contact("АдресЭлектроннойПочты"), "email", direction="in"),
        MappingSpec(
            "clients",
            _contact("Телефон"),
            "phone",
            direction="in",
            transform="phone",
            params={"region": "RU"},
        ),
        MappingSpec("clients", _contact("Адрес"), "address", direction="in"),
        MappingSpec("clients", "Комментарий", "notes"),
        MappingSpec("clients", "DeletionMark", "archived", direction="in", transform="boolean"),
        # Document_СчетНаОплатуПокупателю ► invoices
        MappingSpec("invoices", "Number", "number", direction="in"),
        MappingSpec("invoices", "Date", "issue_date", transform="date", params=_DATE),
        MappingSpec("invoices", "Контрагент_Key", "client", transform="lookup", params={"entity": "clients"}),
        MappingSpec("invoices", "СуммаДокумента", "total", transform="decimal"),
        MappingSpec(
            "invoices",
            "Posted",
            "status",
            direction="in",
            owner="hub",  # paid/overdue are the hub's business; 1C only says issued (posted) or draft
            transform="enum",
            params={"map": {"True": "issued", "False": "draft"}},
        ),
        MappingSpec("invoices", "Комментарий", "purpose"),
        MappingSpec("invoices", "Товары", "lines", direction="out", owner="hub"),
        # Document_ПоступлениеНаРасчетныйСчет ► payments
        MappingSpec(
            "payments", "Number", "reference", direction="in"
        ),  # the payer's own number below wins when present
        MappingSpec("payments", "НомерВходящегоДокумента", "reference", direction="in"),
        MappingSpec("payments", "Date", "received_at", direction="in", transform="datetime", params=_MOSCOW),
        MappingSpec("payments", "СуммаДокумента", "amount", direction="in", transform="decimal"),
        MappingSpec(
            "payments",
            "Контрагент_Key",
            "client",
            direction="in",
            transform="lookup",
            params={"entity": "clients"},
        ),
        MappingSpec(
            "payments",
            "РасшифровкаПлатежа.0.СчетНаОплату_Key",
            "invoice",
            direction="in",
            transform="lookup",
            params={"entity": "invoices"},
        ),
        MappingSpec("payments", "НазначениеПлатежа", "purpose", direction="in"),
    )

    def __init__(self, config: ConnectionConfig, *, http: Any | None = None):
        if http is None:
            http = HttpClient.for_connection(
                config,
                headers={"Accept": "application/json"},
                rate_limit=config.rate_limit_per_second or self.default_rate_limit,
            )
        super().__init__(config, http=http)
        options = config.options or {}
        self.objects = {**DEFAULT_OBJECTS, **(options.get("objects") or {})}
        self.page_size = int(options.get("page_size") or DEFAULT_PAGE_SIZE)
        self.lookback = dt.timedelta(days=int(options.get("lookback_days", DEFAULT_LOOKBACK_DAYS)))
        self.zone = zoneinfo.ZoneInfo(options.get("timezone") or "Europe/Moscow")
        operations = options.get("payment_operations", DEFAULT_PAYMENT_OPERATIONS)
        self.payment_operations = frozenset(operations or ())
        self.vat_rates = {**DEFAULT_VAT_RATES, **(options.get("vat_rates") or {})}
        self.default_item_key = options.get("default_item_key") or ""

    # --- plumbing ----------------------------------------------------------------------------------
    def _auth_header(self) -> dict[str, str]:
        creds = self.config.credentials.load()
        username = creds.get("username")
        if not username:
            raise AuthError(
                f"{self.config.name}: no 1C user name; set --credential username=… (and password)"
            )
        token = base64.b64encode(f"{username}:{creds.get('password', '')}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}

    def _entity_set(self, stream: str) -> str:
        try:
            return self.objects[stream]
        except KeyError:
            raise PermanentError(f"{self.system} has no object for stream {stream!r}") from None

    @staticmethod
    def _url(entity_set: str, key: str | None = None, action: str = "") -> str:
        path = quote(entity_set)
        if key is not None:
            path += quote(f"(guid'{key}')", safe="()'")
        return f"{path}/{action}" if action else path

    def _get(self, url: str, params: Mapping[str, Any] | None = None) -> Any:
        body = self.http.get_json(
            url, params={"$format": "json", **(params or {})}, headers=self._auth_header()
        )
        self._raise_odata_error(body, url)
        return body

    @staticmethod
    def _raise_odata_error(body: Any, url: str) -> None:
        if isinstance(body, Mapping) and "odata.error" in body:
            error = body["odata.error"] or {}
            message = (error.get("message") or {}).get("value") if isinstance(error, Mapping) else error
            raise PermanentError(f"1C OData {url}: {error.get('code', '')} {message}".strip())

    def _to_local(self, when: dt.datetime) -> str:
        local = when.astimezone(self.zone) if when.tzinfo else when
        return local.replace(tzinfo=None, microsecond=0).isoformat()

    # --- reading -----------------------------------------------------------------------------------
    def check(self) -> None:
        """One row of the counterparties catalog: proves the publication, the user and its rights."""
        self._get(self._url(self._entity_set("clients")), {"$top": "1"})

    def fetch(self, stream: str, *, since: dt.datetime | None = None) -> Iterator[RemoteRecord]:
        entity_set = self._entity_set(stream)
        is_document = entity_set.startswith(DOCUMENT_PREFIX)
        params: dict[str, str] = {"$orderby": "Date asc,Ref_Key asc" if is_document else "Ref_Key asc"}
        if since is not None and is_document:
            params["$filter"] = f"Date ge datetime'{self._to_local(since - self.lookback)}'"
        url = self._url(entity_set)
        skip = 0
        previous_ids: list[str] | None = None
        while True:
            body = self._get(url, {**params, "$top": str(self.page_size), "$skip": str(skip)})
            rows = body.get("value") if isinstance(body, Mapping) else None
            if not isinstance(rows, list):
                raise PermanentError(f"1C OData {entity_set}: the reply has no 'value' list")
            ids = [str(row.get("Ref_Key")) for row in rows if isinstance(row, Mapping)]
            if rows and ids == previous_ids:
                raise PermanentError(f"1C OData {entity_set}: $skip={skip} returned the previous page again")
            previous_ids = ids
            for row in rows:
                record = self._record(stream, row)
                if record is not None:
                    yield record
            if len(rows) < self.page_size:
                return
            skip += len(rows)

    def get(self, stream: str, external_id: str) -> RemoteRecord | None:
        url = self._url(self._entity_set(stream), external_id)
        response = self.http.request(
            "GET", url, params={"$format": "json"}, headers=self._auth_header(), expect=(404,)
        )
        if response.status_code == 404:
            return None
        body = self.http.json_of(response)
        self._raise_odata_error(body, url)
        return self._record(stream, body, keep_filtered=True)

    def _record(self, stream: str, row: Any, *, keep_filtered: bool = False) -> RemoteRecord | None:
        """A `RemoteRecord` of one OData row; None for catalog folders and non-customer receipts."""
        if not isinstance(row, Mapping):
            raise PermanentError(f"1C OData {stream}: a row is not an object: {row!r:.100}")
        ref = row.get("Ref_Key")
        if not ref:
            raise PermanentError(f"1C OData {stream}: a row has no Ref_Key")
        if row.get("IsFolder") is True:
            return None  # a catalog group, not a counterparty
        if (
            stream == "payments"
            and not keep_filtered
            and self.payment_operations
            and "ВидОперации" in row
            and row["ВидОперации"] not in self.payment_operations
        ):
            return None
        return RemoteRecord(
            stream=stream,
            external_id=str(ref),
            data=_clear_empty_refs(row),
            updated_at=None,
            version=str(row.get("DataVersion") or ""),
            deleted=row.get("DeletionMark") is True,
        )

    # --- writing -----------------------------------------------------------------------------------
    def upsert(self, stream: str, payload: Mapping[str, Any], *, external_id: str | None = None) -> str:
        if stream not in self.push_streams:
            return super().upsert(stream, payload, external_id=external_id)
        body = self._vendor_payload(stream, payload)
        entity_set = self._entity_set(stream)
        if external_id:
            url = self._url(entity_set, external_id)
            method = "PATCH"
        else:
            url = self._url(entity_set)
            method = "POST"
        response = self.http.request(
            method, url, params={"$format": "json"}, json=body, headers=self._auth_header()
        )
        reply = self.http.json_of(response)
        self._raise_odata_error(reply, url)
        if external_id:
            return external_id
        if not isinstance(reply, Mapping) or not reply.get("Ref_Key"):
            raise PermanentError(f"1C OData {entity_set}: created, but the reply carries no Ref_Key")
        return str(reply["Ref_Key"])

    def _vendor_payload(self, stream: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        body = {key: value for key, value in payload.items() if value is not None}
        if stream == "invoices" and isinstance(body.get("Товары"), list):
            body["Товары"] = [self._line(i, line) for i, line in enumerate(body["Товары"], start=1)]
        return body

    def _line(self, number: int, line: Any) -> dict[str, Any]:
        """A canonical invoice line ► a row of the 1C tabular section `Товары`."""
        if not isinstance(line, Mapping):
            raise RecordError(f"invoice line {number} is not an object")
        if "Количество" in line:  # already vendor-shaped
            return {"LineNumber": str(number), **line}
        try:
            quantity = Decimal(str(line.get("quantity", 1)))
            price = Decimal(str(line["unit_price"]))
        except (KeyError, ArithmeticError) as exc:
            raise RecordError(f"invoice line {number}: no quantity/unit price ({exc})") from None
        vat = line.get("vat_rate")
        vat_key = "" if vat is None else f"{Decimal(str(vat)):f}".rstrip("0").rstrip(".")
        row: dict[str, Any] = {
            "LineNumber": str(number),
            "Содержание": str(line.get("description", ""))[:1024],
            "Количество": float(quantity),
            "Цена": float(price),
            "Сумма": float((quantity * price).quantize(Decimal("0.01"))),
            "СтавкаНДС": self.vat_rates.get(vat_key, "БезНДС") if vat_key else "БезНДС",
        }
        if self.default_item_key:
            row["Номенклатура_Key"] = self.default_item_key
        return row

    def after_push(self, stream: str, external_id: str, canonical: Mapping[str, Any]) -> None:
        """Post (провести) an issued invoice so it counts in 1C; drafts stay unposted."""
        if stream != "invoices" or canonical.get("status") in (None, "draft", "void"):
            return
        url = self._url(self._entity_set(stream), external_id, "Post()")
        self.http.request(
            "POST", url, params={"PostingModeOperational": "false"}, headers=self._auth_header()
        )

    def delete(self, stream: str, external_id: str) -> None:
        """Mark for deletion (`DeletionMark`): 1C's own tombstone, reversible by its users."""
        url = self._url(self._entity_set(stream), external_id)
        self.http.request(
            "PATCH", url, params={"$format": "json"}, json={"DeletionMark": True}, headers=self._auth_header()
        )


def _clear_empty_refs(value: Any) -> Any:
    """1C writes an empty reference as the all-zero GUID; make it None so lookups see "no link"."""
    if isinstance(value, Mapping):
        return {key: _clear_empty_refs(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clear_empty_refs(item) for item in value]
    return None if value == EMPTY_REF else value
