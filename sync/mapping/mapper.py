"""The mapper: vendor record ⇄ canonical record, driven by field mappings. Pure functions."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sync.mapping.paths import MISSING, get_path, set_path
from sync.mapping.transforms import TRANSFORMS, TransformError


@dataclass(frozen=True)
class Rule:
    """One field mapping, detached from the ORM (a `FieldMapping` row or a connector's `MappingSpec`)."""

    entity: str
    external_path: str
    canonical_field: str
    direction: str = "both"
    transform: str = "path"
    params: Mapping[str, Any] | None = None
    owner: str = "remote"

    @classmethod
    def of(cls, row: Any) -> Rule:
        return cls(
            entity=row.entity,
            external_path=row.external_path,
            canonical_field=row.canonical_field,
            direction=row.direction,
            transform=row.transform,
            params=dict(row.params or {}),
            owner=row.owner,
        )


class MappingError(ValueError):
    """A record the mappings cannot convert; `reasons` lists every field that failed."""

    def __init__(self, reasons: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in reasons.items()))
        self.reasons = reasons


def to_canonical(data: Mapping[str, Any], rules: Iterable[Rule]) -> dict[str, Any]:
    """Canonical fields of one vendor record. Fields absent from the record are left out (not blanked),
    so a partial webhook payload never erases data."""
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for rule in rules:
        if rule.direction == "out":
            continue
        convert = TRANSFORMS[rule.transform][0]
        params = rule.params or {}
        if rule.transform in ("constant", "template"):
            raw = None
        else:
            raw = get_path(data, rule.external_path)
            if raw is MISSING:
                if rule.transform == "default":
                    raw = None
                else:
                    continue
        try:
            value = convert(raw, params, record=data)
        except TransformError as exc:
            errors[rule.canonical_field] = f"{rule.external_path}: {exc}"
            continue
        if rule.canonical_field in out and (value is None or value == ""):
            continue  # a second source for the same field only fills gaps
        out[rule.canonical_field] = value
    if errors:
        raise MappingError(errors)
    return out


def to_remote(
    canonical: Mapping[str, Any],
    rules: Iterable[Rule],
    *,
    resolve: Callable[[str, Any], Any] | None = None,
    fields: Iterable[str] | None = None,
) -> dict[str, Any]:
    """A vendor-shaped payload from canonical fields (only `fields` when given, e.g. what changed)."""
    wanted = set(fields) if fields is not None else None
    payload: dict[str, Any] = {}
    for rule in rules:
        if rule.direction == "in" or (
            rule.transform == "template" and not (rule.params or {}).get("template_out")
        ):
            continue
        if wanted is not None and rule.canonical_field not in wanted:
            continue
        if rule.canonical_field not in canonical and rule.transform not in ("constant", "default"):
            continue
        convert = TRANSFORMS[rule.transform][1]
        value = convert(
            canonical.get(rule.canonical_field), rule.params or {}, canonical=canonical, resolve=resolve
        )
        set_path(payload, rule.external_path, value)
    return payload


def _simple_key(path: str) -> bool:
    return bool(path) and path != "." and not any(c in path for c in ".[]")


def compile_canonical(
    rules: Iterable[Rule], *, inbound: Mapping[str, Callable[..., Any]] | None = None
) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """`to_canonical` with the rules looked up once: the same function of a record, for hot loops
    (a bulk pull maps tens of thousands of records with the same rules). `inbound` replaces transforms
    by equivalent functions (same result, same errors) that remember something on the side."""
    rules = [r for r in rules if r.direction != "out"]
    inbound = inbound or {}
    steps = []
    for rule in rules:
        params = rule.params or {}
        fixed = rule.transform in ("constant", "template")
        steps.append(
            (
                rule,
                inbound.get(rule.transform) or TRANSFORMS[rule.transform][0],
                params,
                None if fixed else (rule.external_path if _simple_key(rule.external_path) else False),
                fixed,
                rule.transform == "default",
            )
        )

    def convert_record(data: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(data, dict):
            return to_canonical(data, rules)
        out: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for rule, convert, params, key, fixed, is_default in steps:
            if fixed:
                raw = None
            else:
                raw = data.get(key, MISSING) if key else get_path(data, rule.external_path)
                if raw is MISSING:
                    if is_default:
                        raw = None
                    else:
                        continue
            try:
                value = convert(raw, params, record=data)
            except TransformError as exc:
                errors[rule.canonical_field] = f"{rule.external_path}: {exc}"
                continue
            if rule.canonical_field in out and (value is None or value == ""):
                continue
            out[rule.canonical_field] = value
        if errors:
            raise MappingError(errors)
        return out

    return convert_record
