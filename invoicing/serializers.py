"""Input and output shapes of invoices and payments."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from hub.fast_serializers import CompiledOutputSerializer
from hub.models import Client, Deal, VatMode
from hub.serializers import LineInput

from .models import Invoice, InvoiceLine, Payment, PaymentAllocation, PaymentSource


class InvoiceLineOutput(CompiledOutputSerializer):
    class Meta:
        model = InvoiceLine
        fields = [
            "id",
            "position",
            "product",
            "description",
            "unit",
            "quantity",
            "unit_price",
            "discount_pct",
            "vat_rate",
            "unit_cost",
            "amount_net",
            "vat_amount",
            "amount_total",
            "cost_total",
        ]
        read_only_fields = fields


class InvoiceOutput(CompiledOutputSerializer):
    lines = InvoiceLineOutput(many=True, read_only=True)
    amount_due = serializers.DecimalField(max_digits=18, decimal_places=2, read_only=True)
    is_overdue = serializers.BooleanField(read_only=True)

    class Meta:
        model = Invoice
        fields = [
            "id",
            "kind",
            "number",
            "status",
            "company",
            "client",
            "deal",
            "credit_note_for",
            "currency",
            "vat_mode",
            "issue_date",
            "due_date",
            "purpose",
            "payment_url",
            "amount_net",
            "vat_amount",
            "amount_total",
            "amount_paid",
            "amount_due",
            "is_overdue",
            "issued_at",
            "sent_at",
            "paid_at",
            "voided_at",
            "lines",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class InvoiceInput(serializers.Serializer):
    client = serializers.PrimaryKeyRelatedField(queryset=Client.objects.all())
    deal = serializers.PrimaryKeyRelatedField(queryset=Deal.objects.all(), required=False, allow_null=True)
    currency = serializers.CharField(max_length=3, required=False)
    vat_mode = serializers.ChoiceField(choices=VatMode.choices, required=False)
    due_date = serializers.DateField(required=False, allow_null=True)
    purpose = serializers.CharField(max_length=210, required=False, allow_blank=True)
    lines = LineInput(many=True, min_length=1, max_length=500)


class AllocationOutput(CompiledOutputSerializer):
    invoice_number = serializers.CharField(source="invoice.number", read_only=True)

    class Meta:
        model = PaymentAllocation
        fields = ["id", "invoice", "invoice_number", "amount", "created_at"]
        read_only_fields = fields


class PaymentOutput(CompiledOutputSerializer):
    allocations = AllocationOutput(many=True, read_only=True)
    amount_unallocated = serializers.DecimalField(max_digits=18, decimal_places=2, read_only=True)

    class Meta:
        model = Payment
        fields = [
            "id",
            "company",
            "client",
            "source",
            "external_id",
            "amount",
            "currency",
            "received_at",
            "payer_name",
            "payer_inn",
            "purpose",
            "amount_allocated",
            "amount_unallocated",
            "status",
            "allocations",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AllocationInput(serializers.Serializer):
    invoice = serializers.PrimaryKeyRelatedField(queryset=Invoice.objects.all())
    amount = serializers.DecimalField(
        max_digits=18, decimal_places=2, min_value=Decimal("0.01"), required=False
    )


class PaymentInput(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=18, decimal_places=2, min_value=Decimal("0.01"))
    currency = serializers.CharField(max_length=3, required=False)
    received_at = serializers.DateTimeField()
    client = serializers.PrimaryKeyRelatedField(
        queryset=Client.objects.all(), required=False, allow_null=True
    )
    source = serializers.ChoiceField(
        choices=[PaymentSource.MANUAL, PaymentSource.API], default=PaymentSource.API
    )
    external_id = serializers.CharField(max_length=255, required=False, allow_blank=True)
    payer_name = serializers.CharField(max_length=255, required=False, allow_blank=True)
    payer_inn = serializers.CharField(max_length=20, required=False, allow_blank=True)
    purpose = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    allocations = AllocationInput(many=True, required=False, max_length=100)
