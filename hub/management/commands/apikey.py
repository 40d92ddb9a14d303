"""``manage.py apikey create NAME [--scope read|write] [--user USERNAME]``, ``list``, ``revoke PREFIX``."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from hub.api_auth import apikey_create, apikey_revoke
from hub.models import ApiKey, ApiScope


class Command(BaseCommand):
    help = "Create, list or revoke API keys. A new key is printed once and never stored."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a key and print it once.")
        create.add_argument("name")
        create.add_argument("--scope", choices=ApiScope.values, default=ApiScope.READ)
        create.add_argument("--user", help="Username the key acts as (for permissions and audit).")
        sub.add_parser("list", help="List keys (never their secrets).")
        revoke = sub.add_parser("revoke", help="Revoke a key by its prefix.")
        revoke.add_argument("prefix")

    def handle(self, *args, action, **options):
        if action == "create":
            user = None
            if options.get("user"):
                user = get_user_model().objects.filter(username=options["user"]).first()
                if user is None:
                    raise CommandError(f"No user {options['user']!r}.")
            try:
                key, raw = apikey_create(name=options["name"], scope=options["scope"], user=user)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            self.stderr.write(
                f"Created API key {key.name!r} (scope {key.scope}, prefix {key.prefix}). "
                "It is shown once; store it now:"
            )
            self.stdout.write(raw)
        elif action == "list":
            for key in ApiKey.objects.order_by("id"):
                state = "revoked" if key.revoked_at else "active"
                self.stdout.write(
                    f"{key.prefix}\t{key.scope}\t{state}\t{key.name}\tlast used {key.last_used_at or '-'}"
                )
        elif action == "revoke":
            key = ApiKey.objects.filter(prefix=options["prefix"]).first()
            if key is None:
                raise CommandError(f"No key with prefix {options['prefix']!r}.")
            apikey_revoke(key=key)
            self.stdout.write(f"Revoked {key.prefix} ({key.name}).")
