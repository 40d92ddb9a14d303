"""Xero Accounting API connector (CONTRACTS.md §2.7).

Streams: `clients` ► Contacts, `invoices` ► Invoices of Type ACCREC (sales invoices), `payments` ►
Payments of PaymentType ACCRECPAYMENT. Pushes clients and invoices.

- Auth: OAuth2; every call carries `Authorization: Bearer` and `Xero-Tenant-Id` (credential `tenant_id`);
  tokens come from `identity.xero.com/connect/token` (option `token_url` overrides it), refreshed
  single-flight, the rotated refresh token stored.
- Paging: `page=1,2,…`, 100 records a page (option `page_size` sends `pageSize`); a short page is the last.
  Records are asked for `order=UpdatedDateUTC ASC`, so they come oldest change first.
- Change feed: the `If-Modified-Since` header in ISO 8601 (Xero's published OpenAPI types it `date-time`;
  an HTTP-date is rejected by a spec-validating mock).
- Dates: Xero's JSON writes `/Date(1503348544227+0000)/`. `fetch`/`get` normalise every such value to ISO
  8601 (`2017-08-21T20:49:04.227000+00:00`) so the standard `date`/`datetime` transforms read them; the
  rest of the record keeps Xero's field names.
- Lines: Xero's `LineItems` are also offered as `hub_lines` in the canonical line shape
  (description, quantity, unit_price, vat_rate, unit), because the mapping layer has no list transform;
  `upsert` turns `hub_lines` back into `LineItems` (AccountCode / TaxType from options).
- Limits: 60 calls/min per tenant (default rate limit 1/s); 429 carries `Retry-After` and
  `X-Rate-Limit-Problem` (Minute|Daily); the shared client sleeps for a short Retry-After and gives up on
  a long (daily) one with a `RetryableError` that names the problem.
- Webhooks: `x-xero-signature` = base64(HMAC-SHA256(webhook key, raw body)) (credential `webhook_key`).
  Xero's "intent to receive" check is an ordinary signed delivery with no events: the view answers 200
  when `verify_webhook` is True and 401 when False, and `parse_webhook` returns no events.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from decimal import Decimal
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
    RetryableError,
    WebhookEvent,
)
from sync.http import HttpClient

logger = logging.getLogger("sync.connectors.xero")

TOKEN_URL = "https://identity.xero.com/connect/token"
PAGE_SIZE = 100

# stream → (endpoint, key of the list in the reply, id field, `where` filter)
ENDPOINTS: dict[str, tuple[str, str, str, str]] = {
    "clients": ("Contacts", "Contacts", "ContactID", ""),
    "invoices": ("Invoices", "Invoices", "InvoiceID", 'Type=="ACCREC"'),
    "payments": ("Payments", "Payments", "PaymentID", 'PaymentType=="ACCRECPAYMENT"'),
}
WEBHOOK_CATEGORIES = {"CONTACT": "clients", "INVOICE": "invoices"}

_MS_DATE = re.compile(r"^/Date\((?P<ms>-?\d+)(?P<offset>[+-]\d{4})?\)/$")


def parse_xero_date(value: str) -> dt.datetime:
    """`/Date(1503348544227+0000)/` → an aware UTC datetime.

    The number is milliseconds since the Unix epoch in UTC (the .NET JSON convention Xero uses); the
    optional offset only says which zone the value was written in, so it does not shift the instant.
    """
    match = _MS_DATE.match(value.strip())
    if not match:
        raise ValueError(f"not a Xero date: {value!r}")
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=int(match["ms"]))


def normalise_dates(value: Any) -> Any:
    """A copy of a Xero record with every `/Date(...)/` string turned into ISO 8601."""
    if isinstance(value, str):
        return parse_xero_date(value).isoformat() if _MS_DATE.match(value.strip()) else value
    if isinstance(value, Mapping):
        return {k: normalise_dates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise_dates(v) for v in value]
    return value


def _updated_at(raw: Mapping[str, Any]) -> dt.datetime | None:
    value = raw.get("UpdatedDateUTC")
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_xero_date(value)
    except ValueError:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _hub_lines(line_items: Any) -> list[dict[str, Any]]:
    """Xero LineItems in the canonical line shape (see sync.mapping.canonical, `invoices.lines`)."""
    lines = []
    for item in line_items if isinstance(line_items, list) else []:
        if not isinstance(item, Mapping):
            continue
        quantity, unit_amount = item.get("Quantity"), item.get("UnitAmount")
        tax, amount = item.get("TaxAmount"), item.get("LineAmount")
        vat_rate = None
        if tax is not None and amount:
            vat_rate = str((Decimal(str(tax)) * 100 / Decimal(str(amount))).quantize(Decimal("0.01")))
        lines.append(
            {
                "description": item.get("Description") or "",
                "quantity": None if quantity is None else str(quantity),
                "unit_price": None if unit_amount is None else str(unit_amount),
                "vat_rate": vat_rate,
                "unit": "",
            }
        )
    return lines


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)  # Xero's JSON numbers; the spec types amounts as double
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} to Xero")


@register
class XeroConnector(Connector):
    system = "xero"
    title = "Xero"
    role = "accounting"
    streams = ("clients", "invoices", "payments")
    push_streams = ("clients", "invoices")
    credential_keys = (
        "client_id",
        "client_secret",
        "refresh_token",
        "tenant_id",
        "access_token",
        "access_token_expires_at",
        "webhook_key",
    )
    required_credentials = ("client_id", "client_secret", "refresh_token", "tenant_id")
    default_rate_limit = 1.0  # 60 calls a minute per tenant
    signs_webhooks = True
    default_mappings = (
        # clients ◄► Contacts
        MappingSpec("clients", "Name", "name"),
        MappingSpec(
            "clients", "Name", "kind", direction="in", transform="constant", params={"value": "company"}
        ),
        MappingSpec("clients", "TaxNumber", "foreign_tax_id"),
        MappingSpec("clients", "EmailAddress", "email"),
        MappingSpec("clients", "Phones[PhoneType=DEFAULT].PhoneNumber", "phone", direction="out"),
        MappingSpec(
            "clients",
            "Addresses",
            "address",
            direction="in",
            transform="template",
            params={
                "template": "{Addresses[AddressType=POBOX].AddressLine1} {Addresses[AddressType=POBOX].City} "
                "{Addresses[AddressType=POBOX].Region} {Addresses[AddressType=POBOX].PostalCode}"
            },
        ),
        MappingSpec(
            "clients",
            "ContactStatus",
            "archived",
            transform="enum",
            params={"map": {"ACTIVE": False, "ARCHIVED": True, "GDPRREQUEST": True}, "default_out": "ACTIVE"},
        ),
        # invoices ◄► Invoices (ACCREC)
        MappingSpec("invoices", "InvoiceNumber", "number"),
        MappingSpec(
            "invoices", "Contact.ContactID", "client", transform="lookup", params={"entity": "clients"}
        ),
        MappingSpec(
            "invoices",
            "Status",
            "status",
            transform="enum",
            params={
                "map": {
                    "DRAFT": "draft",
                    "SUBMITTED": "draft",
                    "AUTHORISED": "issued",
                    "PAID": "paid",
                    "VOIDED": "void",
                    "DELETED": "void",
                },
                "reverse": {
                    "draft": "DRAFT",
                    "issued": "AUTHORISED",
                    "sent": "AUTHORISED",
                    "partially_paid": "AUTHORISED",
                    "overdue": "AUTHORISED",
                    "paid": "AUTHORISED",
                    "void": "VOIDED",
                },
            },
        ),
        MappingSpec("invoices", "CurrencyCode", "currency"),
        MappingSpec("invoices", "Date", "issue_date", transform="date"),
        MappingSpec("invoices", "DueDate", "due_date", transform="date"),
        MappingSpec("invoices", "SubTotal", "net_total", direction="in", transform="decimal"),
        MappingSpec("invoices", "TotalTax", "vat_total", direction="in", transform="decimal"),
        MappingSpec("invoices", "Total", "total", direction="in", transform="decimal"),
        MappingSpec("invoices", "AmountPaid", "paid_total", direction="in", transform="decimal"),
        MappingSpec("invoices", "AmountDue", "amount_due", direction="in", transform="decimal"),
        MappingSpec("invoices", "Reference", "purpose"),
        MappingSpec("invoices", "hub_lines", "lines", owner="hub"),
        # payments ◄ Payments (ACCRECPAYMENT)
        MappingSpec(
            "payments",
            "Invoice.InvoiceID",
            "invoice",
            direction="in",
            transform="lookup",
            params={"entity": "invoices"},
        ),
        MappingSpec(
            "payments",
            "Invoice.Contact.ContactID",
            "client",
            direction="in",
            transform="lookup",
            params={"entity": "clients"},
        ),
        MappingSpec("payments", "Amount", "amount", direction="in", transform="decimal"),
        MappingSpec("payments", "Invoice.CurrencyCode", "currency", direction="in"),
        MappingSpec("payments", "Date", "received_at", direction="in", transform="datetime"),
        MappingSpec("payments", "Reference", "reference", direction="in"),
        MappingSpec("payments", "Invoice.Contact.Name", "payer_name", direction="in"),
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
            config, self.http, token_url=config.options.get("token_url") or TOKEN_URL, vendor="Xero"
        )
        self.page_size = int(config.options.get("page_size") or PAGE_SIZE)
        self._problem = threading.local()
        self.http.client.event_hooks["response"].append(self._remember_rate_limit_problem)

    # --- plumbing --------------------------------------------------------------------------------
    def _remember_rate_limit_problem(self, response: httpx.Response) -> None:
        if response.status_code == 429:
            self._problem.value = response.headers.get("X-Rate-Limit-Problem", "")

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call with the bearer token and tenant header; a 401 refreshes the token once."""
        tenant = self.config.credentials.load().get("tenant_id")
        if not tenant:
            raise AuthError(f"Xero connection {self.config.name!r} has no tenant_id; reconnect in admin")
        headers = dict(kwargs.pop("headers", None) or {})
        headers["Xero-Tenant-Id"] = tenant
        try:
            return self.tokens.request(method, path, headers=headers, **kwargs)
        except RetryableError as exc:
            if exc.status != 429:
                raise
            problem = getattr(self._problem, "value", "") or "unknown"
            raise RetryableError(
                f"Xero rate limit exceeded ({problem} limit); retry after {exc.retry_after or 'a while'} s",
                status=429,
                retry_after=exc.retry_after,
            ) from None

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        body = self.http.json_of(self._call(method, path, **kwargs))
        if not isinstance(body, Mapping):
            raise PermanentError(f"Xero {method} {path}: expected a JSON object, got {type(body).__name__}")
        return body

    def _record(self, stream: str, raw: Any) -> RemoteRecord | None:
        endpoint, _, id_field, _ = ENDPOINTS[stream]
        if not isinstance(raw, Mapping) or not raw.get(id_field):
            logger.warning("xero %s: skipped a record without %s: %.200r", endpoint, id_field, raw)
            return None
        data = normalise_dates(raw)
        if stream == "invoices":
            data["hub_lines"] = _hub_lines(data.get("LineItems"))
        status = str(raw.get("Status") or raw.get("ContactStatus") or "")
        return RemoteRecord(
            stream=stream,
            external_id=str(raw[id_field]),
            data=data,
            updated_at=_updated_at(raw),
            version=str(raw.get("UpdatedDateUTC") or ""),
            deleted=status == "DELETED",
        )

    # --- reading ---------------------------------------------------------------------------------
    def check(self) -> None:
        body = self._json("GET", "/Organisation")
        if not body.get("Organisations"):
            raise ConnectorError("Xero answered /Organisation without an organisation: wrong tenant_id?")

    def fetch(self, stream: str, *, since: dt.datetime | None = None) -> Iterator[RemoteRecord]:
        if stream not in ENDPOINTS:
            raise PermanentError(f"xero has no stream {stream!r}")
        endpoint, key, id_field, where = ENDPOINTS[stream]
        headers = {}
        if since is not None:
            headers["If-Modified-Since"] = since.astimezone(dt.UTC).isoformat(timespec="seconds")
        previous_ids: list[str] | None = None
        page = 1
        while True:
            params: dict[str, Any] = {"page": page, "order": "UpdatedDateUTC ASC"}
            if where:
                params["where"] = where
            if self.page_size != PAGE_SIZE:
                params["pageSize"] = self.page_size
            body = self._json("GET", f"/{endpoint}", params=params, headers=headers)
            items = body.get(key)
            if items is None:
                items = []
            if not isinstance(items, list):
                raise PermanentError(f"Xero {endpoint} page {page}: {key!r} is not a list")
            ids = [str(item.get(id_field)) for item in items if isinstance(item, Mapping)]
            if ids and ids == previous_ids:
                raise PermanentError(
                    f"Xero {endpoint}: page {page} repeats page {page - 1}; the server ignores paging"
                )
            previous_ids = ids
            for raw in items:
                record = self._record(stream, raw)
                if record is not None:
                    yield record
            if len(items) < self.page_size:
                return
            page += 1

    def get(self, stream: str, external_id: str) -> RemoteRecord | None:
        if stream not in ENDPOINTS:
            raise PermanentError(f"xero has no stream {stream!r}")
        endpoint, key, _, _ = ENDPOINTS[stream]
        response = self._call("GET", f"/{endpoint}/{external_id}", expect=(404,))
        if response.status_code == 404:
            return None
        items = self.http.json_of(response).get(key) or []
        return self._record(stream, items[0]) if items else None

    # --- writing ---------------------------------------------------------------------------------
    def _payload(self, stream: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        body = dict(payload)
        if stream == "invoices":
            body.setdefault("Type", "ACCREC")
            lines = body.pop("hub_lines", None)
            if lines is not None and "LineItems" not in body:
                body["LineItems"] = [self._line_item(line) for line in lines]
        return body

    def _line_item(self, line: Mapping[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {"Description": line.get("description") or ""}
        if line.get("quantity") is not None:
            item["Quantity"] = Decimal(str(line["quantity"]))
        if line.get("unit_price") is not None:
            item["UnitAmount"] = Decimal(str(line["unit_price"]))
        if self.config.options.get("account_code"):
            item["AccountCode"] = str(self.config.options["account_code"])
        if self.config.options.get("tax_type"):
            item["TaxType"] = str(self.config.options["tax_type"])
        return item

    def _write(self, method: str, path: str, key: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        content = json.dumps({key: [body]}, default=_json_default, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        if method == "PUT":  # a retried create must not create twice
            headers["Idempotency-Key"] = hashlib.sha256(path.encode() + content).hexdigest()[:64]
        try:
            reply = self._json(method, path, content=content, headers=headers)
        except AuthError:
            raise
        except PermanentError as exc:
            if exc.status == 400:  # ValidationException: this record, not the connection
                raise RecordError(f"Xero refused the {key[:-1].lower()}: {exc}", status=400) from None
            raise
        items = reply.get(key) or []
        if not items or not isinstance(items[0], Mapping):
            raise PermanentError(f"Xero {method} {path}: the reply has no {key}")
        first = items[0]
        errors = first.get("ValidationErrors") or []
        if first.get("HasValidationErrors") or first.get("HasErrors") or errors:
            reasons = "; ".join(str(e.get("Message")) for e in errors if isinstance(e, Mapping))
            raise RecordError(f"Xero refused the {key[:-1].lower()}: {reasons or 'validation errors'}")
        return first

    def upsert(self, stream: str, payload: Mapping[str, Any], *, external_id: str | None = None) -> str:
        if stream not in self.push_streams:
            raise PermanentError(f"xero cannot write {stream}")
        endpoint, key, id_field, _ = ENDPOINTS[stream]
        body = self._payload(stream, payload)
        if external_id:
            body[id_field] = external_id
            written = self._write("POST", f"/{endpoint}/{external_id}", key, body)
        else:
            written = self._write("PUT", f"/{endpoint}", key, body)
        if not written.get(id_field):
            raise PermanentError(f"Xero {endpoint}: the reply carries no {id_field}")
        return str(written[id_field])

    def delete(self, stream: str, external_id: str) -> None:
        """Contacts are archived; a draft invoice is deleted, an authorised one voided (Xero keeps both)."""
        if stream == "clients":
            self._write(
                "POST",
                f"/Contacts/{external_id}",
                "Contacts",
                {"ContactID": external_id, "ContactStatus": "ARCHIVED"},
            )
            return
        if stream == "invoices":
            current = self.get("invoices", external_id)
            if current is None or current.data.get("Status") in ("DELETED", "VOIDED"):
                return
            status = "DELETED" if current.data.get("Status") in ("DRAFT", "SUBMITTED") else "VOIDED"
            self._write(
                "POST", f"/Invoices/{external_id}", "Invoices", {"InvoiceID": external_id, "Status": status}
            )
            return
        raise PermanentError(f"xero cannot archive {stream}")

    # --- webhooks --------------------------------------------------------------------------------
    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        key = self.config.credentials.load().get("webhook_key")
        given = next((v for k, v in headers.items() if k.lower() == "x-xero-signature"), "")
        if not key or not given:
            return False
        expected = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
        return hmac.compare_digest(expected, given.strip())

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        """Events of this connection's tenant; an "intent to receive" probe has none."""
        try:
            payload = json.loads(body)
        except ValueError:
            raise PermanentError("Xero webhook: the body is not JSON") from None
        if not isinstance(payload, Mapping) or not isinstance(payload.get("events"), list):
            raise PermanentError("Xero webhook: no `events` list in the body")
        tenant = self.config.credentials.load().get("tenant_id")
        events = []
        for event in payload["events"]:
            if not isinstance(event, Mapping):
                raise PermanentError("Xero webhook: an event is not an object")
            stream = WEBHOOK_CATEGORIES.get(str(event.get("eventCategory", "")).upper())
            resource = event.get("resourceId")
            if stream is None or not resource:
                logger.info("xero webhook: ignored event %.200r", event)
                continue
            if tenant and event.get("tenantId") and event["tenantId"] != tenant:
                continue  # another organisation connected to the same app
            marker = (
                f"{event.get('tenantId')}|{resource}|{event.get('eventType')}|{event.get('eventDateUtc')}"
            )
            events.append(
                WebhookEvent(
                    event_id=hashlib.sha256(marker.encode()).hexdigest()[:32],
                    stream=stream,
                    external_id=str(resource),
                )
            )
        return events
