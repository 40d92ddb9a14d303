"""Overdue invoices: found daily by beat, ``invoice.overdue`` emitted once per invoice."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone

from hub.events import event_record

from .models import OPEN_INVOICE_STATUSES, Invoice, OverdueNotice


def invoices_mark_overdue(*, today: dt.date | None = None, origin: str = "beat") -> int:
    """Record every open invoice past its due date that is not yet recorded; return how many."""
    today = today or timezone.localdate()
    found = 0
    candidates = (
        Invoice.objects.filter(
            status__in=OPEN_INVOICE_STATUSES, due_date__lt=today, overdue_notice__isnull=True
        )
        .select_related("client")
        .order_by("due_date", "id")
    )
    for invoice in candidates.iterator(chunk_size=500):
        try:
            with transaction.atomic():
                OverdueNotice.objects.create(invoice=invoice, due_date=invoice.due_date)
                event_record(
                    type="invoice.overdue",
                    instance=invoice,
                    payload={
                        "number": invoice.number,
                        "client": invoice.client_id,
                        "deal": invoice.deal_id,
                        "due_date": invoice.due_date,
                        "days_overdue": (today - invoice.due_date).days,
                        "amount_due": invoice.amount_due,
                        "currency": invoice.currency,
                    },
                    origin=origin,
                )
        except IntegrityError:  # another run recorded it a moment ago
            continue
        found += 1
    return found
