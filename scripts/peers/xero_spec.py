"""Build tests/fixtures/xero/xero_accounting.json from Xero's published OpenAPI description.

Keeps only the operations the Xero connector calls (Contacts, Invoices, Payments, Organisation) and the
components they reference, and turns string-encoded JSON examples into objects so Prism serves real
records. The result is committed: tests never read the source spec.

    python scripts/peers/xero_spec.py /path/to/xero_accounting.yaml tests/fixtures/xero/xero_accounting.json

Source: XeroAPI/Xero-OpenAPI `xero_accounting.yaml` (MIT, notice in tests/fixtures/xero/LICENSE-xero-openapi).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import yaml

INLINE_DEPTH = 4
PATHS = (
    "/Contacts",
    "/Contacts/{ContactID}",
    "/Invoices",
    "/Invoices/{InvoiceID}",
    "/Payments",
    "/Payments/{PaymentID}",
    "/Organisation",
)


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/"):
            found.add(ref)
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _fix_examples(node: Any) -> int:
    """String-encoded JSON examples → objects (the recipe of ../shared/peers/fix_examples.py)."""
    fixed = 0
    if isinstance(node, dict):
        for key, value in list(node.items()):
            if key == "example" and isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
                try:
                    node[key] = json.loads(value)
                    fixed += 1
                except ValueError:
                    pass
            else:
                fixed += _fix_examples(value)
    elif isinstance(node, list):
        for value in node:
            fixed += _fix_examples(value)
    return fixed


def _inline(node: Any, schemas: dict, stack: tuple[str, ...] = ()) -> Any:
    """`node` with every schema `$ref` replaced by a copy of its target; a reference back into a schema
    that is already being expanded (Invoice ► Payments ► Invoice), or deeper than `INLINE_DEPTH`
    schemas, becomes a plain `{"type": "object"}`.

    Prism 5 validates no request body whose schema is shared with another operation or circular
    (stoplightio/prism#2574): it answers 200 to anything. Inlined, each body is its own tree and is
    validated; the cut only relaxes objects nested deep or inside themselves (Invoices ► Invoice ►
    LineItems ► LineItem ► Tracking is depth 4), which the connector never sends.
    """
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name in stack or len(stack) >= INLINE_DEPTH:
                return {"type": "object"}
            return _inline(schemas[name], schemas, (*stack, name))
        return {key: _inline(value, schemas, stack) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(value, schemas, stack) for value in node]
    return node


def _inline_request_bodies(spec: dict) -> None:
    schemas = spec["components"]["schemas"]
    bodies = spec["components"].get("requestBodies", {})
    for item in spec["paths"].values():
        for operation in item.values():
            if not isinstance(operation, dict) or "requestBody" not in operation:
                continue
            body = operation["requestBody"]
            if "$ref" in body:
                body = operation["requestBody"] = json.loads(
                    json.dumps(bodies[body["$ref"].rsplit("/", 1)[1]])
                )
            for media in body.get("content", {}).values():
                if "schema" in media:
                    media["schema"] = _inline(media["schema"], schemas)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):  # YAML reads bare dates as dates; JSON wants strings
        return value.isoformat()
    raise TypeError(type(value))


def build(source: Path) -> dict:
    spec = yaml.load(source.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    spec = json.loads(json.dumps(spec, default=_plain))
    spec["paths"] = {path: spec["paths"][path] for path in PATHS}
    _inline_request_bodies(spec)
    wanted: set[str] = set()
    _refs(spec["paths"], wanted)
    seen: set[str] = set()
    while wanted - seen:
        ref = sorted(wanted - seen)[0]
        seen.add(ref)
        _, _, kind, name = ref.split("/", 3)
        _refs(spec["components"][kind][name], wanted)
    components: dict[str, dict] = {"securitySchemes": spec["components"]["securitySchemes"]}
    for ref in sorted(seen):
        _, _, kind, name = ref.split("/", 3)
        components.setdefault(kind, {})[name] = spec["components"][kind][name]
    spec["components"] = components
    spec.pop("tags", None)
    print(f"kept {len(spec['paths'])} paths, {len(seen)} components, fixed {_fix_examples(spec)} examples")
    return spec


if __name__ == "__main__":
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    target.write_text(json.dumps(build(source), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
