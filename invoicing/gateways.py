"""Payment gateway notifications: YooKassa ``payment.succeeded`` and Stripe ``payment_intent.succeeded``.

A notification is only a hint. YooKassa does not sign its notifications, so the payment is re-read from
``GET {YOOKASSA_API_BASE}/v3/payments/{id}`` with HTTP Basic ``shopId:secretKey`` and only what the API
says is trusted. Stripe signs: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>``,
checked in constant time with a 300 s tolerance. Every notification, accepted or refused, is a
``GatewayEvent`` row; the payment's gateway id is its natural key, so a replay records nothing twice.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from hub.errors import Conflict

from .models import GatewayEvent, GatewayEventStatus, Invoice, Payment, PaymentSource

logger = logging.getLogger(__name__)
STRIPE_TOLERANCE_SECONDS = 300


@dataclass(frozen=True)
class GatewayPayment:
    """What crosses the boundary from a gateway: a verified, succeeded payment."""

    gateway: str
    external_id: str
    amount: Decimal
    currency: str
    paid_at: dt.datetime
    description: str = ""
    invoice_id: int | None = None


@dataclass(frozen=True)
class Outcome:
    status: str
    reason: str = ""
    payment: Payment | None = None
    retryable: bool = False

    @property
    def http_status(self) -> int:
        if self.status in (
            GatewayEventStatus.ACCEPTED,
            GatewayEventStatus.DUPLICATE,
            GatewayEventStatus.IGNORED,
        ):
            return 200
        return 503 if self.retryable else 400


class GatewayRefused(Exception):
    def __init__(self, reason: str, *, retryable: bool = False):
        super().__init__(reason)
        self.retryable = retryable


def _log(
    *,
    gateway: str,
    body: bytes,
    outcome: Outcome,
    event_type: str = "",
    external_id: str = "",
    remote_addr: str = "",
) -> Outcome:
    GatewayEvent.objects.create(
        gateway=gateway,
        event_type=event_type[:64],
        external_id=external_id[:255],
        status=outcome.status,
        reason=outcome.reason,
        remote_addr=remote_addr[:64],
        body=body[:65536].decode("utf-8", errors="replace"),
        payment=outcome.payment,
    )
    if outcome.status == GatewayEventStatus.REFUSED:
        logger.warning(
            "gateway notification refused",
            extra={"gateway": gateway, "reason": outcome.reason, "remote_addr": remote_addr},
        )
    return outcome


def _invoice_id(metadata) -> int | None:
    if not isinstance(metadata, dict):
        return None
    try:
        return int(metadata.get("invoice_id"))
    except (TypeError, ValueError):
        return None


def _record(payment: GatewayPayment, *, source: str) -> tuple[str, Payment | None, str]:
    """Record the verified payment and apply it: to the invoice it was created for, else by matching."""
    from .matching import payment_match
    from .services import payment_allocate, payment_record

    invoice = Invoice.objects.filter(pk=payment.invoice_id).first() if payment.invoice_id else None
    try:
        recorded = payment_record(
            amount=payment.amount,
            currency=payment.currency,
            received_at=payment.paid_at,
            client=invoice.client if invoice else None,
            company=invoice.company if invoice else None,
            source=source,
            external_id=payment.external_id,
            purpose=payment.description,
            origin=f"gateway:{payment.gateway}",
        )
    except Conflict as exc:
        if exc.code != "duplicate":
            raise
        existing = Payment.objects.filter(source=source, external_id=payment.external_id).first()
        return GatewayEventStatus.DUPLICATE, existing, "already recorded"
    if invoice is not None and invoice.amount_due > 0:
        try:
            payment_allocate(payment=recorded, invoice=invoice, origin=f"gateway:{payment.gateway}")
        except Exception:  # the invoice was voided meanwhile: fall back to matching
            logger.warning("gateway payment could not be applied to its invoice", exc_info=True)
    payment_match(payment=recorded, origin=f"gateway:{payment.gateway}")
    return GatewayEventStatus.ACCEPTED, recorded, ""


# --- YooKassa ---------------------------------------------------------------------------------------


def yookassa_fetch_payment(payment_id: str) -> dict:
    """Re-read a payment from the YooKassa API; the only source of truth for a notification."""
    if not settings.YOOKASSA_SHOP_ID or not settings.YOOKASSA_SECRET_KEY:
        raise GatewayRefused("YooKassa is not configured (YOOKASSA_SHOP_ID / YOOKASSA_SECRET_KEY)")
    url = f"{settings.YOOKASSA_API_BASE.rstrip('/')}/v3/payments/{urllib.request.quote(payment_id, safe='')}"
    token = base64.b64encode(f"{settings.YOOKASSA_SHOP_ID}:{settings.YOOKASSA_SECRET_KEY}".encode()).decode()
    request = urllib.request.Request(
        url, headers={"Authorization": f"Basic {token}", "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.HUB_GATEWAY_TIMEOUT) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 400):
            raise GatewayRefused(f"YooKassa does not know payment {payment_id!r} (HTTP {exc.code})") from exc
        raise GatewayRefused(f"YooKassa API answered HTTP {exc.code}", retryable=True) from exc
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        raise GatewayRefused(f"YooKassa API unreachable: {exc}", retryable=True) from exc


def _yookassa_amount(obj: dict) -> tuple[Decimal, str]:
    amount = obj.get("amount") or {}
    try:
        return Decimal(str(amount["value"])).quantize(Decimal("0.01")), str(amount["currency"]).upper()
    except (KeyError, TypeError, InvalidOperation) as exc:
        raise GatewayRefused("the payment has no valid amount {value, currency}") from exc


def yookassa_notification_process(*, body: bytes, remote_addr: str = "") -> Outcome:
    event_type = external_id = ""
    try:
        try:
            note = json.loads(body.decode("utf-8"))
            event_type = str(note.get("event", ""))
            obj = note.get("object") or {}
            external_id = str(obj.get("id", ""))
        except (ValueError, AttributeError) as exc:
            raise GatewayRefused("the body is not a YooKassa notification (JSON object expected)") from exc
        if note.get("type") != "notification" or not external_id:
            raise GatewayRefused("the body is not a YooKassa notification (type, object.id)")
        if event_type != "payment.succeeded":
            return _log(
                gateway="yookassa",
                body=body,
                event_type=event_type,
                external_id=external_id,
                remote_addr=remote_addr,
                outcome=Outcome(GatewayEventStatus.IGNORED, f"event {event_type!r} is not handled"),
            )
        fetched = yookassa_fetch_payment(external_id)
        if (
            fetched.get("id") != external_id
            or fetched.get("status") != "succeeded"
            or fetched.get("paid") is not True
        ):
            raise GatewayRefused(
                f"the YooKassa API says payment {external_id} is {fetched.get('status')!r}, not succeeded"
            )
        amount, currency = _yookassa_amount(fetched)
        claimed = _yookassa_amount(obj) if obj.get("amount") else (amount, currency)
        if claimed != (amount, currency):
            raise GatewayRefused(
                f"the notification claims {claimed[0]} {claimed[1]}, the API says {amount} {currency}"
            )
        paid_at = (
            parse_datetime(str(fetched.get("captured_at") or fetched.get("created_at") or ""))
            or timezone.now()
        )
        status, payment, reason = _record(
            GatewayPayment(
                gateway="yookassa",
                external_id=external_id,
                amount=amount,
                currency=currency,
                paid_at=paid_at,
                description=str(fetched.get("description") or "")[:1000],
                invoice_id=_invoice_id(fetched.get("metadata")),
            ),
            source=PaymentSource.YOOKASSA,
        )
        outcome = Outcome(status, reason, payment)
    except GatewayRefused as exc:
        outcome = Outcome(GatewayEventStatus.REFUSED, str(exc), retryable=exc.retryable)
    return _log(
        gateway="yookassa",
        body=body,
        event_type=event_type,
        external_id=external_id,
        remote_addr=remote_addr,
        outcome=outcome,
    )


# --- Stripe -----------------------------------------------------------------------------------------


def stripe_signature_header(*, body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The header Stripe would send; used by tests and by anyone replaying a stored event by hand."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def stripe_signature_verify(
    *,
    body: bytes,
    header: str,
    secrets: list[str],
    tolerance: int = STRIPE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise ``GatewayRefused`` unless one ``v1`` matches one secret and ``t`` is within the tolerance."""
    if not header:
        raise GatewayRefused("no Stripe-Signature header")
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError as exc:
                raise GatewayRefused("Stripe-Signature has a malformed timestamp") from exc
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise GatewayRefused("Stripe-Signature lacks t= or v1=")
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise GatewayRefused(
            f"Stripe-Signature timestamp is {int(now - timestamp)} s old; a replay is refused"
        )
    signed = f"{timestamp}.".encode() + body
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, s) for s in signatures):
            return
    raise GatewayRefused("Stripe-Signature does not match: forged or signed with another secret")


def stripe_event_process(
    *, body: bytes, signature: str, remote_addr: str = "", now: float | None = None
) -> Outcome:
    event_type = external_id = ""
    try:
        secrets = [s for s in (settings.STRIPE_WEBHOOK_SECRET, settings.STRIPE_WEBHOOK_SECRET_PREVIOUS) if s]
        if not secrets:
            raise GatewayRefused("Stripe is not configured (STRIPE_WEBHOOK_SECRET)")
        stripe_signature_verify(body=body, header=signature, secrets=secrets, now=now)
        try:
            event = json.loads(body.decode("utf-8"))
            event_type = str(event.get("type", ""))
            obj = (event.get("data") or {}).get("object") or {}
            external_id = str(obj.get("id", ""))
        except (ValueError, AttributeError) as exc:
            raise GatewayRefused("the body is not a Stripe event") from exc
        if event_type != "payment_intent.succeeded":
            return _log(
                gateway="stripe",
                body=body,
                event_type=event_type,
                external_id=external_id,
                remote_addr=remote_addr,
                outcome=Outcome(GatewayEventStatus.IGNORED, f"event {event_type!r} is not handled"),
            )
        if obj.get("status") != "succeeded" or not external_id:
            raise GatewayRefused("the payment intent is not succeeded")
        try:
            # Stripe amounts are integers in the currency's minor unit (kopecks, cents).
            amount = (Decimal(int(obj.get("amount_received") or obj["amount"])) / 100).quantize(
                Decimal("0.01")
            )
            currency = str(obj["currency"]).upper()
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayRefused("the payment intent has no valid amount/currency") from exc
        created = obj.get("created") or event.get("created")
        paid_at = dt.datetime.fromtimestamp(int(created), tz=dt.UTC) if created else timezone.now()
        status, payment, reason = _record(
            GatewayPayment(
                gateway="stripe",
                external_id=external_id,
                amount=amount,
                currency=currency,
                paid_at=paid_at,
                description=str(obj.get("description") or "")[:1000],
                invoice_id=_invoice_id(obj.get("metadata")),
            ),
            source=PaymentSource.STRIPE,
        )
        outcome = Outcome(status, reason, payment)
    except GatewayRefused as exc:
        outcome = Outcome(GatewayEventStatus.REFUSED, str(exc), retryable=exc.retryable)
    return _log(
        gateway="stripe",
        body=body,
        event_type=event_type,
        external_id=external_id,
        remote_addr=remote_addr,
        outcome=outcome,
    )
