"""API keys: ``Authorization: Bearer <key>``; scopes ``read`` and ``write``; session auth for the UI."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from .models import ApiKey, ApiScope

KEY_PREFIX = "hub_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def apikey_create(*, name: str, scope: str = ApiScope.READ, user=None) -> tuple[ApiKey, str]:
    """Create a key; return the row and the raw key, which is shown once and never stored."""
    if scope not in ApiScope.values:
        raise ValueError(f"scope must be one of {', '.join(ApiScope.values)}")
    if not name.strip():
        raise ValueError("name is required")
    prefix = secrets.token_hex(4)
    raw = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        key = ApiKey.objects.create(
            name=name.strip(), prefix=prefix, digest=_digest(raw), scope=scope, user=user
        )
    return key, raw


def apikey_revoke(*, key: ApiKey) -> ApiKey:
    """Revoke at once in this process; other processes drop the key within ``KEY_CACHE_SECONDS``."""
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    _KEY_CACHE.pop(key.digest, None)
    key.refresh_from_db()
    return key


@dataclass
class ServicePrincipal:
    """The caller behind a key that does not act as a user: an external system."""

    key: ApiKey
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    is_anonymous: bool = False
    pk: None = None
    id: None = None

    @property
    def username(self) -> str:
        return f"apikey:{self.key.name}"

    def __str__(self) -> str:
        return self.username


_KEY_CACHE: dict[str, tuple[float, ApiKey]] = {}
KEY_CACHE_SECONDS = 5.0


def _cached_key(digest: str) -> ApiKey | None:
    """The key row for a digest, remembered for a few seconds per process.

    The key lookup was a third of an API request's database work. A revocation takes effect at once in
    the process that revokes and within ``KEY_CACHE_SECONDS`` in the others; unknown digests are not
    remembered, so guessing keys costs a query each and fills nothing.
    """
    now = time.monotonic()
    hit = _KEY_CACHE.get(digest)
    if hit is not None and hit[0] > now:
        return hit[1]
    key = ApiKey.objects.select_related("user").filter(digest=digest).first()
    if key is not None:
        if len(_KEY_CACHE) > 1000:
            _KEY_CACHE.clear()
        _KEY_CACHE[digest] = (now + KEY_CACHE_SECONDS, key)
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        raw = raw.strip()
        if not raw.startswith(KEY_PREFIX) or len(raw) > 200:
            raise exceptions.AuthenticationFailed("Malformed API key.")
        digest = _digest(raw)
        key = _cached_key(digest)
        if key is None or not hmac.compare_digest(key.digest, digest):
            raise exceptions.AuthenticationFailed("Unknown API key.")
        if key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key was revoked.")
        if key.user is not None and not key.user.is_active:
            raise exceptions.AuthenticationFailed("The user behind this API key is inactive.")
        now = timezone.now()
        if key.last_used_at is None or key.last_used_at < now - LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now  # the cached row too: one write a minute, not one per request
        return (key.user or ServicePrincipal(key=key), key)

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


class ScopedAccess(permissions.DjangoModelPermissions):
    """Keys: ``read`` may only read, ``write`` may also write. Sessions: Django model permissions."""

    perms_map = {**permissions.DjangoModelPermissions.perms_map, "GET": ["%(app_label)s.view_%(model_name)s"]}
    message = "You do not have permission for this action."

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, ApiKey):
            if request.method in permissions.SAFE_METHODS:
                return True
            if request.auth.scope != ApiScope.WRITE:
                self.message = "This API key is read-only; a write-scoped key is needed."
                return False
            return True
        user = request.user
        if not user or not user.is_authenticated:
            return False
        if getattr(view, "queryset", None) is None and not hasattr(view, "get_queryset"):
            return True
        return super().has_permission(request, view)
