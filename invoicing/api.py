"""REST API for invoices (read, create drafts, issue) and payments (read, record)."""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action

from hub.api import ReadViewSet, error_schema
from hub.api_common import UpdatedSinceFilterSet, idempotent

from . import services
from .models import Invoice, InvoiceLine, Payment, PaymentAllocation
from .serializers import InvoiceInput, InvoiceOutput, PaymentInput, PaymentOutput


class InvoiceFilter(UpdatedSinceFilterSet):
    class Meta:
        model = Invoice
        fields = ["client", "deal", "status", "kind", "currency", "number"]


@extend_schema_view(
    list=extend_schema(
        summary="List invoices with their lines",
        responses={200: InvoiceOutput(many=True), **error_schema(400, 401)},
    ),
    retrieve=extend_schema(
        summary="Get an invoice", responses={200: InvoiceOutput, **error_schema(401, 404)}
    ),
    create=extend_schema(
        summary="Create a draft invoice (no number until issued)",
        request=InvoiceInput,
        responses={201: InvoiceOutput, **error_schema(400, 401, 403, 409, 422)},
    ),
    issue=extend_schema(
        summary="Issue a draft: assigns the next gapless number",
        request=None,
        responses={200: InvoiceOutput, **error_schema(400, 401, 403, 404, 409, 422)},
    ),
)
class InvoiceViewSet(ReadViewSet, mixins.CreateModelMixin):
    queryset = Invoice.objects.prefetch_related(
        Prefetch("lines", queryset=InvoiceLine.objects.order_by("position", "id"))
    )
    output_serializer = InvoiceOutput
    filterset_class = InvoiceFilter
    search_fields = ["number", "client__name", "client__inn"]
    ordering_fields = ["id", "created_at", "updated_at", "issue_date", "due_date", "amount_total"]

    @idempotent
    def create(self, request, *args, **kwargs):
        data = self._parse(InvoiceInput)
        invoice = services.invoice_create_draft(actor=self._actor(), origin="api", **data)
        return self._respond(invoice, status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    @idempotent
    def issue(self, request, *args, **kwargs):
        invoice = services.invoice_issue(invoice=self.get_object(), actor=self._actor(), origin="api")
        return self._respond(invoice)


class PaymentFilter(UpdatedSinceFilterSet):
    class Meta:
        model = Payment
        fields = ["client", "status", "source", "currency", "external_id"]


@extend_schema_view(
    list=extend_schema(
        summary="List payments", responses={200: PaymentOutput(many=True), **error_schema(400, 401)}
    ),
    retrieve=extend_schema(summary="Get a payment", responses={200: PaymentOutput, **error_schema(401, 404)}),
    create=extend_schema(
        summary="Record a payment, optionally allocating it to invoices",
        description="`(source, external_id)` is the natural key: the same payment twice gets 409.",
        request=PaymentInput,
        responses={201: PaymentOutput, **error_schema(400, 401, 403, 409, 422)},
    ),
)
class PaymentViewSet(ReadViewSet, mixins.CreateModelMixin):
    queryset = Payment.objects.prefetch_related(
        Prefetch("allocations", queryset=PaymentAllocation.objects.select_related("invoice").order_by("id"))
    )
    output_serializer = PaymentOutput
    filterset_class = PaymentFilter
    search_fields = ["payer_name", "payer_inn", "purpose", "external_id"]
    ordering_fields = ["id", "received_at", "created_at", "updated_at", "amount"]

    @idempotent
    def create(self, request, *args, **kwargs):
        data = self._parse(PaymentInput)
        payment = services.payment_record(actor=self._actor(), origin="api", **data)
        return self._respond(payment, status.HTTP_201_CREATED)
