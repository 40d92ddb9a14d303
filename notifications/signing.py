"""Our outbound webhook signature, Stripe-style: ``X-Hub-Signature: t=<unix>,v1=<hex>[,v1=<hex>]``.

``v1`` is HMAC-SHA256(secret, "<t>.<raw body>"). During a secret rotation every delivery carries one
``v1`` per secret, so a receiver holding either secret accepts it. Receivers reject a ``t`` more than
300 s away from their clock: a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TOLERANCE_SECONDS = 300
HEADER = "X-Hub-Signature"


class SignatureInvalid(Exception):
    pass


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(*, body: bytes, secrets: list[str], timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={t}", *(f"v1={_digest(s, t, body)}" for s in secrets if s)])


def signature_verify(
    *,
    body: bytes,
    header: str,
    secrets: list[str],
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise ``SignatureInvalid`` unless a ``v1`` matches a secret and ``t`` is fresh."""
    timestamp, signatures = None, []
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureInvalid("the signature header lacks t= or v1=")
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureInvalid("the signature timestamp is outside the tolerance")
    for secret in secrets:
        expected = _digest(secret, timestamp, body)
        if any(hmac.compare_digest(expected, s) for s in signatures):
            return
    raise SignatureInvalid("no v1 signature matches")
