"""Transforms an administrator picks for a field mapping (by name, with JSON parameters), no code.

Each transform converts one value inbound (vendor ► canonical) and outbound (canonical ► vendor).
Inbound failures raise `TransformError` with a readable reason: the engine quarantines the record.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import phonenumbers

from hub import phones


class TransformError(ValueError):
    """A value the mapping cannot convert; the message says which and why."""


@dataclass(frozen=True)
class Ref:
    """A reference to another record of the same connection by its external id."""

    entity: str
    external_id: str


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


# ---- inbound / outbound pairs --------------------------------------------------------------------


def path_in(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    if isinstance(value, str) and params.get("strip", True):
        value = value.strip()
    return value


def path_out(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    return value


def _name_parts(full: str, order: str) -> dict[str, str]:
    words = full.split()
    if order == "first_last":  # "John Smith", "John Paul Smith"
        first = words[0] if words else ""
        last = words[-1] if len(words) > 1 else ""
        middle = " ".join(words[1:-1]) if len(words) > 2 else ""
    else:  # "Иванов Иван Иванович"
        last = words[0] if len(words) > 1 else ""
        first = words[1] if len(words) > 1 else (words[0] if words else "")
        middle = " ".join(words[2:])
    return {"last": last, "first": first, "middle": middle}


def full_name_in(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    """One part (`part`: first/last/middle) of a full name; `order`: last_first_middle (default) or first_last."""
    if _empty(value):
        return ""
    return _name_parts(str(value), params.get("order", "last_first_middle"))[params.get("part", "first")]


def full_name_out(value: Any, params: Mapping[str, Any], *, canonical: Mapping[str, Any], **_: Any) -> Any:
    """Join the canonical first/last/middle names back into one string (every part mapping writes the same)."""
    first, last, middle = (canonical.get(k) or "" for k in ("first_name", "last_name", "middle_name"))
    if params.get("order", "last_first_middle") == "first_last":
        parts = [first, middle, last]
    else:
        parts = [last, first, middle]
    return " ".join(p for p in parts if p)


def phone_in(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    """A phone number in E.164, parsed with `region` (default RU) when it has no country code."""
    return phone_parse(value, params)[0]


def phone_parse(value: Any, params: Mapping[str, Any]) -> tuple[str, Any]:
    """`phone_in` and the parsed number it formatted (None for a blank value): a bulk pull checks the
    number's validity without parsing the E.164 text again."""
    if _empty(value):
        return "", None
    try:
        number = phones.parse(str(value), params.get("region", "RU"))
    except phonenumbers.NumberParseException as exc:
        raise TransformError(f"not a phone number: {value!r} ({exc})") from None
    if not phonenumbers.is_possible_number(number):
        raise TransformError(f"not a phone number: {value!r}")
    return phones.e164(number), number


def phone_out(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    if _empty(value) or params.get("format", "e164") == "e164":
        return value
    number = phones.parse(value, None)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _zone(params: Mapping[str, Any]) -> dt.tzinfo:
    name = params.get("tz", "UTC")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise TransformError(f"unknown time zone {name!r}") from None


def datetime_in(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    """A timezone-aware datetime from ISO 8601 (`format`: iso), a strftime format, `unix` or `unix_ms`;
    naive values are read in `tz` (default UTC)."""
    if _empty(value):
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        fmt = params.get("format", "iso")
        try:
            if fmt in ("unix", "unix_ms"):
                seconds = Decimal(str(value)) / (1000 if fmt == "unix_ms" else 1)
                return dt.datetime.fromtimestamp(float(seconds), tz=dt.UTC)
            if fmt == "iso":
                parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            else:
                parsed = dt.datetime.strptime(str(value), fmt)  # noqa: DTZ007 - zone applied below
        except (ValueError, InvalidOperation, OverflowError):
            raise TransformError(f"not a date-time ({fmt}): {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_zone(params))
    return parsed


def datetime_out(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    if _empty(value):
        return None
    fmt = params.get("format", "iso")
    local = value.astimezone(_zone(params))
    if fmt == "unix":
        return int(value.timestamp())
    if fmt == "unix_ms":
        return int(value.timestamp() * 1000)
    if fmt == "iso":
        return local.isoformat()
    return local.strftime(fmt)


def date_in(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    """A date from ISO (`YYYY-MM-DD`, a datetime prefix is accepted) or a strftime `format`."""
    if _empty(value):
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    fmt = params.get("format", "iso")
    try:
        if fmt == "iso":
            return dt.date.fromisoformat(str(value)[:10])
        return dt.datetime.strptime(str(value), fmt).date()  # noqa: DTZ007 - a date has no zone
    except ValueError:
        raise TransformError(f"not a date ({fmt}): {value!r}") from None


def date_out(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    if _empty(value):
        return None
    fmt = params.get("format", "iso")
    return value.isoformat() if fmt == "iso" else value.strftime(fmt)


def enum_in(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    """`map`: {vendor value: canonical value}; an unknown value uses `default` or is quarantined."""
    mapping = params.get("map", {})
    key = "" if value is None else str(value)
    if key in mapping:
        return mapping[key]
    if "default" in params:
        return params["default"]
    raise TransformError(f"unknown value {value!r}; expected one of {', '.join(map(str, mapping)) or 'none'}")


def enum_out(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    reverse = params.get("reverse") or {}
    if value in reverse:
        return reverse[value]
    for vendor, canonical in params.get("map", {}).items():
        if canonical == value:
            return vendor
    if "default_out" in params:
        return params["default_out"]
    raise TransformError(f"no vendor value for {value!r}")


def decimal_in(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    """A Decimal rounded half-up to `scale` (default 2); `divide` converts minor units (100 for cents)."""
    if _empty(value):
        return None
    if isinstance(value, float):
        value = repr(value)
    try:
        number = Decimal(str(value).replace(" ", "").replace(",", "."))
    except InvalidOperation:
        raise TransformError(f"not a number: {value!r}") from None
    if not number.is_finite():
        raise TransformError(f"not a number: {value!r}")
    if params.get("divide"):
        number = number / Decimal(str(params["divide"]))
    return number.quantize(Decimal(1).scaleb(-int(params.get("scale", 2))), rounding=ROUND_HALF_UP)


def decimal_out(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    if value is None:
        return None
    number = Decimal(value)
    if params.get("divide"):
        number = (number * Decimal(str(params["divide"]))).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return int(number)
    number = number.quantize(Decimal(1).scaleb(-int(params.get("scale", 2))), rounding=ROUND_HALF_UP)
    return float(number) if params.get("as") == "number" else str(number)


def lookup_in(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    """The external id of another record (`entity`: clients, deals...), resolved by the binder."""
    if _empty(value):
        return None
    if isinstance(value, Mapping):  # {"id": 5, "name": ...}
        value = value.get(params.get("id_key", "id"))
    if isinstance(value, list | tuple):  # Tryton many2one reads, vendor [id, name] pairs
        value = value[0] if value else None
    return None if _empty(value) else Ref(params["entity"], str(value))


def lookup_out(
    value: Any, params: Mapping[str, Any], *, resolve: Callable[[str, Any], Any] | None = None, **_: Any
):
    if value is None or resolve is None:
        return None
    external = resolve(params["entity"], value)
    if external is not None and params.get("as") == "int":
        return int(external)
    return external


def constant_in(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    return params.get("value")


def constant_out(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    return params.get("value")


def default_in(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    return params.get("value") if _empty(value) else path_in(value, params)


def default_out(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    return params.get("value") if _empty(value) else value


_FIELD = re.compile(r"\{([^{}]+)\}")


def template_in(value: Any, params: Mapping[str, Any], *, record: Mapping[str, Any] | None = None, **_: Any):
    """`template`: "{last_name} {first_name}" filled from the vendor record's paths (blank when missing),
    spaces collapsed."""
    from sync.mapping.paths import MISSING, get_path

    def fill(match: re.Match) -> str:
        got = get_path(record or {}, match.group(1))
        return "" if got is MISSING or got is None else str(got)

    return " ".join(_FIELD.sub(fill, params.get("template", "")).split())


def template_out(value: Any, params: Mapping[str, Any], *, canonical: Mapping[str, Any], **_: Any) -> Any:
    """`template_out`: "{name} ({inn})" filled from canonical fields."""
    text = params.get("template_out")
    if not text:
        return value
    return " ".join(_FIELD.sub(lambda m: str(canonical.get(m.group(1)) or ""), text).split())


def boolean_in(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    """True when the value is in `true` (default: true, 1, "Y", "yes"); `negate` flips it (active ► archived)."""
    truthy = {str(v).lower() for v in params.get("true", ["true", "1", "y", "yes"])}
    result = str(value).lower() in truthy if not isinstance(value, bool) else value
    return not result if params.get("negate") else result


def boolean_out(value: Any, params: Mapping[str, Any], **_: Any) -> Any:
    result = bool(value)
    return not result if params.get("negate") else result


TRANSFORMS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "path": (path_in, path_out),
    "full_name": (full_name_in, full_name_out),
    "phone": (phone_in, phone_out),
    "datetime": (datetime_in, datetime_out),
    "date": (date_in, date_out),
    "enum": (enum_in, enum_out),
    "decimal": (decimal_in, decimal_out),
    "lookup": (lookup_in, lookup_out),
    "constant": (constant_in, constant_out),
    "default": (default_in, default_out),
    "template": (template_in, template_out),
    "boolean": (boolean_in, boolean_out),
}

TRANSFORM_HELP = {
    "path": "copy the value (rename only)",
    "full_name": "part: first|last|middle, order: last_first_middle|first_last",
    "phone": "region: RU (for numbers without a country code), format: e164|international (out)",
    "datetime": "format: iso|unix|unix_ms|<strftime>, tz: UTC|Europe/Moscow...",
    "date": "format: iso|<strftime>",
    "enum": "map: {vendor: canonical}, default, default_out",
    "decimal": "scale: 2, divide: 100 (minor units), as: string|number (out)",
    "lookup": "entity: clients|deals|invoices, id_key: id, as: int (out)",
    "constant": "value",
    "default": "value (used when empty)",
    "template": "template: '{last_name} {first_name}' (in, vendor paths), template_out: '{name}' (out)",
    "boolean": "true: [values], negate: true (active ► archived)",
}
