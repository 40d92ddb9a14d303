"""The connector interface: what every external system speaks, and nothing else.

A connector is the *adapter* of the OCA connector split. It talks to one external system over HTTP
(or files) and crosses the boundary with plain dataclasses: `RemoteRecord` in, dicts out. It never
imports a model and never touches the ORM; `sync.services` (the synchronizer) maps, matches and writes.

Streams are canonical entity names ("clients", "contacts", "deals", "invoices", "payments",
"products"); the connector decides which vendor object backs each one. Records keep the vendor's own
field names in `data`: the mapper (`sync.mapping`) turns them into canonical fields, driven by the
connection's `FieldMapping` rows (seeded from `default_mappings`).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

STREAMS = ("clients", "contacts", "deals", "products", "invoices", "payments")


class ConnectorError(Exception):
    """An error talking to an external system. `retryable` says whether trying again may help."""

    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RetryableError(ConnectorError):
    """Network trouble, 5xx, 429: the next attempt (or the next run) may succeed."""

    retryable = True


class PermanentError(ConnectorError):
    """The request itself is wrong or refused (4xx, malformed reply): retrying will not help."""


class AuthError(PermanentError):
    """Credentials are missing, expired or revoked: the connection is paused until an admin fixes it."""


class RecordError(PermanentError):
    """One record cannot be read or written (unknown enum, missing field): quarantine it, go on."""


_new = object.__new__
_set = object.__setattr__  # (a frozen dataclass refuses its own __setattr__)


@dataclass(frozen=True)
class RemoteRecord:
    """One external record as the vendor sends it.

    `external_id` is the vendor's id as a string; `updated_at` (timezone-aware) is the change-feed
    position used for the cursor; `version` is the vendor's own revision marker (etag, SyncToken,
    write_date) when it has one; `deleted` marks a tombstone (archived/deleted remotely).

    `source` (optional) is the record exactly as read when the connector has it as text cheaper than
    `data` (the `csv` connector: its header and row); equal sources must mean equal `data`. The
    engine then hashes it instead of `data` to tell an unchanged record (`engine.record_source_hash`).
    """

    stream: str
    external_id: str
    data: Mapping[str, Any]
    updated_at: dt.datetime | None = None
    version: str = ""
    deleted: bool = False
    source: str = field(default="", compare=False, repr=False)

    @classmethod
    def of_row(cls, stream: str, external_id: str, data: Mapping[str, Any], source: str = "") -> RemoteRecord:
        """`RemoteRecord(stream, external_id, data, source=source)` at half the cost, for connectors
        that read records by the hundred thousand (the frozen `__init__` sets each field through
        `object.__setattr__`)."""
        record = object.__new__(cls)
        record.__dict__.update(
            stream=stream,
            external_id=external_id,
            data=data,
            updated_at=None,
            version="",
            deleted=False,
            source=source,
        )
        return record

    @classmethod
    def of_values(
        cls, stream: str, external_id: str, header: list[str], values: list[Any], source: str
    ) -> RemoteRecord:
        """`of_row` with `data` as `dict(zip(header, values))`, made when it is first read: a record
        told unchanged by its `source` never needs it (a third of reading an unchanged CSV row)."""
        record = _new(cls)
        _set(record, "__dict__", {  # (one dict made and set: half the cost of updating the one it has)
            "stream": stream, "external_id": external_id, "_row": (header, values), "updated_at": None,
            "version": "", "deleted": False, "source": source,
        })  # fmt: skip
        return record

    def __getattr__(self, name: str) -> Any:  # only for what is not set: `data` of `of_values`
        row = self.__dict__.get("_row")
        if name != "data" or row is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        data = self.__dict__["data"] = dict(zip(*row))  # noqa: B905 - `of_values`' caller pads the values
        del self.__dict__["_row"]
        return data


@dataclass(frozen=True)
class WebhookEvent:
    """One change announced by a webhook. `record` is set when the payload carries the whole record;
    otherwise the engine re-fetches it with `Connector.get` (vendors that do not sign their webhooks
    must be re-fetched anyway)."""

    event_id: str
    stream: str
    external_id: str
    action: str = "upsert"  # "upsert" | "delete"
    record: RemoteRecord | None = None


@dataclass(frozen=True)
class MappingSpec:
    """A default field mapping a connector proposes; stored as a `FieldMapping` row per connection.

    `external_path` is a dotted path into `RemoteRecord.data` ("custom_fields.INN", "name",
    "contacts.0.email"); `canonical_field` a field of `sync.mapping.canonical.ENTITIES[entity]`;
    `direction` "in", "out" or "both"; `transform` a name in `sync.mapping.transforms.TRANSFORMS` with
    its `params`; `owner` "hub" or "remote": the side whose value wins a routine update.
    """

    entity: str
    external_path: str
    canonical_field: str
    direction: str = "both"
    transform: str = "path"
    params: Mapping[str, Any] = field(default_factory=dict)
    owner: str = "remote"


class CredentialStore(Protocol):
    """Where a connector reads its secrets and stores rotated ones.

    `update(fn)` is single-flight: it runs `fn(current)` under a lock held per credential, with the
    freshest stored values, and stores what `fn` returns atomically (None: nothing to change). A token
    refresh therefore happens once even when several workers hit an expired token together; the others
    see the new token when they get the lock.
    """

    def load(self) -> dict[str, str]: ...

    def update(self, fn: Callable[[dict[str, str]], dict[str, str] | None]) -> dict[str, str]: ...


class MemoryCredentialStore:
    """A `CredentialStore` in memory (tests, dry runs, the shared contract test)."""

    def __init__(self, values: Mapping[str, str] | None = None):
        self._values = dict(values or {})
        self._lock = threading.Lock()

    def load(self) -> dict[str, str]:
        return dict(self._values)

    def update(self, fn: Callable[[dict[str, str]], dict[str, str] | None]) -> dict[str, str]:
        with self._lock:
            changed = fn(dict(self._values))
            if changed:
                self._values.update(changed)
            return dict(self._values)


@dataclass(frozen=True)
class ConnectionConfig:
    """Everything a connector needs to know about its connection, without the ORM."""

    name: str
    system: str
    base_url: str
    credentials: CredentialStore
    options: Mapping[str, Any] = field(default_factory=dict)
    rate_limit_per_second: float | None = None
    timeout_seconds: float = 30.0
    max_attempts: int = 5


class Connector:
    """Base class for every external system. Subclasses register with `sync.connectors.register`."""

    system: ClassVar[str] = ""
    title: ClassVar[str] = ""
    role: ClassVar[str] = "crm"  # "crm" | "accounting" — the default role offered by `connect`
    streams: ClassVar[tuple[str, ...]] = ()  # streams `fetch` can read
    push_streams: ClassVar[tuple[str, ...]] = ()  # streams `upsert` can write
    # `fetch` may run in a reader thread one page ahead of the engine (`engine.read_ahead`): only for
    # a connector whose reading touches neither the database nor anything else the engine uses.
    read_ahead: ClassVar[bool] = False
    credential_keys: ClassVar[tuple[str, ...]] = ()  # keys `connect --credential KEY=VALUE` accepts
    required_credentials: ClassVar[tuple[str, ...]] = ()
    default_mappings: ClassVar[tuple[MappingSpec, ...]] = ()
    default_rate_limit: ClassVar[float | None] = None  # requests per second the vendor allows
    signs_webhooks: ClassVar[bool] = False

    def __init__(self, config: ConnectionConfig, *, http: Any | None = None):
        self.config = config
        if http is None:
            from sync.http import HttpClient

            http = HttpClient.for_connection(config)
        self.http = http

    def close(self) -> None:
        """Release the HTTP connection pool; services build a connector per run or event and close it."""
        close = getattr(self.http, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ---------------------------------------------------------------------------------
    def check(self) -> None:
        """Authenticate and reach the system; raise `AuthError`/`ConnectorError` with a clear message."""
        raise NotImplementedError

    def fetch(self, stream: str, *, since: dt.datetime | None = None) -> Iterator[RemoteRecord]:
        """Records of `stream` changed at or after `since` (all when None), oldest change first.

        Paging is the connector's business; a paginator that sees the same page token twice must
        raise `PermanentError` rather than loop.
        """
        raise NotImplementedError

    def get(self, stream: str, external_id: str) -> RemoteRecord | None:
        """One record by id (webhook re-fetch); None when it no longer exists."""
        raise NotImplementedError

    # --- writing ---------------------------------------------------------------------------------
    def upsert(self, stream: str, payload: Mapping[str, Any], *, external_id: str | None = None) -> str:
        """Create (no `external_id`) or update a record from vendor-shaped `payload`; return its id."""
        raise PermanentError(f"{self.system} cannot write {stream}")

    def delete(self, stream: str, external_id: str) -> None:
        """Propagate a tombstone: archive or delete the remote record (whichever the vendor offers)."""
        raise PermanentError(f"{self.system} cannot archive {stream}")

    def add_note(self, stream: str, external_id: str, text: str) -> None:
        """Attach a note / timeline comment to a record (CRMs), e.g. "invoice paid"."""
        raise PermanentError(f"{self.system} has no notes")

    def after_push(self, stream: str, external_id: str, canonical: Mapping[str, Any]) -> None:
        """Vendor workflow after a push (Tryton: validate and post an issued invoice). Default: none."""

    # --- webhooks --------------------------------------------------------------------------------
    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """True when the delivery is authentic (signature, shared token, account id). Vendors that do
        not sign return True here and are re-fetched by id."""
        return not self.signs_webhooks

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        """Turn a verified delivery into events; raise `PermanentError` on a malformed body."""
        raise PermanentError(f"{self.system} sends no webhooks")

    def webhook_challenge(self, headers: Mapping[str, str], body: bytes) -> bytes | None:
        """Some vendors probe the endpoint first (a handshake); return the reply body, else None."""
        return None
