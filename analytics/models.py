"""Inputs that exist nowhere else: marketing spend per channel and month."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from hub.models import Channel, TimeStamped, currency_validator, money_field


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
