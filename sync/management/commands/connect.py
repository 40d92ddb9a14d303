"""`python manage.py connect SYSTEM --name NAME --url URL [--role crm|accounting] [--credential KEY=VALUE …]`"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from hub.errors import ValidationFailed
from sync import services
from sync.connectors import systems


class Command(BaseCommand):
    help = "Create or update a connection to an external system, with the system's default field mappings."

    def add_arguments(self, parser):
        parser.add_argument("system", help=f"one of: {', '.join(systems())}")
        parser.add_argument(
            "--name", required=True, help="the connection's name (used by `sync` and webhooks)"
        )
        parser.add_argument("--url", required=True, help="the system's base URL (or a file path for csv)")
        parser.add_argument("--role", choices=["crm", "accounting"])
        parser.add_argument(
            "--credential",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="repeat for each credential",
        )
        parser.add_argument(
            "--option", action="append", default=[], metavar="KEY=VALUE", help="connector option"
        )
        parser.add_argument(
            "--every", type=int, metavar="MINUTES", help="schedule a run every N minutes (0: none)"
        )
        parser.add_argument("--check", action="store_true", help="reach the system with the credentials now")

    @staticmethod
    def _pairs(items: list[str], what: str) -> dict[str, str]:
        pairs = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise CommandError(f"--{what} takes KEY=VALUE, got {item!r}")
            pairs[key.strip()] = value
        return pairs

    def handle(self, *args, **opts):
        try:
            connection, created = services.connection_save(
                system=opts["system"],
                name=opts["name"],
                url=opts["url"],
                role=opts["role"],
                credentials=self._pairs(opts["credential"], "credential"),
                options=self._pairs(opts["option"], "option") or None,
                schedule_minutes=opts["every"],
            )
        except ValidationFailed as exc:
            raise CommandError(exc.message) from None
        keys = services.credential_keys(connection=connection)
        self.stdout.write(
            f"{'created' if created else 'updated'} connection {connection.name} ({connection.system}, "
            f"{connection.role}) at {connection.base_url}; credentials stored encrypted: {', '.join(keys) or 'none'}; "
            f"{connection.mappings.count()} field mappings"
        )
        if opts["check"]:
            try:
                services.connector_for(connection).check()
            except services.ConnectorError as exc:
                raise CommandError(f"check failed: {exc}") from None
            self.stdout.write("check: ok")
