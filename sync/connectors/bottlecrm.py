"""BottleCRM (django-crm 1.35): the CRM side, over its REST API, with signed webhooks.

Accounts ⇄ clients, contacts ⇄ contacts, opportunities ⇄ deals (stage codes such as "PROSPECTING" ⇄ hub
stage names through an enum map; CLOSED_WON / CLOSED_LOST ► won / lost), invoices and their payments read.

Auth: `Authorization: Bearer <token>`, where the token is a personal access token (`bcrm_pat_...`,
Profile ► API tokens, no expiry: recommended) or an org-bound JWT (expires after an hour).

Paging is limit/offset and every list has its own shape (checked against a real server, see
tests/fixtures/bottlecrm/):
- `/api/accounts/`: `active_accounts.open_accounts` + `closed_accounts.close_accounts`, the same
  limit/offset applied to both, totals in `open_accounts_count` / `close_accounts_count`;
- `/api/contacts/`: `results` + `count`;
- `/api/opportunities/`: `opportunities` + `opportunities_count`;
- `/api/invoices/`: DRF's `{count, next, previous, results}`; payments: a plain list per invoice at
  `/api/invoices/{id}/payments/`.

Change feed: BottleCRM has no changed-since filter, and only contacts carry `updated_at` in the REST
representation (accounts, opportunities and invoices expose `created_at` only). So `fetch` reads the
whole list every time, filters contacts by `updated_at >= since` client-side and yields accounts, deals
and invoices unfiltered with `updated_at=None` (the engine's content hash turns the unchanged ones into
no-ops); records are yielded oldest first (`updated_at`, else `created_at`). Webhooks give timely changes.

The INN is kept in an Account custom field (key `inn`, type text: `POST /api/custom-fields/` with
`target_model: Account`), read and written as `custom_fields.inn`.

Webhooks: `POST /api/webhooks/` registers an endpoint and answers its signing secret once (store it as
credential `webhook_secret`; `register_webhook` does both). Each delivery carries `X-BottleCRM-Event`,
`X-BottleCRM-Delivery` (the delivery row; a redelivery gets a new one) and
`X-BottleCRM-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>` (django-crm
`webhooks/tasks.py:sign`). The body is `{"id": <event id, the same on every redelivery>, "event",
"created_at", "org_id", "data"}`; the event id is the dedup key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

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

logger = logging.getLogger("sync.connectors.bottlecrm")

PAGE_SIZE = 100
SIGNATURE_TOLERANCE = 300  # seconds between the signature's timestamp and now

# BottleCRM's default pipeline stage codes ► the hub's default stage names (editable per connection).
STAGES = {
    "PROSPECTING": "Новая / New",
    "QUALIFICATION": "Квалификация / Qualified",
    "PROPOSAL": "Предложение / Proposal",
    "NEGOTIATION": "Переговоры / Negotiation",
    "CLOSED_WON": "Успешно / Won",
    "CLOSED_LOST": "Проиграна / Lost",
}
INVOICE_STATUSES = {
    "Draft": "draft",
    "Pending": "issued",
    "Sent": "sent",
    "Viewed": "sent",
    "Partially_Paid": "partially_paid",
    "Paid": "paid",
    "Overdue": "overdue",
    "Cancelled": "void",
}
# webhook event prefix ► stream; leads, tickets, tasks and interactions are not synced
EVENT_STREAMS = {"account": "clients", "contact": "contacts", "deal": "deals", "invoice": "invoices"}
ENDPOINTS = {"clients": "accounts", "contacts": "contacts", "deals": "opportunities", "invoices": "invoices"}
DETAIL_KEYS = {
    "clients": "account_obj",
    "contacts": "contact_obj",
    "deals": "opportunity_obj",
    "invoices": "invoice",
}

M = MappingSpec
DEFAULT_MAPPINGS = (
    # accounts ⇄ clients
    M("clients", "name", "name"),
    M("clients", "custom_fields.inn", "inn"),
    M("clients", "email", "email"),
    M("clients", "phone", "phone", transform="phone"),
    M("clients", "address_line", "address"),
    M("clients", "country", "country"),
    M("clients", "description", "notes"),
    M("clients", "kind", "kind", transform="constant", params={"value": "company"}, direction="in"),
    M("clients", "is_active", "archived", transform="boolean", params={"negate": True}, direction="in"),
    # contacts
    M("contacts", "first_name", "first_name"),
    M("contacts", "last_name", "last_name"),
    M("contacts", "email", "email"),
    M("contacts", "phone", "phone", transform="phone"),
    M("contacts", "title", "position"),
    M("contacts", "account", "client", transform="lookup", params={"entity": "clients"}),
    M("contacts", "is_active", "archived", transform="boolean", params={"negate": True}, direction="in"),
    # opportunities ⇄ deals
    M("deals", "name", "title"),
    M("deals", "account", "client", transform="lookup", params={"entity": "clients"}),
    M("deals", "stage", "stage", transform="enum", params={"map": STAGES}),
    # won/lost: the stage's kind (custom pipelines have their own won/lost stages), else the default codes
    M(
        "deals",
        "stage_kind",
        "status",
        transform="enum",
        params={"map": {"open": "open", "won": "won", "lost": "lost"}},
        direction="in",
    ),
    M(
        "deals",
        "stage",
        "status",
        transform="enum",
        params={"map": {"CLOSED_WON": "won", "CLOSED_LOST": "lost"}, "default": "open"},
        direction="in",
    ),
    M("deals", "amount", "amount", transform="decimal"),
    M("deals", "currency", "currency"),
    M("deals", "closed_on", "expected_close_date", transform="date"),
    M("deals", "is_active", "archived", transform="boolean", params={"negate": True}, direction="in"),
    # invoices and payments: read only
    M("invoices", "invoice_number", "number", direction="in"),
    M("invoices", "account", "client", transform="lookup", params={"entity": "clients"}, direction="in"),
    M("invoices", "opportunity", "deal", transform="lookup", params={"entity": "deals"}, direction="in"),
    M("invoices", "status", "status", transform="enum", params={"map": INVOICE_STATUSES}, direction="in"),
    M("invoices", "currency", "currency", direction="in"),
    M("invoices", "issue_date", "issue_date", transform="date", direction="in"),
    M("invoices", "due_date", "due_date", transform="date", direction="in"),
    M("invoices", "total_amount", "total", transform="decimal", direction="in"),
    M("invoices", "amount_paid", "paid_total", transform="decimal", direction="in"),
    M("invoices", "amount_due", "amount_due", transform="decimal", direction="in"),
    M("invoices", "invoice_title", "purpose", direction="in"),
    M("payments", "invoice", "invoice", transform="lookup", params={"entity": "invoices"}, direction="in"),
    M("payments", "account", "client", transform="lookup", params={"entity": "clients"}, direction="in"),
    M("payments", "amount", "amount", transform="decimal", direction="in"),
    M("payments", "currency", "currency", direction="in"),
    M("payments", "payment_date", "received_at", transform="datetime", direction="in"),
    M("payments", "reference_number", "reference", direction="in"),
    M("payments", "notes", "purpose", direction="in"),
)


def _parse_time(value: Any) -> dt.datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _list_of(body: Any, *path: str) -> list[dict[str, Any]]:
    node = body
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    if node is None:
        return []
    if not isinstance(node, list):
        raise PermanentError(f"BottleCRM: expected a list at {'.'.join(path)}, got {type(node).__name__}")
    return node


def _count(body: Any, *path: str) -> int:
    node = body
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    try:
        return int(node or 0)
    except (TypeError, ValueError):
        raise PermanentError(f"BottleCRM: {'.'.join(path)} is not a count: {node!r}") from None


Page = tuple[list[dict[str, Any]], int, int]  # items, total, how far the offset moves


def _accounts_page(body: Any) -> Page:
    active = _list_of(body, "active_accounts", "open_accounts")
    archived = _list_of(body, "closed_accounts", "close_accounts")
    total = max(
        _count(body, "active_accounts", "open_accounts_count"),
        _count(body, "closed_accounts", "close_accounts_count"),
    )
    return active + archived, total, max(len(active), len(archived))  # one offset pages both lists


def _contacts_page(body: Any) -> Page:
    items = _list_of(body, "results")
    return items, _count(body, "count"), len(items)


def _deals_page(body: Any) -> Page:
    items = _list_of(body, "opportunities")
    return items, _count(body, "opportunities_count"), len(items)


def _invoices_page(body: Any) -> Page:
    items = _list_of(body, "results")
    return items, _count(body, "count"), len(items)


PAGES: dict[str, Callable[[Any], Page]] = {
    "clients": _accounts_page,
    "contacts": _contacts_page,
    "deals": _deals_page,
    "invoices": _invoices_page,
}


@register
class BottleCRMConnector(Connector):
    system = "bottlecrm"
    title = "BottleCRM"
    role = "crm"
    streams = ("clients", "contacts", "deals", "invoices", "payments")
    push_streams = ("clients", "contacts", "deals")
    credential_keys = ("token", "webhook_secret")
    required_credentials = ("token",)
    default_mappings = DEFAULT_MAPPINGS
    default_rate_limit = 10.0
    signs_webhooks = True

    def __init__(self, config: ConnectionConfig, *, http: Any | None = None):
        if http is None:
            from sync.http import HttpClient

            http = HttpClient.for_connection(
                config,
                headers={"Accept": "application/json"},
                rate_limit=config.rate_limit_per_second or self.default_rate_limit,
            )
        super().__init__(config, http=http)
        self.clock: Callable[[], float] = time.time

    # --- transport -------------------------------------------------------------------------------
    @property
    def page_size(self) -> int:
        return int(self.config.options.get("page_size", PAGE_SIZE))

    def _headers(self, token: str | None = None) -> dict[str, str]:
        token = token or self.config.credentials.load().get("token")
        if not token:
            raise AuthError("BottleCRM connection has no token: add a personal access token in admin")
        return {"Authorization": f"Bearer {token}"}

    def _call(
        self, method: str, path: str, body: Any = None, *, token: str | None = None, **kwargs: Any
    ) -> Any:
        try:
            response = self.http.request(
                method, path, headers=self._headers(token), json=body if body is not None else None, **kwargs
            )
        except AuthError as exc:
            raise AuthError(
                f"BottleCRM refused the token ({exc}). A JWT expires after an hour: use a personal access "
                "token (Profile ► API tokens) and reconnect in admin",
                status=exc.status,
            ) from None
        return self.http.json_of(response)

    # --- reading ---------------------------------------------------------------------------------
    def check(self) -> None:
        body = self._call("GET", "/api/accounts/", params={"limit": 1, "offset": 0})
        _accounts_page(body)  # the shape is the one we page

    def _list(self, stream: str) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, paging limit/offset to the end. The offset moves by what the
        page held, so a server that caps `limit` below ours skips nothing."""
        extract = PAGES[stream]
        offset, previous = 0, None
        while True:
            body = self._call(
                "GET", f"/api/{ENDPOINTS[stream]}/", params={"limit": self.page_size, "offset": offset}
            )
            items, total, advance = extract(body)
            if not items:
                return
            signature = tuple(str(item.get("id")) for item in items)
            if signature == previous:
                raise PermanentError(
                    f"BottleCRM {stream}: the page at offset {offset} repeats the previous one"
                )
            previous = signature
            yield from items
            offset += advance
            if offset >= total:
                return

    def _payments(self, invoices: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for invoice in invoices:
            if str(invoice.get("amount_paid") or "0") in ("0", "0.00", "0.0"):
                continue
            rows = self._call("GET", f"/api/invoices/{invoice['id']}/payments/")
            if not isinstance(rows, list):
                raise PermanentError(f"BottleCRM payments of invoice {invoice['id']}: expected a list")
            for row in rows:
                account = invoice.get("account")
                yield {
                    **row,
                    # from the invoice (a payment carries neither): the payer and the currency
                    "account": account.get("id") if isinstance(account, Mapping) else account,
                    "currency": invoice.get("currency"),
                }

    def _record(self, stream: str, item: Mapping[str, Any]) -> RemoteRecord:
        if not item.get("id"):
            raise PermanentError(f"BottleCRM {stream}: an item without id: {str(item)[:200]}")
        updated = _parse_time(item.get("updated_at"))
        return RemoteRecord(
            stream=stream,
            external_id=str(item["id"]),
            data=dict(item),
            updated_at=updated,
            version=item.get("updated_at") or "",
        )

    def fetch(self, stream: str, *, since: dt.datetime | None = None) -> Iterator[RemoteRecord]:
        if stream == "payments":
            items = list(self._payments(list(self._list("invoices"))))
        elif stream in PAGES:
            items = list(self._list(stream))
        else:
            raise PermanentError(f"BottleCRM has no stream {stream!r}")
        records = []
        for item in items:
            if not isinstance(item, Mapping) or not item.get("id"):
                # nothing to bind it to: report it and go on with the rest of the list
                logger.warning("bottlecrm %s: skipped an item without id: %.200s", stream, item)
                continue
            records.append(self._record(stream, item))
        if since is not None:
            if stream == "payments":
                records = [r for r in records if (_parse_time(r.data.get("created_at")) or since) >= since]
            else:  # only records that say when they changed can be filtered
                records = [r for r in records if r.updated_at is None or r.updated_at >= since]
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        records.sort(
            key=lambda r: (r.updated_at or _parse_time(r.data.get("created_at")) or epoch, r.external_id)
        )
        yield from records

    def get(self, stream: str, external_id: str) -> RemoteRecord | None:
        if stream == "payments":
            found = [r for r in self.fetch("payments") if r.external_id == external_id]
            return found[0] if found else None
        if stream not in ENDPOINTS:
            raise PermanentError(f"BottleCRM has no stream {stream!r}")
        try:
            body = self._call("GET", f"/api/{ENDPOINTS[stream]}/{external_id}/")
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        item = body.get(DETAIL_KEYS[stream]) if isinstance(body, Mapping) else None
        if not isinstance(item, Mapping):
            item = body  # an invoice's detail is the invoice itself
        return self._record(stream, item)

    # --- writing ---------------------------------------------------------------------------------
    def upsert(self, stream: str, payload: Mapping[str, Any], *, external_id: str | None = None) -> str:
        if stream not in self.push_streams:
            raise PermanentError(f"BottleCRM cannot write {stream}")
        body = {k: v for k, v in payload.items() if v is not None}
        path = f"/api/{ENDPOINTS[stream]}/"
        if stream == "deals" and external_id is None:
            body.setdefault("contacts", [])
            body.setdefault("assigned_to", [])
            body.setdefault("teams", [])
        if external_id is None:
            reply = self._call("POST", path, body)
            new_id = reply.get("id") if isinstance(reply, Mapping) else None
            if not new_id and isinstance(reply, Mapping):
                nested = reply.get(DETAIL_KEYS[stream]) or {}
                new_id = nested.get("id") if isinstance(nested, Mapping) else None
            if not new_id:
                raise PermanentError(
                    f"BottleCRM created a {stream} record but sent no id: {str(reply)[:200]}"
                )
            return str(new_id)
        self._call("PATCH", f"{path}{external_id}/", body)
        return external_id

    def delete(self, stream: str, external_id: str) -> None:
        """Archive (is_active false): BottleCRM keeps inactive accounts, contacts and deals listed."""
        if stream not in self.push_streams:
            raise PermanentError(f"BottleCRM cannot archive {stream}")
        self._call("PATCH", f"/api/{ENDPOINTS[stream]}/{external_id}/", {"is_active": False})

    def add_note(self, stream: str, external_id: str, text: str) -> None:
        """A comment on the record's timeline (`POST /api/<entity>/<id>/` with `comment`)."""
        if stream not in ("clients", "contacts", "deals"):
            raise PermanentError(f"BottleCRM has no notes on {stream}")
        self._call("POST", f"/api/{ENDPOINTS[stream]}/{external_id}/", {"comment": text})

    # --- webhooks --------------------------------------------------------------------------------
    def register_webhook(
        self, url: str, events: list[str] | None = None, *, session_token: str | None = None
    ) -> dict[str, Any]:
        """Register `url` for account/contact/deal/invoice events and store the signing secret (sent once).

        BottleCRM refuses to let API tokens manage credentials, webhooks included: pass a signed-in
        user's JWT as `session_token` (or register the endpoint in BottleCRM's settings screen and store
        the secret it shows as credential `webhook_secret`)."""
        events = events or [
            f"{prefix}.{action}"
            for prefix in ("account", "contact", "deal")
            for action in ("created", "updated", "deleted")
        ] + ["deal.won", "deal.lost", "invoice.created", "invoice.updated", "invoice.paid"]
        reply = self._call(
            "POST", "/api/webhooks/", {"url": url, "events": events, "is_active": True}, token=session_token
        )
        secret = reply.get("secret") if isinstance(reply, Mapping) else None
        if not secret:
            raise PermanentError(f"BottleCRM registered the webhook but sent no secret: {str(reply)[:200]}")
        self.config.credentials.update(lambda current: {"webhook_secret": secret})
        return dict(reply)

    @staticmethod
    def sign(secret: str, timestamp: int, body: bytes) -> str:
        """The `X-BottleCRM-Signature` value BottleCRM sends (django-crm `webhooks.tasks.sign`)."""
        digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={timestamp},v1={digest}"

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        secret = self.config.credentials.load().get("webhook_secret")
        header = {k.lower(): v for k, v in headers.items()}.get("x-bottlecrm-signature", "")
        if not secret or not header:
            return False
        parts: dict[str, list[str]] = {}
        for item in header.split(","):
            key, _, value = item.strip().partition("=")
            parts.setdefault(key, []).append(value)
        try:
            timestamp = int(parts.get("t", [""])[0])
        except ValueError:
            return False
        if abs(self.clock() - timestamp) > SIGNATURE_TOLERANCE:
            return False  # too old (a replay) or from a wrong clock
        expected = self.sign(secret, timestamp, body).split("v1=", 1)[1]
        return any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", []))

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        try:
            document = json.loads(body)
        except ValueError:
            raise PermanentError("BottleCRM webhook: the body is not JSON") from None
        if not isinstance(document, Mapping):
            raise PermanentError("BottleCRM webhook: the body is not an object")
        lower = {k.lower(): v for k, v in headers.items()}
        event = str(document.get("event") or lower.get("x-bottlecrm-event") or "")
        prefix, _, action = event.partition(".")
        stream = EVENT_STREAMS.get(prefix)
        if event == "ping" or stream is None:
            return []  # pings, leads, tickets, tasks, interactions: nothing to sync
        data = document.get("data")
        if not isinstance(data, Mapping) or not data.get("id"):
            raise PermanentError(f"BottleCRM webhook {event}: no data.id in the body")
        event_id = str(document.get("id") or lower.get("x-bottlecrm-delivery") or "")
        if not event_id:
            raise PermanentError(f"BottleCRM webhook {event}: no event id")
        # The payload is a summary (an account's has no custom fields, so no INN): the engine re-fetches.
        return [
            WebhookEvent(
                event_id=event_id,
                stream=stream,
                external_id=str(data["id"]),
                action="delete" if action == "deleted" else "upsert",
            )
        ]
