"""`python manage.py sync NAME [--entity E] [--dry-run]`: one pull-and-push cycle now."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from hub.errors import ValidationFailed
from sync import services
from sync.models import Connection


class Command(BaseCommand):
    help = (
        "Run one pull-and-push cycle for a connection and print, per entity, "
        "`ENTITY created=N updated=N unchanged=N conflicts=N quarantined=N`."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="the connection's name")
        parser.add_argument(
            "--entity", help="only this entity (clients, contacts, deals, products, invoices, payments)"
        )
        parser.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")

    def handle(self, *args, **opts):
        connection = Connection.objects.filter(name=opts["name"]).first()
        if connection is None:
            raise CommandError(f"no connection named {opts['name']!r} (create it with `manage.py connect`)")
        if not connection.enabled:
            raise CommandError(
                f"{connection.name} is paused: {connection.paused_reason or 'resume it in admin'}"
            )
        try:
            result = services.sync_run(
                connection=connection, entity=opts["entity"], dry_run=opts["dry_run"], trigger="command"
            )
        except ValidationFailed as exc:
            raise CommandError(exc.message) from None
        except services.RunBusy as exc:
            raise CommandError(str(exc)) from None
        for line in result.lines():
            self.stdout.write(line)
        if opts["dry_run"]:
            self.stdout.write("dry run: nothing was written")
        if not result.ok:
            raise CommandError(f"sync failed: {result.run.error}")
