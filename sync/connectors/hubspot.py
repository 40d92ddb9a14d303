"""HubSpot CRM v3 (CONTRACTS.md §1.3): companies ► clients, contacts, deals (+ line items), products.

Auth is a private-app token (`token`, sent as `Authorization: Bearer`) or OAuth2 (`client_id`,
`client_secret`, `refresh_token`): the access token is refreshed single-flight through the credential
store before it expires and once more on a 401; a refused refresh token pauses the connection.

Reading always goes through the search endpoint sorted by the last-modified property ascending, so
records come oldest change first, with or without `since`. HubSpot caps one search query at 10 000
results: when the next page would pass the cap, the search restarts with `GTE <last seen timestamp>` and
skips the records already yielded at that exact millisecond. Deals carry their company association in
the shape `GET …?associations=companies` returns, and their line items under `line_items`.

Webhooks are signed (v3): base64(HMAC-SHA256(client_secret, method + uri + body + timestamp)); the lead's
webhook view passes the request method and full URI as the pseudo-headers `X-Hub-Method`/`X-Hub-Uri`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import httpx

from sync.connectors import register
from sync.connectors._hubspot_webhooks import parse_events, verify_signature
from sync.connectors.base import (
    AuthError,
    ConnectionConfig,
    Connector,
    MappingSpec,
    PermanentError,
    RemoteRecord,
    RetryableError,
    WebhookEvent,
)
from sync.http import HttpClient
from sync.mapping.paths import get_path

OBJECTS = {"clients": "companies", "contacts": "contacts", "deals": "deals", "products": "products"}
MODIFIED = {
    "clients": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
    "products": "hs_lastmodifieddate",
}
MODIFIED_CONTACTS = "lastmodifieddate"
PROPERTIES = {
    "clients": ("name", "domain", "phone", "address", "city", "zip", "country", "inn", "kpp"),
    "contacts": ("firstname", "lastname", "email", "phone", "mobilephone", "jobtitle", "associatedcompanyid"),
    "deals": (
        "dealname",
        "amount",
        "deal_currency_code",
        "dealstage",
        "pipeline",
        "closedate",
        "closed_lost_reason",
        "hs_is_closed_won",
    ),
    "products": ("name", "hs_sku", "price", "hs_cost_of_goods_sold", "description"),
}
LINE_ITEM_PROPERTIES = ("name", "quantity", "price", "amount", "hs_product_id", "hs_sku", "hs_tax_rate")
# HUBSPOT_DEFINED association type ids [C: CONTRACTS.md §1.3, notes guide]
DEAL_TO_COMPANY_PRIMARY = 5
CONTACT_TO_COMPANY_PRIMARY = 1
NOTE_TO = {"deals": 214, "clients": 190, "contacts": 202}
REFRESH_MARGIN_SECONDS = 120
BATCH_SIZE = 100  # inputs per batch call


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _parse_time(value: Any) -> dt.datetime | None:
    """HubSpot times: ISO 8601 with `Z` (objects) or epoch milliseconds (some properties)."""
    if value in (None, ""):
        return None
    text = str(value)
    if text.isdigit():
        return dt.datetime.fromtimestamp(int(text) / 1000, tz=dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@register
class HubSpotConnector(Connector):
    system = "hubspot"
    title = "HubSpot CRM"
    role = "crm"
    streams = ("clients", "contacts", "deals", "products")
    push_streams = ("clients", "contacts", "deals", "products")
    credential_keys = ("token", "client_id", "client_secret", "refresh_token")
    required_credentials = ()  # either `token` or the three OAuth keys; `check` says which is missing
    default_rate_limit = 4.0  # the search API allows ~4-5 req/s per token; plain calls 100-190 / 10 s
    signs_webhooks = True
    default_mappings: ClassVar[tuple[MappingSpec, ...]] = (
        # companies ► clients
        MappingSpec("clients", "properties.name", "name"),
        MappingSpec(
            "clients",
            "properties.name",
            "kind",
            direction="in",
            transform="constant",
            params={"value": "company"},
        ),
        MappingSpec("clients", "properties.phone", "phone", transform="phone"),
        MappingSpec("clients", "properties.address", "address"),
        MappingSpec("clients", "properties.inn", "inn"),
        MappingSpec("clients", "properties.kpp", "kpp"),
        MappingSpec("clients", "archived", "archived", direction="in", transform="boolean"),
        # contacts
        MappingSpec("contacts", "properties.firstname", "first_name"),
        MappingSpec("contacts", "properties.lastname", "last_name"),
        MappingSpec("contacts", "properties.email", "email"),
        MappingSpec("contacts", "properties.phone", "phone", transform="phone"),
        MappingSpec("contacts", "properties.mobilephone", "phone", direction="in", transform="phone"),
        MappingSpec("contacts", "properties.jobtitle", "position"),
        MappingSpec(
            "contacts",
            "properties.associatedcompanyid",
            "client",
            direction="in",
            transform="lookup",
            params={"entity": "clients"},
        ),
        MappingSpec(
            "contacts",
            "associations.companies.results.0.id",
            "client",
            direction="out",
            transform="lookup",
            params={"entity": "clients"},
        ),
        MappingSpec("contacts", "archived", "archived", direction="in", transform="boolean"),
        # deals
        MappingSpec("deals", "properties.dealname", "title"),
        MappingSpec(
            "deals",
            "associations.companies.results.0.id",
            "client",
            transform="lookup",
            params={"entity": "clients"},
        ),
        MappingSpec("deals", "properties.dealstage", "stage"),
        MappingSpec(
            "deals",
            "properties.dealstage",
            "status",
            direction="in",
            transform="enum",
            params={"map": {"closedwon": "won", "closedlost": "lost"}, "default": "open"},
        ),
        MappingSpec("deals", "properties.amount", "amount", transform="decimal"),
        MappingSpec("deals", "properties.deal_currency_code", "currency"),
        MappingSpec("deals", "properties.closedate", "expected_close_date", transform="date"),
        MappingSpec("deals", "properties.closed_lost_reason", "lost_reason"),
        MappingSpec("deals", "archived", "archived", direction="in", transform="boolean"),
        # products
        MappingSpec("products", "properties.hs_sku", "sku"),
        MappingSpec("products", "properties.name", "name"),
        MappingSpec("products", "properties.price", "price", transform="decimal"),
        MappingSpec("products", "properties.hs_cost_of_goods_sold", "unit_cost", transform="decimal"),
        MappingSpec("products", "archived", "archived", direction="in", transform="boolean"),
    )

    #: results per search page (HubSpot allows up to 200) and the per-query cap (10 000)
    page_size = 200
    search_cap = 10_000

    def __init__(self, config: ConnectionConfig, *, http: Any | None = None):
        if http is None:
            http = HttpClient.for_connection(
                config,
                headers={"Accept": "application/json"},
                rate_limit=config.rate_limit_per_second or self.default_rate_limit,
            )
        super().__init__(config, http=http)
        self.clock = time.time
        self.deal_line_items = bool(config.options.get("deal_line_items", True))
        self.archived_feed = bool(config.options.get("archived_feed", True))

    # --- auth ------------------------------------------------------------------------------------
    def _access_token(self, *, stale: str | None = None) -> str:
        """The bearer token: the private-app token, or a fresh OAuth access token (refreshed single-flight)."""
        creds = self.config.credentials.load()
        if creds.get("token"):
            return creds["token"]
        missing = [k for k in ("client_id", "client_secret", "refresh_token") if not creds.get(k)]
        if missing:
            raise AuthError(
                "HubSpot needs a private-app `token` or OAuth `client_id`, `client_secret`, `refresh_token` "
                f"(missing: {', '.join(missing)}); reconnect in admin"
            )
        if self._usable(creds, stale):
            return creds["access_token"]
        fresh = self.config.credentials.update(lambda current: self._refresh(current, stale))
        return fresh["access_token"]

    def _usable(self, creds: Mapping[str, str], stale: str | None) -> bool:
        token = creds.get("access_token")
        if not token or token == stale:
            return False
        try:
            expires_at = float(creds.get("access_token_expires_at") or 0)
        except ValueError:
            return False
        return expires_at - REFRESH_MARGIN_SECONDS > self.clock()

    def _refresh(self, current: dict[str, str], stale: str | None) -> dict[str, str] | None:
        """Runs under the credential lock: another worker may already have refreshed (then keep its token)."""
        if self._usable(current, stale):
            return None
        response = self.http.request(
            "POST",
            "/oauth/v1/token",
            data={
                "grant_type": "refresh_token",
                "client_id": current["client_id"],
                "client_secret": current["client_secret"],
                "refresh_token": current["refresh_token"],
            },
            expect=(400, 401),
        )
        body = HttpClient.json_of(response) or {}
        if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
            info = body if isinstance(body, dict) else {}
            reason = info.get("status") or info.get("error") or response.status_code
            message = info.get("message") or info.get("error_description") or ""
            raise AuthError(
                f"HubSpot refused the OAuth refresh token ({reason}: {message or 'no access token'}); "
                "reconnect in admin",
                status=response.status_code,
            )
        expires_in = float(body.get("expires_in") or 1800)
        return {
            "access_token": body["access_token"],
            "refresh_token": body.get("refresh_token") or current["refresh_token"],
            "access_token_expires_at": str(int(self.clock() + expires_in)),
        }

    def _call(self, method: str, url: str, *, expect: tuple[int, ...] = (), **kwargs: Any) -> httpx.Response:
        """One authenticated request; an OAuth 401 refreshes the token once and retries."""
        token = self._access_token()
        for attempt in range(2):
            try:
                return self.http.request(
                    method, url, headers={"Authorization": f"Bearer {token}"}, expect=expect, **kwargs
                )
            except AuthError as exc:
                oauth = not self.config.credentials.load().get("token")
                if attempt or not oauth or exc.status != 401:
                    raise
                token = self._access_token(stale=token)
            except RetryableError as exc:
                if exc.status == 429 and "DAILY" in str(exc):
                    raise RetryableError(
                        f"HubSpot daily API limit reached; the next run resumes after midnight ({exc})",
                        status=429,
                        retry_after=exc.retry_after,
                    ) from exc
                raise
        raise AssertionError("unreachable")

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        return HttpClient.json_of(self._call(method, url, **kwargs))

    # --- reading ---------------------------------------------------------------------------------
    def _object(self, stream: str) -> str:
        try:
            return OBJECTS[stream]
        except KeyError:
            raise PermanentError(f"hubspot has no stream {stream!r}") from None

    def _properties(self, stream: str) -> list[str]:
        extra = (self.config.options.get("properties") or {}).get(stream, [])
        modified = MODIFIED_CONTACTS if stream == "contacts" else MODIFIED[stream]
        return list(dict.fromkeys([*PROPERTIES[stream], *extra, modified]))

    def check(self) -> None:
        self._json("GET", "/crm/v3/objects/companies", params={"limit": 1})

    def _record(self, stream: str, item: Any) -> RemoteRecord:
        if not isinstance(item, Mapping) or item.get("id") in (None, ""):
            raise PermanentError(f"HubSpot {stream}: a result without an id: {str(item)[:200]!r}")
        props = item.get("properties") or {}
        modified = MODIFIED_CONTACTS if stream == "contacts" else MODIFIED[stream]
        updated = _parse_time(item.get("updatedAt")) or _parse_time(props.get(modified))
        return RemoteRecord(
            stream=stream,
            external_id=str(item["id"]),
            data=dict(item),
            updated_at=updated,
            version=str(props.get(modified) or item.get("updatedAt") or ""),
            deleted=item.get("archived") is True,
        )

    def fetch(self, stream: str, *, since: dt.datetime | None = None) -> Iterator[RemoteRecord]:
        """Changed records oldest first, and (with `since`) records archived since then as tombstones,
        merged in by their `archivedAt` (search never returns archived records)."""
        obj = self._object(stream)
        tombstones = self._tombstones(stream, obj, since) if since is not None and self.archived_feed else []
        for record in self._search(stream, obj, since):
            while tombstones and record.updated_at and tombstones[0].updated_at <= record.updated_at:
                yield tombstones.pop(0)
            yield record
        yield from tombstones

    def _tombstones(self, stream: str, obj: str, since: dt.datetime) -> list[RemoteRecord]:
        """Archived records (the 90-day recycle bin) archived at or after `since`, oldest first.
        The list endpoint pages with `after` from `paging.next.after` and cannot filter, so this reads
        the whole bin; it is small next to the live data."""
        found: list[RemoteRecord] = []
        after: str | None = None
        tokens: set[str] = set()
        while True:
            params: dict[str, Any] = {"archived": "true", "limit": 100, "properties": "hs_object_id"}
            if after:
                params["after"] = after
            page = self._json("GET", f"/crm/v3/objects/{obj}", params=params)
            if not isinstance(page, Mapping) or not isinstance(page.get("results"), list):
                raise PermanentError(f"HubSpot {obj} (archived): unexpected reply {str(page)[:200]!r}")
            for item in page["results"]:
                record = self._record(stream, item)
                archived_at = _parse_time(item.get("archivedAt")) or record.updated_at
                if archived_at is not None and archived_at >= since:
                    found.append(
                        RemoteRecord(
                            stream=stream,
                            external_id=record.external_id,
                            data=record.data,
                            updated_at=archived_at,
                            version=str(item.get("archivedAt") or record.version),
                            deleted=True,
                        )
                    )
            next_after = get_path(page, "paging.next.after", None)
            if not next_after:
                break
            if str(next_after) in tokens:
                raise PermanentError(
                    f"HubSpot {obj} (archived): the page token {next_after!r} came back twice"
                )
            tokens.add(str(next_after))
            after = str(next_after)
        return sorted(found, key=lambda r: r.updated_at)

    def _search(self, stream: str, obj: str, since: dt.datetime | None) -> Iterator[RemoteRecord]:
        """Search sorted by last-modified ascending (GTE `since`), restarting past the 10 000 cap."""
        modified = MODIFIED_CONTACTS if stream == "contacts" else MODIFIED[stream]
        floor = _ms(since) if since is not None else None
        done_at_floor: set[str] = set()  # ids already yielded with updated == floor (restart overlap)
        last_ms: int | None = None
        ids_at_last: set[str] = set()
        after: str | None = None
        tokens: set[str] = set()
        new_in_query = 0
        while True:
            body: dict[str, Any] = {
                "filterGroups": (
                    [{"filters": [{"propertyName": modified, "operator": "GTE", "value": str(floor)}]}]
                    if floor is not None
                    else []
                ),
                "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
                "properties": self._properties(stream),
                "limit": self.page_size,
            }
            if after:
                body["after"] = after
            page = self._json("POST", f"/crm/v3/objects/{obj}/search", json=body)
            if not isinstance(page, Mapping) or not isinstance(page.get("results"), list):
                raise PermanentError(f"HubSpot {obj} search: unexpected reply {str(page)[:200]!r}")
            records = []
            new_in_query = new_in_query if after else 0
            for item in page["results"]:
                record = self._record(stream, item)
                stamp = _ms(record.updated_at) if record.updated_at else None
                if floor is not None and stamp == floor and record.external_id in done_at_floor:
                    continue
                if stamp is not None:
                    if stamp != last_ms:
                        last_ms, ids_at_last = stamp, set()
                    ids_at_last.add(record.external_id)
                records.append(record)
                new_in_query += 1
            if stream == "deals" and records:
                records = self._with_deal_links(records)
            yield from records
            next_after = get_path(page, "paging.next.after", None)
            if not next_after:
                return
            next_after = str(next_after)
            if next_after.isdigit() and int(next_after) >= self.search_cap:
                # the query is exhausted at the cap: start again from the last timestamp seen
                if last_ms is None or not new_in_query:
                    raise PermanentError(
                        f"HubSpot {obj}: more than {self.search_cap} records changed at the same moment; "
                        "cannot page past the search cap"
                    )
                done_at_floor = ids_at_last | (done_at_floor if last_ms == floor else set())
                floor, after, tokens = last_ms, None, set()
                continue
            if next_after in tokens:
                raise PermanentError(f"HubSpot {obj} search: the page token {next_after!r} came back twice")
            tokens.add(next_after)
            after = next_after

    def _associations(self, from_obj: str, to_obj: str, ids: list[str]) -> dict[str, list[str]]:
        """v4 batch read: {from id: [to ids]}, primary (typeId 5 for deal ► company) first. Records
        without associations come back as per-input errors of a 207 reply and are simply absent."""
        found: dict[str, list[str]] = {}
        for start in range(0, len(ids), BATCH_SIZE):
            reply = self._json(
                "POST",
                f"/crm/v4/associations/{from_obj}/{to_obj}/batch/read",
                json={"inputs": [{"id": i} for i in ids[start : start + BATCH_SIZE]]},
            )
            for result in (reply or {}).get("results") or []:
                source = str(get_path(result, "from.id", ""))
                targets = sorted(
                    result.get("to") or [],
                    key=lambda t: (
                        not any(
                            a.get("typeId") == DEAL_TO_COMPANY_PRIMARY
                            for a in t.get("associationTypes") or []
                        )
                    ),
                )
                found[source] = [str(t["toObjectId"]) for t in targets if t.get("toObjectId") is not None]
        return found

    def _line_items(self, ids: list[str]) -> dict[str, dict]:
        items: dict[str, dict] = {}
        for start in range(0, len(ids), BATCH_SIZE):
            reply = self._json(
                "POST",
                "/crm/v3/objects/line_items/batch/read",
                json={
                    "properties": list(LINE_ITEM_PROPERTIES),
                    "inputs": [{"id": i} for i in ids[start : start + BATCH_SIZE]],
                },
            )
            items.update(
                {str(item["id"]): item for item in (reply or {}).get("results") or [] if item.get("id")}
            )
        return items

    def _with_deal_links(self, records: list[RemoteRecord]) -> list[RemoteRecord]:
        """Attach the company association (as `GET …?associations=companies` shapes it) and line items."""
        ids = [r.external_id for r in records]
        companies = self._associations("deals", "companies", ids)
        lines_by_deal = self._associations("deals", "line_items", ids) if self.deal_line_items else {}
        items = self._line_items(sorted({i for v in lines_by_deal.values() for i in v}))
        out = []
        for record in records:
            data = dict(record.data)
            data["associations"] = {
                "companies": {
                    "results": [
                        {"id": c, "type": "deal_to_company"} for c in companies.get(record.external_id, [])
                    ]
                }
            }
            if self.deal_line_items:
                data["line_items"] = [
                    items[i] for i in lines_by_deal.get(record.external_id, []) if i in items
                ]
            out.append(
                RemoteRecord(
                    stream=record.stream,
                    external_id=record.external_id,
                    data=data,
                    updated_at=record.updated_at,
                    version=record.version,
                    deleted=record.deleted,
                )
            )
        return out

    def get(self, stream: str, external_id: str) -> RemoteRecord | None:
        obj = self._object(stream)
        params: dict[str, Any] = {"properties": ",".join(self._properties(stream))}
        if stream in ("deals", "contacts"):
            params["associations"] = "companies"
        response = self._call("GET", f"/crm/v3/objects/{obj}/{external_id}", params=params, expect=(404,))
        if response.status_code == 404:
            return None
        record = self._record(stream, HttpClient.json_of(response))
        if stream == "deals":
            record = self._with_deal_links([record])[0]
        return record

    # --- writing ---------------------------------------------------------------------------------
    def upsert(self, stream: str, payload: Mapping[str, Any], *, external_id: str | None = None) -> str:
        """`payload` is what the mapper writes: {"properties": {...}, "associations": {"companies":
        {"results": [{"id": company}]}}}; the company becomes the primary association."""
        obj = self._object(stream)
        # HubSpot property values are strings; an empty string clears a property, null is refused
        properties = {k: ("" if v is None else v) for k, v in (payload.get("properties") or {}).items()}
        company = get_path(payload, "associations.companies.results.0.id", None)
        if external_id is None:
            body: dict[str, Any] = {"properties": properties}
            if company and stream in ("deals", "contacts"):
                type_id = DEAL_TO_COMPANY_PRIMARY if stream == "deals" else CONTACT_TO_COMPANY_PRIMARY
                body["associations"] = [
                    {
                        "to": {"id": str(company)},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
                    }
                ]
            created = self._json("POST", f"/crm/v3/objects/{obj}", json=body)
            if not isinstance(created, Mapping) or not created.get("id"):
                raise PermanentError(f"HubSpot {obj}: create returned no id: {str(created)[:200]!r}")
            return str(created["id"])
        if properties:
            self._json("PATCH", f"/crm/v3/objects/{obj}/{external_id}", json={"properties": properties})
        if company and stream in ("deals", "contacts"):
            self._call("PUT", f"/crm/v4/objects/{obj}/{external_id}/associations/default/companies/{company}")
        return str(external_id)

    def delete(self, stream: str, external_id: str) -> None:
        """Archive (HubSpot's delete moves the record to the recycle bin for 90 days)."""
        self._call("DELETE", f"/crm/v3/objects/{self._object(stream)}/{external_id}", expect=(404,))

    def add_note(self, stream: str, external_id: str, text: str) -> None:
        if stream not in NOTE_TO:
            raise PermanentError(f"HubSpot notes attach to {', '.join(NOTE_TO)}, not {stream}")
        now = dt.datetime.fromtimestamp(self.clock(), tz=dt.UTC)
        self._json(
            "POST",
            "/crm/v3/objects/notes",
            json={
                "properties": {"hs_note_body": text, "hs_timestamp": now.isoformat().replace("+00:00", "Z")},
                "associations": [
                    {
                        "to": {"id": str(external_id)},
                        "types": [
                            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO[stream]}
                        ],
                    }
                ],
            },
        )

    # --- webhooks --------------------------------------------------------------------------------
    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """v3 signature over method + URI + body + timestamp with the app's client secret; deliveries
        whose timestamp is more than 5 minutes away from now are refused (replays)."""
        secret = self.config.credentials.load().get("client_secret") or ""
        return verify_signature(secret, headers, body, now_ms=self.clock() * 1000)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        """A JSON array of events; each becomes a re-fetch hint (or a delete). Unsubscribed object types
        (line items, tickets…) are skipped."""
        return parse_events(body)
