"""The money: invoices and their lines, payments and their allocations, number sequences."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from hub.models import (
    Client,
    Company,
    Deal,
    Product,
    Stage,
    TimeStamped,
    VatMode,
    currency_validator,
    money_field,
    quantity_field,
    rate_field,
)


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    ISSUED = "issued", _("Issued")
    SENT = "sent", _("Sent")
    PARTIALLY_PAID = "partially_paid", _("Partially paid")
    PAID = "paid", _("Paid")
    VOID = "void", _("Void")


OPEN_INVOICE_STATUSES = (InvoiceStatus.ISSUED, InvoiceStatus.SENT, InvoiceStatus.PARTIALLY_PAID)


class InvoiceKind(models.TextChoices):
    INVOICE = "invoice", _("Invoice")
    CREDIT_NOTE = "credit_note", _("Credit note")


class NumberSequence(models.Model):
    """Gapless numbers per own company, prefix and year; the row is locked while a number is taken."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="number_sequences")
    prefix = models.CharField(_("prefix"), max_length=20, blank=True)
    year = models.PositiveSmallIntegerField(_("year"))
    last_number = models.PositiveIntegerField(_("last number"), default=0)

    class Meta:
        verbose_name = _("number sequence")
        verbose_name_plural = _("number sequences")
        constraints = [models.UniqueConstraint(fields=["company", "prefix", "year"], name="sequence_unique")]

    def __str__(self) -> str:
        return f"{self.company} {self.prefix}{self.year}: {self.last_number}"


class VatRate(TimeStamped):
    """A VAT rate of a country with its validity dates: rates are data, never constants in code."""

    country = models.CharField(_("country"), max_length=2, default="RU")
    rate = rate_field(verbose_name=_("rate, %"))
    name = models.CharField(_("name"), max_length=100, blank=True)
    valid_from = models.DateField(_("valid from"), null=True, blank=True)
    valid_to = models.DateField(_("valid to (inclusive)"), null=True, blank=True)

    class Meta:
        ordering = ["country", "-rate", "valid_from"]
        verbose_name = _("VAT rate")
        verbose_name_plural = _("VAT rates")
        constraints = [
            models.UniqueConstraint(fields=["country", "rate", "valid_from"], name="vatrate_unique_period"),
            models.CheckConstraint(condition=Q(rate__gte=0) & Q(rate__lt=100), name="vatrate_range"),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True)
                | Q(valid_to__isnull=True)
                | Q(valid_to__gte=models.F("valid_from")),
                name="vatrate_period_order",
            ),
        ]

    def __str__(self) -> str:
        period = f"{self.valid_from or '…'} – {self.valid_to or '…'}"
        return f"{self.country} {self.rate:g} % ({period})"


class InvoiceLayout(models.TextChoices):
    RU = "ru", _("Russian «Счёт на оплату»")
    EN = "en", _("International (English)")


class InvoiceTemplate(TimeStamped):
    """The printed form of an invoice. Empty HTML/CSS use the built-in layout's files.

    Edited HTML is a Django template rendered by a sandboxed engine (no template loaders: no
    ``{% include %}``/``{% extends %}``), and WeasyPrint may fetch only the project's static files.
    """

    name = models.CharField(_("name"), max_length=100, unique=True)
    layout = models.CharField(_("layout"), max_length=2, choices=InvoiceLayout, default=InvoiceLayout.RU)
    html = models.TextField(
        _("HTML (Django template)"), blank=True, help_text=_("Empty: the built-in layout.")
    )
    css = models.TextField(_("CSS"), blank=True, help_text=_("Empty: the built-in stylesheet."))
    logo = models.CharField(
        _("logo"),
        max_length=255,
        blank=True,
        help_text=_("Path of an image among the project's static files, e.g. invoicing/logo.svg."),
    )
    director_name = models.CharField(_("director (signs)"), max_length=255, blank=True)
    accountant_name = models.CharField(_("chief accountant (signs)"), max_length=255, blank=True)
    payment_terms = models.CharField(_("note under the totals"), max_length=500, blank=True)
    show_qr = models.BooleanField(_("payment QR code"), default=True)
    is_default = models.BooleanField(_("default for its layout"), default=False)
    # SHA-256 of the last html+css+logo that rendered cleanly in the sandbox.
    verified_hash = models.CharField(max_length=64, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("invoice template")
        verbose_name_plural = _("invoice templates")
        constraints = [
            models.UniqueConstraint(
                fields=["layout"], condition=Q(is_default=True), name="invoicetemplate_one_default"
            )
        ]

    def __str__(self) -> str:
        return self.name


class PayOnlineGateway(models.TextChoices):
    YOOKASSA = "yookassa", "YooKassa"
    STRIPE = "stripe", "Stripe"


class Invoice(TimeStamped):
    kind = models.CharField(_("kind"), max_length=12, choices=InvoiceKind, default=InvoiceKind.INVOICE)
    company = models.ForeignKey(
        Company, verbose_name=_("own company"), on_delete=models.PROTECT, related_name="invoices"
    )
    client = models.ForeignKey(
        Client, verbose_name=_("client"), on_delete=models.PROTECT, related_name="invoices"
    )
    deal = models.ForeignKey(
        Deal, verbose_name=_("deal"), on_delete=models.PROTECT, null=True, blank=True, related_name="invoices"
    )
    credit_note_for = models.ForeignKey(
        "self",
        verbose_name=_("credit note for"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="credit_notes",
    )
    # A draft has no number: numbers are assigned at issue, gapless.
    number = models.CharField(_("number"), max_length=40, null=True, blank=True)
    sequence_year = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    sequence_number = models.PositiveIntegerField(null=True, blank=True, editable=False)
    status = models.CharField(_("status"), max_length=16, choices=InvoiceStatus, default=InvoiceStatus.DRAFT)
    currency = models.CharField(_("currency"), max_length=3, default="RUB", validators=[currency_validator])
    vat_mode = models.CharField(_("VAT mode"), max_length=16, choices=VatMode, default=VatMode.ON_TOP)
    issue_date = models.DateField(_("issue date"), null=True, blank=True)
    due_date = models.DateField(_("due date"), null=True, blank=True)
    purpose = models.CharField(_("payment purpose"), max_length=210, blank=True)
    amount_net = money_field(verbose_name=_("amount without VAT"))
    vat_amount = money_field(verbose_name=_("VAT"))
    amount_total = money_field(verbose_name=_("total"))
    cost_total = money_field(verbose_name=_("cost of goods"))
    amount_paid = money_field(verbose_name=_("paid"))
    issued_at = models.DateTimeField(_("issued at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    voided_at = models.DateTimeField(_("voided at"), null=True, blank=True)
    void_reason = models.CharField(_("void reason"), max_length=255, blank=True)
    template = models.ForeignKey(
        InvoiceTemplate,
        verbose_name=_("template"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="invoices",
    )
    trigger = models.ForeignKey(
        "InvoiceTrigger",
        verbose_name=_("issued by trigger"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="invoices",
    )
    # The rendered PDF, cached: ``pdf_key`` is the SHA-256 of the HTML it was laid out from.
    pdf = models.BinaryField(null=True, blank=True, editable=False)
    pdf_key = models.CharField(max_length=64, blank=True, editable=False)
    pdf_rendered_at = models.DateTimeField(_("PDF rendered at"), null=True, blank=True, editable=False)
    # Pay online: the payment created at the gateway when the invoice was issued, and where to pay it.
    payment_url = models.URLField(_("pay online link"), max_length=2000, blank=True)
    gateway = models.CharField(_("payment gateway"), max_length=12, choices=PayOnlineGateway, blank=True)
    gateway_payment_id = models.CharField(_("gateway payment id"), max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        constraints = [
            models.UniqueConstraint(
                fields=["company", "number"], condition=Q(number__isnull=False), name="invoice_unique_number"
            ),
            models.CheckConstraint(
                condition=Q(status="draft", number__isnull=True)
                | (~Q(status="draft") & Q(number__isnull=False)),
                name="invoice_number_iff_issued",
            ),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="invoice_currency_iso"),
            models.CheckConstraint(condition=Q(amount_paid__gte=0), name="invoice_paid_non_negative"),
            models.CheckConstraint(
                condition=Q(amount_paid__lte=models.F("amount_total")), name="invoice_not_overpaid"
            ),
            models.CheckConstraint(
                condition=Q(amount_total=models.F("amount_net") + models.F("vat_amount")),
                name="invoice_total_is_net_plus_vat",
            ),
            # However often a trigger's event arrives, a deal gets one invoice from it.
            models.UniqueConstraint(
                fields=["deal", "trigger"],
                condition=Q(trigger__isnull=False),
                name="invoice_one_per_deal_and_trigger",
            ),
        ]
        indexes = [
            models.Index(fields=["client", "status"], name="invoice_client_status_idx"),
            models.Index(fields=["status", "due_date"], name="invoice_status_due_idx"),
            models.Index(fields=["issue_date"], name="invoice_issue_date_idx"),
        ]

    def __str__(self) -> str:
        return self.number or f"draft #{self.pk}"

    @property
    def amount_due(self) -> Decimal:
        return self.amount_total - self.amount_paid

    @property
    def is_overdue(self) -> bool:
        from django.utils import timezone

        return (
            self.status in OPEN_INVOICE_STATUSES
            and self.due_date is not None
            and self.due_date < timezone.localdate()
        )


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(
        Invoice, verbose_name=_("invoice"), on_delete=models.CASCADE, related_name="lines"
    )
    position = models.PositiveIntegerField(_("position"), default=0)
    product = models.ForeignKey(
        Product,
        verbose_name=_("product"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="invoice_lines",
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
        ordering = ["invoice", "position", "id"]
        verbose_name = _("invoice line")
        verbose_name_plural = _("invoice lines")
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="invoiceline_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="invoiceline_price_non_negative"),
            models.CheckConstraint(
                condition=Q(discount_pct__gte=0) & Q(discount_pct__lte=100), name="invoiceline_discount_range"
            ),
            models.CheckConstraint(
                condition=Q(vat_rate__gte=0) & Q(vat_rate__lt=100), name="invoiceline_vat_range"
            ),
        ]

    def __str__(self) -> str:
        return self.description


class PaymentSource(models.TextChoices):
    MANUAL = "manual", _("Manual entry")
    BANK = "bank", _("Bank statement")
    API = "api", _("API")
    SYNC = "sync", _("Accounting sync")
    YOOKASSA = "yookassa", "YooKassa"
    STRIPE = "stripe", "Stripe"


class PaymentStatus(models.TextChoices):
    UNALLOCATED = "unallocated", _("Not allocated")
    PARTIALLY_ALLOCATED = "partially_allocated", _("Partially allocated")
    ALLOCATED = "allocated", _("Allocated")


class Payment(TimeStamped):
    company = models.ForeignKey(
        Company, verbose_name=_("own company"), on_delete=models.PROTECT, related_name="payments"
    )
    client = models.ForeignKey(
        Client,
        verbose_name=_("client"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="payments",
    )
    source = models.CharField(_("source"), max_length=12, choices=PaymentSource, default=PaymentSource.MANUAL)
    external_id = models.CharField(
        _("external id"),
        max_length=255,
        blank=True,
        help_text=_(
            "Natural key in the source (bank document, gateway payment id): a second copy is refused."
        ),
    )
    amount = money_field(verbose_name=_("amount"))
    currency = models.CharField(_("currency"), max_length=3, default="RUB", validators=[currency_validator])
    received_at = models.DateTimeField(_("received at"), db_index=True)
    payer_name = models.CharField(_("payer"), max_length=255, blank=True)
    payer_inn = models.CharField(_("payer INN"), max_length=12, blank=True)
    purpose = models.TextField(_("payment purpose"), blank=True)
    amount_allocated = money_field(verbose_name=_("allocated"))
    status = models.CharField(
        _("status"), max_length=20, choices=PaymentStatus, default=PaymentStatus.UNALLOCATED
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="payment_currency_iso"),
            models.CheckConstraint(
                condition=Q(amount_allocated__gte=0) & Q(amount_allocated__lte=models.F("amount")),
                name="payment_allocation_within_amount",
            ),
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=~Q(external_id=""),
                name="payment_unique_external_id",
            ),
        ]
        indexes = [
            models.Index(fields=["client", "-received_at"], name="payment_client_idx"),
            models.Index(fields=["status", "-received_at"], name="payment_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} {self.received_at:%Y-%m-%d}"

    @property
    def amount_unallocated(self) -> Decimal:
        return self.amount - self.amount_allocated


class PaymentAllocation(models.Model):
    """A part of a payment applied to one invoice: one payment may cover several invoices, and back."""

    payment = models.ForeignKey(
        Payment, verbose_name=_("payment"), on_delete=models.CASCADE, related_name="allocations"
    )
    invoice = models.ForeignKey(
        Invoice, verbose_name=_("invoice"), on_delete=models.PROTECT, related_name="allocations"
    )
    amount = money_field(verbose_name=_("amount"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("payment allocation")
        verbose_name_plural = _("payment allocations")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="allocation_amount_positive"),
            models.UniqueConstraint(fields=["payment", "invoice"], name="allocation_unique_pair"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} → {self.invoice}"


class InvoiceTrigger(TimeStamped):
    """When a deal enters ``stage`` (from any source, synced ones included), issue its invoice."""

    name = models.CharField(_("name"), max_length=100)
    stage = models.ForeignKey(
        Stage, verbose_name=_("stage"), on_delete=models.CASCADE, related_name="invoice_triggers"
    )
    template = models.ForeignKey(
        InvoiceTemplate,
        verbose_name=_("template"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="triggers",
    )
    prefix = models.CharField(_("number prefix"), max_length=20, blank=True)
    send_email = models.BooleanField(_("e-mail the invoice to the client"), default=False)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("invoice trigger")
        verbose_name_plural = _("invoice triggers")

    def __str__(self) -> str:
        return self.name


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")


class InvoiceDelivery(models.Model):
    """One e-mail of an invoice: written before sending, updated with the outcome."""

    invoice = models.ForeignKey(
        Invoice, verbose_name=_("invoice"), on_delete=models.CASCADE, related_name="deliveries"
    )
    trigger = models.ForeignKey(
        InvoiceTrigger,
        verbose_name=_("trigger"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deliveries",
    )
    to = models.CharField(_("to"), max_length=500)
    subject = models.CharField(_("subject"), max_length=255)
    status = models.CharField(
        _("status"), max_length=10, choices=DeliveryStatus, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("invoice delivery")
        verbose_name_plural = _("invoice deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["invoice", "trigger"],
                condition=Q(trigger__isnull=False),
                name="delivery_one_per_invoice_and_trigger",
            )
        ]

    def __str__(self) -> str:
        return f"{self.invoice} → {self.to} ({self.status})"


# --- payment intake: bank statements, matching decisions, gateway notifications ---------------------


class StatementImportStatus(models.TextChoices):
    IMPORTED = "imported", _("Imported")
    PARTIAL = "partial", _("Imported the valid documents only")
    REFUSED = "refused", _("Refused")


class BankStatementImport(models.Model):
    """One upload of a 1CClientBankExchange file: what came in, what was created, what was refused."""

    file_name = models.CharField(_("file name"), max_length=255, blank=True)
    file_sha256 = models.CharField(_("file SHA-256"), max_length=64, db_index=True)
    file_size = models.PositiveIntegerField(_("size, bytes"), default=0)
    format_version = models.CharField(_("format version"), max_length=10, blank=True)
    encoding = models.CharField(_("encoding"), max_length=20, blank=True)
    period_start = models.DateField(_("period start"), null=True, blank=True)
    period_end = models.DateField(_("period end"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=StatementImportStatus)
    documents = models.PositiveIntegerField(_("documents in the file"), default=0)
    imported = models.PositiveIntegerField(_("payments created"), default=0)
    duplicates = models.PositiveIntegerField(_("already recorded"), default=0)
    skipped = models.PositiveIntegerField(_("not incoming to our accounts"), default=0)
    matched = models.PositiveIntegerField(_("matched automatically"), default=0)
    waiting_review = models.PositiveIntegerField(_("waiting for review"), default=0)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    created_at = models.DateTimeField(_("uploaded at"), auto_now_add=True, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("uploaded by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-id"]
        verbose_name = _("bank statement import")
        verbose_name_plural = _("bank statement imports")

    def __str__(self) -> str:
        return (
            f"{self.file_name or 'statement'} ({self.created_at:%Y-%m-%d %H:%M})" if self.created_at else "-"
        )


class MatchStatus(models.TextChoices):
    APPLIED = "applied", _("Applied automatically")
    REVIEW = "review", _("Waiting for review")
    CONFIRMED = "confirmed", _("Confirmed by a person")
    REASSIGNED = "reassigned", _("Reassigned by a person")
    DISMISSED = "dismissed", _("Dismissed")


class MatchDecision(models.Model):
    """Why a payment was (or was not) applied to an invoice: one decision per payment."""

    payment = models.OneToOneField(
        Payment, verbose_name=_("payment"), on_delete=models.CASCADE, related_name="match_decision"
    )
    invoice = models.ForeignKey(
        Invoice,
        verbose_name=_("suggested invoice"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="match_decisions",
    )
    client = models.ForeignKey(
        Client,
        verbose_name=_("client"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    confidence = models.DecimalField(_("confidence"), max_digits=4, decimal_places=2, default=Decimal("0"))
    reason = models.TextField(_("reason"))
    status = models.CharField(_("status"), max_length=12, choices=MatchStatus)
    candidates = models.JSONField(_("other candidates"), default=list, blank=True)
    created_at = models.DateTimeField(_("decided at"), auto_now_add=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("resolved by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-id"]
        verbose_name = _("payment match")
        verbose_name_plural = _("payment matches (review queue)")
        constraints = [
            models.CheckConstraint(
                condition=Q(confidence__gte=0) & Q(confidence__lte=1), name="match_confidence_range"
            ),
        ]
        indexes = [models.Index(fields=["status", "-id"], name="match_status_idx")]

    def __str__(self) -> str:
        return f"{self.payment} → {self.invoice or '?'} ({self.confidence})"


class GatewayEventStatus(models.TextChoices):
    ACCEPTED = "accepted", _("Accepted")
    DUPLICATE = "duplicate", _("Already processed")
    IGNORED = "ignored", _("Ignored event type")
    REFUSED = "refused", _("Refused")
    # Our own calls to a gateway (pay online: a payment created for an invoice), logged alongside.
    CREATED = "created", _("Payment created")
    FAILED = "failed", _("Gateway call failed")


class GatewayEvent(models.Model):
    """Every notification a payment gateway sent us, accepted or refused, with the reason."""

    gateway = models.CharField(_("gateway"), max_length=12)
    event_type = models.CharField(_("event type"), max_length=64, blank=True)
    external_id = models.CharField(_("gateway object id"), max_length=255, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=GatewayEventStatus)
    reason = models.TextField(_("reason"), blank=True)
    remote_addr = models.CharField(_("sender address"), max_length=64, blank=True)
    body = models.TextField(_("raw body"), blank=True)
    payment = models.ForeignKey(
        Payment, verbose_name=_("payment"), on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    received_at = models.DateTimeField(_("received at"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("gateway notification")
        verbose_name_plural = _("gateway notifications")

    def __str__(self) -> str:
        return f"{self.gateway} {self.event_type} {self.status}"


class OverdueNotice(models.Model):
    """An invoice found overdue: one row, so ``invoice.overdue`` is emitted once per invoice."""

    invoice = models.OneToOneField(
        Invoice, verbose_name=_("invoice"), on_delete=models.CASCADE, related_name="overdue_notice"
    )
    due_date = models.DateField(_("due date"))
    found_at = models.DateTimeField(_("found at"), auto_now_add=True)

    class Meta:
        verbose_name = _("overdue notice")
        verbose_name_plural = _("overdue notices")

    def __str__(self) -> str:
        return f"{self.invoice} overdue since {self.due_date}"
