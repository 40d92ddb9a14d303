"""QuickBooks Online Accounting API v3 connector (CONTRACTS.md §2.6).

Streams: `clients` ► Customer, `invoices` ► Invoice, `payments` ► Payment (received). Pushes clients and
invoices. All calls go to `{url}/v3/company/{realm_id}/…` with `minorversion` (option, default 75).

- Auth: OAuth2 (credentials `client_id`, `client_secret`, `refresh_token`, `realm_id`); tokens from
  `oauth.platform.intuit.com/oauth2/v1/tokens/bearer` (option `token_url` overrides it), refreshed
  single-flight, the rotated refresh token stored.
- Full read: the SQL-like `query` endpoint, `ORDERBY MetaData.LastUpdatedTime STARTPOSITION n MAXRESULTS m`
  (m = 1000, option `page_size`), until a short page. Customers are read `WHERE Active IN (true, false)`:
  QuickBooks "deletes" a customer by making it inactive and hides inactive ones by default.
- Change feed: `GET /cdc?entities=<Entity>&changedSince=<ISO>`, which also reports deletions as
  `status: "Deleted"` (tombstones). CDC looks back at most 30 days and returns at most 1000 objects: an
  older `since` or a full CDC answer falls back to the query with `WHERE MetaData.LastUpdatedTime >= …`
  (paged), keeping the CDC's tombstones.
- Invoices have no status field: the connector derives `hub_status` (void / paid / partially_paid / sent /
  issued) from Balance, TotalAmt, EmailStatus and the "Voided" note, and `hub_lines` (canonical line
  shape) from `Line`; `upsert` turns `hub_lines` back into SalesItemLineDetail lines with the options
  `item_id` (ItemRef, default "1") and `tax_code` (TaxCodeRef: needed outside the US, e.g. the id of a
  20 % VAT code in a UK company; US companies with automated sales tax leave it empty).
- Updates need the record's current `SyncToken`: `upsert` reads it when the payload has none, sends a
  sparse update, and on a stale-object fault (5010) reads it again and retries once.
- Webhooks: `intuit-signature` = base64(HMAC-SHA256(verifier token, raw body)) (credential
  `webhook_verifier`); both the classic `eventNotifications` payload and the CloudEvents array are read.
- Limits: 500 requests/min per company, 10 concurrent; 429 is retried by the shared client (Retry-After
  when sent, backoff otherwise). Default rate limit 8/s.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from sync.connectors import register
from sync.connectors._xero_quickbooks_oauth import OAuth2Tokens
from sync.connectors.base import (
    AuthError,
    Connector,
    ConnectorError,
    MappingSpec,
    PermanentError,
    RecordError,
    RemoteRecord,
    WebhookEvent,
)
from sync.http import HttpClient

logger = logging.getLogger("sync.connectors.quickbooks")

TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
PAGE_SIZE = 1000  # the query endpoint's maximum
CDC_LIMIT = 1000  # objects per CDC answer; a full answer may have been cut
CDC_LOOKBACK = dt.timedelta(days=30)
MINOR_VERSION = "75"
STALE_OBJECT = "5010"

ENTITIES = {"clients": "Customer", "invoices": "Invoice", "payments": "Payment"}
STREAMS_BY_ENTITY = {entity.lower(): stream for stream, entity in ENTITIES.items()}


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":  # webhook style -0700
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _decimal(value: Any) -> Decimal | None:
    try:
        return None if value is None else Decimal(str(value))
    except InvalidOperation:
        return None


def _hub_status(raw: Mapping[str, Any]) -> str:
    """QuickBooks invoices have no status: derive the canonical one from balances and flags."""
    total, balance = _decimal(raw.get("TotalAmt")), _decimal(raw.get("Balance"))
    note = str(raw.get("PrivateNote") or "")
    if total is not None and total == 0 and note.lower().startswith("voided"):
        return "void"
    if total is not None and balance is not None and total > 0:
        if balance == 0:
            return "paid"
        if balance < total:
            return "partially_paid"
    return "sent" if raw.get("EmailStatus") == "EmailSent" else "issued"


def _hub_lines(lines: Any) -> list[dict[str, Any]]:
    """Sales lines in the canonical line shape (subtotal and discount lines are left out)."""
    out = []
    for line in lines if isinstance(lines, list) else []:
        if not isinstance(line, Mapping) or line.get("DetailType") != "SalesItemLineDetail":
            continue
        detail = line.get("SalesItemLineDetail") or {}
        qty, price = detail.get("Qty"), detail.get("UnitPrice")
        out.append(
            {
                "description": line.get("Description") or "",
                "quantity": None if qty is None else str(qty),
                "unit_price": None if price is None else str(price),
                "vat_rate": None,
                "unit": "",
            }
        )
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} to QuickBooks")


def _fault(body: Any) -> tuple[str, str] | None:
    """(code, message) of a QuickBooks `Fault` body, else None."""
    if not isinstance(body, Mapping):
        return None
    fault = body.get("Fault") or body.get("fault")
    if not isinstance(fault, Mapping):
        return None
    errors = fault.get("Error") or fault.get("error") or []
    first = errors[0] if errors and isinstance(errors[0], Mapping) else {}
    message = " ".join(str(first.get(k)) for k in ("Message", "Detail") if first.get(k)) or str(
        fault.get("type")
    )
    return str(first.get("code", "")), message


@register
class QuickBooksConnector(Connector):
    system = "quickbooks"
    title = "QuickBooks Online"
    role = "accounting"
    streams = ("clients", "invoices", "payments")
    push_streams = ("clients", "invoices")
    credential_keys = (
        "client_id",
        "client_secret",
        "refresh_token",
        "realm_id",
        "access_token",
        "access_token_expires_at",
        "webhook_verifier",
    )
    required_credentials = ("client_id", "client_secret", "refresh_token", "realm_id")
    default_rate_limit = 8.0  # 500 requests a minute per company
    signs_webhooks = True
    default_mappings = (
        # clients ◄► Customer
        MappingSpec("clients", "DisplayName", "name"),
        MappingSpec("clients", "CompanyName", "legal_name"),
        MappingSpec(
            "clients",
            "DisplayName",
            "kind",
            direction="in",
            transform="constant",
            params={"value": "company"},
        ),
        MappingSpec("clients", "PrimaryEmailAddr.Address", "email"),
        MappingSpec("clients", "PrimaryPhone.FreeFormNumber", "phone", direction="out"),
        MappingSpec("clients", "PrimaryTaxIdentifier", "foreign_tax_id", direction="out"),
        MappingSpec(
            "clients",
            "BillAddr",
            "address",
            direction="in",
            transform="template",
            params={
                "template": "{BillAddr.Line1} {BillAddr.City} {BillAddr.CountrySubDivisionCode} {BillAddr.PostalCode}"
            },
        ),
        MappingSpec("clients", "Notes", "notes"),
        MappingSpec("clients", "Active", "archived", transform="boolean", params={"negate": True}),
        # invoices ◄► Invoice
        MappingSpec("invoices", "DocNumber", "number"),
        MappingSpec(
            "invoices", "CustomerRef.value", "client", transform="lookup", params={"entity": "clients"}
        ),
        MappingSpec("invoices", "hub_status", "status", direction="in"),
        MappingSpec("invoices", "CurrencyRef.value", "currency"),
        MappingSpec("invoices", "TxnDate", "issue_date", transform="date"),
        MappingSpec("invoices", "DueDate", "due_date", transform="date"),
        MappingSpec("invoices", "TxnTaxDetail.TotalTax", "vat_total", direction="in", transform="decimal"),
        MappingSpec("invoices", "TotalAmt", "total", direction="in", transform="decimal"),
        MappingSpec("invoices", "Balance", "amount_due", direction="in", transform="decimal"),
        MappingSpec("invoices", "CustomerMemo.value", "purpose"),
        MappingSpec("invoices", "hub_lines", "lines", owner="hub"),
        # payments ◄ Payment
        MappingSpec(
            "payments",
            "Line.0.LinkedTxn[TxnType=Invoice].TxnId",
            "invoice",
            direction="in",
            transform="lookup",
            params={"entity": "invoices"},
        ),
        MappingSpec(
            "payments",
            "CustomerRef.value",
            "client",
            direction="in",
            transform="lookup",
            params={"entity": "clients"},
        ),
        MappingSpec("payments", "TotalAmt", "amount", direction="in", transform="decimal"),
        MappingSpec("payments", "CurrencyRef.value", "currency", direction="in"),
        MappingSpec("payments", "TxnDate", "received_at", direction="in", transform="datetime"),
        MappingSpec("payments", "PaymentRefNum", "reference", direction="in"),
        MappingSpec("payments", "CustomerRef.name", "payer_name", direction="in"),
    )

    def __init__(self, config, *, http=None):
        if http is None:
            http = HttpClient.for_connection(
                config,
                headers={"Accept": "application/json"},
                rate_limit=config.rate_limit_per_second or self.default_rate_limit,
            )
        super().__init__(config, http=http)
        self.tokens = OAuth2Tokens(
            config, self.http, token_url=config.options.get("token_url") or TOKEN_URL, vendor="QuickBooks"
        )
        self.page_size = int(config.options.get("page_size") or PAGE_SIZE)
        self.minor_version = str(config.options.get("minor_version") or MINOR_VERSION)
        self.clock = lambda: dt.datetime.now(dt.UTC)

    # --- plumbing --------------------------------------------------------------------------------
    @property
    def realm(self) -> str:
        realm = self.config.credentials.load().get("realm_id")
        if not realm:
            raise AuthError(f"QuickBooks connection {self.config.name!r} has no realm_id; reconnect in admin")
        return realm

    def _call(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        url = f"/v3/company/{self.realm}/{path.lstrip('/')}"
        return self.tokens.request(
            method, url, params={**(params or {}), "minorversion": self.minor_version}, **kwargs
        )

    def _json(self, method: str, path: str, **kwargs: Any) -> Mapping[str, Any]:
        body = self.http.json_of(self._call(method, path, **kwargs))
        if not isinstance(body, Mapping):
            raise PermanentError(
                f"QuickBooks {method} {path}: expected a JSON object, got {type(body).__name__}"
            )
        fault = _fault(body)
        if fault:  # QuickBooks can answer 200 with a Fault
            raise PermanentError(f"QuickBooks {method} {path}: fault {fault[0]}: {fault[1]}")
        return body

    def _record(self, stream: str, raw: Any) -> RemoteRecord | None:
        if not isinstance(raw, Mapping) or not raw.get("Id"):
            logger.warning("quickbooks %s: skipped a record without Id: %.200r", ENTITIES[stream], raw)
            return None
        data = dict(raw)
        deleted = str(raw.get("status", "")).lower() == "deleted"
        if stream == "invoices" and not deleted:
            data["hub_status"] = _hub_status(raw)
            data["hub_lines"] = _hub_lines(raw.get("Line"))
        meta = raw.get("MetaData") or {}
        return RemoteRecord(
            stream=stream,
            external_id=str(raw["Id"]),
            data=data,
            updated_at=_parse_time(meta.get("LastUpdatedTime")),
            version=str(raw.get("SyncToken", "")),
            deleted=deleted,
        )

    # --- reading ---------------------------------------------------------------------------------
    def check(self) -> None:
        body = self._json("GET", f"/companyinfo/{self.realm}")
        if not body.get("CompanyInfo"):
            raise ConnectorError("QuickBooks answered without CompanyInfo: wrong realm_id?")

    def _entity(self, stream: str) -> str:
        if stream not in ENTITIES:
            raise PermanentError(f"quickbooks has no stream {stream!r}")
        return ENTITIES[stream]

    def _query(self, stream: str, since: dt.datetime | None) -> Iterator[RemoteRecord]:
        entity = self._entity(stream)
        conditions = []
        if stream == "clients":
            conditions.append("Active IN (true, false)")
        if since is not None:
            conditions.append(
                f"MetaData.LastUpdatedTime >= '{since.astimezone(dt.UTC).isoformat(timespec='seconds')}'"
            )
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        start, previous_ids = 1, None
        while True:
            sql = (
                f"SELECT * FROM {entity}{where} ORDERBY MetaData.LastUpdatedTime "
                f"STARTPOSITION {start} MAXRESULTS {self.page_size}"
            )
            body = self._json("GET", "/query", params={"query": sql})
            response = body.get("QueryResponse")
            if not isinstance(response, Mapping):
                raise PermanentError(f"QuickBooks query {entity}: no QueryResponse in the reply")
            items = response.get(entity) or []
            if not isinstance(items, list):
                raise PermanentError(f"QuickBooks query {entity}: {entity!r} is not a list")
            ids = [str(item.get("Id")) for item in items if isinstance(item, Mapping)]
            if ids and ids == previous_ids:
                raise PermanentError(
                    f"QuickBooks query {entity}: STARTPOSITION {start} repeats the previous page"
                )
            previous_ids = ids
            for raw in items:
                record = self._record(stream, raw)
                if record is not None:
                    yield record
            if len(items) < self.page_size:
                return
            start += len(items)

    def _cdc(self, stream: str, since: dt.datetime) -> list[RemoteRecord]:
        entity = self._entity(stream)
        body = self._json(
            "GET",
            "/cdc",
            params={
                "entities": entity,
                "changedSince": since.astimezone(dt.UTC).isoformat(timespec="seconds"),
            },
        )
        records = []
        for section in body.get("CDCResponse") or []:
            for response in (section or {}).get("QueryResponse") or []:
                for raw in (response or {}).get(entity) or []:
                    record = self._record(stream, raw)
                    if record is not None:
                        records.append(record)
        return records

    def fetch(self, stream: str, *, since: dt.datetime | None = None) -> Iterator[RemoteRecord]:
        self._entity(stream)
        if since is None:
            yield from self._query(stream, None)
            return
        if self.clock() - since > CDC_LOOKBACK:  # CDC cannot look that far back
            yield from self._query(stream, since)
            return
        changes = self._cdc(stream, since)
        if len(changes) >= CDC_LIMIT:  # the answer may be cut: read changes by query, keep CDC's deletions
            tombstones = [r for r in changes if r.deleted]
            yield from self._query(stream, since)
            yield from sorted(tombstones, key=lambda r: r.updated_at or since)
            return
        yield from sorted(changes, key=lambda r: r.updated_at or since)

    def get(self, stream: str, external_id: str) -> RemoteRecord | None:
        entity = self._entity(stream)
        response = self._call("GET", f"/{entity.lower()}/{external_id}", expect=(400, 404))
        body = self.http.json_of(response)
        if response.status_code in (400, 404):
            fault = _fault(body)
            if response.status_code == 404 or (
                fault and (fault[0] == "610" or "not found" in fault[1].lower())
            ):
                return None
            raise PermanentError(
                f"QuickBooks GET {entity} {external_id}: {fault[1] if fault else response.text[:200]}"
            )
        return self._record(stream, (body or {}).get(entity))

    # --- writing ---------------------------------------------------------------------------------
    def _payload(self, stream: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        body = dict(payload)
        if stream == "invoices":
            lines = body.pop("hub_lines", None)
            if lines is not None and "Line" not in body:
                body["Line"] = [self._line(line) for line in lines]
        return body

    def _line(self, line: Mapping[str, Any]) -> dict[str, Any]:
        qty = Decimal(str(line.get("quantity") or 1))
        price = Decimal(str(line.get("unit_price") or 0))
        detail: dict[str, Any] = {
            "ItemRef": {"value": str(self.config.options.get("item_id") or "1")},
            "Qty": qty,
            "UnitPrice": price,
        }
        if self.config.options.get("tax_code"):
            detail["TaxCodeRef"] = {"value": str(self.config.options["tax_code"])}
        return {
            "DetailType": "SalesItemLineDetail",
            "Amount": (qty * price).quantize(Decimal("0.01")),
            "Description": line.get("description") or "",
            "SalesItemLineDetail": detail,
        }

    def _post(
        self, entity: str, body: Mapping[str, Any], params: Mapping[str, Any] | None = None
    ) -> Mapping[str, Any]:
        content = json.dumps(body, default=_json_default, ensure_ascii=False).encode()
        response = self._call(
            "POST",
            f"/{entity.lower()}",
            params=params,
            content=content,
            headers={"Content-Type": "application/json"},
            expect=(400,),
        )
        reply = self.http.json_of(response)
        fault = _fault(reply)
        if fault:
            error = RecordError(
                f"QuickBooks refused the {entity}: fault {fault[0]}: {fault[1]}", status=response.status_code
            )
            error.code = fault[0]
            raise error
        if response.status_code == 400:
            raise RecordError(f"QuickBooks refused the {entity}: {response.text[:300]}", status=400)
        written = (reply or {}).get(entity)
        if not isinstance(written, Mapping) or not written.get("Id"):
            raise PermanentError(f"QuickBooks POST {entity}: the reply carries no {entity}.Id")
        return written

    def _sync_token(self, stream: str, external_id: str) -> str:
        current = self.get(stream, external_id)
        if current is None:
            raise RecordError(f"QuickBooks has no {ENTITIES[stream]} {external_id} to update")
        return current.version

    def upsert(self, stream: str, payload: Mapping[str, Any], *, external_id: str | None = None) -> str:
        if stream not in self.push_streams:
            raise PermanentError(f"quickbooks cannot write {stream}")
        entity = ENTITIES[stream]
        body = self._payload(stream, payload)
        if not external_id:
            return str(self._post(entity, body)["Id"])
        body.update({"Id": external_id, "sparse": True})
        if not body.get("SyncToken"):
            body["SyncToken"] = self._sync_token(stream, external_id)
        try:
            return str(self._post(entity, body)["Id"])
        except RecordError as exc:
            if getattr(exc, "code", "") != STALE_OBJECT:
                raise
            body["SyncToken"] = self._sync_token(stream, external_id)  # changed meanwhile: once more
            return str(self._post(entity, body)["Id"])

    def delete(self, stream: str, external_id: str) -> None:
        """A customer is made inactive (QuickBooks' delete); an invoice is voided (kept, amounts zeroed)."""
        if stream not in self.push_streams:
            raise PermanentError(f"quickbooks cannot archive {stream}")
        current = self.get(stream, external_id)
        if current is None:
            return
        if stream == "clients":
            self._post(
                "Customer", {"Id": external_id, "SyncToken": current.version, "sparse": True, "Active": False}
            )
        else:
            self._post(
                "Invoice", {"Id": external_id, "SyncToken": current.version}, params={"operation": "void"}
            )

    # --- webhooks --------------------------------------------------------------------------------
    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        key = self.config.credentials.load().get("webhook_verifier")
        given = next((v for k, v in headers.items() if k.lower() == "intuit-signature"), "")
        if not key or not given:
            return False
        expected = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
        return hmac.compare_digest(expected, given.strip())

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        """Events of this company from the classic `eventNotifications` or the CloudEvents payload."""
        try:
            payload = json.loads(body)
        except ValueError:
            raise PermanentError("QuickBooks webhook: the body is not JSON") from None
        realm = self.config.credentials.load().get("realm_id")
        if isinstance(payload, list):
            return self._cloud_events(payload, realm)
        if not isinstance(payload, Mapping) or not isinstance(payload.get("eventNotifications"), list):
            raise PermanentError("QuickBooks webhook: neither eventNotifications nor a CloudEvents array")
        events = []
        for notification in payload["eventNotifications"]:
            if not isinstance(notification, Mapping):
                raise PermanentError("QuickBooks webhook: a notification is not an object")
            if realm and str(notification.get("realmId")) != realm:
                continue
            for entity in (notification.get("dataChangeEvent") or {}).get("entities") or []:
                stream = STREAMS_BY_ENTITY.get(str(entity.get("name", "")).lower())
                if stream is None or not entity.get("id"):
                    continue
                operation = str(entity.get("operation", ""))
                marker = f"{notification.get('realmId')}|{entity['name']}|{entity['id']}|{operation}|{entity.get('lastUpdated')}"
                events.append(
                    WebhookEvent(
                        event_id=hashlib.sha256(marker.encode()).hexdigest()[:32],
                        stream=stream,
                        external_id=str(entity["id"]),
                        action="delete" if operation == "Delete" else "upsert",
                    )
                )
        return events

    def _cloud_events(self, payload: list, realm: str | None) -> list[WebhookEvent]:
        events = []
        for event in payload:
            if not isinstance(event, Mapping):
                raise PermanentError("QuickBooks webhook: a CloudEvent is not an object")
            if realm and event.get("intuitaccountid") and str(event["intuitaccountid"]) != realm:
                continue
            parts = str(event.get("type", "")).split(".")  # qbo.invoice.created.v1
            stream = STREAMS_BY_ENTITY.get(parts[1]) if len(parts) >= 3 else None
            if stream is None or not event.get("intuitentityid") or not event.get("id"):
                continue
            events.append(
                WebhookEvent(
                    event_id=str(event["id"]),
                    stream=stream,
                    external_id=str(event["intuitentityid"]),
                    action="delete" if parts[2] == "deleted" else "upsert",
                )
            )
        return events
