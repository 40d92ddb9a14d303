"""MoySklad JSON API 1.2 (CONTRACTS.md §2.5; vendor docs: github.com/moysklad/api-remap-1.2-doc).

Streams: counterparty ► clients, customerorder ► deals, invoiceout ► invoices, paymentin ► payments.
Auth `Authorization: Bearer <token>`; `Accept-Encoding: gzip` is mandatory on api.moysklad.ru.
Lists page with `limit`/`offset` and `meta.nextHref`; the change feed is `filter=updated>=…` in the
account's local time (Moscow by default) ordered by `updated`. Throttling replies 429 with
`X-Lognex-Retry-After` in milliseconds. Money is in kopecks (the default mappings divide by 100).

References are `{"meta": {"href", "type", …}}` objects; `fetch` copies the id (last href segment) and
the type next to `meta` (`{"meta": …, "id": "…", "type": "counterparty"}` — the shape MoySklad itself
returns for an expanded reference) so field mappings can use `agent` with the `lookup` transform and
select `operations[type=invoiceout]`. Outbound, a bare id under a reference field is turned back into
a `meta` object.

Webhooks are not signed: a delivery is accepted when every event carries our `accountId` (learned by
`check()` or set as `options["account_id"]`), and events are hints: the engine re-fetches by id.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import re
import zoneinfo
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

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

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.moysklad.ru/api/remap/1.2"
ENTITY = {
    "clients": "counterparty",
    "deals": "customerorder",
    "invoices": "invoiceout",
    "payments": "paymentin",
}
STREAM_OF = {entity: stream for stream, entity in ENTITY.items()}
# Reference fields we may send as a bare id, and the entity type each points to.
REFERENCE_TYPES = {
    "agent": "counterparty",
    "customerOrder": "customerorder",
    "organization": "organization",
    "state": "state",
}
PAGE_LIMIT = 1000  # the API maximum
EXPAND_LIMIT = 100  # the maximum when `expand` is used
EXPAND = {"deals": "state"}  # the stage name and its type (open/won/lost) live on the state
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_KOPECKS = {"divide": 100}
_MOMENT = {"tz": "Europe/Moscow"}  # "2026-01-15 10:00:00[.000]" is ISO enough for fromisoformat


def _dates(entity: str, path: str, canonical: str) -> tuple[MappingSpec, MappingSpec]:
    """A date read from "2026-01-15 10:00:00.000" (ISO prefix) and written as "2026-01-15 00:00:00"."""
    return (
        MappingSpec(entity, path, canonical, direction="in", transform="date"),
        MappingSpec(
            entity, path, canonical, direction="out", transform="date", params={"format": "%Y-%m-%d %H:%M:%S"}
        ),
    )


@register
class MoySkladConnector(Connector):
    system = "moysklad"
    title = "MoySklad"
    role = "accounting"
    streams = ("clients", "deals", "invoices", "payments")
    push_streams = ("clients", "deals", "invoices")
    credential_keys = ("token", "account_id")
    required_credentials = ("token",)
    default_rate_limit = 15.0  # 45 requests / 3 s per account (older doc: 100 / 5 s)
    signs_webhooks = False
    default_mappings = (
        # counterparty ► clients
        MappingSpec("clients", "name", "name"),
        MappingSpec("clients", "legalTitle", "legal_name"),
        MappingSpec("clients", "inn", "inn"),
        MappingSpec("clients", "kpp", "kpp"),
        MappingSpec("clients", "ogrnip", "ogrn", direction="in"),
        MappingSpec("clients", "ogrn", "ogrn"),
        MappingSpec(
            "clients",
            "companyType",
            "kind",
            transform="enum",
            params={
                "map": {"legal": "company", "entrepreneur": "company", "individual": "person"},
                "reverse": {"company": "legal", "person": "individual"},
            },
        ),
        MappingSpec("clients", "email", "email"),
        MappingSpec("clients", "phone", "phone", transform="phone", params={"region": "RU"}),
        MappingSpec("clients", "actualAddress", "address", direction="in"),
        MappingSpec("clients", "legalAddress", "address"),
        MappingSpec("clients", "description", "notes"),
        MappingSpec("clients", "archived", "archived", transform="boolean"),
        # customerorder ► deals
        MappingSpec("deals", "name", "title"),
        MappingSpec("deals", "agent", "client", transform="lookup", params={"entity": "clients"}),
        MappingSpec("deals", "sum", "amount", direction="in", transform="decimal", params=_KOPECKS),
        MappingSpec("deals", "state.name", "stage", direction="in"),
        MappingSpec(
            "deals",
            "state.stateType",
            "status",
            direction="in",
            transform="enum",
            params={
                "map": {"Regular": "open", "Successful": "won", "Unsuccessful": "lost"},
                "default": "open",
            },
        ),
        *_dates("deals", "deliveryPlannedMoment", "expected_close_date"),
        # invoiceout ► invoices
        MappingSpec("invoices", "name", "number"),
        *_dates("invoices", "moment", "issue_date"),
        *_dates("invoices", "paymentPlannedMoment", "due_date"),
        MappingSpec("invoices", "agent", "client", transform="lookup", params={"entity": "clients"}),
        MappingSpec("invoices", "customerOrder", "deal", transform="lookup", params={"entity": "deals"}),
        MappingSpec("invoices", "sum", "total", direction="in", transform="decimal", params=_KOPECKS),
        MappingSpec("invoices", "vatSum", "vat_total", direction="in", transform="decimal", params=_KOPECKS),
        MappingSpec(
            "invoices", "payedSum", "paid_total", direction="in", transform="decimal", params=_KOPECKS
        ),
        MappingSpec(
            "invoices",
            "applicable",
            "status",
            direction="in",
            owner="hub",
            transform="enum",
            params={"map": {"True": "issued", "False": "draft"}},
        ),
        MappingSpec("invoices", "description", "purpose"),
        # paymentin ► payments
        MappingSpec("payments", "name", "reference", direction="in"),
        MappingSpec("payments", "incomingNumber", "reference", direction="in"),  # the payer's number wins
        MappingSpec(
            "payments", "moment", "received_at", direction="in", transform="datetime", params=_MOMENT
        ),
        MappingSpec("payments", "sum", "amount", direction="in", transform="decimal", params=_KOPECKS),
        MappingSpec(
            "payments", "agent", "client", direction="in", transform="lookup", params={"entity": "clients"}
        ),
        MappingSpec(
            "payments",
            "operations[type=invoiceout]",
            "invoice",
            direction="in",
            transform="lookup",
            params={"entity": "invoices"},
        ),
        MappingSpec("payments", "paymentPurpose", "purpose", direction="in"),
    )

    def __init__(self, config: ConnectionConfig, *, http: Any | None = None):
        if not config.base_url:
            config = dataclasses.replace(config, base_url=DEFAULT_BASE_URL)
        if http is None:
            http = HttpClient.for_connection(
                config,
                headers={"Accept-Encoding": "gzip", "Accept": "application/json;charset=utf-8"},
                rate_limit=config.rate_limit_per_second or self.default_rate_limit,
                retry_after_header="X-Lognex-Retry-After",
                retry_after_unit=0.001,  # milliseconds
            )
        super().__init__(config, http=http)
        options = config.options or {}
        self.base_url = config.base_url.rstrip("/")
        self.zone = zoneinfo.ZoneInfo(options.get("timezone") or "Europe/Moscow")
        self.page_limit = int(options.get("page_size") or PAGE_LIMIT)
        self.organization_id = options.get("organization_id") or ""

    # --- plumbing ----------------------------------------------------------------------------------
    def _headers(self, *, write: bool = False) -> dict[str, str]:
        token = self.config.credentials.load().get("token")
        if not token:
            raise AuthError(
                f"{self.config.name}: no MoySklad token; set --credential token=… (reconnect in admin)"
            )
        headers = {"Authorization": f"Bearer {token}"}
        if write:
            headers["X-Lognex-WebHook-Disable"] = "true"  # our own writes must not echo back as webhooks
        return headers

    def _entity(self, stream: str) -> str:
        try:
            return ENTITY[stream]
        except KeyError:
            raise PermanentError(f"{self.system} has no stream {stream!r}") from None

    def _json(self, method: str, url: str, *, write: bool = False, **kwargs: Any) -> Any:
        response = self.http.request(method, url, headers=self._headers(write=write), **kwargs)
        body = self.http.json_of(response)
        if isinstance(body, Mapping) and body.get("errors"):
            raise PermanentError(f"MoySklad {method} {url}: {_errors(body)}")
        return body

    def _same_origin(self, href: str) -> bool:
        """`nextHref` must stay on our API: never send the token to another host."""
        ours, theirs = urlsplit(self.base_url), urlsplit(href)
        return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc) and theirs.path.startswith(
            ours.path
        )

    def _local(self, when: dt.datetime) -> str:
        return when.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")

    # --- reading -----------------------------------------------------------------------------------
    def check(self) -> None:
        """Who are we: proves the token and learns the account id used to verify webhooks."""
        body = self._json("GET", "context/employee")
        account_id = str((body or {}).get("accountId") or "")
        if account_id:
            self.config.credentials.update(
                lambda current: (
                    None if current.get("account_id") == account_id else {"account_id": account_id}
                )
            )

    def fetch(self, stream: str, *, since: dt.datetime | None = None) -> Iterator[RemoteRecord]:
        entity = self._entity(stream)
        params: dict[str, str] = {"order": "updated,asc", "offset": "0"}
        limit = self.page_limit
        if stream in EXPAND:
            params["expand"] = EXPAND[stream]
            limit = min(limit, EXPAND_LIMIT)
        params["limit"] = str(limit)
        if since is not None:
            params["filter"] = f"updated>={self._local(since)}"
        url: str = f"entity/{entity}"
        query: dict[str, str] | None = params
        seen: set[str] = set()
        while True:
            body = self._json("GET", url, params=query)
            if not isinstance(body, Mapping) or not isinstance(body.get("rows"), list):
                raise PermanentError(f"MoySklad {entity}: the reply has no 'rows' list")
            for row in body["rows"]:
                yield self._record(stream, row)
            next_href = (body.get("meta") or {}).get("nextHref")
            if not next_href:
                return
            if next_href in seen:
                raise PermanentError(f"MoySklad {entity}: nextHref repeats ({next_href})")
            if not self._same_origin(next_href):
                raise PermanentError(f"MoySklad {entity}: nextHref leaves the API ({next_href})")
            seen.add(next_href)
            url, query = next_href, None  # nextHref carries the whole query (httpx would replace it)

    def get(self, stream: str, external_id: str) -> RemoteRecord | None:
        if not _UUID.match(external_id):
            raise PermanentError(f"MoySklad: not an id: {external_id!r}")
        params = {"expand": EXPAND[stream]} if stream in EXPAND else None
        response = self.http.request(
            "GET",
            f"entity/{self._entity(stream)}/{external_id}",
            params=params,
            headers=self._headers(),
            expect=(404,),
        )
        if response.status_code == 404:
            return None
        body = self.http.json_of(response)
        if isinstance(body, Mapping) and body.get("errors"):
            raise PermanentError(f"MoySklad {stream} {external_id}: {_errors(body)}")
        return self._record(stream, body)

    def _record(self, stream: str, row: Any) -> RemoteRecord:
        if not isinstance(row, Mapping):
            raise PermanentError(f"MoySklad {stream}: a row is not an object: {row!r:.100}")
        if not row.get("id"):
            raise PermanentError(f"MoySklad {stream}: a row has no id")
        updated = row.get("updated")
        try:
            updated_at = _parse_moment(updated, self.zone) if updated else None
        except ValueError:
            raise PermanentError(f"MoySklad {stream} {row['id']}: bad 'updated' {updated!r}") from None
        return RemoteRecord(
            stream=stream,
            external_id=str(row["id"]),
            data=_with_reference_ids(row),
            updated_at=updated_at,
            version=str(updated or ""),
            deleted=bool(row.get("deleted")),  # documents in the trash carry the deletion moment
        )

    # --- writing -----------------------------------------------------------------------------------
    def upsert(self, stream: str, payload: Mapping[str, Any], *, external_id: str | None = None) -> str:
        if stream not in self.push_streams:
            return super().upsert(stream, payload, external_id=external_id)
        entity = self._entity(stream)
        body = {key: self._reference(key, value) for key, value in payload.items() if value is not None}
        if external_id:
            self._json("PUT", f"entity/{entity}/{external_id}", write=True, json=body)
            return external_id
        if stream != "clients" and "organization" not in body:
            if not self.organization_id:
                raise PermanentError(
                    "MoySklad needs our legal entity on new documents: set options.organization_id "
                    "(entity/organization id) on the connection"
                )
            body["organization"] = self._reference("organization", self.organization_id)
        created = self._json("POST", f"entity/{entity}", write=True, json=body)
        if not isinstance(created, Mapping) or not created.get("id"):
            raise PermanentError(f"MoySklad {entity}: created, but the reply carries no id")
        return str(created["id"])

    def _reference(self, key: str, value: Any) -> Any:
        """A bare id under a reference field ► the `meta` object MoySklad expects."""
        entity = REFERENCE_TYPES.get(key)
        if entity is None or not isinstance(value, str) or not _UUID.match(value):
            return value
        return {
            "meta": {
                "href": f"{self.base_url}/entity/{entity}/{value}",
                "type": entity,
                "mediaType": "application/json",
            }
        }

    def delete(self, stream: str, external_id: str) -> None:
        """Counterparties are archived (their documents stay valid); documents go to the trash."""
        entity = self._entity(stream)
        if stream == "clients":
            self._json("PUT", f"entity/{entity}/{external_id}", write=True, json={"archived": True})
        else:
            self.http.request(
                "DELETE", f"entity/{entity}/{external_id}", headers=self._headers(write=True), expect=(404,)
            )

    def add_note(self, stream: str, external_id: str, text: str) -> None:
        """A counterparty event ("Событие"): the only timeline MoySklad has."""
        if stream != "clients":
            return super().add_note(stream, external_id, text)
        self._json("POST", f"entity/counterparty/{external_id}/notes", write=True, json={"description": text})

    # --- webhooks ----------------------------------------------------------------------------------
    def _account_id(self) -> str:
        return str(
            (self.config.options or {}).get("account_id")
            or self.config.credentials.load().get("account_id")
            or ""
        )

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Unsigned deliveries: accept only when every event names our account."""
        expected = self._account_id()
        if not expected:
            logger.warning("moysklad %s: webhook refused, account id unknown (run check)", self.config.name)
            return False
        try:
            events = json.loads(body).get("events")
        except (ValueError, AttributeError):
            return False
        return (
            isinstance(events, list)
            and bool(events)
            and all(isinstance(e, Mapping) and e.get("accountId") == expected for e in events)
        )

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        try:
            events = json.loads(body)["events"]
        except (ValueError, KeyError, TypeError):
            raise PermanentError('MoySklad webhook: the body is not {"events": [...]}') from None
        if not isinstance(events, list):
            raise PermanentError("MoySklad webhook: 'events' is not a list")
        digest = hashlib.sha256(body).hexdigest()[:16]
        out: list[WebhookEvent] = []
        for index, event in enumerate(events):
            meta = event.get("meta") if isinstance(event, Mapping) else None
            if not isinstance(meta, Mapping) or not meta.get("href"):
                raise PermanentError(f"MoySklad webhook: event {index} has no meta.href")
            stream = STREAM_OF.get(str(meta.get("type")))
            if stream is None:
                continue  # an entity we do not sync (product, demand, …)
            external_id = str(meta["href"]).rstrip("/").rsplit("/", 1)[-1]
            if not _UUID.match(external_id):
                raise PermanentError(f"MoySklad webhook: event {index} href has no id: {meta['href']}")
            action = "delete" if event.get("action") == "DELETE" else "upsert"
            out.append(
                WebhookEvent(
                    event_id=f"{digest}:{index}",
                    stream=stream,
                    external_id=external_id,
                    action=action,
                )
            )
        return out


def _parse_moment(value: str, zone: dt.tzinfo) -> dt.datetime:
    """MoySklad times: "2026-01-15 10:00:00" or with milliseconds, in the account's zone."""
    text = str(value)
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
    return dt.datetime.strptime(text, fmt).replace(tzinfo=zone)


def _with_reference_ids(value: Any) -> Any:
    """Copy `id` and `type` out of every nested `meta` reference so mappings can address them."""
    if isinstance(value, list):
        return [_with_reference_ids(item) for item in value]
    if not isinstance(value, Mapping):
        return value
    out = {key: _with_reference_ids(item) for key, item in value.items()}
    meta = value.get("meta")
    if isinstance(meta, Mapping) and meta.get("href"):
        last = str(meta["href"]).split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if _UUID.match(last):
            out.setdefault("id", last)
        if meta.get("type"):
            out.setdefault("type", meta["type"])
    return out


def _errors(body: Mapping[str, Any]) -> str:
    parts = []
    for error in body.get("errors") or []:
        if isinstance(error, Mapping):
            code = error.get("code")
            parts.append(f"{error.get('error', '')}" + (f" (code {code})" if code else ""))
    return "; ".join(parts) or "unknown error"
