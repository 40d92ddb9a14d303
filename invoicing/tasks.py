"""Thin tasks of the money side."""

from celery import shared_task

from .overdue import invoices_mark_overdue


@shared_task(name="invoicing.find_overdue_invoices")
def find_overdue_invoices() -> int:
    return invoices_mark_overdue()
