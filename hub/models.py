"""The CRM core: own company, clients, contacts, channels, products, pipelines, deals, and the outbox.

Models hold fields, constraints and cheap properties. Writes go through ``hub.services``.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.utils.translation import gettext_lazy as _

currency_validator = RegexValidator(r"^[A-Z]{3}$", _("Currency must be an ISO 4217 code such as RUB or EUR."))


def money_field(**kwargs) -> models.DecimalField:
    kwargs.setdefault("default", Decimal("0.00"))
    return models.DecimalField(max_digits=18, decimal_places=2, **kwargs)


def quantity_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=14, decimal_places=3, **kwargs)


def rate_field(**kwargs) -> models.DecimalField:
    """A percentage such as 22.00 (VAT) or 5.00 (discount)."""
    kwargs.setdefault("default", Decimal("0.00"))
    return models.DecimalField(max_digits=5, decimal_places=2, **kwargs)


class TimeStamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        abstract = True


class VatMode(models.TextChoices):
    ON_TOP = "on_top", _("VAT on top of prices")
    INCLUDED = "included", _("VAT included in prices")
    NONE = "none", _("No VAT (simplified tax system)")


class Company(TimeStamped):
    """Our own legal entity: its requisites go on every invoice."""

    legal_name = models.CharField(_("legal name"), max_length=255)
    short_name = models.CharField(_("short name"), max_length=255, blank=True)
    inn = models.CharField("INN", max_length=12, blank=True)
    kpp = models.CharField("KPP", max_length=9, blank=True)
    ogrn = models.CharField("OGRN", max_length=15, blank=True)
    foreign_tax_id = models.CharField(_("foreign tax id"), max_length=64, blank=True)
    address = models.TextField(_("address"), blank=True)
    bank_name = models.CharField(_("bank name"), max_length=255, blank=True)
    bic = models.CharField("BIC", max_length=9, blank=True)
    settlement_account = models.CharField(_("settlement account"), max_length=20, blank=True)
    correspondent_account = models.CharField(_("correspondent account"), max_length=20, blank=True)
    vat_mode = models.CharField(_("VAT mode"), max_length=16, choices=VatMode, default=VatMode.ON_TOP)
    default_currency = models.CharField(
        _("default currency"), max_length=3, default="RUB", validators=[currency_validator]
    )
    is_default = models.BooleanField(_("default company"), default=False)

    class Meta:
        verbose_name = _("own company")
        verbose_name_plural = _("own companies")
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_company"
            ),
            models.CheckConstraint(
                condition=Q(default_currency__regex=r"^[A-Z]{3}$"), name="company_currency_iso"
            ),
        ]

    def __str__(self) -> str:
        return self.short_name or self.legal_name


class Channel(TimeStamped):
    """An acquisition channel (advertising, referral, exhibition...): the unit CAC is computed for."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    code = models.SlugField(_("code"), max_length=50, unique=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("channel")
        verbose_name_plural = _("channels")

    def __str__(self) -> str:
        return self.name


class ClientKind(models.TextChoices):
    COMPANY = "company", _("Company")
    PERSON = "person", _("Person")


class Client(TimeStamped):
    kind = models.CharField(_("kind"), max_length=10, choices=ClientKind, default=ClientKind.COMPANY)
    name = models.CharField(_("name"), max_length=255)
    legal_name = models.CharField(_("legal name"), max_length=255, blank=True)
    inn = models.CharField("INN", max_length=12, blank=True)
    kpp = models.CharField("KPP", max_length=9, blank=True)
    ogrn = models.CharField("OGRN", max_length=15, blank=True)
    foreign_tax_id = models.CharField(_("foreign tax id"), max_length=64, blank=True)
    country = models.CharField(_("country"), max_length=2, default="RU")
    email = models.EmailField(_("e-mail"), blank=True)
    phone = models.CharField(_("phone (E.164)"), max_length=20, blank=True)
    address = models.TextField(_("address"), blank=True)
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("manager"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="clients",
        db_index=False,  # client_manager_idx leads with it
    )
    channel = models.ForeignKey(
        Channel,
        verbose_name=_("acquisition channel"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="clients",
        db_index=False,  # client_channel_idx leads with it
    )
    vat_mode = models.CharField(_("VAT mode"), max_length=16, choices=VatMode, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    archived_at = models.DateTimeField(_("archived at"), null=True, blank=True)
    merged_into = models.ForeignKey(
        "self",
        verbose_name=_("merged into"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="merged_clients",
        db_index=False,  # client_merged_idx: only the few merged rows
    )

    class Meta:
        verbose_name = _("client")
        verbose_name_plural = _("clients")
        constraints = [
            models.CheckConstraint(
                condition=Q(inn="") | Q(inn__regex=r"^(\d{10}|\d{12})$"), name="client_inn_format"
            ),
            models.CheckConstraint(
                condition=Q(kpp="") | Q(kpp__regex=r"^\d{4}[0-9A-Z]{2}\d{3}$"), name="client_kpp_format"
            ),
            models.CheckConstraint(
                condition=Q(phone="") | Q(phone__regex=r"^\+[1-9]\d{6,14}$"), name="client_phone_e164"
            ),
            models.CheckConstraint(
                condition=~Q(merged_into=models.F("id")), name="client_not_merged_into_self"
            ),
            # A legal entity is one INN+KPP pair (branches share the INN but differ in KPP).
            models.UniqueConstraint(
                fields=["inn", "kpp"],
                condition=~Q(inn="") & Q(merged_into__isnull=True),
                name="client_unique_inn_kpp",
            ),
        ]
        indexes = [
            models.Index(fields=["manager", "-updated_at"], name="client_manager_idx"),
            models.Index(fields=["channel", "created_at"], name="client_channel_idx"),
            models.Index(fields=["name"], name="client_name_idx"),
            # Each index is paid on every insert (a bulk pull writes 10,000 clients a page), so one
            # per question asked: INN equality and prefix search (pattern ops serve both), e-mail as
            # matched (case-insensitive), phone equality, and the merged rows only.
            models.Index(fields=["inn"], opclasses=["varchar_pattern_ops"], name="client_inn_idx"),
            models.Index(Upper("email"), name="client_email_upper_idx"),
            models.Index(fields=["phone"], name="client_phone_idx"),
            models.Index(
                fields=["merged_into"], condition=Q(merged_into__isnull=False), name="client_merged_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class Contact(TimeStamped):
    client = models.ForeignKey(
        Client, verbose_name=_("client"), on_delete=models.CASCADE, related_name="contacts"
    )
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    first_name = models.CharField(_("first name"), max_length=100)
    middle_name = models.CharField(_("middle name"), max_length=100, blank=True)
    position = models.CharField(_("position"), max_length=150, blank=True)
    email = models.EmailField(_("e-mail"), blank=True, db_index=True)
    phone = models.CharField(_("phone (E.164)"), max_length=20, blank=True, db_index=True)
    is_primary = models.BooleanField(_("primary contact"), default=False)

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        constraints = [
            models.CheckConstraint(
                condition=Q(phone="") | Q(phone__regex=r"^\+[1-9]\d{6,14}$"), name="contact_phone_e164"
            ),
            models.UniqueConstraint(
                fields=["client"], condition=Q(is_primary=True), name="one_primary_contact"
            ),
        ]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.last_name, self.first_name, self.middle_name) if p)


class Product(TimeStamped):
    sku = models.CharField("SKU", max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=255)
    unit = models.CharField(_("unit"), max_length=20, default="шт")
    price = money_field(verbose_name=_("price"), validators=[MinValueValidator(Decimal("0"))])
    unit_cost = money_field(verbose_name=_("unit cost"), validators=[MinValueValidator(Decimal("0"))])
    currency = models.CharField(_("currency"), max_length=3, default="RUB", validators=[currency_validator])
    vat_rate = rate_field(verbose_name=_("VAT rate, %"), default=Decimal("22.00"))
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("product")
        verbose_name_plural = _("products")
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="product_price_non_negative"),
            models.CheckConstraint(condition=Q(unit_cost__gte=0), name="product_cost_non_negative"),
            models.CheckConstraint(
                condition=Q(vat_rate__gte=0) & Q(vat_rate__lt=100), name="product_vat_range"
            ),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="product_currency_iso"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class Pipeline(TimeStamped):
    name = models.CharField(_("name"), max_length=100, unique=True)
    is_default = models.BooleanField(_("default pipeline"), default=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("pipeline")
        verbose_name_plural = _("pipelines")
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_pipeline"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Stage(TimeStamped):
    pipeline = models.ForeignKey(
        Pipeline, verbose_name=_("pipeline"), on_delete=models.CASCADE, related_name="stages"
    )
    name = models.CharField(_("name"), max_length=100)
    code = models.SlugField(_("code"), max_length=50)
    order = models.PositiveSmallIntegerField(_("order"), default=0)
    is_won = models.BooleanField(_("won"), default=False)
    is_lost = models.BooleanField(_("lost"), default=False)
    probability = models.PositiveSmallIntegerField(_("probability, %"), default=0)

    class Meta:
        ordering = ["pipeline", "order"]
        verbose_name = _("stage")
        verbose_name_plural = _("stages")
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "code"], name="stage_unique_code"),
            models.CheckConstraint(
                condition=~(Q(is_won=True) & Q(is_lost=True)), name="stage_not_won_and_lost"
            ),
            models.CheckConstraint(condition=Q(probability__lte=100), name="stage_probability_range"),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline.name}: {self.name}" if self.pipeline_id else self.name


class DealStatus(models.TextChoices):
    OPEN = "open", _("Open")
    WON = "won", _("Won")
    LOST = "lost", _("Lost")


class Deal(TimeStamped):
    title = models.CharField(_("title"), max_length=255)
    client = models.ForeignKey(
        Client, verbose_name=_("client"), on_delete=models.PROTECT, related_name="deals"
    )
    company = models.ForeignKey(
        Company, verbose_name=_("own company"), on_delete=models.PROTECT, related_name="deals"
    )
    pipeline = models.ForeignKey(
        Pipeline, verbose_name=_("pipeline"), on_delete=models.PROTECT, related_name="deals"
    )
    stage = models.ForeignKey(Stage, verbose_name=_("stage"), on_delete=models.PROTECT, related_name="deals")
    status = models.CharField(_("status"), max_length=8, choices=DealStatus, default=DealStatus.OPEN)
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("manager"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deals",
    )
    channel = models.ForeignKey(
        Channel,
        verbose_name=_("channel"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="deals",
    )
    currency = models.CharField(_("currency"), max_length=3, default="RUB", validators=[currency_validator])
    vat_mode = models.CharField(_("VAT mode"), max_length=16, choices=VatMode, default=VatMode.ON_TOP)
    utm_source = models.CharField("utm_source", max_length=100, blank=True)
    utm_medium = models.CharField("utm_medium", max_length=100, blank=True)
    utm_campaign = models.CharField("utm_campaign", max_length=100, blank=True)
    expected_close_date = models.DateField(_("expected close date"), null=True, blank=True)
    # Stored totals, recomputed by services from the lines and re-checked by tests.
    amount_net = money_field(verbose_name=_("amount without VAT"))
    vat_amount = money_field(verbose_name=_("VAT"))
    amount_total = money_field(verbose_name=_("total"))
    cost_total = money_field(verbose_name=_("cost of goods"))
    won_at = models.DateTimeField(_("won at"), null=True, blank=True)
    lost_at = models.DateTimeField(_("lost at"), null=True, blank=True)
    lost_reason = models.CharField(_("lost reason"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("deal")
        verbose_name_plural = _("deals")
        constraints = [
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="deal_currency_iso"),
            models.CheckConstraint(
                condition=Q(amount_net__gte=0)
                & Q(vat_amount__gte=0)
                & Q(amount_total__gte=0)
                & Q(cost_total__gte=0),
                name="deal_totals_non_negative",
            ),
            models.CheckConstraint(
                condition=(Q(status="won") & Q(won_at__isnull=False))
                | (Q(status="lost") & Q(lost_at__isnull=False))
                | Q(status="open"),
                name="deal_status_timestamps",
            ),
        ]
        indexes = [
            models.Index(fields=["stage", "-updated_at"], name="deal_stage_idx"),
            models.Index(fields=["client", "-created_at"], name="deal_client_idx"),
            models.Index(fields=["manager", "status"], name="deal_manager_status_idx"),
            models.Index(fields=["status", "won_at"], name="deal_won_idx"),
            models.Index(fields=["channel", "won_at"], name="deal_channel_won_idx"),
        ]

    def __str__(self) -> str:
        return self.title


class DealLine(models.Model):
    deal = models.ForeignKey(Deal, verbose_name=_("deal"), on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField(_("position"), default=0)
    product = models.ForeignKey(
        Product,
        verbose_name=_("product"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="deal_lines",
    )
    description = models.CharField(_("description"), max_length=500)
    unit = models.CharField(_("unit"), max_length=20, default="шт")
    quantity = quantity_field(verbose_name=_("quantity"))
    unit_price = money_field(verbose_name=_("unit price"))
    discount_pct = rate_field(verbose_name=_("discount, %"))
    vat_rate = rate_field(verbose_name=_("VAT rate, %"))
    unit_cost = money_field(verbose_name=_("unit cost (snapshot)"))
    amount_net = money_field(verbose_name=_("amount without VAT"))
    vat_amount = money_field(verbose_name=_("VAT"))
    amount_total = money_field(verbose_name=_("total"))
    cost_total = money_field(verbose_name=_("cost"))

    class Meta:
        ordering = ["deal", "position", "id"]
        verbose_name = _("deal line")
        verbose_name_plural = _("deal lines")
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="dealline_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="dealline_price_non_negative"),
            models.CheckConstraint(condition=Q(unit_cost__gte=0), name="dealline_cost_non_negative"),
            models.CheckConstraint(
                condition=Q(discount_pct__gte=0) & Q(discount_pct__lte=100), name="dealline_discount_range"
            ),
            models.CheckConstraint(
                condition=Q(vat_rate__gte=0) & Q(vat_rate__lt=100), name="dealline_vat_range"
            ),
        ]

    def __str__(self) -> str:
        return self.description


class DomainEvent(models.Model):
    """The outbox: written in the same transaction as the change it describes."""

    type = models.CharField(_("type"), max_length=64, db_index=True)
    aggregate_type = models.CharField(_("object type"), max_length=64)
    aggregate_id = models.CharField(_("object id"), max_length=64)
    payload = models.JSONField(_("payload"), default=dict)
    origin = models.CharField(
        _("origin"),
        max_length=100,
        blank=True,
        help_text=_("Where the change came from: api, ui, admin, sync:<connection>..."),
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    occurred_at = models.DateTimeField(_("occurred at"), db_index=True)
    dispatched_at = models.DateTimeField(_("dispatched at"), null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("domain event")
        verbose_name_plural = _("domain events")
        indexes = [
            models.Index(fields=["aggregate_type", "aggregate_id"], name="event_aggregate_idx"),
            models.Index(fields=["id"], condition=Q(dispatched_at__isnull=True), name="event_pending_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.type} {self.aggregate_type}:{self.aggregate_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed, will retry")
    DEAD = "dead", _("Failed, gave up")


class EventDelivery(models.Model):
    """One row per (event, handler): the handler's work is claimed, done and recorded exactly once."""

    event = models.ForeignKey(DomainEvent, on_delete=models.CASCADE, related_name="deliveries")
    handler = models.CharField(_("handler"), max_length=100)
    status = models.CharField(
        _("status"), max_length=8, choices=DeliveryStatus, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    claimed_until = models.DateTimeField(_("claimed until"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    done_at = models.DateTimeField(_("done at"), null=True, blank=True)

    class Meta:
        verbose_name = _("event delivery")
        verbose_name_plural = _("event deliveries")
        constraints = [models.UniqueConstraint(fields=["event", "handler"], name="delivery_once_per_handler")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx")]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.handler}: {self.status}"


class ApiScope(models.TextChoices):
    READ = "read", _("Read only")
    WRITE = "write", _("Read and write")


class ApiKey(models.Model):
    """An API key for an external system. Only a SHA-256 digest of the secret is stored.

    The secret has 256 bits of entropy, so a fast digest is as safe as a slow password hash and keeps
    authentication off the hot path.
    """

    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.CharField(_("scope"), max_length=8, choices=ApiScope, default=ApiScope.READ)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("acts as user"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="api_keys",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class IdempotencyRecord(models.Model):
    """The first response to a POST carrying an ``Idempotency-Key``, replayed for repeats."""

    principal = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("idempotency record")
        verbose_name_plural = _("idempotency records")
        constraints = [models.UniqueConstraint(fields=["principal", "key"], name="idempotency_unique_key")]

    def __str__(self) -> str:
        return f"{self.principal}:{self.key}"
