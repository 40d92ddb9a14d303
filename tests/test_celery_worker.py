"""A real Celery worker process consumes from the configured broker and dispatches events.

In CI the broker is Redis and the database PostgreSQL; locally the defaults (SQLite file broker,
SQLite file database) work the same way.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from hub.models import DeliveryStatus, DomainEvent, EventDelivery
from hub.tasks import dispatch_event

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
ROOT = Path(__file__).resolve().parent.parent


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(tmp_path):
    from hub.celery import app

    with app.connection_for_write() as conn:  # drop what earlier runs left in the test broker
        for queue in settings.HUB_QUEUES:
            with contextlib.suppress(Exception):
                conn.default_channel.queue_purge(queue)
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "LOG_FORMAT": "plain",
    }
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "hub",
                "worker",
                "-Q",
                ",".join(settings.HUB_QUEUES),
                "--pool",
                "solo",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while "ready" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_worker_dispatches_an_event_from_the_api_within_seconds(worker, api, company, pipeline):
    # given a running worker, when a deal is created through the API
    from tests.factories import ClientFactory

    started = time.monotonic()
    response = api.post("/api/v1/deals/", {"title": "Через API", "client": ClientFactory().pk}, format="json")
    assert response.status_code == 201
    event = DomainEvent.objects.get(type="deal.created")
    # then the worker dispatches it within 5 seconds
    assert _wait_for(lambda: DomainEvent.objects.get(pk=event.pk).dispatched_at is not None, timeout=5), (
        "the worker did not dispatch the event within 5 s"
    )
    assert time.monotonic() - started < 5
    delivery = EventDelivery.objects.get(event=event, handler="hub.audit_log")
    assert delivery.status == DeliveryStatus.DONE and delivery.attempts == 1


def test_dispatching_twice_delivers_once(worker, company):
    from hub.services import client_create

    client = client_create(name="Twice")
    event = DomainEvent.objects.get(aggregate_id=str(client.pk), type="client.created")
    dispatch_event.delay(event.pk)
    dispatch_event.delay(event.pk)
    assert _wait_for(lambda: DomainEvent.objects.get(pk=event.pk).dispatched_at is not None)
    time.sleep(1.0)  # let the duplicate messages be consumed too
    deliveries = EventDelivery.objects.filter(event=event, handler="hub.audit_log")
    assert deliveries.count() == 1
    assert deliveries.get().attempts == 1
    # every other handler of the event (the sync push) also ran exactly once
    assert all(d.attempts == 1 for d in EventDelivery.objects.filter(event=event))
