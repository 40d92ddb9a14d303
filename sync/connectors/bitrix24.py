"""Bitrix24 REST: companies, contacts, deals (categories, stages, product rows), requisites, smart invoices.

Contract: ../shared/design/CONTRACTS.md §1.2.

- Auth, either:
  * an **incoming webhook**: the base URL is `https://{portal}/rest/{user_id}/{code}/` and carries the
    secret; methods are called as `{base}{method}.json`; or
  * an **OAuth2 app** (`client_id`, `client_secret`, `refresh_token`): the base URL is the portal
    (`https://{portal}` or `https://{portal}/rest/`), the access token goes in the `auth` body field and
    is refreshed at `https://oauth.bitrix.info/oauth/token/` (option `oauth_url`); every refresh rotates
    the pair, stored at once through the single-flight `CredentialStore.update`.
- Lists page with `start` (fixed 50 per page; the reply's `next`), oldest change first
  (`order: {DATE_MODIFY: ASC, ID: ASC}`, change filter `>=DATE_MODIFY`; smart invoices via
  `crm.item.list` with `entityTypeId=31`, `updatedTime`). The option `fast_export` switches full reads
  to the documented fast mode (`start=-1`, `order: {ID: ASC}`, `filter: {">ID": last}`), which yields
  records in id order.
- Companies carry their requisites (`crm.requisite.list`, merged as `REQUISITES`, INN/KPP/OGRN there);
  deals carry their product rows (`crm.deal.productrows.get` for a whole page in one `batch` call, merged
  as `PRODUCT_ROWS`).
- Throttling: the leaky bucket answers 503 `QUERY_LIMIT_EXCEEDED`, a method over its time budget 429;
  both are retried by the shared HTTP client.
- Event handlers POST form data (`event`, `data[FIELDS][ID]`, `ts`, `auth[application_token]`); a delivery
  is authentic when `auth[application_token]` equals the stored credential `application_token`; events
  carry only ids and are re-fetched.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from sync.connectors import register
from sync.connectors.base import (
    AuthError,
    ConnectionConfig,
    Connector,
    MappingSpec,
    PermanentError,
    RecordError,
    RemoteRecord,
    RetryableError,
    WebhookEvent,
)
from sync.http import HttpClient

logger = logging.getLogger("sync.connectors.bitrix24")

PAGE_SIZE = 50  # fixed by Bitrix24
BATCH_LIMIT = 50
SMART_INVOICE = 31
OAUTH_URL = "https://oauth.bitrix.info/oauth/token/"
REFRESH_MARGIN = 60
DEFAULT_WEBHOOK_MAX_AGE = 3600  # seconds; older `ts` values are refused as replays


# canonical stream -> (method prefix, timeline/ENTITY_TYPE name, CRM entityTypeId)
LEGACY = {
    "clients": ("crm.company", "company", 4),
    "contacts": ("crm.contact", "contact", 3),
    "deals": ("crm.deal", "deal", 2),
}
SELECT = {
    "clients": ["*", "UF_*", "PHONE", "EMAIL"],
    "contacts": ["*", "UF_*", "PHONE", "EMAIL"],
    "deals": ["*", "UF_*"],
}
REQUISITE_SELECT = [
    "ID",
    "ENTITY_TYPE_ID",
    "ENTITY_ID",
    "PRESET_ID",
    "NAME",
    "RQ_COMPANY_NAME",
    "RQ_COMPANY_FULL_NAME",
    "RQ_INN",
    "RQ_KPP",
    "RQ_OGRN",
    "RQ_OGRNIP",
]
EVENT_STREAMS = {
    "ONCRMCOMPANY": "clients",
    "ONCRMCONTACT": "contacts",
    "ONCRMDEAL": "deals",
}
MULTI_FIELDS = ("PHONE", "EMAIL")
# Bitrix24 writes 0 for "no company/contact/deal" in reference fields: read as none
REFERENCE_FIELDS = ("COMPANY_ID", "CONTACT_ID", "LEAD_ID", "companyId", "contactId", "parentId2")


def _ref(entity: str) -> dict[str, Any]:
    return {"entity": entity}


DEFAULT_MAPPINGS = (
    # companies -> clients (INN/KPP/OGRN from the first requisite)
    MappingSpec("clients", "TITLE", "name"),
    MappingSpec(
        "clients", "TITLE", "kind", direction="in", transform="constant", params={"value": "company"}
    ),
    MappingSpec("clients", "REQUISITES.0.RQ_COMPANY_FULL_NAME", "legal_name", direction="in"),
    MappingSpec("clients", "REQUISITES.0.RQ_INN", "inn", direction="in"),
    MappingSpec("clients", "REQUISITES.0.RQ_KPP", "kpp", direction="in"),
    MappingSpec("clients", "REQUISITES.0.RQ_OGRN", "ogrn", direction="in"),
    MappingSpec("clients", "PHONE.0.VALUE", "phone", transform="phone", params={"region": "RU"}),
    MappingSpec("clients", "EMAIL.0.VALUE", "email"),
    MappingSpec("clients", "ADDRESS", "address", direction="in"),
    MappingSpec("clients", "COMMENTS", "notes", direction="in"),
    # contacts
    MappingSpec("contacts", "NAME", "first_name"),
    MappingSpec("contacts", "LAST_NAME", "last_name"),
    MappingSpec("contacts", "SECOND_NAME", "middle_name"),
    MappingSpec("contacts", "POST", "position"),
    MappingSpec("contacts", "PHONE.0.VALUE", "phone", transform="phone", params={"region": "RU"}),
    MappingSpec("contacts", "EMAIL.0.VALUE", "email"),
    MappingSpec("contacts", "COMPANY_ID", "client", transform="lookup", params=_ref("clients")),
    # deals
    MappingSpec("deals", "TITLE", "title"),
    MappingSpec("deals", "OPPORTUNITY", "amount", transform="decimal", params={"scale": 2}),
    MappingSpec("deals", "CURRENCY_ID", "currency"),
    MappingSpec("deals", "COMPANY_ID", "client", transform="lookup", params=_ref("clients")),
    MappingSpec(
        "deals",
        "STAGE_SEMANTIC_ID",
        "status",
        direction="in",
        transform="enum",
        params={"map": {"P": "open", "S": "won", "F": "lost"}, "default": "open"},
    ),
    # stage: the stage id as is, overridden by the admin's map of stage ids (per category) to hub stages
    MappingSpec("deals", "STAGE_ID", "stage", direction="in"),
    MappingSpec(
        "deals",
        "STAGE_ID",
        "stage",
        direction="in",
        transform="enum",
        params={"map": {"NEW": "New", "WON": "Won", "LOSE": "Lost"}, "default": ""},
    ),
    MappingSpec("deals", "CLOSEDATE", "expected_close_date", direction="in", transform="date"),
    MappingSpec("deals", "UTM_SOURCE", "utm_source", direction="in"),
    MappingSpec("deals", "UTM_MEDIUM", "utm_medium", direction="in"),
    MappingSpec("deals", "UTM_CAMPAIGN", "utm_campaign", direction="in"),
    # smart invoices (crm.item, entityTypeId 31): read only
    MappingSpec("invoices", "accountNumber", "number", direction="in"),
    MappingSpec(
        "invoices", "companyId", "client", direction="in", transform="lookup", params=_ref("clients")
    ),
    MappingSpec("invoices", "parentId2", "deal", direction="in", transform="lookup", params=_ref("deals")),
    MappingSpec("invoices", "opportunity", "total", direction="in", transform="decimal", params={"scale": 2}),
    MappingSpec("invoices", "currencyId", "currency", direction="in"),
    MappingSpec("invoices", "begindate", "issue_date", direction="in", transform="date"),
    MappingSpec("invoices", "closedate", "due_date", direction="in", transform="date"),
    MappingSpec(
        "invoices",
        "stageId",
        "status",
        direction="in",
        transform="enum",
        params={
            "map": {"DT31_1:N": "draft", "DT31_1:S": "sent", "DT31_1:P": "paid", "DT31_1:D": "void"},
            "default": "issued",
        },
    ),
    MappingSpec("invoices", "comments", "purpose", direction="in"),
)


def _iso(value: Any) -> dt.datetime | None:
    """Bitrix24 dates are ISO 8601 with an offset ("2026-01-02T10:00:00+03:00"); None when unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """A JSON-shaped event as PHP-style form keys (`data[FIELDS][ID]`)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}[{key}]" if prefix else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, "" if value is None else str(value)


@register
class Bitrix24Connector(Connector):
    system = "bitrix24"
    title = "Bitrix24 REST"
    role = "crm"
    streams = ("clients", "contacts", "deals", "invoices")
    push_streams = ("clients", "contacts", "deals")
    credential_keys = ("client_id", "client_secret", "refresh_token", "application_token")
    required_credentials = ()  # an incoming-webhook URL needs none; an OAuth2 app needs the trio
    default_mappings = DEFAULT_MAPPINGS
    default_rate_limit = 2.0  # the leaky bucket drains 2 requests/s (Enterprise: 5)
    signs_webhooks = True  # authenticated by the shared application_token

    def __init__(self, config: ConnectionConfig, *, http: Any | None = None):
        if http is None:
            http = HttpClient.for_connection(
                config, rate_limit=config.rate_limit_per_second or self.default_rate_limit
            )
        super().__init__(config, http=http)
        path = urlsplit(config.base_url).path
        self._rest_prefix = "" if "/rest" in path else "rest/"
        parts = path.strip("/").split("/")
        self._webhook_url = len(parts) >= 3 and parts[-3] == "rest"  # /rest/{user_id}/{code}/

    # --- auth ------------------------------------------------------------------------------------
    @staticmethod
    def _uses_oauth(creds: Mapping[str, str]) -> bool:
        return bool(creds.get("refresh_token"))

    @staticmethod
    def _expired(creds: Mapping[str, str]) -> bool:
        try:
            expires_at = float(creds.get("access_token_expires_at") or 0)
        except ValueError:
            return True
        return expires_at - REFRESH_MARGIN <= time.time()

    def _access_token(self, creds: Mapping[str, str]) -> str:
        if creds.get("access_token") and not self._expired(creds):
            return creds["access_token"]
        return self._refresh(stale=creds.get("access_token", ""))

    def _refresh(self, *, stale: str) -> str:
        """Rotate the token pair once, even when several threads find the access token stale."""

        def rotate(current: dict[str, str]) -> dict[str, str] | None:
            fresh = current.get("access_token")
            if fresh and fresh != stale and not self._expired(current):
                return None  # another worker refreshed while we waited for the lock
            return self._token_request(current)

        return self.config.credentials.update(rotate)["access_token"]

    def _token_request(self, creds: Mapping[str, str]) -> dict[str, str]:
        missing = [k for k in ("client_id", "client_secret", "refresh_token") if not creds.get(k)]
        if missing:
            raise AuthError(f"Bitrix24 OAuth2 needs {', '.join(missing)}; reconnect in admin")
        params = {
            "grant_type": "refresh_token",
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
            "refresh_token": creds["refresh_token"],
        }
        url = self.config.options.get("oauth_url") or OAUTH_URL
        try:
            reply = self.http.get_json(url, params=params)
        except PermanentError as exc:
            if exc.status in (400, 401, 403):
                raise AuthError(
                    f"Bitrix24 refused the refresh token (HTTP {exc.status}; expired, revoked or already "
                    f"used): reconnect in admin. {exc}",
                    status=exc.status,
                ) from exc
            raise
        if not isinstance(reply, dict) or reply.get("error") or not reply.get("access_token"):
            raise AuthError(
                f"Bitrix24 token endpoint refused the refresh: {str(reply)[:200]}; reconnect in admin"
            )
        try:
            expires_in = int(reply.get("expires_in") or 3600)
        except (TypeError, ValueError):
            expires_in = 3600
        return {
            "access_token": str(reply["access_token"]),
            "refresh_token": str(reply.get("refresh_token") or creds["refresh_token"]),
            "access_token_expires_at": str(int(time.time()) + expires_in),
        }

    # --- transport -------------------------------------------------------------------------------
    def call(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One REST method; the whole reply (`result`, `next`, `total`, `time`). Vendor errors become
        `RetryableError` (QUERY_LIMIT_EXCEEDED), `AuthError` (tokens) or `PermanentError` with the text."""
        creds = self.config.credentials.load()
        oauth = self._uses_oauth(creds)
        if not oauth and not self._webhook_url:
            raise AuthError(
                "Bitrix24 connection has no credentials: use the incoming-webhook URL "
                "(https://<portal>/rest/<user>/<code>/) as the base URL, or the OAuth2 app credentials "
                "client_id, client_secret, refresh_token; reconnect in admin"
            )
        url = f"{self._rest_prefix}{method}.json" if oauth else f"{method}.json"
        body = dict(params or {})
        token = ""
        if oauth:
            token = self._access_token(creds)
            body["auth"] = token
        try:
            response = self.http.request("POST", url, json=body)
        except AuthError as exc:
            if exc.status != 401:
                raise
            if not oauth:
                raise AuthError(
                    "Bitrix24 refused the incoming-webhook URL (the webhook was deleted, its code changed or "
                    f"its user lost access): create a new one and reconnect in admin. {exc}",
                    status=401,
                ) from exc
            body["auth"] = self._refresh(stale=token)
            response = self.http.request("POST", url, json=body)
        reply = self.http.json_of(response)
        if not isinstance(reply, dict):
            raise PermanentError(f"Bitrix24 {method}: expected a JSON object, got {str(reply)[:200]}")
        if "error" in reply and "result" not in reply:  # `error` may be "" with only a description
            error = reply.get("error") or ""
            text = f"Bitrix24 {method}: {error or 'error'}: {reply.get('error_description', '')}".strip()
            if error == "QUERY_LIMIT_EXCEEDED":
                raise RetryableError(text)
            if error in ("expired_token", "invalid_token", "NO_AUTH_FOUND", "INVALID_CREDENTIALS"):
                raise AuthError(text + "; reconnect in admin")
            raise PermanentError(text)
        return reply

    def _pages(self, method: str, params: Mapping[str, Any], items_key: str | None) -> Iterator[list[dict]]:
        """Pages of a list method, following `next` (start offsets) to the end."""
        start: Any = 0
        seen: set[str] = set()
        while True:
            reply = self.call(method, {**params, "start": start})
            items = self._items(method, reply, items_key)
            yield items
            nxt = reply.get("next")
            if nxt in (None, "") or not items:
                return
            if str(nxt) in seen or str(nxt) == str(start):
                raise PermanentError(
                    f"Bitrix24 {method}: paging repeats start={nxt}; stopping instead of looping"
                )
            seen.add(str(nxt))
            start = nxt

    def _fast_pages(
        self, method: str, params: Mapping[str, Any], items_key: str | None, id_field: str
    ) -> Iterator[list[dict]]:
        """The fast export: `start=-1` (no count), ordered by id, `>id` from the last row, until a short page."""
        last = 0
        base_filter = dict(params.get("filter") or {})
        while True:
            query = {
                **params,
                "filter": {**base_filter, f">{id_field}": last},
                "order": {id_field: "ASC"},
                "start": -1,
            }
            items = self._items(method, self.call(method, query), items_key)
            yield items
            if len(items) < PAGE_SIZE:
                return
            try:
                new_last = int(items[-1][id_field])
            except (KeyError, TypeError, ValueError):
                raise PermanentError(
                    f"Bitrix24 {method}: fast export row without a numeric {id_field}"
                ) from None
            if new_last <= last:
                raise PermanentError(
                    f"Bitrix24 {method}: fast export does not advance past {id_field}={last}"
                )
            last = new_last

    @staticmethod
    def _items(method: str, reply: Mapping[str, Any], items_key: str | None) -> list[dict]:
        result = reply.get("result")
        items = result.get(items_key) if items_key and isinstance(result, dict) else result
        if not isinstance(items, list):
            raise PermanentError(
                f"Bitrix24 {method}: expected a list in `result{'.' + items_key if items_key else ''}`, "
                f"got {str(result)[:200]}"
            )
        return items

    def batch(self, commands: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run up to 50 commands in one hit; (results by key, errors by key)."""
        if len(commands) > BATCH_LIMIT:
            raise ValueError(f"a Bitrix24 batch holds at most {BATCH_LIMIT} commands")
        result = self.call("batch", {"halt": 0, "cmd": dict(commands)}).get("result") or {}
        results = result.get("result") or {}
        errors = result.get("result_error") or {}
        return (results if isinstance(results, dict) else {}), (errors if isinstance(errors, dict) else {})

    # --- reading ---------------------------------------------------------------------------------
    def check(self) -> None:
        reply = self.call("scope")
        scopes = reply.get("result")
        if not isinstance(scopes, list):
            raise PermanentError(f"Bitrix24 `scope` did not list scopes: {str(scopes)[:200]}")
        if "crm" not in scopes:
            raise AuthError(f"the Bitrix24 webhook/app lacks the `crm` scope (has: {', '.join(scopes)})")

    def fetch(self, stream: str, *, since: dt.datetime | None = None) -> Iterator[RemoteRecord]:
        if stream == "invoices":
            method, items_key, id_field, date_field = "crm.item.list", "items", "id", "updatedTime"
            params: dict[str, Any] = {"entityTypeId": SMART_INVOICE, "select": ["*"]}
        elif stream in LEGACY:
            method, items_key, id_field, date_field = f"{LEGACY[stream][0]}.list", None, "ID", "DATE_MODIFY"
            params = {"select": SELECT[stream]}
        else:
            raise PermanentError(f"Bitrix24 has no stream {stream!r}; it reads {', '.join(self.streams)}")
        if since is not None:
            params["filter"] = {f">={date_field}": since.isoformat()}
        if since is None and self.config.options.get("fast_export"):
            pages = self._fast_pages(method, params, items_key, id_field)
        else:
            params["order"] = {date_field: "ASC", id_field: "ASC"}
            pages = self._pages(method, params, items_key)
        for page in pages:
            rows = [row for row in page if self._has_id(stream, row, id_field)]
            if stream == "clients" and self.config.options.get("requisites", True):
                self._merge_requisites(rows)
            if stream == "deals" and self.config.options.get("product_rows", True):
                self._merge_product_rows(rows)
            for row in rows:
                yield self._record(stream, row, id_field, date_field)

    @staticmethod
    def _has_id(stream: str, row: Any, id_field: str) -> bool:
        if isinstance(row, dict) and row.get(id_field) not in (None, ""):
            return True
        logger.warning("Bitrix24 %s row without %s skipped: %.200s", stream, id_field, row)
        return False

    @staticmethod
    def _record(stream: str, row: dict, id_field: str, date_field: str) -> RemoteRecord:
        for key in REFERENCE_FIELDS:
            if key in row and row[key] in (0, "0"):
                row[key] = None
        return RemoteRecord(
            stream=stream,
            external_id=str(row[id_field]),
            data=row,
            updated_at=_iso(row.get(date_field)),
            version=str(row.get(date_field) or ""),
        )

    def _merge_requisites(self, companies: list[dict]) -> None:
        """Attach each company's requisites (INN, KPP, OGRN…) as `REQUISITES`, first-created first."""
        if not companies:
            return
        by_company: dict[str, list[dict]] = {str(c["ID"]): [] for c in companies}
        params = {
            "filter": {"ENTITY_TYPE_ID": LEGACY["clients"][2], "@ENTITY_ID": [int(i) for i in by_company]},
            "select": REQUISITE_SELECT,
            "order": {"ID": "ASC"},
        }
        for page in self._pages("crm.requisite.list", params, None):
            for requisite in page:
                if isinstance(requisite, dict) and str(requisite.get("ENTITY_ID")) in by_company:
                    by_company[str(requisite["ENTITY_ID"])].append(requisite)
        for company in companies:
            company["REQUISITES"] = by_company[str(company["ID"])]

    def _merge_product_rows(self, deals: list[dict]) -> None:
        """Attach each deal's product rows as `PRODUCT_ROWS` with one `batch` call per page of deals."""
        for chunk_start in range(0, len(deals), BATCH_LIMIT):
            chunk = deals[chunk_start : chunk_start + BATCH_LIMIT]
            commands = {
                f"d{d['ID']}": "crm.deal.productrows.get?" + urlencode({"id": d["ID"]}) for d in chunk
            }
            results, errors = self.batch(commands)
            for deal in chunk:
                key = f"d{deal['ID']}"
                if key in errors:
                    logger.warning("Bitrix24 product rows of deal %s not read: %s", deal["ID"], errors[key])
                    continue
                rows = results.get(key)
                if isinstance(rows, list):
                    deal["PRODUCT_ROWS"] = rows

    def get(self, stream: str, external_id: str) -> RemoteRecord | None:
        try:
            if stream == "invoices":
                reply = self.call("crm.item.get", {"entityTypeId": SMART_INVOICE, "id": external_id})
                row = (reply.get("result") or {}).get("item")
                id_field, date_field = "id", "updatedTime"
            elif stream in LEGACY:
                row = self.call(f"{LEGACY[stream][0]}.get", {"id": external_id}).get("result")
                id_field, date_field = "ID", "DATE_MODIFY"
            else:
                raise PermanentError(f"Bitrix24 has no stream {stream!r}")
        except PermanentError as exc:
            if not isinstance(exc, AuthError) and "not found" in str(exc).lower():
                return None
            raise
        if not isinstance(row, dict) or row.get(id_field) in (None, ""):
            return None
        if stream == "clients" and self.config.options.get("requisites", True):
            self._merge_requisites([row])
        if stream == "deals" and self.config.options.get("product_rows", True):
            self._merge_product_rows([row])
        return self._record(stream, row, id_field, date_field)

    # --- writing ---------------------------------------------------------------------------------
    def _prefix(self, stream: str) -> str:
        if stream not in LEGACY:
            raise PermanentError(f"Bitrix24 cannot write {stream} (smart invoices are read only here)")
        return LEGACY[stream][0]

    def upsert(self, stream: str, payload: Mapping[str, Any], *, external_id: str | None = None) -> str:
        prefix = self._prefix(stream)
        fields = {k: (list(v) if isinstance(v, list) else v) for k, v in payload.items()}
        if external_id:
            fields = self._merge_multi_fields(prefix, external_id, fields)
            self.call(f"{prefix}.update", {"id": external_id, "fields": fields})
            return str(external_id)
        for key in MULTI_FIELDS:
            if isinstance(fields.get(key), list):
                fields[key] = [{"VALUE_TYPE": "WORK", **item} for item in fields[key] if item.get("VALUE")]
        new_id = self.call(f"{prefix}.add", {"fields": fields}).get("result")
        if isinstance(new_id, bool) or not str(new_id or "").isdigit():
            raise PermanentError(f"Bitrix24 {prefix}.add replied without an id: {new_id!r}")
        return str(new_id)

    def _merge_multi_fields(self, prefix: str, external_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Bitrix24 appends multi-field items (PHONE, EMAIL) without an `ID`: replace the existing first
        value in place instead of adding a duplicate on every update; skip values already present."""
        keys = [k for k in MULTI_FIELDS if isinstance(fields.get(k), list)]
        if not keys:
            return fields
        current = self.call(f"{prefix}.get", {"id": external_id}).get("result") or {}
        for key in keys:
            existing = [e for e in current.get(key) or [] if isinstance(e, dict)]
            known = {str(e.get("VALUE")) for e in existing}
            items = []
            for index, item in enumerate(fields[key]):
                value = item.get("VALUE")
                if not value or str(value) in known:
                    continue
                if index < len(existing):
                    old = existing[index]
                    items.append(
                        {"ID": old.get("ID"), "VALUE": value, "VALUE_TYPE": old.get("VALUE_TYPE") or "WORK"}
                    )
                else:
                    items.append({"VALUE": value, "VALUE_TYPE": "WORK"})
            if items:
                fields[key] = items
            else:
                del fields[key]
        return fields

    def delete(self, stream: str, external_id: str) -> None:
        prefix = self._prefix(stream)
        try:
            self.call(f"{prefix}.delete", {"id": external_id})
        except PermanentError as exc:
            if isinstance(exc, AuthError) or "not found" not in str(exc).lower():
                raise

    def add_note(self, stream: str, external_id: str, text: str) -> None:
        if stream not in LEGACY:
            raise PermanentError(
                f"Bitrix24 timeline comments are supported on {', '.join(LEGACY)}, not {stream}"
            )
        if not str(external_id).isdigit():
            raise RecordError(f"Bitrix24 ids are numbers, got {external_id!r}")
        self.call(
            "crm.timeline.comment.add",
            {"fields": {"ENTITY_ID": int(external_id), "ENTITY_TYPE": LEGACY[stream][1], "COMMENT": text}},
        )

    # --- webhooks --------------------------------------------------------------------------------
    @staticmethod
    def _event_fields(headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise PermanentError("Bitrix24 event body is not UTF-8") from None
        if text.lstrip().startswith("{"):  # the docs show events JSON-shaped; deliveries are form data
            try:
                return dict(_flatten(json.loads(text)))
            except ValueError:
                raise PermanentError("Bitrix24 event body is malformed JSON") from None
        return dict(parse_qsl(text, keep_blank_values=True))

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Authentic when `auth[application_token]` equals the stored `application_token` (constant-time),
        the `domain` option (when set) matches `auth[domain]`, and `ts` is not older than
        `webhook_max_age_seconds` (default 1 h) nor from the future."""
        expected = self.config.credentials.load().get("application_token", "")
        if not expected:
            logger.warning("Bitrix24 event refused: no application_token stored for %s", self.config.name)
            return False
        try:
            fields = self._event_fields(headers, body)
        except PermanentError:
            return False
        if not hmac.compare_digest(fields.get("auth[application_token]", "").encode(), expected.encode()):
            return False
        domain = self.config.options.get("domain")
        if domain and fields.get("auth[domain]", "").lower() != str(domain).lower():
            return False
        try:
            ts = int(fields.get("ts", ""))
        except ValueError:
            return False
        max_age = float(self.config.options.get("webhook_max_age_seconds", DEFAULT_WEBHOOK_MAX_AGE))
        age = time.time() - ts
        return -300 <= age <= max_age

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        fields = self._event_fields(headers, body)
        event = fields.get("event", "").upper()
        if not event:
            raise PermanentError("not a Bitrix24 event: no `event` field")
        if event.startswith("ONCRMDYNAMICITEM"):
            if fields.get("data[FIELDS][ENTITY_TYPE_ID]") != str(SMART_INVOICE):
                return []
            stream = "invoices"
        else:
            stream = ""
            for prefix, candidate in EVENT_STREAMS.items():
                if event.startswith(prefix) and event[len(prefix) :] in ("ADD", "UPDATE", "DELETE"):
                    stream = candidate
            if not stream:
                return []  # install, requisites, other entities: not synced by events
        external_id = fields.get("data[FIELDS][ID]", "").strip()
        if not external_id.isdigit():
            raise PermanentError(f"Bitrix24 event {event} without a numeric data[FIELDS][ID]")
        return [
            WebhookEvent(
                event_id=f"bitrix24:{event}:{external_id}:{fields.get('ts', '')}",
                stream=stream,
                external_id=external_id,
                action="delete" if event.endswith("DELETE") else "upsert",
            )
        ]
