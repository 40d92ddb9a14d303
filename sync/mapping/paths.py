"""Dotted paths into vendor records: `name`, `address.city`, `emails.0.value`,
`custom_fields_values[field_code=INN].values.0.value` (select the list item whose key equals a value)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_SEGMENT = re.compile(r"^(?P<key>[^\[\]]*)(?:\[(?P<sel_key>[^=\]]+)=(?P<sel_val>[^\]]*)\])?$")
MISSING = object()


def _segments(path: str) -> list[tuple[str, tuple[str, str] | None]]:
    parts: list[tuple[str, tuple[str, str] | None]] = []
    # dots inside a [k=v] selector belong to the selector
    for raw in re.findall(r"(?:[^.\[]|\[[^\]]*\])+", path):
        m = _SEGMENT.match(raw)
        if not m:
            raise ValueError(f"bad path segment {raw!r} in {path!r}")
        sel = (m["sel_key"], m["sel_val"]) if m["sel_key"] else None
        parts.append((m["key"], sel))
    return parts


def get_path(data: Any, path: str, default: Any = MISSING) -> Any:
    """The value at `path`, or `default` (MISSING) when any step is absent."""
    if path in ("", "."):
        return data
    current = data
    for key, sel in _segments(path):
        if key:
            if isinstance(current, Mapping):
                if key not in current:
                    return default
                current = current[key]
            elif isinstance(current, list | tuple) and key.lstrip("-").isdigit():
                index = int(key)
                if not -len(current) <= index < len(current):
                    return default
                current = current[index]
            else:
                return default
        if sel is not None:
            if not isinstance(current, list | tuple):
                return default
            found = [
                item for item in current if isinstance(item, Mapping) and str(item.get(sel[0])) == sel[1]
            ]
            if not found:
                return default
            current = found[0]
    return current


def set_path(data: dict, path: str, value: Any) -> None:
    """Write `value` at `path`, creating dicts, list items and selected items as needed."""
    segments = _segments(path)
    current: Any = data
    for i, (key, sel) in enumerate(segments):
        last = i == len(segments) - 1
        if key:
            if isinstance(current, list) and key.isdigit():
                index = int(key)
                while len(current) <= index:
                    current.append({})
                if last and sel is None:
                    current[index] = value
                    return
                current = current[index]
            else:
                if last and sel is None:
                    current[key] = value
                    return
                if key not in current or current[key] is None:
                    current[key] = [] if sel is not None else ({} if not segments[i + 1][0].isdigit() else [])
                current = current[key]
        if sel is not None:
            found = [item for item in current if isinstance(item, dict) and str(item.get(sel[0])) == sel[1]]
            if found:
                item = found[0]
            else:
                item = {sel[0]: sel[1]}
                current.append(item)
            if last:
                item.update(value if isinstance(value, dict) else {"value": value})
                return
            current = item
