"""Gapless numbering under concurrency (PostgreSQL: SQLite serialises writers and proves nothing)."""

import threading
from decimal import Decimal as D

import pytest
from django.db import connection, connections

from invoicing.models import Invoice
from invoicing.services import (
    invoice_create_draft,
    invoice_issue,
    invoice_template_for,
    invoice_template_verify,
)
from tests.factories import ClientFactory, CompanyFactory


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_fifty_parallel_issues_get_fifty_consecutive_numbers():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks (SELECT ... FOR UPDATE); CI runs this on PostgreSQL")
    # given 50 drafts of one company
    CompanyFactory()
    client = ClientFactory()
    lines = [{"description": "x", "quantity": D("1"), "unit_price": D("10"), "vat_rate": D("22")}]
    drafts = [invoice_create_draft(client=client, lines=lines) for _ in range(50)]
    # (the template is checked in the sandbox once, up front, as the first issue would)
    invoice_template_verify(template=invoice_template_for(client=client))
    errors = []
    barrier = threading.Barrier(50)

    def issue(draft):
        try:
            barrier.wait(timeout=30)
            invoice_issue(invoice=draft)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connections.close_all()

    # when they are issued at once from 50 threads
    threads = [threading.Thread(target=issue, args=(d,)) for d in drafts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then every one got a number, and the numbers are 1..50 without gaps or repeats
    assert errors == []
    numbers = sorted(Invoice.objects.values_list("sequence_number", flat=True))
    assert numbers == list(range(1, 51))
