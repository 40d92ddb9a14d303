"""REST API of the figures: ``/api/v1/analytics/<figure>/`` with one set of filters and CSV/XLSX export.

Every endpoint answers a table: ``columns`` and ``rows``; a figure that cannot be computed is ``null``
and its row's ``no_data`` says why. ``?export=csv`` or ``?export=xlsx`` downloads the same table.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from decimal import Decimal

import django_filters
from django.http import HttpResponse
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.views import APIView

from hub.api import ReadViewSet, error_schema
from hub.api_common import UpdatedSinceFilterSet, error_body, idempotent
from hub.fast_serializers import CompiledOutputSerializer
from hub.models import Channel

from . import selectors, services
from .models import MarketingSpend
from .rollups import company_currency
from .selectors import Filters, Report

MIN_DATE, MAX_DATE = dt.date(1990, 1, 1), dt.date(2199, 12, 31)


class FiltersInput(serializers.Serializer):
    date_from = serializers.DateField(required=False, help_text="First day of the period (ISO date).")
    date_to = serializers.DateField(required=False, help_text="Last day of the period (ISO date), included.")
    channel = serializers.IntegerField(required=False, min_value=1, max_value=2**62)
    manager = serializers.IntegerField(required=False, min_value=1, max_value=2**62)
    pipeline = serializers.IntegerField(required=False, min_value=1, max_value=2**62)
    product = serializers.IntegerField(required=False, min_value=1, max_value=2**62)
    export = serializers.ChoiceField(choices=["csv", "xlsx"], required=False)

    def validate(self, attrs):
        today = timezone.localdate()
        date_to = attrs.get("date_to") or today
        date_from = attrs.get("date_from") or (date_to.replace(day=1) - dt.timedelta(days=334)).replace(day=1)
        errors = {}
        for name, value in (("date_from", date_from), ("date_to", date_to)):
            if not MIN_DATE <= value <= MAX_DATE:
                errors[name] = [f"Must be between {MIN_DATE} and {MAX_DATE}."]
        if not errors and date_from > date_to:
            errors["date_from"] = ["Must not be after date_to."]
        if errors:
            raise serializers.ValidationError(errors)
        attrs["date_from"], attrs["date_to"] = date_from, date_to
        return attrs


class TableOutput(serializers.Serializer):
    currency = serializers.CharField(help_text="The company currency every amount is in.")
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    filters = serializers.DictField()
    columns = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(
        child=serializers.DictField(),
        help_text="One object per row; a null figure has its reason under the row's `no_data`.",
    )


PARAMS = [
    OpenApiParameter("date_from", OpenApiTypes.DATE, description="Default: 12 months back."),
    OpenApiParameter("date_to", OpenApiTypes.DATE, description="Default: today."),
    OpenApiParameter("channel", OpenApiTypes.INT, description="Acquisition channel id."),
    OpenApiParameter("manager", OpenApiTypes.INT, description="Manager (user) id."),
    OpenApiParameter("pipeline", OpenApiTypes.INT, description="Pipeline id."),
    OpenApiParameter("product", OpenApiTypes.INT, description="Product id (revenue, cost, margin only)."),
    OpenApiParameter("export", OpenApiTypes.STR, enum=["csv", "xlsx"], description="Download as a file."),
]


def _cell(value):
    if isinstance(value, Decimal | dt.date):
        return str(value)
    return value


def export_csv(report: Report, name: str) -> HttpResponse:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*report.columns, "no_data"])
    for row in report.rows:
        reasons = "; ".join(f"{k}: {v}" for k, v in row.get("no_data", {}).items())
        writer.writerow(
            [("" if row.get(c) is None else _cell(row.get(c))) for c in report.columns] + [reasons]
        )
    response = HttpResponse(buffer.getvalue().encode("utf-8-sig"), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


def export_xlsx(report: Report, name: str) -> HttpResponse:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(name[:31])
    sheet.append([*report.columns, "no_data"])
    for row in report.rows:
        reasons = "; ".join(f"{k}: {v}" for k, v in row.get("no_data", {}).items())
        sheet.append([row.get(c) for c in report.columns] + [reasons])
    out = io.BytesIO()
    book.save(out)
    response = HttpResponse(
        out.getvalue(), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    response["Content-Disposition"] = f'attachment; filename="{name}.xlsx"'
    return response


class FigureView(APIView):
    """One figure table. Subclasses name the selector; the view only parses and renders."""

    name: str
    selector: Callable[..., Report]

    def get(self, request):
        params = FiltersInput(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        filters = Filters(
            date_from=data["date_from"],
            date_to=data["date_to"],
            channel=data.get("channel"),
            manager=data.get("manager"),
            pipeline=data.get("pipeline"),
            product=data.get("product"),
        )
        report = type(self).selector(filters=filters)
        export = data.get("export")
        if export == "csv":
            return export_csv(report, f"{self.name}_{filters.date_from}_{filters.date_to}")
        if export == "xlsx":
            return export_xlsx(report, f"{self.name}_{filters.date_from}_{filters.date_to}")
        return Response(
            {
                "currency": company_currency(),
                "date_from": filters.date_from,
                "date_to": filters.date_to,
                "filters": {
                    k: getattr(filters, k)
                    for k in ("channel", "manager", "pipeline", "product")
                    if getattr(filters, k) is not None
                },
                "columns": report.columns,
                "rows": [{k: _cell(v) for k, v in row.items()} for row in report.rows],
            }
        )


def _view(name: str, selector, doc: str) -> type[FigureView]:
    cls = type(f"{name.title().replace('-', '')}View", (FigureView,), {"name": name, "selector": selector})
    cls.get = extend_schema(
        operation_id=f"analytics_{name.replace('-', '_')}",
        summary=doc,
        parameters=PARAMS,
        responses={200: TableOutput, 409: OpenApiResponse(description="A currency rate is missing.")}
        | error_schema(400, 401, 403),
        tags=["analytics"],
    )(cls.get)
    return cls


FIGURES = {
    "summary": (selectors.analytics_summary, "Every figure of the period in one row."),
    "channels": (selectors.analytics_channels, "Per channel: spend, new clients, CAC, revenue, margin, LTV."),
    "revenue": (selectors.analytics_revenue, "Per month: revenue on issue and on payment, COGS, gross profit, margin."),
    "cac": (selectors.analytics_cac, "Per channel: marketing spend, new paying clients, CAC."),
    "ltv": (selectors.analytics_ltv, "Per channel: historical and predictive LTV, LTV/CAC, payback months."),
    "ar-aging": (selectors.analytics_ar_aging, "Open receivables today in 0–30, 31–60, 61–90 and 90+ day buckets."),
    "funnel": (selectors.analytics_funnel, "Per pipeline stage: deals that reached it, conversion, win rate."),
    "cohorts": (selectors.analytics_cohorts, "Retention of cohorts by month of first payment."),
}  # fmt: skip

urlpatterns = [
    path(f"{name}/", _view(name, staticmethod(selector), doc).as_view(), name=f"analytics-{name}")
    for name, (selector, doc) in FIGURES.items()
]


# --- marketing spend: the input CAC needs -----------------------------------------------------------


class SpendOutput(CompiledOutputSerializer):
    channel_code = serializers.CharField(source="channel.code", read_only=True)

    class Meta:
        model = MarketingSpend
        fields = ["id", "channel", "channel_code", "month", "amount", "currency", "created_at", "updated_at"]
        read_only_fields = fields


class SpendInput(serializers.Serializer):
    channel = serializers.PrimaryKeyRelatedField(queryset=Channel.objects.all())
    month = serializers.DateField(help_text="The first day of the month.")
    amount = serializers.DecimalField(max_digits=18, decimal_places=2, min_value=Decimal("0"))
    currency = serializers.CharField(max_length=3, required=False, default="RUB")


class SpendFilter(UpdatedSinceFilterSet):
    month_from = django_filters.DateFilter(field_name="month", lookup_expr="gte")
    month_to = django_filters.DateFilter(field_name="month", lookup_expr="lte")

    class Meta:
        model = MarketingSpend
        fields = ["channel", "currency"]


class SpendFileInput(serializers.Serializer):
    file = serializers.FileField(help_text="CSV with columns channel, month, amount[, currency].")


@extend_schema_view(
    list=extend_schema(
        summary="List marketing spend", responses={200: SpendOutput(many=True), **error_schema(400, 401)}
    ),
    retrieve=extend_schema(summary="Get a spend row", responses={200: SpendOutput, **error_schema(401, 404)}),
    create=extend_schema(
        summary="Set a channel's spend for a month (replaces that month's amount)",
        request=SpendInput,
        responses={201: SpendOutput, **error_schema(400, 401, 403, 422)},
    ),
    import_csv=extend_schema(
        summary="Import spend from CSV: all rows or none; a bad row is named by its number",
        request={"multipart/form-data": SpendFileInput},
        responses={201: OpenApiResponse(description="{'imported': N}"), **error_schema(400, 401, 403)},
    ),
)
class SpendViewSet(ReadViewSet, mixins.CreateModelMixin):
    queryset = MarketingSpend.objects.select_related("channel")
    output_serializer = SpendOutput
    filterset_class = SpendFilter
    search_fields = ["channel__name", "channel__code"]
    ordering_fields = ["id", "month", "updated_at"]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @idempotent
    def create(self, request, *args, **kwargs):
        spend = services.spend_set(actor=self._actor(), origin="api", **self._parse(SpendInput))
        return self._respond(spend, status.HTTP_201_CREATED)

    @action(detail=False, methods=["post"], url_path="import")
    def import_csv(self, request, *args, **kwargs):
        upload = self._parse(SpendFileInput)["file"]
        if upload.size > 5 * 1024 * 1024:
            return Response(error_body("file_too_large", "A spend file may be at most 5 MB."), status=400)
        imported = services.spend_import_csv(data=upload.read(), actor=self._actor(), origin="api")
        return Response({"imported": imported}, status=status.HTTP_201_CREATED)


spend_router = DefaultRouter(trailing_slash=True)
spend_router.include_root_view = False
spend_router.register("spend", SpendViewSet, basename="marketing-spend")
urlpatterns += spend_router.urls
