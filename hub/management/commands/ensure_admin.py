"""``manage.py ensure_admin``: make sure a superuser exists, printing a generated password once.

The username comes from ``ADMIN_USERNAME`` (default ``admin``), the password from ``ADMIN_PASSWORD`` or,
when that is unset, from ``secrets``. An existing user is left alone, except that a set
``ADMIN_PASSWORD`` it does not match becomes its password.
"""

import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

ADMIN_GROUP = "Administrator"


class Command(BaseCommand):
    help = (
        "Create the superuser ADMIN_USERNAME (default admin) if missing; print its generated password once."
    )

    def handle(self, *args, **options):
        username = os.environ.get("ADMIN_USERNAME", "").strip() or "admin"
        env_password = os.environ.get("ADMIN_PASSWORD", "")
        user_model = get_user_model()
        with transaction.atomic():
            user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()
            if user is None:
                password = env_password or secrets.token_urlsafe(12)
                user = user_model._default_manager.create_superuser(
                    **{user_model.USERNAME_FIELD: username},
                    email=os.environ.get("ADMIN_EMAIL", ""),
                    password=password,
                )
                shown = "(the password from ADMIN_PASSWORD)" if env_password else password
                self.stdout.write(f"Administrator: {username} / {shown}")
            elif env_password and not user.check_password(env_password):
                user.set_password(env_password)
                user.save(update_fields=["password"])
                self.stdout.write(f"Administrator {username} exists; password set from ADMIN_PASSWORD")
            else:
                self.stdout.write(f"Administrator {username} exists (password unchanged)")
            group = Group.objects.filter(name=ADMIN_GROUP).first()
            if group is not None:
                user.groups.add(group)
