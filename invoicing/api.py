"""REST API for invoices (read, create drafts, issue) and payments (read, record)."""

from __future__ import annotations

from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.api import ReadViewSet, error_schema
from hub.api_common import UpdatedSinceFilterSet, idempotent
from hub.models import Deal

from . import services
from .models import Invoice, InvoiceLine, Payment, PaymentAllocation
from .serializers import InvoiceInput, InvoiceOutput, PaymentInput, PaymentOutput


class ReasonInput(serializers.Serializer):
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class SendInput(serializers.Serializer):
    to = serializers.EmailField(required=False)


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
    pdf=extend_schema(
        summary="The invoice as PDF (rendered once, then served from the cache)",
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY),
            **error_schema(401, 404, 409),
        },
    ),
    void=extend_schema(
        summary="Void an unpaid issued invoice (its number stays used)",
        request=ReasonInput,
        responses={200: InvoiceOutput, **error_schema(400, 401, 403, 404, 409)},
    ),
    credit_note=extend_schema(
        summary="Issue a credit note for the whole invoice; returns the credit note",
        request=ReasonInput,
        responses={201: InvoiceOutput, **error_schema(400, 401, 403, 404, 409)},
    ),
    send=extend_schema(
        summary="E-mail the PDF (to the client's address unless `to` is given); logged per delivery",
        request=SendInput,
        responses={202: InvoiceOutput, **error_schema(400, 401, 403, 404, 409)},
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

    @action(detail=True, methods=["get"])
    def pdf(self, request, *args, **kwargs):
        invoice = self.get_object()
        data = services.invoice_pdf(invoice=invoice)
        response = HttpResponse(data, content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{invoice.number}.pdf"'
        return response

    @action(detail=True, methods=["post"])
    @idempotent
    def void(self, request, *args, **kwargs):
        data = self._parse(ReasonInput)
        invoice = services.invoice_void(invoice=self.get_object(), actor=self._actor(), origin="api", **data)
        return self._respond(invoice)

    @action(detail=True, methods=["post"], url_path="credit-note")
    @idempotent
    def credit_note(self, request, *args, **kwargs):
        data = self._parse(ReasonInput)
        note = services.invoice_credit_note_create(
            invoice=self.get_object(), actor=self._actor(), origin="api", **data
        )
        return self._respond(note, status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    @idempotent
    def send(self, request, *args, **kwargs):
        data = self._parse(SendInput)
        invoice = self.get_object()
        services.invoice_send(invoice=invoice, actor=self._actor(), origin="api", **data)
        return self._respond(invoice, status.HTTP_202_ACCEPTED)


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


class DealIssueInvoiceView(APIView):
    """``POST /api/v1/deals/{id}/issue-invoice/``: issue the deal's invoice in one call.

    Mounted by ``hub/urls.py`` (the CRM core does not import invoicing)."""

    @extend_schema(
        summary="Issue the deal's invoice: its draft, or a new one from the deal's lines",
        description="A deal that already has an open issued invoice gets 409 `already_invoiced`.",
        request=None,
        responses={201: InvoiceOutput, **error_schema(400, 401, 403, 404, 409, 422)},
        tags=["deals"],
    )
    @idempotent
    def post(self, request, pk: int):
        deal = get_object_or_404(Deal.objects.select_related("client"), pk=pk)
        invoice, _created = services.invoice_issue_from_deal(
            deal=deal, actor=request.user if getattr(request.user, "pk", None) else None, origin="api"
        )
        invoice = InvoiceViewSet.queryset.get(pk=invoice.pk)
        return Response(InvoiceOutput(invoice).data, status=status.HTTP_201_CREATED)
