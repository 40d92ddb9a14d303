"""Pay online: issuing an invoice creates a payment at the configured gateway and keeps its link.

``HUB_PAY_ONLINE_GATEWAY`` names the gateway ("yookassa" or "stripe"; empty: off). The invoice is the
idempotence key (``invoice-<pk>-<number>``), so a retried create returns the same payment instead of a
second one. The payment carries ``metadata.invoice_id``: the gateway's notification (``gateways.py``)
applies it to this invoice, which is what marks it paid.

- YooKassa API v3: ``POST {YOOKASSA_API_BASE}/v3/payments`` (Basic shopId:secretKey, ``Idempotence-Key``)
  → ``id`` and ``confirmation.confirmation_url``.
- Stripe: ``POST {STRIPE_API_BASE}/v1/checkout/sessions`` (form-encoded, Bearer secret key,
  ``Idempotency-Key``) → ``id`` and ``url``.

Every call is a ``GatewayEvent`` row (``created`` or ``failed`` with the reason). A failed call leaves the
invoice issued without a link; the task ``invoicing.create_payment_link`` retries it.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction

from hub.events import event_record

from .models import (
    OPEN_INVOICE_STATUSES,
    GatewayEvent,
    GatewayEventStatus,
    Invoice,
    InvoiceKind,
    PayOnlineGateway,
)

logger = logging.getLogger(__name__)
EVENT_TYPE = "payment.create"


class PaymentLinkFailed(Exception):
    """The gateway refused or could not be reached; ``retryable`` when trying again may help."""

    def __init__(self, reason: str, *, retryable: bool = True):
        super().__init__(reason)
        self.retryable = retryable


def pay_online_gateway() -> str:
    """The configured gateway, or "" when pay online is off or the gateway lacks its credentials."""
    gateway = (settings.HUB_PAY_ONLINE_GATEWAY or "").strip().lower()
    if gateway == PayOnlineGateway.YOOKASSA:
        return gateway if settings.YOOKASSA_SHOP_ID and settings.YOOKASSA_SECRET_KEY else ""
    if gateway == PayOnlineGateway.STRIPE:
        return gateway if settings.STRIPE_SECRET_KEY else ""
    return ""


def idempotence_key(invoice: Invoice) -> str:
    return f"invoice-{invoice.pk}-{invoice.number}"


def _post(url: str, *, body: bytes, headers: dict[str, str], gateway: str) -> dict:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=settings.HUB_GATEWAY_TIMEOUT) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:500].decode("utf-8", errors="replace")
        # 4xx (bad request, bad credentials) will not heal by itself, except 409/429 (in progress, rate).
        retryable = exc.code >= 500 or exc.code in (409, 429)
        raise PaymentLinkFailed(
            f"{gateway} API answered HTTP {exc.code}: {detail}", retryable=retryable
        ) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise PaymentLinkFailed(f"{gateway} API unreachable: {exc}") from exc
    except ValueError as exc:
        raise PaymentLinkFailed(f"{gateway} API answered something that is not JSON") from exc


def _yookassa_create(invoice: Invoice) -> tuple[str, str, dict]:
    body = {
        "amount": {"value": f"{invoice.amount_total:.2f}", "currency": invoice.currency},
        "capture": True,
        "confirmation": {"type": "redirect", "return_url": settings.HUB_PUBLIC_URL or ""},
        "description": f"Оплата по счёту № {invoice.number}"[:128],
        "metadata": {"invoice_id": str(invoice.pk)},
    }
    token = base64.b64encode(f"{settings.YOOKASSA_SHOP_ID}:{settings.YOOKASSA_SECRET_KEY}".encode()).decode()
    answer = _post(
        f"{settings.YOOKASSA_API_BASE.rstrip('/')}/v3/payments",
        body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        headers={
            "Authorization": f"Basic {token}",
            "Idempotence-Key": idempotence_key(invoice),
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
        gateway="YooKassa",
    )
    payment_id = str(answer.get("id") or "")
    url = str((answer.get("confirmation") or {}).get("confirmation_url") or "")
    if not payment_id or not url:
        raise PaymentLinkFailed(
            "YooKassa answered without id or confirmation.confirmation_url", retryable=False
        )
    return payment_id, url, answer


def _stripe_create(invoice: Invoice) -> tuple[str, str, dict]:
    # Stripe amounts are integers in the currency's minor unit (kopecks, cents).
    minor = int((invoice.amount_total * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))
    fields = [
        ("mode", "payment"),
        ("line_items[0][price_data][currency]", invoice.currency.lower()),
        ("line_items[0][price_data][unit_amount]", str(minor)),
        ("line_items[0][price_data][product_data][name]", f"Счёт № {invoice.number}"),
        ("line_items[0][quantity]", "1"),
        ("client_reference_id", str(invoice.pk)),
        ("metadata[invoice_id]", str(invoice.pk)),
        # The payment intent carries it too: its ``payment_intent.succeeded`` event is what we receive.
        ("payment_intent_data[metadata][invoice_id]", str(invoice.pk)),
    ]
    if settings.HUB_PUBLIC_URL:
        fields.append(("success_url", settings.HUB_PUBLIC_URL))
    answer = _post(
        f"{settings.STRIPE_API_BASE.rstrip('/')}/v1/checkout/sessions",
        body=urllib.parse.urlencode(fields).encode("ascii"),
        headers={
            "Authorization": f"Bearer {settings.STRIPE_SECRET_KEY}",
            "Idempotency-Key": idempotence_key(invoice),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
        gateway="Stripe",
    )
    session_id, url = str(answer.get("id") or ""), str(answer.get("url") or "")
    if not session_id or not url:
        raise PaymentLinkFailed("Stripe answered without id or url", retryable=False)
    return session_id, url, answer


CREATORS = {PayOnlineGateway.YOOKASSA: _yookassa_create, PayOnlineGateway.STRIPE: _stripe_create}


def _log(
    *, gateway: str, invoice: Invoice, status: str, reason: str = "", body: str = "", external_id: str = ""
):
    GatewayEvent.objects.create(
        gateway=gateway,
        event_type=EVENT_TYPE,
        external_id=external_id[:255],
        status=status,
        reason=reason or f"invoice {invoice.number} (id {invoice.pk})",
        body=body[:65536],
    )


def invoice_payment_link_create(*, invoice: Invoice, origin: str = "pay_online") -> Invoice:
    """Create the invoice's payment at the configured gateway and keep its link; idempotent.

    Nothing happens when pay online is off, when the invoice already has a link, or when it is not
    payable (a draft, a credit note, paid, void). Raises ``PaymentLinkFailed`` after logging the reason
    when the gateway fails; the invoice is left as it was.
    """
    gateway = pay_online_gateway()
    invoice = Invoice.objects.get(pk=invoice.pk)
    if (
        not gateway
        or invoice.payment_url
        or invoice.kind != InvoiceKind.INVOICE
        or invoice.status not in OPEN_INVOICE_STATUSES
        or invoice.amount_total <= 0
    ):
        return invoice
    try:
        payment_id, url, answer = CREATORS[gateway](invoice)
    except PaymentLinkFailed as exc:
        _log(gateway=gateway, invoice=invoice, status=GatewayEventStatus.FAILED, reason=str(exc))
        logger.warning(
            "pay online link not created",
            extra={"invoice": invoice.pk, "gateway": gateway, "reason": str(exc)},
        )
        raise
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if locked.payment_url:  # another worker stored it meanwhile (the same payment: same key)
            return locked
        locked.payment_url, locked.gateway, locked.gateway_payment_id = url, gateway, payment_id
        locked.save(update_fields=["payment_url", "gateway", "gateway_payment_id", "updated_at"])
        _log(
            gateway=gateway,
            invoice=locked,
            status=GatewayEventStatus.CREATED,
            external_id=payment_id,
            body=json.dumps(answer, ensure_ascii=False),
        )
        event_record(
            type="invoice.payment_link_created",
            instance=locked,
            payload={"number": locked.number, "gateway": gateway, "payment_id": payment_id, "url": url},
            origin=origin,
        )
    return locked
