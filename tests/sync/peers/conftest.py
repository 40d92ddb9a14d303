"""Real peers: the connectors against real Tryton and BottleCRM servers (started by scripts/peers/*_up.sh).

Configured by environment variables:
    TRYTON_URL, TRYTON_DATABASE, TRYTON_USER, TRYTON_PASSWORD   (`. .peers/tryton/env.sh`)
    BOTTLECRM_URL, BOTTLECRM_TOKEN or BOTTLECRM_TOKEN_FILE      (`. .peers/bottlecrm/test_env.sh`)
    BOTTLECRM_JWT or BOTTLECRM_JWT_FILE (optional: webhook registration needs a signed-in JWT; by
    default the `jwt` file next to the token file, re-minted by scripts/peers/bottlecrm_jwt.sh when stale)
Unset: the tests skip on a workstation, but FAIL when CI=true: CI must prove the connectors end to end.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from sync.connectors import connector_class
from sync.connectors.base import ConnectionConfig, Connector, MemoryCredentialStore

ROOT = Path(__file__).resolve().parents[3]
JWT_MAX_AGE = 50 * 60  # the org-bound JWT lives an hour


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(names: list[str], what: str) -> dict[str, str]:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        message = (
            f"{what}: set {', '.join(missing)} (start the server with scripts/peers/ and source its env file)"
        )
        if _in_ci():
            pytest.fail(f"CI must run the real-peer tests: {message}")
        pytest.skip(message)
    return {n: os.environ[n] for n in names}


def make(system: str, base_url: str, credentials: dict[str, str], **options) -> Connector:
    config = ConnectionConfig(
        name=f"live-{system}",
        system=system,
        base_url=base_url.rstrip("/"),
        credentials=MemoryCredentialStore(credentials),
        options=options,
        timeout_seconds=60,
        max_attempts=3,
    )
    return connector_class(system)(config)


@pytest.fixture
def tryton_env() -> dict[str, str]:
    return require(["TRYTON_URL", "TRYTON_DATABASE", "TRYTON_USER", "TRYTON_PASSWORD"], "Tryton peer")


@pytest.fixture
def tryton(tryton_env):
    connector = make(
        "tryton",
        tryton_env["TRYTON_URL"],
        {
            "database": tryton_env["TRYTON_DATABASE"],
            "username": tryton_env["TRYTON_USER"],
            "password": tryton_env["TRYTON_PASSWORD"],
        },
    )
    yield connector
    connector.http.close()


def _bottlecrm_token() -> str:
    if os.environ.get("BOTTLECRM_TOKEN"):
        return os.environ["BOTTLECRM_TOKEN"]
    path = os.environ.get("BOTTLECRM_TOKEN_FILE")
    if path and Path(path).is_file():
        return Path(path).read_text().strip()
    message = "BottleCRM peer: set BOTTLECRM_TOKEN or BOTTLECRM_TOKEN_FILE (. .peers/bottlecrm/test_env.sh)"
    if _in_ci():
        pytest.fail(f"CI must run the real-peer tests: {message}")
    pytest.skip(message)


@pytest.fixture
def bottlecrm_env() -> dict[str, str]:
    env = require(["BOTTLECRM_URL"], "BottleCRM peer")
    env["token"] = _bottlecrm_token()
    return env


@pytest.fixture
def bottlecrm(bottlecrm_env):
    connector = make("bottlecrm", bottlecrm_env["BOTTLECRM_URL"], {"token": bottlecrm_env["token"]})
    yield connector
    connector.http.close()


@pytest.fixture
def bottlecrm_jwt() -> str:
    """A signed-in user's JWT (BottleCRM refuses API tokens for webhook management)."""
    if os.environ.get("BOTTLECRM_JWT"):
        return os.environ["BOTTLECRM_JWT"]
    default = Path(os.environ.get("BOTTLECRM_TOKEN_FILE", ROOT / ".peers/bottlecrm/token")).with_name("jwt")
    path = Path(os.environ.get("BOTTLECRM_JWT_FILE", default))
    if not path.is_file() or time.time() - path.stat().st_mtime > JWT_MAX_AGE:
        minted = subprocess.run(
            ["bash", str(ROOT / "scripts/peers/bottlecrm_jwt.sh")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if minted.returncode != 0:
            message = f"BottleCRM peer: no fresh JWT for webhook registration ({minted.stderr.strip()[:200]})"
            if _in_ci():
                pytest.fail(message)
            pytest.skip(message)
        return minted.stdout.strip()
    return path.read_text().strip()
