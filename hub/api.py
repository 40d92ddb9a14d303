"""REST API of the CRM core: thin views that parse with serializers and write through services."""

from __future__ import annotations

from django.db.models import Prefetch
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from . import services
from .api_common import UpdatedSinceFilterSet, error_body, idempotent
from .models import Client, Contact, Deal, DealLine, Pipeline, Product, Stage
from .serializers import (
    ClientInput,
    ClientOutput,
    ContactInput,
    ContactOutput,
    DealInput,
    DealOutput,
    PipelineOutput,
    ProductInput,
    ProductOutput,
    StageOutput,
)


class ErrorDetail(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class ErrorResponse(serializers.Serializer):
    error = ErrorDetail()
    request_id = serializers.CharField()


ERRORS = {
    400: OpenApiResponse(ErrorResponse, description="Invalid input; `fields` names each bad field."),
    401: OpenApiResponse(ErrorResponse, description="No or bad API key."),
    403: OpenApiResponse(
        ErrorResponse, description="The key's scope or the user's permissions do not allow it."
    ),
    404: OpenApiResponse(ErrorResponse, description="No such object."),
    409: OpenApiResponse(
        ErrorResponse, description="Conflicts with stored data (duplicate, stale, immutable)."
    ),
    422: OpenApiResponse(ErrorResponse, description="Idempotency-Key reused with another body."),
}


def error_schema(*codes: int) -> dict:
    return {code: ERRORS[code] for code in codes}


class ReadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    lookup_value_regex = r"[0-9]{1,18}"
    output_serializer: type[serializers.Serializer]

    def get_serializer_class(self):
        return self.output_serializer

    def _respond(self, instance, code: int = status.HTTP_200_OK) -> Response:
        instance = self.get_queryset().get(pk=instance.pk)
        return Response(
            self.output_serializer(instance, context=self.get_serializer_context()).data, status=code
        )

    def _parse(self, serializer_class, *, partial: bool = False) -> dict:
        serializer = serializer_class(
            data=self.request.data, partial=partial, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def _actor(self):
        user = self.request.user
        return user if getattr(user, "pk", None) else None


# --- clients --------------------------------------------------------------------------------------


class ClientFilter(UpdatedSinceFilterSet):
    archived = filters.BooleanFilter(field_name="archived_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Client
        fields = ["kind", "manager", "channel", "inn", "country"]


CLIENT_ROW_VALUES = (
    *(f.attname for f in Client._meta.concrete_fields),
    "manager__username", "manager__first_name", "manager__last_name", "channel__code", "channel__name",
)  # fmt: skip


def _iso(value, tz) -> str:
    """DRF's ISO 8601 rendering of an aware datetime in the current time zone, without its per-call lookups."""
    text = value.astimezone(tz).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def client_row(row: dict, tz) -> dict:
    """One ``values()`` row of a client as ``ClientOutput`` renders it."""
    manager_id, channel_id = row["manager_id"], row["channel_id"]
    return {
        "id": row["id"], "kind": row["kind"], "name": row["name"], "legal_name": row["legal_name"],
        "inn": row["inn"], "kpp": row["kpp"], "ogrn": row["ogrn"], "foreign_tax_id": row["foreign_tax_id"],
        "country": row["country"], "email": row["email"], "phone": row["phone"], "address": row["address"],
        "manager": None if manager_id is None else {
            "id": manager_id, "username": row["manager__username"],
            "full_name": f"{row['manager__first_name']} {row['manager__last_name']}".strip(),
        },
        "channel": None if channel_id is None else {
            "id": channel_id, "code": row["channel__code"], "name": row["channel__name"],
        },
        "vat_mode": row["vat_mode"], "notes": row["notes"],
        "archived_at": None if row["archived_at"] is None else _iso(row["archived_at"], tz),
        "merged_into": row["merged_into_id"],
        "created_at": _iso(row["created_at"], tz),
        "updated_at": _iso(row["updated_at"], tz),
    }  # fmt: skip


@extend_schema_view(
    list=extend_schema(
        summary="List clients", responses={200: ClientOutput(many=True), **error_schema(400, 401)}
    ),
    retrieve=extend_schema(summary="Get a client", responses={200: ClientOutput, **error_schema(401, 404)}),
    create=extend_schema(
        summary="Create a client",
        request=ClientInput,
        responses={201: ClientOutput, **error_schema(400, 401, 403, 409, 422)},
    ),
    partial_update=extend_schema(
        summary="Change a client",
        request=ClientInput(partial=True),
        responses={200: ClientOutput, **error_schema(400, 401, 403, 404, 409)},
    ),
    destroy=extend_schema(
        summary="Archive a client (nothing is deleted)", responses={204: None, **error_schema(401, 403, 404)}
    ),
)
class ClientViewSet(ReadViewSet, mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin):
    # Only the columns the output shows: a user row carries a password hash and two timestamps that
    # would be fetched, parsed and thrown away 50 times a page.
    queryset = Client.objects.select_related("manager", "channel").only(
        *(f.name for f in Client._meta.concrete_fields),
        "manager__id", "manager__username", "manager__first_name", "manager__last_name",
        "channel__id", "channel__code", "channel__name",
    )  # fmt: skip
    output_serializer = ClientOutput
    filterset_class = ClientFilter
    search_fields = ["name", "legal_name", "inn", "email", "phone"]
    ordering_fields = ["id", "name", "created_at", "updated_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    # The list's rows, resolved once: ``values()`` with its 25 columns and two joins costs more to set up
    # than to clone, and it is the same on every request.
    row_queryset = Client.objects.values(*CLIENT_ROW_VALUES)

    def list(self, request, *args, **kwargs):
        """The hot path of every sync and integration: rows straight from ``values()``, no model objects.

        The JSON is exactly ``ClientOutput``'s (a test holds the two together).
        """
        rows = self.filter_queryset(self.row_queryset.all())
        page = self.paginate_queryset(rows)
        tz = timezone.get_current_timezone()
        return self.get_paginated_response([client_row(row, tz) for row in page])

    @idempotent
    def create(self, request, *args, **kwargs):
        data = self._parse(ClientInput)
        client = services.client_create(actor=self._actor(), origin="api", **data)
        return self._respond(client, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        client = self.get_object()
        data = self._parse(ClientInput, partial=True)
        client = services.client_update(client=client, actor=self._actor(), origin="api", **data)
        return self._respond(client)

    def destroy(self, request, *args, **kwargs):
        services.client_archive(client=self.get_object(), actor=self._actor(), origin="api")
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- contacts -------------------------------------------------------------------------------------


class ContactFilter(UpdatedSinceFilterSet):
    class Meta:
        model = Contact
        fields = ["client", "is_primary"]


@extend_schema_view(
    list=extend_schema(
        summary="List contacts", responses={200: ContactOutput(many=True), **error_schema(400, 401)}
    ),
    retrieve=extend_schema(summary="Get a contact", responses={200: ContactOutput, **error_schema(401, 404)}),
    create=extend_schema(
        summary="Create a contact",
        request=ContactInput,
        responses={201: ContactOutput, **error_schema(400, 401, 403, 409, 422)},
    ),
    partial_update=extend_schema(
        summary="Change a contact",
        request=ContactInput(partial=True),
        responses={200: ContactOutput, **error_schema(400, 401, 403, 404, 409)},
    ),
)
class ContactViewSet(ReadViewSet, mixins.CreateModelMixin, mixins.UpdateModelMixin):
    queryset = Contact.objects.all()
    output_serializer = ContactOutput
    filterset_class = ContactFilter
    search_fields = ["last_name", "first_name", "email", "phone"]
    ordering_fields = ["id", "last_name", "created_at", "updated_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    @idempotent
    def create(self, request, *args, **kwargs):
        data = self._parse(ContactInput)
        contact = services.contact_create(actor=self._actor(), origin="api", **data)
        return self._respond(contact, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        contact = self.get_object()
        data = self._parse(ContactInput, partial=True)
        contact = services.contact_update(contact=contact, actor=self._actor(), origin="api", **data)
        return self._respond(contact)


# --- products, pipelines, stages ------------------------------------------------------------------


class ProductFilter(UpdatedSinceFilterSet):
    class Meta:
        model = Product
        fields = ["is_active", "currency", "sku"]


@extend_schema_view(
    list=extend_schema(
        summary="List products", responses={200: ProductOutput(many=True), **error_schema(400, 401)}
    ),
    retrieve=extend_schema(summary="Get a product", responses={200: ProductOutput, **error_schema(401, 404)}),
    create=extend_schema(
        summary="Create a product",
        request=ProductInput,
        responses={201: ProductOutput, **error_schema(400, 401, 403, 409, 422)},
    ),
    partial_update=extend_schema(
        summary="Change a product",
        request=ProductInput(partial=True),
        responses={200: ProductOutput, **error_schema(400, 401, 403, 404, 409)},
    ),
)
class ProductViewSet(ReadViewSet, mixins.CreateModelMixin, mixins.UpdateModelMixin):
    queryset = Product.objects.all()
    output_serializer = ProductOutput
    filterset_class = ProductFilter
    search_fields = ["sku", "name"]
    ordering_fields = ["id", "sku", "name", "updated_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    @idempotent
    def create(self, request, *args, **kwargs):
        product = services.product_create(actor=self._actor(), origin="api", **self._parse(ProductInput))
        return self._respond(product, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        product = self.get_object()
        data = self._parse(ProductInput, partial=True)
        return self._respond(
            services.product_update(product=product, actor=self._actor(), origin="api", **data)
        )


@extend_schema_view(
    list=extend_schema(
        summary="List pipelines with their stages",
        responses={200: PipelineOutput(many=True), **error_schema(400, 401)},
    ),
    retrieve=extend_schema(
        summary="Get a pipeline", responses={200: PipelineOutput, **error_schema(401, 404)}
    ),
)
class PipelineViewSet(ReadViewSet):
    queryset = Pipeline.objects.prefetch_related(
        Prefetch("stages", queryset=Stage.objects.order_by("order", "id"))
    )
    output_serializer = PipelineOutput
    filterset_class = type(
        "PipelineFilter",
        (UpdatedSinceFilterSet,),
        {"Meta": type("Meta", (), {"model": Pipeline, "fields": ["is_default"]})},
    )
    search_fields = ["name"]
    ordering_fields = ["id", "name", "updated_at"]


class StageFilter(UpdatedSinceFilterSet):
    class Meta:
        model = Stage
        fields = ["pipeline", "is_won", "is_lost", "code"]


@extend_schema_view(
    list=extend_schema(
        summary="List stages", responses={200: StageOutput(many=True), **error_schema(400, 401)}
    ),
    retrieve=extend_schema(summary="Get a stage", responses={200: StageOutput, **error_schema(401, 404)}),
)
class StageViewSet(ReadViewSet):
    queryset = Stage.objects.all()
    output_serializer = StageOutput
    filterset_class = StageFilter
    search_fields = ["name", "code"]
    ordering_fields = ["id", "order", "updated_at"]


# --- deals ----------------------------------------------------------------------------------------


class DealFilter(UpdatedSinceFilterSet):
    class Meta:
        model = Deal
        fields = ["client", "pipeline", "stage", "status", "manager", "channel", "currency"]


@extend_schema_view(
    list=extend_schema(
        summary="List deals with their lines",
        responses={200: DealOutput(many=True), **error_schema(400, 401)},
    ),
    retrieve=extend_schema(summary="Get a deal", responses={200: DealOutput, **error_schema(401, 404)}),
    create=extend_schema(
        summary="Create a deal (lines nested)",
        request=DealInput,
        responses={201: DealOutput, **error_schema(400, 401, 403, 409, 422)},
    ),
    partial_update=extend_schema(
        summary="Change a deal: fields, stage, or lines (a given `lines` list replaces all lines)",
        request=DealInput(partial=True),
        responses={200: DealOutput, **error_schema(400, 401, 403, 404, 409)},
    ),
)
class DealViewSet(ReadViewSet, mixins.CreateModelMixin, mixins.UpdateModelMixin):
    queryset = Deal.objects.select_related("stage").prefetch_related(
        Prefetch("lines", queryset=DealLine.objects.order_by("position", "id"))
    )
    output_serializer = DealOutput
    filterset_class = DealFilter
    search_fields = ["title", "client__name", "client__inn"]
    ordering_fields = ["id", "created_at", "updated_at", "amount_total", "won_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    @idempotent
    def create(self, request, *args, **kwargs):
        data = self._parse(DealInput)
        data.pop("expected_updated_at", None)
        deal = services.deal_create(actor=self._actor(), origin="api", **data)
        return self._respond(deal, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        deal = self.get_object()
        data = self._parse(DealInput, partial=True)
        if "client" in data and data["client"].pk != deal.client_id:
            return Response(
                error_body(
                    "validation_error",
                    "A deal cannot move to another client.",
                    {"client": ["Cannot be changed."]},
                ),
                status=status.HTTP_400_BAD_REQUEST,
            )
        data.pop("client", None)
        deal = services.deal_update(deal=deal, actor=self._actor(), origin="api", **data)
        return self._respond(deal)
