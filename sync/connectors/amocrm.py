"""amoCRM (Kommo) API v4: companies, contacts and leads (deals), notes on leads.

Contract: ../shared/design/CONTRACTS.md §1.1.

- Base URL is the account's own domain, `https://{subdomain}.amocrm.ru` (or `.kommo.com`).
- Auth: a long-lived token of a private integration (credential `token`), or OAuth2 (`client_id`,
  `client_secret`, `refresh_token`, + `redirect_uri` which amoCRM wants on refresh too). The refresh
  token is single-use: every refresh stores the new pair through `CredentialStore.update`
  (single-flight), together with the access token and its expiry.
- Lists: `GET /api/v4/{companies|contacts|leads}?limit=250&page=N&order[updated_at]=asc`, paged by
  the HAL `_links.next.href`; an empty list is `204 No Content`. The change feed sends both the
  `If-Modified-Since` header and `filter[updated_at][from]=<unix>`.
- Lead records are enriched with `status_name` and `pipeline_name` (from `/api/v4/leads/pipelines`) so
  the stage mapping can use a readable name; statuses 142/143 are "won"/"lost" in every pipeline.
- Webhooks are form-encoded (`leads[add][0][id]=…`, `account[subdomain]=…`) and unsigned: a delivery is
  accepted when its account matches the connection, and its events carry no record (re-fetched by id).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

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

logger = logging.getLogger("sync.connectors.amocrm")

PAGE_LIMIT = 250
WON_STATUS = "142"
LOST_STATUS = "143"
# canonical stream -> amoCRM entity (URL segment and `_embedded` key)
ENTITY = {"clients": "companies", "contacts": "contacts", "deals": "leads"}
# webhook entity key -> canonical stream
WEBHOOK_STREAM = {"leads": "deals", "contacts": "contacts", "companies": "clients"}
WEBHOOK_KEY = re.compile(
    r"^(?P<entity>[a-z_]+)\[(?P<action>[a-z_]+)\]\[(?P<index>\d+)\]\[(?P<field>[a-z_]+)\]$"
)
ACCOUNT_HOSTS = (".amocrm.ru", ".amocrm.com", ".kommo.com")
REFRESH_MARGIN = 60  # seconds before expiry at which an access token counts as expired


def _cf(selector: str) -> str:
    """The first value of a custom field, e.g. `_cf("field_code=PHONE")`."""
    return f"custom_fields_values[{selector}].values.0.value"


DEFAULT_MAPPINGS = (
    # companies -> clients
    MappingSpec("clients", "name", "name"),
    MappingSpec("clients", "name", "kind", direction="in", transform="constant", params={"value": "company"}),
    MappingSpec("clients", _cf("field_name=ИНН"), "inn", direction="in"),
    MappingSpec("clients", _cf("field_name=КПП"), "kpp", direction="in"),
    MappingSpec("clients", _cf("field_code=PHONE"), "phone", transform="phone", params={"region": "RU"}),
    MappingSpec("clients", _cf("field_code=EMAIL"), "email"),
    MappingSpec("clients", _cf("field_code=ADDRESS"), "address"),
    MappingSpec("clients", "is_deleted", "archived", direction="in", transform="boolean"),
    # contacts
    MappingSpec("contacts", "first_name", "first_name"),
    MappingSpec("contacts", "last_name", "last_name"),
    MappingSpec("contacts", _cf("field_code=POSITION"), "position"),
    MappingSpec("contacts", _cf("field_code=PHONE"), "phone", transform="phone", params={"region": "RU"}),
    MappingSpec("contacts", _cf("field_code=EMAIL"), "email"),
    MappingSpec(
        "contacts",
        "_embedded.companies.0.id",
        "client",
        transform="lookup",
        params={"entity": "clients", "as": "int"},
    ),
    MappingSpec("contacts", "is_deleted", "archived", direction="in", transform="boolean"),
    # leads -> deals
    MappingSpec("deals", "name", "title"),
    MappingSpec("deals", "price", "amount", transform="decimal", params={"scale": 2, "as": "number"}),
    MappingSpec("deals", "price", "currency", direction="in", transform="constant", params={"value": "RUB"}),
    MappingSpec(
        "deals",
        "_embedded.companies.0.id",
        "client",
        transform="lookup",
        params={"entity": "clients", "as": "int"},
    ),
    MappingSpec(
        "deals",
        "status_id",
        "status",
        direction="in",
        transform="enum",
        params={"map": {WON_STATUS: "won", LOST_STATUS: "lost"}, "default": "open"},
    ),
    # stage: the readable status name, overridden by the admin's map of status ids to hub stages
    # (a later mapping of the same field wins unless it yields a blank, see sync.mapping.mapper)
    MappingSpec("deals", "status_name", "stage", direction="in"),
    MappingSpec(
        "deals",
        "status_id",
        "stage",
        direction="in",
        transform="enum",
        params={"map": {WON_STATUS: "Won", LOST_STATUS: "Lost"}, "default": ""},
    ),
    MappingSpec("deals", _cf("field_code=UTM_SOURCE"), "utm_source", direction="in"),
    MappingSpec("deals", _cf("field_code=UTM_MEDIUM"), "utm_medium", direction="in"),
    MappingSpec("deals", _cf("field_code=UTM_CAMPAIGN"), "utm_campaign", direction="in"),
    MappingSpec("deals", "is_deleted", "archived", direction="in", transform="boolean"),
)


def _unix(value: Any) -> dt.datetime | None:
    """A tz-aware datetime from amoCRM's unix seconds; None when absent or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return dt.datetime.fromtimestamp(int(value), tz=dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


@register
class AmoCRMConnector(Connector):
    system = "amocrm"
    title = "amoCRM (Kommo) API v4"
    role = "crm"
    streams = ("clients", "contacts", "deals")
    push_streams = ("clients", "contacts", "deals")
    credential_keys = ("token", "client_id", "client_secret", "refresh_token", "redirect_uri")
    required_credentials = ()  # either `token`, or the OAuth2 trio
    default_mappings = DEFAULT_MAPPINGS
    default_rate_limit = 7.0
    signs_webhooks = False

    def __init__(self, config: ConnectionConfig, *, http: Any | None = None):
        if http is None:
            http = HttpClient.for_connection(
                config,
                headers={"Accept": "application/hal+json, application/json"},
                rate_limit=config.rate_limit_per_second or self.default_rate_limit,
            )
        super().__init__(config, http=http)
        self._statuses: dict[tuple[str, str], tuple[str, str]] | None = None

    # --- auth ------------------------------------------------------------------------------------
    def _uses_oauth(self, creds: Mapping[str, str]) -> bool:
        return not creds.get("token") and bool(creds.get("refresh_token"))

    def _access_token(self) -> str:
        creds = self.config.credentials.load()
        if creds.get("token"):
            return creds["token"]
        if not self._uses_oauth(creds):
            raise AuthError(
                "amoCRM connection has no credentials: set `token` (long-lived token) or "
                "`client_id`, `client_secret`, `refresh_token` (OAuth2); reconnect in admin"
            )
        if creds.get("access_token") and not self._expired(creds):
            return creds["access_token"]
        return self._refresh(stale=creds.get("access_token", ""))

    @staticmethod
    def _expired(creds: Mapping[str, str]) -> bool:
        try:
            expires_at = float(creds.get("access_token_expires_at") or 0)
        except ValueError:
            return True
        return expires_at - REFRESH_MARGIN <= time.time()

    def _refresh(self, *, stale: str) -> str:
        """Exchange the refresh token once, even when several threads find the access token stale."""

        def rotate(current: dict[str, str]) -> dict[str, str] | None:
            fresh = current.get("access_token")
            if fresh and fresh != stale and not self._expired(current):
                return None  # another worker refreshed while we waited for the lock
            return self._token_request(current)

        creds = self.config.credentials.update(rotate)
        return creds["access_token"]

    def _token_request(self, creds: Mapping[str, str]) -> dict[str, str]:
        missing = [k for k in ("client_id", "client_secret", "refresh_token") if not creds.get(k)]
        if missing:
            raise AuthError(f"amoCRM OAuth2 needs {', '.join(missing)}; reconnect in admin")
        body = {
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
            "grant_type": "refresh_token",
            "refresh_token": creds["refresh_token"],
            "redirect_uri": creds.get("redirect_uri") or self.config.options.get("redirect_uri", ""),
        }
        try:
            reply = self.http.post_json("/oauth2/access_token", body)
        except PermanentError as exc:
            if exc.status in (400, 401, 403):
                raise AuthError(
                    f"amoCRM refused the refresh token (HTTP {exc.status}; revoked, expired or already "
                    f"used): reconnect in admin. {exc}",
                    status=exc.status,
                ) from exc
            raise
        if not isinstance(reply, dict) or not reply.get("access_token") or not reply.get("refresh_token"):
            raise AuthError(
                "amoCRM token endpoint replied without access_token/refresh_token; reconnect in admin"
            )
        try:
            expires_in = int(reply.get("expires_in") or 86400)
        except (TypeError, ValueError):
            expires_in = 86400
        return {
            "access_token": str(reply["access_token"]),
            "refresh_token": str(reply["refresh_token"]),
            "access_token_expires_at": str(int(time.time()) + expires_in),
        }

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One API call with the bearer token; an OAuth2 token refused with 401 is refreshed once."""
        headers = dict(kwargs.pop("headers", None) or {})
        token = self._access_token()
        try:
            return self.http.request(
                method, url, headers={**headers, "Authorization": f"Bearer {token}"}, **kwargs
            )
        except AuthError as exc:
            if exc.status != 401:
                raise
            if not self._uses_oauth(self.config.credentials.load()):
                raise AuthError(
                    f"amoCRM refused the long-lived token (expired or revoked): issue a new one in the "
                    f"integration's settings and reconnect in admin. {exc}",
                    status=401,
                ) from exc
        token = self._refresh(stale=token)
        return self.http.request(
            method, url, headers={**headers, "Authorization": f"Bearer {token}"}, **kwargs
        )

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        return self.http.json_of(self._request(method, url, **kwargs))

    # --- reading ---------------------------------------------------------------------------------
    def check(self) -> None:
        account = self._json("GET", "/api/v4/account")
        if not isinstance(account, dict) or "id" not in account:
            raise PermanentError(f"amoCRM /api/v4/account did not describe an account: {str(account)[:200]}")

    @staticmethod
    def _entity(stream: str) -> str:
        try:
            return ENTITY[stream]
        except KeyError:
            raise PermanentError(f"amoCRM has no stream {stream!r}; it reads {', '.join(ENTITY)}") from None

    def fetch(self, stream: str, *, since: dt.datetime | None = None) -> Iterator[RemoteRecord]:
        entity = self._entity(stream)
        params: dict[str, Any] | None = {"limit": PAGE_LIMIT, "page": 1, "order[updated_at]": "asc"}
        headers: dict[str, str] = {}
        if stream == "deals":
            params["with"] = "contacts"
        if since is not None:
            params["filter[updated_at][from]"] = int(since.timestamp())
            headers["If-Modified-Since"] = email.utils.format_datetime(since.astimezone(dt.UTC), usegmt=True)
        url = f"/api/v4/{entity}"
        seen: set[str] = set()
        while True:
            response = self._request("GET", url, params=params, headers=headers, expect=(204, 304))
            if response.status_code in (204, 304):
                return
            body = self.http.json_of(response)
            if body is None:
                return
            items = (body.get("_embedded") or {}).get(entity) if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise PermanentError(
                    f"amoCRM GET {url}: expected `_embedded.{entity}` (a list), got {str(body)[:200]}"
                )
            for item in items:
                record = self._record(stream, item)
                if record is not None:
                    yield record
            next_href = ((body.get("_links") or {}).get("next") or {}).get("href") if items else None
            if not next_href:
                return
            if next_href in seen:
                raise PermanentError(f"amoCRM paging repeats {next_href}; stopping instead of looping")
            seen.add(next_href)
            parts = urlsplit(next_href)  # the href names the vendor host: keep the path, use our base URL
            url = parts.path + (f"?{parts.query}" if parts.query else "")
            params = None

    def get(self, stream: str, external_id: str) -> RemoteRecord | None:
        entity = self._entity(stream)
        params = {"with": "contacts"} if stream == "deals" else None
        response = self._request("GET", f"/api/v4/{entity}/{external_id}", params=params, expect=(204, 404))
        if response.status_code in (204, 404):
            return None
        item = self.http.json_of(response)
        return self._record(stream, item) if isinstance(item, dict) else None

    def _record(self, stream: str, item: Any) -> RemoteRecord | None:
        if not isinstance(item, dict) or item.get("id") in (None, ""):
            logger.warning("amoCRM %s record without an id skipped: %.200s", stream, item)
            return None
        data = dict(item)
        if stream == "deals":
            data.update(self._status_names(data.get("pipeline_id"), data.get("status_id")))
        return RemoteRecord(
            stream=stream,
            external_id=str(item["id"]),
            data=data,
            updated_at=_unix(item.get("updated_at")),
            version=str(item.get("updated_at") or ""),
            deleted=bool(item.get("is_deleted")),
        )

    def _status_names(self, pipeline_id: Any, status_id: Any) -> dict[str, str]:
        """`status_name` and `pipeline_name` of a lead, from the pipelines list (read once per connector)."""
        if self._statuses is None:
            self._statuses = {}
            body = self._json("GET", "/api/v4/leads/pipelines")
            pipelines = (
                (body or {}).get("_embedded", {}).get("pipelines", []) if isinstance(body, dict) else []
            )
            for pipeline in pipelines if isinstance(pipelines, list) else []:
                statuses = (pipeline.get("_embedded") or {}).get("statuses") or []
                for status in statuses:
                    self._statuses[(str(pipeline.get("id")), str(status.get("id")))] = (
                        str(status.get("name") or ""),
                        str(pipeline.get("name") or ""),
                    )
        found = self._statuses.get((str(pipeline_id), str(status_id)))
        if found is None:
            return {}
        return {"status_name": found[0], "pipeline_name": found[1]}

    # --- writing ---------------------------------------------------------------------------------
    def upsert(self, stream: str, payload: Mapping[str, Any], *, external_id: str | None = None) -> str:
        entity = self._entity(stream)
        body = dict(payload)
        embedded = body.get("_embedded")
        if isinstance(embedded, dict):  # links to records not synced yet come out as {"id": None}
            embedded = {
                key: [item for item in items if not (isinstance(item, dict) and item.get("id") is None)]
                for key, items in embedded.items()
                if isinstance(items, list)
            }
            body["_embedded"] = {key: items for key, items in embedded.items() if items}
            if not body["_embedded"]:
                del body["_embedded"]
        if isinstance(body.get("price"), float | str):  # amoCRM prices are whole numbers
            try:
                body["price"] = round(float(body["price"]))
            except ValueError:
                raise PermanentError(f"amoCRM lead price must be a number, got {body['price']!r}") from None
        if external_id:
            self._request("PATCH", f"/api/v4/{entity}/{external_id}", json=body)
            return str(external_id)
        reply = self._json("POST", f"/api/v4/{entity}", json=[body])
        try:
            return str(reply["_embedded"][entity][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise PermanentError(
                f"amoCRM POST /api/v4/{entity} replied without an id: {str(reply)[:200]}"
            ) from None

    def delete(self, stream: str, external_id: str) -> None:
        raise PermanentError(
            f"amoCRM API v4 cannot delete or archive {ENTITY.get(stream, stream)}; close or delete "
            f"{external_id} in amoCRM itself"
        )

    def add_note(self, stream: str, external_id: str, text: str) -> None:
        entity = self._entity(stream)
        self._json(
            "POST",
            f"/api/v4/{entity}/{external_id}/notes",
            json=[{"note_type": "common", "params": {"text": text}}],
        )

    # --- webhooks --------------------------------------------------------------------------------
    @staticmethod
    def _form(body: bytes) -> list[tuple[str, str]]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise PermanentError("amoCRM webhook body is not UTF-8 form data") from None
        return parse_qsl(text, keep_blank_values=True)

    def _expected_account(self) -> tuple[str | None, str | None]:
        """(account id, subdomain) this connection belongs to: options first, then the base URL host."""
        options = self.config.options
        account_id = options.get("account_id")
        subdomain = options.get("subdomain")
        if not subdomain:
            host = (urlsplit(self.config.base_url).hostname or "").lower()
            if host.endswith(ACCOUNT_HOSTS):
                subdomain = host.split(".", 1)[0]
        return (str(account_id) if account_id else None, str(subdomain).lower() if subdomain else None)

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """amoCRM does not sign CRM webhooks: accept a delivery only when its `account[id]` and/or
        `account[subdomain]` match this connection (events are re-fetched by id anyway)."""
        account_id, subdomain = self._expected_account()
        if account_id is None and subdomain is None:
            logger.warning(
                "amoCRM webhook refused: set options.subdomain or account_id on %s", self.config.name
            )
            return False
        try:
            form = dict(self._form(body))
        except PermanentError:
            return False
        if account_id is not None and form.get("account[id]") != account_id:
            return False
        return not (subdomain is not None and form.get("account[subdomain]", "").lower() != subdomain)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        items: dict[tuple[str, str, str], dict[str, str]] = {}
        saw_account = False
        for key, value in self._form(body):
            if key.startswith("account["):
                saw_account = True
                continue
            match = WEBHOOK_KEY.match(key)
            if match:
                items.setdefault((match["entity"], match["action"], match["index"]), {})[match["field"]] = (
                    value
                )
        if not items and not saw_account:
            raise PermanentError(
                "not an amoCRM webhook: no `leads[...]`/`contacts[...]`/`account[...]` fields"
            )
        events: list[WebhookEvent] = []
        for (entity, action, _index), fields in items.items():
            stream = WEBHOOK_STREAM.get(entity)
            if entity == "contacts" and fields.get("type") == "company":
                stream = "clients"
            if stream is None or action == "note":
                continue  # customers, tasks, notes: not synced
            external_id = fields.get("id", "").strip()
            if not external_id.isdigit():
                raise PermanentError(f"amoCRM webhook {entity}[{action}] item without a numeric id: {fields}")
            changed = fields.get("last_modified") or fields.get("updated_at") or ""
            events.append(
                WebhookEvent(
                    event_id=f"amocrm:{entity}:{action}:{external_id}:{changed}",
                    stream=stream,
                    external_id=external_id,
                    action="delete" if action == "delete" else "upsert",
                )
            )
        return events
