"""HubSpot webhook deliveries (CONTRACTS.md §1.3): the v3 signature check and the event parser.

Kept apart from the connector so the HTTP adapter stays readable; both are pure functions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping

from sync.connectors.base import PermanentError, WebhookEvent

# webhook subscription object ► stream (classic `deal.propertyChange` and generic `0-3` object type ids)
WEBHOOK_OBJECTS = {"company": "clients", "contact": "contacts", "deal": "deals", "product": "products"}
WEBHOOK_TYPE_IDS = {"0-2": "clients", "0-1": "contacts", "0-3": "deals", "0-7": "products"}
WEBHOOK_TOLERANCE_MS = 5 * 60 * 1000
# characters HubSpot decodes in the URI before signing (v3 signature guide)
URI_DECODE = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}


def verify_signature(secret: str, headers: Mapping[str, str], body: bytes, *, now_ms: float) -> bool:
    """v3: base64(HMAC-SHA256(client_secret, method + uri + body + timestamp)), compared in constant
    time; refused when `X-HubSpot-Request-Timestamp` is more than 5 minutes from now (replays). The
    method and the full URI come from the lead's webhook view as `X-Hub-Method` / `X-Hub-Uri`."""
    h = {k.lower(): v for k, v in headers.items()}
    signature = h.get("x-hubspot-signature-v3")
    stamp = h.get("x-hubspot-request-timestamp", "")
    method, uri = h.get("x-hub-method"), h.get("x-hub-uri")
    if not (secret and signature and stamp and method and uri) or not stamp.isdigit():
        return False
    if abs(now_ms - int(stamp)) > WEBHOOK_TOLERANCE_MS:
        return False
    for encoded, char in URI_DECODE.items():
        uri = uri.replace(encoded, char).replace(encoded.lower(), char)
    message = method.upper().encode() + uri.encode() + body + stamp.encode()
    expected = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, signature.strip())


def parse_events(body: bytes) -> list[WebhookEvent]:
    """A JSON array of events; each becomes a re-fetch hint (or a delete). Object types we do not sync
    (line items, tickets…) are skipped; association changes re-read the record they start from; a merge
    re-reads the survivor and archives the merged-away records."""
    try:
        events = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PermanentError(f"HubSpot webhook: not JSON: {body[:200]!r}") from None
    if isinstance(events, dict):
        events = [events]
    if not isinstance(events, list):
        raise PermanentError("HubSpot webhook: expected a JSON array of events")
    out: list[WebhookEvent] = []
    for event in events:
        if not isinstance(event, Mapping):
            raise PermanentError(f"HubSpot webhook: an event is not an object: {str(event)[:200]!r}")
        kind = str(event.get("subscriptionType") or event.get("eventType") or "")
        obj, _, action = kind.partition(".")
        stream = WEBHOOK_OBJECTS.get(obj) or WEBHOOK_TYPE_IDS.get(str(event.get("objectTypeId") or ""))
        # associationChange events name the record as fromObjectId; merges name the survivor
        object_id = event.get("objectId") or event.get("fromObjectId") or event.get("primaryObjectId")
        if object_id is None:
            raise PermanentError(f"HubSpot webhook: an event without objectId: {str(event)[:200]!r}")
        if stream is None:
            continue
        event_id = str(event.get("eventId") or f"{kind}:{object_id}:{event.get('occurredAt')}")
        if action == "merge":
            survivor = str(event.get("newObjectId") or event.get("primaryObjectId") or object_id)
            out.append(WebhookEvent(event_id=event_id, stream=stream, external_id=survivor))
            for merged in event.get("mergedObjectIds") or []:
                if str(merged) != survivor:
                    out.append(
                        WebhookEvent(
                            event_id=f"{event_id}:merged:{merged}",
                            stream=stream,
                            external_id=str(merged),
                            action="delete",
                        )
                    )
            continue
        out.append(
            WebhookEvent(
                event_id=event_id,
                stream=stream,
                external_id=str(object_id),
                action="delete" if action == "deletion" else "upsert",
            )
        )
    return out
