"""OAuth2 refresh-token handling shared by the Xero and QuickBooks connectors.

Both vendors issue a short-lived access token (Xero 30 min, Intuit 60 min) and a refresh token that is
rotated on use: the new refresh token must be stored before anything else happens, or the integration is
lost. So every refresh runs inside `CredentialStore.update(fn)` (single-flight per credential): the first
worker refreshes, the others wait on the lock and then find the fresh token already stored.

Stored credential keys: `client_id`, `client_secret`, `refresh_token` (given by `connect`) and
`access_token`, `access_token_expires_at` (Unix seconds, written here).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from sync.connectors.base import AuthError, ConnectionConfig, ConnectorError, PermanentError

EXPIRY_MARGIN_SECONDS = 120  # refresh a little early: a token that expires mid-request is a wasted call


class OAuth2Tokens:
    """Access tokens for one connection, refreshed single-flight through the credential store."""

    def __init__(
        self,
        config: ConnectionConfig,
        http: Any,
        *,
        token_url: str,
        vendor: str,
        clock: Callable[[], float] = time.time,
    ):
        self.config = config
        self.http = http
        self.token_url = token_url
        self.vendor = vendor
        self.clock = clock

    def _fresh(self, creds: Mapping[str, str]) -> bool:
        token = creds.get("access_token")
        try:
            expires_at = float(creds.get("access_token_expires_at") or 0)
        except ValueError:
            expires_at = 0.0
        return bool(token) and expires_at - EXPIRY_MARGIN_SECONDS > self.clock()

    def access_token(self) -> str:
        """A valid access token, refreshing it first when it is missing or about to expire."""
        creds = self.config.credentials.load()
        if self._fresh(creds):
            return creds["access_token"]
        stored = self.config.credentials.update(
            lambda current: None if self._fresh(current) else self._refresh(current)
        )
        return stored["access_token"]

    def refresh_after_rejection(self, rejected: str) -> str:
        """The API refused `rejected` (401): refresh, unless another worker already replaced it."""
        stored = self.config.credentials.update(
            lambda current: (
                None
                if current.get("access_token") and current.get("access_token") != rejected
                else self._refresh(current)
            )
        )
        return stored["access_token"]

    def _refresh(self, creds: Mapping[str, str]) -> dict[str, str]:
        missing = [k for k in ("client_id", "client_secret", "refresh_token") if not creds.get(k)]
        if missing:
            raise AuthError(
                f"{self.vendor}: no {', '.join(missing)} stored for connection {self.config.name!r}; "
                "reconnect in admin"
            )
        try:
            response = self.http.request(
                "POST",
                self.token_url,
                data={"grant_type": "refresh_token", "refresh_token": creds["refresh_token"]},
                auth=(creds["client_id"], creds["client_secret"]),
                headers={"Accept": "application/json"},
            )
        except AuthError as exc:
            raise AuthError(
                f"{self.vendor} refused the app's client id/secret while refreshing the token ({exc}); "
                "check the app keys and reconnect in admin",
                status=exc.status,
            ) from None
        except PermanentError as exc:
            if exc.status == 400:  # invalid_grant: revoked, expired, or already rotated and lost
                raise AuthError(
                    f"{self.vendor} refused the refresh token (revoked or expired): {exc}; "
                    "reconnect in admin",
                    status=400,
                ) from None
            raise
        body = self.http.json_of(response)
        if not isinstance(body, Mapping) or not body.get("access_token"):
            raise ConnectorError(f"{self.vendor} token endpoint answered without an access_token")
        try:
            lifetime = float(body.get("expires_in") or 1800)
        except (TypeError, ValueError):
            lifetime = 1800.0
        changed = {
            "access_token": str(body["access_token"]),
            "access_token_expires_at": str(int(self.clock() + lifetime)),
        }
        if body.get("refresh_token"):  # rotated: the old one stops working once this one is used
            changed["refresh_token"] = str(body["refresh_token"])
        return changed

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        """`http.request` with the bearer token; a 401 refreshes the token (single-flight) and retries once.

        A second refusal, or a refresh the vendor refuses, is an `AuthError` that tells the admin to
        reconnect."""
        headers = dict(kwargs.pop("headers", None) or {})
        token = self.access_token()
        try:
            try:
                return self.http.request(
                    method, url, headers={**headers, "Authorization": f"Bearer {token}"}, **kwargs
                )
            except AuthError as exc:
                if exc.status != 401:
                    raise
                token = self.refresh_after_rejection(token)
                return self.http.request(
                    method, url, headers={**headers, "Authorization": f"Bearer {token}"}, **kwargs
                )
        except AuthError as exc:
            if "reconnect in admin" in str(exc):
                raise
            raise AuthError(
                f"{self.vendor} refused the credentials of {self.config.name!r} ({exc}); reconnect in admin",
                status=exc.status,
            ) from None
