"""``manage.py seed_demo``: write the demo data set into an empty database (see ``hub.demo``)."""

import datetime as dt
import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from hub import demo


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--today must be a date as YYYY-MM-DD, not {value!r}.") from exc


class Command(BaseCommand):
    help = (
        "Create the demo data: own company, managers, pipeline, channels with marketing spend, products, "
        "about 200 clients, 1,000 deals over 18 months, invoices and payments. Does nothing when demo or "
        "other business data is already present. The same --today and --seed give the same data."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--today",
            type=_date,
            default=None,
            help="The reference date, YYYY-MM-DD: all data lies in the 18 months before it (default: today).",
        )
        parser.add_argument(
            "--seed", type=int, default=demo.DEFAULT_SEED, help="Random seed (default: %(default)s)."
        )

    def handle(self, *args, **options):
        reason = demo.existing_data_reason()
        if reason:
            self.stdout.write(reason)
            return
        today = options["today"] or timezone.localdate()
        started = time.monotonic()
        counts = demo.seed_demo(today=today, seed=options["seed"])
        listed = ", ".join(f"{n} {kind}" for kind, n in counts.items())
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data created up to {today:%Y-%m-%d}: {listed} ({time.monotonic() - started:.1f} s)."
            )
        )
