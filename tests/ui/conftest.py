"""Fixtures of the manager UI tests: people in each role, and Playwright driving Debian's chromium."""

import os

import pytest
from django.contrib.auth.models import Group

from tests.factories import UserFactory

# Sync Playwright runs an event loop in the test thread; Django's async-safety check would refuse the ORM.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

PASSWORD = "correct horse battery staple"


def ensure_migration_data() -> None:
    """Put back what the data migrations write (roles and their rights, VAT rates, invoice templates).

    A transactional test earlier in the session (the Celery worker tests) ends with a flush, and the
    browser tests need that data. Every ``RunPython`` of the migration plan is replayed in order with
    the historical models of its migration; each one is idempotent (get_or_create).
    """
    from types import SimpleNamespace

    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.db.migrations.operations.special import RunPython

    if Group.objects.filter(name="Manager").exists():
        return
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes(), clean_start=True)
    editor = SimpleNamespace(connection=connection)  # the data migrations only read its alias
    for migration, _backwards in plan:
        operations = [op for op in migration.operations if isinstance(op, RunPython)]
        if operations:
            state = executor.loader.project_state((migration.app_label, migration.name), at_end=True)
            for operation in operations:
                operation.code(state.apps, editor)


def role(name: str) -> Group:
    ensure_migration_data()
    return Group.objects.get(name=name)


def _in_group(username: str, group: str):
    user = UserFactory(username=username)
    user.groups.add(role(group))
    return user


@pytest.fixture
def maria(db):
    """A manager."""
    return _in_group("maria", "Manager")


@pytest.fixture
def oleg(db):
    """Another manager."""
    return _in_group("oleg", "Manager")


@pytest.fixture
def anna(db):
    """An accountant."""
    return _in_group("anna", "Accountant")


@pytest.fixture
def root(db):
    """A superuser."""
    return UserFactory(username="root", is_superuser=True, is_staff=True)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            "--disable-dev-shm-usage",
        ],
    }


@pytest.fixture(scope="session")
def base_url(live_server):
    return live_server.url
