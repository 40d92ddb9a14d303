"""Input and output shapes of the CRM core API. Parsing only: rules live in ``hub.services``."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth import get_user_model
from rest_framework import serializers

from .fast_serializers import CompiledOutputSerializer
from .models import Channel, Client, ClientKind, Contact, Deal, DealLine, Pipeline, Product, Stage, VatMode

User = get_user_model()


class UserRefSerializer(CompiledOutputSerializer):
    full_name = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "full_name"]

    def get_full_name(self, obj) -> str:
        return obj.get_full_name()


class ChannelRefSerializer(CompiledOutputSerializer):
    class Meta:
        model = Channel
        fields = ["id", "code", "name"]


# --- clients --------------------------------------------------------------------------------------


class ClientOutput(CompiledOutputSerializer):
    manager = UserRefSerializer(read_only=True)
    channel = ChannelRefSerializer(read_only=True)

    class Meta:
        model = Client
        fields = [
            "id",
            "kind",
            "name",
            "legal_name",
            "inn",
            "kpp",
            "ogrn",
            "foreign_tax_id",
            "country",
            "email",
            "phone",
            "address",
            "manager",
            "channel",
            "vat_mode",
            "notes",
            "archived_at",
            "merged_into",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ClientInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ClientKind.choices, required=False)
    name = serializers.CharField(max_length=255)
    legal_name = serializers.CharField(max_length=255, required=False, allow_blank=True)
    inn = serializers.CharField(max_length=20, required=False, allow_blank=True)
    kpp = serializers.CharField(max_length=20, required=False, allow_blank=True)
    ogrn = serializers.CharField(max_length=20, required=False, allow_blank=True)
    foreign_tax_id = serializers.CharField(max_length=64, required=False, allow_blank=True)
    country = serializers.RegexField(r"^[A-Za-z]{2}$", required=False)
    email = serializers.CharField(max_length=254, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    address = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    manager = serializers.PrimaryKeyRelatedField(queryset=User.objects.all(), required=False, allow_null=True)
    channel = serializers.PrimaryKeyRelatedField(
        queryset=Channel.objects.all(), required=False, allow_null=True
    )
    vat_mode = serializers.ChoiceField(choices=[("", "company default"), *VatMode.choices], required=False)
    notes = serializers.CharField(max_length=10000, required=False, allow_blank=True)


# --- contacts -------------------------------------------------------------------------------------


class ContactOutput(CompiledOutputSerializer):
    class Meta:
        model = Contact
        fields = [
            "id",
            "client",
            "last_name",
            "first_name",
            "middle_name",
            "full_name",
            "position",
            "email",
            "phone",
            "is_primary",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ContactInput(serializers.Serializer):
    client = serializers.PrimaryKeyRelatedField(queryset=Client.objects.all())
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    first_name = serializers.CharField(max_length=100)
    middle_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    position = serializers.CharField(max_length=150, required=False, allow_blank=True)
    email = serializers.CharField(max_length=254, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    is_primary = serializers.BooleanField(required=False)


# --- products, pipelines --------------------------------------------------------------------------


class ProductOutput(CompiledOutputSerializer):
    class Meta:
        model = Product
        fields = [
            "id",
            "sku",
            "name",
            "unit",
            "price",
            "unit_cost",
            "currency",
            "vat_rate",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ProductInput(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=255)
    unit = serializers.CharField(max_length=20, required=False)
    price = serializers.DecimalField(max_digits=18, decimal_places=2, min_value=Decimal("0"))
    unit_cost = serializers.DecimalField(
        max_digits=18, decimal_places=2, min_value=Decimal("0"), required=False
    )
    currency = serializers.CharField(max_length=3, required=False)
    vat_rate = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal("0"), max_value=Decimal("99.99"), required=False
    )
    is_active = serializers.BooleanField(required=False)


class StageOutput(CompiledOutputSerializer):
    class Meta:
        model = Stage
        fields = ["id", "pipeline", "name", "code", "order", "is_won", "is_lost", "probability", "updated_at"]
        read_only_fields = fields


class PipelineOutput(CompiledOutputSerializer):
    stages = StageOutput(many=True, read_only=True)

    class Meta:
        model = Pipeline
        fields = ["id", "name", "is_default", "stages", "created_at", "updated_at"]
        read_only_fields = fields


# --- deals ----------------------------------------------------------------------------------------


class DealLineOutput(CompiledOutputSerializer):
    class Meta:
        model = DealLine
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


class DealOutput(CompiledOutputSerializer):
    lines = DealLineOutput(many=True, read_only=True)
    stage_code = serializers.CharField(source="stage.code", read_only=True)

    class Meta:
        model = Deal
        fields = [
            "id",
            "title",
            "client",
            "company",
            "pipeline",
            "stage",
            "stage_code",
            "status",
            "manager",
            "channel",
            "currency",
            "vat_mode",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "expected_close_date",
            "amount_net",
            "vat_amount",
            "amount_total",
            "cost_total",
            "won_at",
            "lost_at",
            "lost_reason",
            "lines",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class LineInput(serializers.Serializer):
    product = serializers.PrimaryKeyRelatedField(
        queryset=Product.objects.all(), required=False, allow_null=True
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    unit = serializers.CharField(max_length=20, required=False)
    quantity = serializers.DecimalField(max_digits=14, decimal_places=3, min_value=Decimal("0.001"))
    unit_price = serializers.DecimalField(
        max_digits=18, decimal_places=2, min_value=Decimal("0"), required=False
    )
    discount_pct = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal("0"), max_value=Decimal("100"), required=False
    )
    vat_rate = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal("0"), max_value=Decimal("99.99"), required=False
    )
    unit_cost = serializers.DecimalField(
        max_digits=18, decimal_places=2, min_value=Decimal("0"), required=False
    )


class DealInput(serializers.Serializer):
    title = serializers.CharField(max_length=255)
    client = serializers.PrimaryKeyRelatedField(queryset=Client.objects.all())
    pipeline = serializers.PrimaryKeyRelatedField(queryset=Pipeline.objects.all(), required=False)
    stage = serializers.PrimaryKeyRelatedField(
        queryset=Stage.objects.select_related("pipeline"), required=False
    )
    manager = serializers.PrimaryKeyRelatedField(queryset=User.objects.all(), required=False, allow_null=True)
    channel = serializers.PrimaryKeyRelatedField(
        queryset=Channel.objects.all(), required=False, allow_null=True
    )
    currency = serializers.CharField(max_length=3, required=False)
    vat_mode = serializers.ChoiceField(choices=VatMode.choices, required=False)
    utm_source = serializers.CharField(max_length=100, required=False, allow_blank=True)
    utm_medium = serializers.CharField(max_length=100, required=False, allow_blank=True)
    utm_campaign = serializers.CharField(max_length=100, required=False, allow_blank=True)
    expected_close_date = serializers.DateField(required=False, allow_null=True)
    lost_reason = serializers.CharField(max_length=255, required=False, allow_blank=True)
    lines = LineInput(many=True, required=False, max_length=500)
    expected_updated_at = serializers.DateTimeField(
        required=False,
        write_only=True,
        help_text="On PATCH: the updated_at you last saw; a deal changed since then is refused with 409.",
    )
