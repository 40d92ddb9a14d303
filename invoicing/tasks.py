"""Thin tasks of the money side: they take ids and call services.

Rendering and sending go to the ``documents`` queue (routed by name in settings).
"""

from __future__ import annotations

import smtplib

from celery import shared_task

from . import services
from .models import Invoice
from .overdue import invoices_mark_overdue
from .pay_online import PaymentLinkFailed, invoice_payment_link_create


@shared_task(name="invoicing.find_overdue_invoices")
def find_overdue_invoices() -> int:
    return invoices_mark_overdue()


@shared_task(name="invoicing.render_invoice_pdf", acks_late=True)
def render_invoice_pdf(invoice_id: int) -> int:
    """Warm the PDF cache after issue. A second run finds the cache valid and renders nothing."""
    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is None or invoice.status == "draft":
        return 0
    return len(services.invoice_pdf(invoice=invoice))


@shared_task(
    name="invoicing.send_invoice_delivery",
    acks_late=True,
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=30,
    retry_jitter=True,
    max_retries=5,
)
def send_invoice_delivery(delivery_id: int) -> str:
    return services.invoice_delivery_send(delivery_id=delivery_id).status


@shared_task(name="invoicing.create_payment_link", bind=True, acks_late=True, max_retries=8)
def create_payment_link(self, invoice_id: int) -> str:
    """Create the invoice's pay-online link. A stored link makes it a no-op; the gateway's idempotence
    key (the invoice) makes a retried create return the same payment."""
    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is None:
        return ""
    try:
        return invoice_payment_link_create(invoice=invoice).payment_url
    except PaymentLinkFailed as exc:
        if not exc.retryable:
            return ""
        raise self.retry(exc=exc, countdown=min(30 * 2**self.request.retries, 3600)) from exc
