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


def _start(
    env_overrides: dict[str, str], tmp_path, expr: str = "settings.DATABASES['default']['ENGINE']"
) -> subprocess.CompletedProcess:
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
            f" django.setup(); from django.conf import settings; print({expr})",
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


POSTGRES_URL = "postgres://u@db.example:5432/hub"
DB_OPTIONS = (
    "sorted(settings.DATABASES['default'].get('OPTIONS', {}).items()),"
    " settings.DATABASES['default']['CONN_HEALTH_CHECKS']"
)


def test_postgresql_prepares_statements_and_skips_health_checks_by_default(tmp_path):
    # Given a PostgreSQL URL and nothing else, when the settings load,
    result = _start({"DEBUG": "true", "DATABASE_URL": POSTGRES_URL}, tmp_path, expr=DB_OPTIONS)
    # then parameters are bound on the server, repeated statements are prepared, no SELECT 1 per request.
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[('prepare_threshold', 2), ('server_side_binding', True)] False"


def test_prepared_statements_and_health_checks_follow_the_environment(tmp_path):
    # Given PgBouncer in transaction mode (no prepared statements) and connections that die silently,
    env = {"DB_PREPARED_STATEMENTS": "false", "CONN_HEALTH_CHECKS": "true"}
    result = _start({"DEBUG": "true", "DATABASE_URL": POSTGRES_URL, **env}, tmp_path, expr=DB_OPTIONS)
    # then both are switched by the environment.
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] True"


def test_drf_settings_resolve_before_any_view_is_imported(tmp_path):
    # Given a fresh process that has only set Django up (as a Celery worker running the checks does),
    expr = (
        "__import__('rest_framework.settings', fromlist=['x']).api_settings.DEFAULT_PAGINATION_CLASS.__name__,"
        " [c.__name__ for c in __import__('rest_framework.settings', fromlist=['x'])"
        ".api_settings.DEFAULT_RENDERER_CLASSES]"
    )
    # when DRF resolves its pagination class first, then the import does not trip over itself.
    result = _start({"DEBUG": "false", "SECRET_KEY": "x", "ALLOWED_HOSTS": "x"}, tmp_path, expr=expr)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "HubCursorPagination ['FastJSONRenderer']"


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


def test_celery_workers_log_json_lines_like_the_web_process(settings):
    import logging

    from hub.celery import use_django_logging
    from hub.observability import JsonFormatter

    use_django_logging()

    formatters = [h.formatter for h in logging.getLogger().handlers]
    json_configured = settings.LOGGING["handlers"]["console"]["formatter"] == "json"
    assert any(isinstance(f, JsonFormatter) for f in formatters) == json_configured
