"""Tryton's JSON-RPC wire format: tagged types and error replies.

Tryton (8.x) speaks JSON-RPC over `POST {base}/{database}/rpc/` with
`{"id": n, "method": "model.party.party.search_read", "params": [..., context]}`. Values that JSON has no
type for travel as tagged objects: `{"__class__": "Decimal", "decimal": "100.00"}`,
`{"__class__": "date", "year": ..., "month": ..., "day": ...}`, `{"__class__": "datetime", ...}` (naive, in
UTC: trytond stores timestamps in UTC), `{"__class__": "timedelta", "seconds": ...}` and
`{"__class__": "bytes", "base64": ...}`. A failed call answers HTTP 200 with
`{"id": n, "error": [exception name, args]}`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal
from typing import Any

from sync.connectors.base import AuthError, PermanentError, RecordError, RetryableError


def encode(value: Any) -> Any:
    """`json.dumps(default=...)`: Python values ► Tryton's tagged objects (aware datetimes ► naive UTC)."""
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return {
            "__class__": "datetime",
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, dt.timedelta):
        return {"__class__": "timedelta", "seconds": value.total_seconds()}
    if isinstance(value, bytes):
        return {"__class__": "bytes", "base64": base64.b64encode(value).decode()}
    raise TypeError(f"cannot send {type(value).__name__} to Tryton")


def decode(obj: dict[str, Any]) -> Any:
    """`json.loads(object_hook=...)`: tagged objects ► Python values; datetimes become aware (UTC)."""
    kind = obj.get("__class__")
    if kind is None:
        return obj
    try:
        if kind == "Decimal":
            return Decimal(obj["decimal"])
        if kind == "datetime":
            return dt.datetime(
                obj["year"],
                obj["month"],
                obj["day"],
                obj.get("hour", 0),
                obj.get("minute", 0),
                obj.get("second", 0),
                obj.get("microsecond", 0),
                tzinfo=dt.UTC,
            )
        if kind == "date":
            return dt.date(obj["year"], obj["month"], obj["day"])
        if kind == "time":
            return dt.time(obj.get("hour", 0), obj.get("minute", 0), obj.get("second", 0))
        if kind == "timedelta":
            return dt.timedelta(seconds=obj["seconds"])
        if kind == "bytes":
            return base64.b64decode(obj["base64"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed Tryton {kind} value {obj!r}: {exc}") from None
    return obj


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, default=encode, separators=(",", ":")).encode()


def loads(body: bytes) -> Any:
    return json.loads(body, object_hook=decode)


def plain(value: Any) -> Any:
    """A decoded value made JSON-safe for `RemoteRecord.data`: Decimal ► "100.00", date ► "2026-11-28",
    datetime ► ISO 8601 with "+00:00". The mapper's transforms read these strings back."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def raise_for_error(method: str, error: Any, *, writing: bool) -> None:
    """Turn a JSON-RPC `error` member into the connector error it means."""
    if isinstance(error, list | tuple) and error:
        name = str(error[0])
        args = error[1] if len(error) > 1 else None
    else:
        name, args = "Error", error
    if isinstance(args, list | tuple) and args:
        message = str(args[0])
        if len(args) > 1 and args[1]:
            message += f" ({args[1]})"
    else:
        message = str(args or name)
    text = f"Tryton {method}: {name}: {message}"
    if name == "ConcurrencyException":
        raise RetryableError(text)
    if name in ("LoginException", "AccessError"):
        raise AuthError(text)
    if name == "RateLimitException":
        raise RetryableError(text, retry_after=60)
    if writing:
        raise RecordError(text)
    raise PermanentError(text)
