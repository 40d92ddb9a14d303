"""Settings fail loudly in production mode; the apikey command prints a key once."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from hub.models import ApiKey

ROOT = Path(__file__).resolve().parent.parent


def _start(env_overrides: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "DATABASE_URL"}
    }
    env.update({"HUB_VAR_DIR": str(tmp_path), "HUB_READ_DOT_ENV": "false", **env_overrides})
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE','hub.settings');"
            " django.setup(); from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])",
        ],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_secret_key_with_debug_off_fails_loudly(tmp_path):
    result = _start({"DEBUG": "false", "ALLOWED_HOSTS": "example.com"}, tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_missing_allowed_hosts_with_debug_off_fails_loudly(tmp_path):
    result = _start({"DEBUG": "false", "SECRET_KEY": "s"}, tmp_path)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS is required" in result.stderr


def test_defaults_need_no_server(tmp_path):
    result = _start({"DEBUG": "true"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sqlite3" in result.stdout


def test_database_url_switches_to_postgresql(tmp_path):
    result = _start({"DEBUG": "true", "DATABASE_URL": "postgres://u@db.example:5432/hub"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "postgresql" in result.stdout


@pytest.mark.django_db
def test_apikey_command_prints_the_key_once():
    out, err = StringIO(), StringIO()
    call_command("apikey", "create", "erp", "--scope", "write", stdout=out, stderr=err)
    raw = out.getvalue().strip().splitlines()[-1]
    assert raw.startswith("hub_")
    key = ApiKey.objects.get(name="erp")
    assert key.scope == "write" and raw not in key.digest
    listing = StringIO()
    call_command("apikey", "list", stdout=listing)
    assert key.prefix in listing.getvalue() and raw not in listing.getvalue()
    call_command("apikey", "revoke", key.prefix, stdout=StringIO())
    key.refresh_from_db()
    assert key.revoked_at is not None
