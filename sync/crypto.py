"""Credentials at rest: Fernet (AES-128-CBC + HMAC-SHA256) with a key from the environment.

`SYNC_CREDENTIALS_KEY` is a Fernet key (`python -c "from cryptography.fernet import Fernet;
print(Fernet.generate_key().decode())"`); several keys separated by commas rotate (the first encrypts,
all decrypt). Without it the key is derived from SECRET_KEY with HKDF, so a fresh laptop works; production
sets its own key so that rotating SECRET_KEY does not lose the credentials.
"""

from __future__ import annotations

import base64
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class CredentialsUnreadable(Exception):
    """The stored credentials cannot be decrypted with the configured keys."""


def _fernet() -> MultiFernet:
    configured = [
        k.strip() for k in (getattr(settings, "SYNC_CREDENTIALS_KEY", "") or "").split(",") if k.strip()
    ]
    if configured:
        return MultiFernet([Fernet(k.encode()) for k in configured])
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"hub.sync.credentials", info=b"fernet").derive(
        settings.SECRET_KEY.encode()
    )
    return MultiFernet([Fernet(base64.urlsafe_b64encode(derived))])


def encrypt(values: dict[str, str]) -> str:
    return _fernet().encrypt(json.dumps(values, sort_keys=True).encode()).decode() if values else ""


def decrypt(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except (InvalidToken, ValueError):
        raise CredentialsUnreadable(
            "the stored credentials cannot be decrypted: SYNC_CREDENTIALS_KEY (or SECRET_KEY) changed; "
            "enter them again with `manage.py connect`"
        ) from None
