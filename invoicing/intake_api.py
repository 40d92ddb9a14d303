"""HTTP doors for payment intake: bank statement upload, the review queue, gateway notifications."""

from __future__ import annotations

from decimal import Decimal

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.api import ReadViewSet, error_schema
from hub.api_common import error_body

from . import gateways
from .bank_statements import MAX_FILE_BYTES, bank_statement_import, import_summary
from .matching import match_confirm, match_reassign
from .models import BankStatementImport, Invoice, MatchDecision, StatementImportStatus


class StatementUploadInput(serializers.Serializer):
    file = serializers.FileField()
    only_valid = serializers.BooleanField(
        default=False, help_text="Import the valid documents of a file with broken lines; list the rest."
    )


StatementSummary = inline_serializer(
    "BankStatementSummary",
    fields={
        "id": serializers.IntegerField(),
        "status": serializers.ChoiceField(choices=StatementImportStatus.choices),
        "file_name": serializers.CharField(),
        "encoding": serializers.CharField(),
        "format_version": serializers.CharField(),
        "period_start": serializers.DateField(allow_null=True),
        "period_end": serializers.DateField(allow_null=True),
        "documents": serializers.IntegerField(),
        "imported": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "skipped": serializers.IntegerField(),
        "matched": serializers.IntegerField(),
        "waiting_review": serializers.IntegerField(),
        "errors": serializers.ListField(child=serializers.CharField()),
    },
)


class BankStatementUpload(APIView):
    """``POST /api/v1/bank-statements/`` (multipart field ``file``)."""

    parser_classes = [MultiPartParser, FormParser]
    queryset = BankStatementImport.objects.none()

    @extend_schema(
        summary="Upload a 1CClientBankExchange statement (1.02/1.03, Windows-1251 or UTF-8)",
        description=(
            "Incoming payments to our settlement accounts become payments and are matched to invoices. "
            "A file with a broken line is refused (400, `fields.file` lists each line and reason) unless "
            "`only_valid` is true; files over 10 MB are refused. Re-uploading creates nothing twice."
        ),
        request={"multipart/form-data": StatementUploadInput},
        responses={201: StatementSummary, **error_schema(400, 401, 403)},
    )
    def post(self, request):
        data = StatementUploadInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = request.user if getattr(request.user, "pk", None) else None
        upload = data.validated_data["file"]
        log = bank_statement_import(
            # Never more than the limit plus one byte in memory: enough for the service to refuse it.
            data=upload.read(MAX_FILE_BYTES + 1),
            file_name=upload.name,
            only_valid=data.validated_data["only_valid"],
            actor=user,
            origin="api",
        )
        summary = import_summary(log)
        if log.status == StatementImportStatus.REFUSED:
            body = error_body(
                "statement_refused", "The statement was refused; nothing was imported.", {"file": log.errors}
            )
            body["summary"] = summary
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response(summary, status=status.HTTP_201_CREATED)


class MatchDecisionOutput(serializers.ModelSerializer):
    class Meta:
        model = MatchDecision
        fields = [
            "id",
            "payment",
            "invoice",
            "client",
            "confidence",
            "reason",
            "status",
            "candidates",
            "created_at",
            "resolved_at",
        ]


class ReassignInput(serializers.Serializer):
    invoice = serializers.PrimaryKeyRelatedField(queryset=Invoice.objects.all())
    amount = serializers.DecimalField(
        max_digits=18, decimal_places=2, required=False, min_value=Decimal("0.01")
    )


class MatchDecisionViewSet(ReadViewSet):
    """The review queue: ``?status=review``; one POST confirms or reassigns."""

    queryset = MatchDecision.objects.select_related("payment", "invoice").order_by("-id")
    output_serializer = MatchDecisionOutput
    filterset_fields = ["status", "payment", "invoice", "client"]
    ordering_fields = ["id", "confidence"]

    @extend_schema(
        summary="Confirm the suggested allocation",
        request=None,
        responses={200: MatchDecisionOutput, **error_schema(400, 401, 403, 404, 409)},
    )
    @action(detail=True, methods=["post"])
    def confirm(self, request, *args, **kwargs):
        decision = match_confirm(decision=self.get_object(), actor=self._actor(), origin="api")
        return self._respond(decision)

    @extend_schema(
        summary="Apply the payment to another invoice",
        request=ReassignInput,
        responses={200: MatchDecisionOutput, **error_schema(400, 401, 403, 404, 409)},
    )
    @action(detail=True, methods=["post"])
    def reassign(self, request, *args, **kwargs):
        data = self._parse(ReassignInput)
        decision = match_reassign(decision=self.get_object(), actor=self._actor(), origin="api", **data)
        return self._respond(decision)


def _remote(request) -> str:
    return request.META.get("REMOTE_ADDR", "")


@csrf_exempt
@require_POST
def yookassa_webhook(request):
    """``POST /webhooks/yookassa/``: trusted only after re-reading the payment from the YooKassa API."""
    outcome = gateways.yookassa_notification_process(body=request.body, remote_addr=_remote(request))
    return JsonResponse({"status": outcome.status, "reason": outcome.reason}, status=outcome.http_status)


@csrf_exempt
@require_POST
def stripe_webhook(request):
    """``POST /webhooks/stripe/``: ``Stripe-Signature`` checked, 300 s tolerance."""
    outcome = gateways.stripe_event_process(
        body=request.body, signature=request.headers.get("Stripe-Signature", ""), remote_addr=_remote(request)
    )
    return JsonResponse({"status": outcome.status, "reason": outcome.reason}, status=outcome.http_status)
