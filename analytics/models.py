"""Inputs that exist nowhere else: marketing spend per channel and month."""

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from hub.models import Channel, Client, TimeStamped, currency_validator, money_field


class MarketingSpend(TimeStamped):
    channel = models.ForeignKey(
        Channel, verbose_name=_("channel"), on_delete=models.PROTECT, related_name="spend"
    )
    month = models.DateField(_("month"), help_text=_("The first day of the month."))
    amount = money_field(verbose_name=_("amount"))
    currency = models.CharField(_("currency"), max_length=3, default="RUB", validators=[currency_validator])

    class Meta:
        ordering = ["-month", "channel"]
        verbose_name = _("marketing spend")
        verbose_name_plural = _("marketing spend")
        constraints = [
            models.UniqueConstraint(fields=["channel", "month", "currency"], name="spend_unique_month"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="spend_non_negative"),
            models.CheckConstraint(condition=Q(month__day=1), name="spend_month_first_day"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.month:%Y-%m}: {self.amount} {self.currency}"


class CurrencyRate(models.Model):
    """How many units of the company currency one unit of ``currency`` is worth on ``date``.

    A figure converts each document at the latest rate on or before the document's date (the Central
    Bank's practice for days without a fixing); with no such rate the figure refuses with a clear error.
    """

    currency = models.CharField(_("currency"), max_length=3, validators=[currency_validator])
    date = models.DateField(_("date"))
    rate = models.DecimalField(_("rate"), max_digits=18, decimal_places=6)

    class Meta:
        ordering = ["-date", "currency"]
        verbose_name = _("currency rate")
        verbose_name_plural = _("currency rates")
        constraints = [
            models.UniqueConstraint(fields=["currency", "date"], name="rate_unique_day"),
            models.CheckConstraint(condition=Q(rate__gt=0), name="rate_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.currency} {self.date}: {self.rate}"


class FactKind(models.TextChoices):
    ACCRUAL = "accrual", _("Revenue on issue")
    CASH = "cash", _("Revenue on payment")
    DEAL = "deal", _("Deals created")
    NEW_CLIENT = "new_client", _("New paying clients")
    RECEIVABLE = "receivable", _("Open receivables by issue date")


DETAIL, BY_CHANNEL = 0, 1  # rollup levels: every dimension / without the manager (read when unfiltered)


def _fact_fields() -> dict:
    return {
        "kind": models.CharField(max_length=12, choices=FactKind),
        "level": models.SmallIntegerField(default=DETAIL),
        "channel_id": models.BigIntegerField(null=True),
        "manager_id": models.BigIntegerField(null=True),
        "pipeline_id": models.BigIntegerField(null=True),
        "stage_id": models.BigIntegerField(null=True),
        "status": models.CharField(max_length=8, blank=True, default=""),
        "n": models.BigIntegerField(default=0),
        "amount": models.DecimalField(max_digits=20, decimal_places=2, default=Decimal("0")),
        "cost": models.DecimalField(max_digits=20, decimal_places=2, default=Decimal("0")),
        # Documents whose currency had no rate on or before their date: a figure over them refuses.
        "unconverted": models.BigIntegerField(default=0),
    }


class FactDaily(models.Model):
    """Rollup: one row per kind, day and dimensions, amounts already in the company currency.

    Rebuilt per affected day by ``analytics.rollups``; never edited by hand. Rows are not unique per
    key on purpose: readers always sum them.
    """

    day = models.DateField()
    locals().update(_fact_fields())

    class Meta:
        verbose_name = _("daily rollup row")
        indexes = [models.Index(fields=["kind", "level", "day"], name="factdaily_kind_day_idx")]

    def __str__(self) -> str:
        return f"{type(self).__name__} #{self.pk}"


class FactMonthly(models.Model):
    """The same rollup summed per month (``month`` is the first day): full months read from here."""

    month = models.DateField()
    locals().update(_fact_fields())

    class Meta:
        verbose_name = _("monthly rollup row")
        indexes = [models.Index(fields=["kind", "level", "month"], name="factmonthly_kind_month_idx")]

    def __str__(self) -> str:
        return f"{type(self).__name__} #{self.pk}"


class ClientFact(models.Model):
    """One row per paying client: the date of the first payment (its cohort) and attribution."""

    client = models.OneToOneField(
        Client,
        primary_key=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="analytics_fact",
    )
    first_paid_on = models.DateField()
    cohort_month = models.DateField(null=True)
    channel_id = models.BigIntegerField(null=True)
    manager_id = models.BigIntegerField(null=True)

    class Meta:
        verbose_name = _("paying client rollup row")
        indexes = [models.Index(fields=["cohort_month"], name="clientfact_cohort_idx")]

    def __str__(self) -> str:
        return f"{type(self).__name__} #{self.pk}"


class ClientMonth(models.Model):
    """A month in which a client paid; ``retained_next`` when the client paid in the next month too."""

    client = models.ForeignKey(
        ClientFact, on_delete=models.DO_NOTHING, db_constraint=False, related_name="months"
    )
    month = models.DateField()
    month_no = models.IntegerField(help_text="year * 12 + month - 1")
    retained_next = models.BooleanField(default=False)

    class Meta:
        verbose_name = _("client activity month")
        constraints = [models.UniqueConstraint(fields=["client", "month"], name="clientmonth_unique")]

    def __str__(self) -> str:
        return f"{type(self).__name__} #{self.pk}"


class CohortMonthly(models.Model):
    """Per cohort (month of first payment), month and attribution: active clients, retained, profit."""

    level = models.SmallIntegerField(default=DETAIL)
    cohort_month = models.DateField()
    month = models.DateField()
    channel_id = models.BigIntegerField(null=True)
    manager_id = models.BigIntegerField(null=True)
    active = models.BigIntegerField(default=0)
    retained_next = models.BigIntegerField(default=0)
    gross_profit = models.DecimalField(max_digits=20, decimal_places=2, default=Decimal("0"))
    unconverted = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("cohort rollup row")
        indexes = [models.Index(fields=["level", "cohort_month", "month"], name="cohort_month_idx")]

    def __str__(self) -> str:
        return f"{type(self).__name__} #{self.pk}"


class RollupState(models.Model):
    """The beat safety net's watermark: changes at or after it are folded in on the next run."""

    name = models.CharField(max_length=50, unique=True)
    watermark = models.DateTimeField(null=True)
    rebuilt_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return self.name
