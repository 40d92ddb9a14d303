"""Fixtures of the manager UI tests: people in each role, and Playwright driving Debian's chromium."""

import os

import pytest
from django.contrib.auth.models import Group

from tests.factories import UserFactory

# Sync Playwright runs an event loop in the test thread; Django's async-safety check would refuse the ORM.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

PASSWORD = "correct horse battery staple"


def _in_group(username: str, group: str):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get(name=group))
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
