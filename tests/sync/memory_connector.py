"""A stand-in external system held in memory, for engine tests: a CRM with clients, contacts and deals,
that takes client pushes, signs its webhooks with HMAC-SHA256 and can be made to fail on demand."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

from sync.connectors.base import (
    AuthError,
    Connector,
    MappingSpec,
    PermanentError,
    RemoteRecord,
    RetryableError,
    WebhookEvent,
)

M = MappingSpec


class Remote:
    """The remote system's state, shared by every connector instance of a test."""

    def __init__(self):
        self.tables: dict[str, dict[str, dict]] = {"clients": {}, "contacts": {}, "deals": {}}
        self.clock = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
        self.next_id = 100
        self.fail: Exception | None = None
        self.fail_after: int | None = None  # records yielded before failing
        self.notes: list[tuple[str, str, str]] = []
        self.upserts: list[tuple[str, str | None, dict]] = []
        self.deleted: list[tuple[str, str]] = []

    def tick(self) -> dt.datetime:
        self.clock += dt.timedelta(minutes=1)
        return self.clock

    def put(self, stream: str, external_id: str | None = None, **data: Any) -> str:
        if external_id is None:
            self.next_id += 1
            external_id = str(self.next_id)
        row = self.tables[stream].setdefault(external_id, {})
        row.update(data)
        row["id"] = external_id
        row["updated_at"] = self.tick()
        return external_id


REMOTE = Remote()


class MemoryConnector(Connector):
    system = "memory"
    title = "In-memory test CRM"
    role = "crm"
    streams = ("clients", "contacts", "deals")
    push_streams = ("clients",)
    credential_keys = ("token", "webhook_secret")
    required_credentials = ("token",)
    signs_webhooks = True
    default_mappings = (
        M("clients", "title", "name", owner="remote"),
        M("clients", "tax_id", "inn"),
        M("clients", "kpp", "kpp"),
        M("clients", "mail", "email", owner="hub"),
        M("clients", "tel", "phone", transform="phone", params={"region": "RU"}),
        M("clients", "archived", "archived", "in", "boolean"),
        M("contacts", "company", "client", "in", "lookup", {"entity": "clients"}),
        M("contacts", "name", "first_name", "in", "full_name", {"part": "first", "order": "first_last"}),
        M("contacts", "name", "last_name", "in", "full_name", {"part": "last", "order": "first_last"}),
        M("contacts", "mail", "email", "in"),
        M("deals", "name", "title", "in"),
        M("deals", "company", "client", "in", "lookup", {"entity": "clients"}),
        M("deals", "stage", "stage", "in", "enum", {"map": {"NEW": "new", "WON": "won"}}),
        M("deals", "value", "amount", "in", "decimal", {"scale": 2}),
        M("deals", "currency", "currency", "in", "default", {"value": "RUB"}),
    )

    def __init__(self, config, *, http=None):
        super().__init__(config, http=object())
        self.remote = REMOTE

    def _raise(self):
        if self.remote.fail is not None and self.remote.fail_after is None:
            raise self.remote.fail

    def check(self) -> None:
        self._raise()
        if self.config.credentials.load().get("token") != "good":
            raise AuthError("token refused")

    def _record(self, stream: str, row: dict) -> RemoteRecord:
        data = {k: v for k, v in row.items() if k != "updated_at"}
        return RemoteRecord(stream=stream, external_id=row["id"], data=data, updated_at=row["updated_at"],
                            deleted=bool(row.get("deleted")))  # fmt: skip

    def fetch(self, stream: str, *, since=None) -> Iterator[RemoteRecord]:
        self._raise()
        rows = sorted(self.remote.tables[stream].values(), key=lambda r: (r["updated_at"], r["id"]))
        for i, row in enumerate(rows):
            if self.remote.fail_after is not None and i >= self.remote.fail_after:
                raise self.remote.fail
            if since is None or row["updated_at"] >= since:
                yield self._record(stream, row)

    def get(self, stream: str, external_id: str) -> RemoteRecord | None:
        self._raise()
        row = self.remote.tables[stream].get(external_id)
        return self._record(stream, row) if row else None

    def upsert(self, stream: str, payload, *, external_id=None) -> str:
        self._raise()
        self.remote.upserts.append((stream, external_id, dict(payload)))
        return self.remote.put(stream, external_id, **payload)

    def delete(self, stream: str, external_id: str) -> None:
        self.remote.deleted.append((stream, external_id))
        self.remote.put(stream, external_id, deleted=True)

    def add_note(self, stream: str, external_id: str, text: str) -> None:
        self.remote.notes.append((stream, external_id, text))

    def verify_webhook(self, headers, body: bytes) -> bool:
        secret = self.config.credentials.load().get("webhook_secret", "").encode()
        given = headers.get("X-Memory-Signature", "")
        return bool(secret) and hmac.compare_digest(given, hmac.new(secret, body, hashlib.sha256).hexdigest())

    def parse_webhook(self, headers, body: bytes) -> list[WebhookEvent]:
        try:
            items = json.loads(body)
        except ValueError as exc:
            raise PermanentError(f"body is not JSON: {exc}") from None
        return [WebhookEvent(event_id=i["event"], stream=i["stream"], external_id=str(i["id"]),
                             action=i.get("action", "upsert")) for i in items]  # fmt: skip


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


__all__ = ["REMOTE", "MemoryConnector", "PermanentError", "Remote", "RetryableError", "sign"]
