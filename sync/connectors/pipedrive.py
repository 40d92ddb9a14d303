"""Pipedrive API v2 (CONTRACTS.md §1.4): organizations ► clients, persons ► contacts, deals, products.

Auth is the company's API token in the `x-api-token` header. Lists page with the v2 cursor (`cursor`,
`limit` ≤ 500, `additional_data.next_cursor`, null at the end) sorted by `update_time` ascending; the
change feed passes `updated_since` (RFC 3339). Products have no `updated_since`: their feed reads
newest first and stops at the cursor, then yields oldest first. Deals deleted within the last 30 days
come back as tombstones (`status=…,deleted`).

Webhooks v2 (`{meta, data, previous}`) are not signed: when the connection has `webhook_user` and
`webhook_password`, the delivery must carry them as HTTP Basic auth; either way the record is re-fetched.
Throttling: a per-2-second burst budget and a daily budget; a 429 is retried after `x-ratelimit-reset`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import html
import json
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import httpx

from sync.connectors import register
from sync.connectors.base import (
    AuthError,
    ConnectionConfig,
    Connector,
    MappingSpec,
    PermanentError,
    RemoteRecord,
    WebhookEvent,
)
from sync.http import HttpClient
from sync.mapping.paths import get_path

OBJECTS = {"clients": "organizations", "contacts": "persons", "deals": "deals", "products": "products"}
WEBHOOK_ENTITIES = {"organization": "clients", "person": "contacts", "deal": "deals", "product": "products"}
NOTE_KEYS = {"deals": "deal_id", "clients": "org_id", "contacts": "person_id"}
DELETE_ACTIONS = {"delete", "deleted"}


def _parse_time(value: Any) -> dt.datetime | None:
    """v2 timestamps are RFC 3339 (`2024-09-27T14:25:28Z`); v1 ones `2022-09-27 13:21:10` in UTC."""
    if value in (None, ""):
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bool_flags(items: Any) -> Any:
    """The mapper writes list selectors as strings (`primary: "True"`); v2 validates booleans strictly."""
    if not isinstance(items, list):
        return items
    out = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("primary"), str):
            item = {**item, "primary": item["primary"].lower() == "true"}
        out.append(item)
    return out


@register
class PipedriveConnector(Connector):
    system = "pipedrive"
    title = "Pipedrive"
    role = "crm"
    streams = ("clients", "contacts", "deals", "products")
    push_streams = ("clients", "contacts", "deals", "products")
    credential_keys = ("token", "webhook_user", "webhook_password")
    required_credentials = ("token",)
    default_rate_limit = 10.0  # the smallest plan allows 20 requests per 2 s per API token
    signs_webhooks = False
    default_mappings: ClassVar[tuple[MappingSpec, ...]] = (
        # organizations ► clients
        MappingSpec("clients", "name", "name"),
        MappingSpec(
            "clients", "name", "kind", direction="in", transform="constant", params={"value": "company"}
        ),
        MappingSpec("clients", "address.value", "address"),
        MappingSpec("clients", "is_deleted", "archived", direction="in", transform="boolean"),
        # persons ► contacts
        MappingSpec("contacts", "first_name", "first_name"),
        MappingSpec("contacts", "last_name", "last_name"),
        MappingSpec("contacts", "emails[primary=True].value", "email"),
        MappingSpec("contacts", "phones[primary=True].value", "phone", transform="phone"),
        MappingSpec("contacts", "job_title", "position"),
        MappingSpec(
            "contacts", "org_id", "client", transform="lookup", params={"entity": "clients", "as": "int"}
        ),
        MappingSpec("contacts", "is_deleted", "archived", direction="in", transform="boolean"),
        # deals
        MappingSpec("deals", "title", "title"),
        MappingSpec(
            "deals", "org_id", "client", transform="lookup", params={"entity": "clients", "as": "int"}
        ),
        MappingSpec("deals", "stage_id", "stage", direction="in"),
        MappingSpec(
            "deals",
            "status",
            "status",
            transform="enum",
            params={"map": {"open": "open", "won": "won", "lost": "lost"}},
        ),
        MappingSpec("deals", "value", "amount", transform="decimal", params={"as": "number"}),
        MappingSpec("deals", "currency", "currency"),
        MappingSpec("deals", "expected_close_date", "expected_close_date", transform="date"),
        MappingSpec("deals", "lost_reason", "lost_reason"),
        MappingSpec("deals", "is_deleted", "archived", direction="in", transform="boolean"),
        # products
        MappingSpec("products", "code", "sku"),
        MappingSpec("products", "name", "name"),
        MappingSpec("products", "unit", "unit"),
        MappingSpec("products", "tax", "vat_rate", transform="decimal", params={"as": "number"}),
        MappingSpec("products", "prices.0.price", "price", transform="decimal", params={"as": "number"}),
        MappingSpec("products", "prices.0.cost", "unit_cost", transform="decimal", params={"as": "number"}),
        MappingSpec("products", "prices.0.currency", "currency"),
        MappingSpec("products", "is_deleted", "archived", direction="in", transform="boolean"),
    )

    page_size = 500

    def __init__(self, config: ConnectionConfig, *, http: Any | None = None):
        if http is None:
            http = HttpClient.for_connection(
                config,
                headers={"Accept": "application/json"},
                rate_limit=config.rate_limit_per_second or self.default_rate_limit,
                retry_after_header="x-ratelimit-reset",
            )
        super().__init__(config, http=http)
        self.deal_products = bool(config.options.get("deal_products", False))
        self.deleted_deals = bool(config.options.get("deleted_deals", True))

    # --- transport -------------------------------------------------------------------------------
    def _call(self, method: str, url: str, *, expect: tuple[int, ...] = (), **kwargs: Any) -> httpx.Response:
        token = self.config.credentials.load().get("token")
        if not token:
            raise AuthError("Pipedrive needs the company's API `token`; reconnect in admin")
        return self.http.request(method, url, headers={"x-api-token": token}, expect=expect, **kwargs)

    @staticmethod
    def _envelope(response: httpx.Response, what: str) -> Any:
        """`data` of a `{success, data, additional_data}` reply; `success: false` is a clear error."""
        body = HttpClient.json_of(response)
        if not isinstance(body, Mapping) or "data" not in body:
            raise PermanentError(f"Pipedrive {what}: unexpected reply {str(body)[:200]!r}")
        if body.get("success") is False:
            raise PermanentError(
                f"Pipedrive {what}: {body.get('error') or body.get('error_info') or 'refused'}"
            )
        return body

    # --- reading ---------------------------------------------------------------------------------
    def _object(self, stream: str) -> str:
        try:
            return OBJECTS[stream]
        except KeyError:
            raise PermanentError(f"pipedrive has no stream {stream!r}") from None

    def check(self) -> None:
        self._envelope(self._call("GET", "/api/v1/users/me"), "users/me")

    def _record(self, stream: str, item: Any) -> RemoteRecord:
        if not isinstance(item, Mapping) or item.get("id") in (None, ""):
            raise PermanentError(f"Pipedrive {stream}: an item without an id: {str(item)[:200]!r}")
        return RemoteRecord(
            stream=stream,
            external_id=str(item["id"]),
            data=dict(item),
            updated_at=_parse_time(item.get("update_time")),
            version=str(item.get("update_time") or ""),
            deleted=item.get("is_deleted") is True or item.get("status") == "deleted",
        )

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[list]:
        """Follow `additional_data.next_cursor` to the end; a cursor seen twice is an error."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            query = {**params, "limit": self.page_size}
            if cursor:
                query["cursor"] = cursor
            body = self._envelope(self._call("GET", path, params=query), path)
            data = body.get("data") or []
            if not isinstance(data, list):
                raise PermanentError(f"Pipedrive {path}: `data` is not a list: {str(data)[:200]!r}")
            yield data
            cursor = get_path(body, "additional_data.next_cursor", None)
            if not cursor:
                return
            if cursor in seen:
                raise PermanentError(f"Pipedrive {path}: the cursor {cursor!r} came back twice")
            seen.add(cursor)

    def fetch(self, stream: str, *, since: dt.datetime | None = None) -> Iterator[RemoteRecord]:
        obj = self._object(stream)
        path = f"/api/v2/{obj}"
        if stream == "products" and since is not None:
            yield from self._products_since(path, since)
            return
        params: dict[str, Any] = {"sort_by": "update_time", "sort_direction": "asc"}
        if since is not None:
            params["updated_since"] = _rfc3339(since)
            if stream == "deals" and self.deleted_deals:
                params["status"] = "open,won,lost,deleted"
        for page in self._pages(path, params):
            records = [self._record(stream, item) for item in page]
            if stream == "deals" and self.deal_products and records:
                records = self._with_products(records)
            yield from records

    def _products_since(self, path: str, since: dt.datetime) -> Iterator[RemoteRecord]:
        """Products cannot filter on `update_time`: read newest first, stop below `since`, then reverse."""
        changed: list[RemoteRecord] = []
        for page in self._pages(path, {"sort_by": "update_time", "sort_direction": "desc"}):
            for item in page:
                record = self._record("products", item)
                if record.updated_at is not None and record.updated_at < since:
                    yield from reversed(changed)
                    return
                changed.append(record)
        yield from reversed(changed)

    def _with_products(self, records: list[RemoteRecord]) -> list[RemoteRecord]:
        """Attach `products` (deal-product rows) to each deal: `GET /api/v2/deals/products?deal_ids=…`."""
        by_deal: dict[str, list] = {r.external_id: [] for r in records}
        ids = list(by_deal)
        for start in range(0, len(ids), 100):
            chunk = ",".join(ids[start : start + 100])
            for page in self._pages("/api/v2/deals/products", {"deal_ids": chunk}):
                for row in page:
                    by_deal.setdefault(str(row.get("deal_id")), []).append(row)
        return [
            RemoteRecord(
                stream=r.stream,
                external_id=r.external_id,
                data={**r.data, "products": by_deal[r.external_id]},
                updated_at=r.updated_at,
                version=r.version,
                deleted=r.deleted,
            )
            for r in records
        ]

    def get(self, stream: str, external_id: str) -> RemoteRecord | None:
        obj = self._object(stream)
        response = self._call("GET", f"/api/v2/{obj}/{external_id}", expect=(404, 410))
        if response.status_code in (404, 410):
            return None
        record = self._record(stream, self._envelope(response, f"{obj}/{external_id}")["data"])
        if stream == "deals" and self.deal_products:
            record = self._with_products([record])[0]
        return record

    # --- writing ---------------------------------------------------------------------------------
    def upsert(self, stream: str, payload: Mapping[str, Any], *, external_id: str | None = None) -> str:
        """Create with `POST /api/v2/{obj}` or update with `PATCH`; `payload` uses v2 field names."""
        obj = self._object(stream)
        body = {k: (_bool_flags(v) if k in ("emails", "phones") else v) for k, v in payload.items()}
        if external_id is None:
            reply = self._envelope(self._call("POST", f"/api/v2/{obj}", json=body), f"create {obj}")
        else:
            reply = self._envelope(
                self._call("PATCH", f"/api/v2/{obj}/{external_id}", json=body), f"update {obj}/{external_id}"
            )
        new_id = get_path(reply, "data.id", None)
        if new_id in (None, ""):
            raise PermanentError(f"Pipedrive {obj}: the reply carries no id: {str(reply)[:200]!r}")
        return str(new_id)

    def delete(self, stream: str, external_id: str) -> None:
        """Pipedrive marks the record deleted and purges it after 30 days."""
        self._call("DELETE", f"/api/v2/{self._object(stream)}/{external_id}", expect=(404, 410))

    def add_note(self, stream: str, external_id: str, text: str) -> None:
        if stream not in NOTE_KEYS:
            raise PermanentError(f"Pipedrive notes attach to {', '.join(NOTE_KEYS)}, not {stream}")
        content = html.escape(text).replace("\n", "<br>")  # note content is HTML
        self._envelope(
            self._call(
                "POST", "/api/v1/notes", json={"content": content, NOTE_KEYS[stream]: int(external_id)}
            ),
            "add note",
        )

    # --- webhooks --------------------------------------------------------------------------------
    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Pipedrive does not sign deliveries. With `webhook_user`/`webhook_password` configured (set them
        as the webhook's HTTP auth in Pipedrive) the delivery must present them as HTTP Basic auth."""
        creds = self.config.credentials.load()
        user, password = creds.get("webhook_user"), creds.get("webhook_password")
        if not user and not password:
            return True
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, encoded = auth.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{user or ''}:{password or ''}".encode()
        return hmac.compare_digest(given, expected)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        """One delivery = one event: `meta.entity`/`meta.action`/`meta.entity_id` (v2). The record is
        re-fetched by id because the payload is not signed."""
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise PermanentError(f"Pipedrive webhook: not JSON: {body[:200]!r}") from None
        meta = payload.get("meta") if isinstance(payload, Mapping) else None
        if not isinstance(meta, Mapping):
            raise PermanentError("Pipedrive webhook: no `meta` block")
        entity = str(meta.get("entity") or meta.get("object") or "")
        action = str(meta.get("action") or "")
        current = payload.get("data") or payload.get("current") or payload.get("previous") or {}
        entity_id = meta.get("entity_id") or (current.get("id") if isinstance(current, Mapping) else None)
        if not entity or not action or entity_id in (None, ""):
            raise PermanentError(f"Pipedrive webhook: meta without entity/action/id: {str(meta)[:200]!r}")
        stream = WEBHOOK_ENTITIES.get(entity)
        if stream is None:
            return []  # activities, leads, notes…: not a stream of ours
        return [
            WebhookEvent(
                event_id=f"{entity}.{action}:{entity_id}:{meta.get('timestamp') or meta.get('id') or ''}",
                stream=stream,
                external_id=str(entity_id),
                action="delete" if action in DELETE_ACTIONS else "upsert",
            )
        ]
