"""The outbox dispatcher: each handler gets each event exactly once; failures retry, then give up."""

import pytest
from django.db import transaction

from hub.events import event_dispatch, event_handler, events_pending, unregister_handler
from hub.models import Channel, DeliveryStatus, DomainEvent, EventDelivery
from hub.services import client_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def recorder():
    seen = []

    @event_handler("test.recorder", events=("client.*",))
    def record(event):
        seen.append(event.pk)
        Channel.objects.create(name=f"side effect {event.pk}", code=f"fx-{event.pk}")

    yield seen
    unregister_handler("test.recorder")


@pytest.fixture
def flaky(settings):
    settings.HUB_EVENT_MAX_ATTEMPTS = 3
    calls = []

    @event_handler("test.flaky", events=("client.created",))
    def fail(event):
        calls.append(event.pk)
        Channel.objects.create(name=f"half-done {len(calls)}", code=f"half-{len(calls)}")
        raise RuntimeError("remote system down")

    yield calls
    unregister_handler("test.flaky")


def test_state_change_and_event_commit_together():
    # when the transaction that created a client rolls back, its event is gone with it
    with pytest.raises(RuntimeError), transaction.atomic():
        client_create(name="Ghost")
        raise RuntimeError("abort")
    assert DomainEvent.objects.count() == 0


def test_event_is_queued_for_dispatch_on_commit(django_capture_on_commit_callbacks, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from hub.celery import app

    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            client = client_create(name="Queued")
        assert len(callbacks) == 1
        event = DomainEvent.objects.get(aggregate_id=str(client.pk))
        assert event.dispatched_at is not None
    finally:
        app.conf.task_always_eager = False


def test_each_handler_gets_the_event_exactly_once(recorder):
    client = client_create(name="Once")
    event = DomainEvent.objects.get(aggregate_id=str(client.pk))
    first = event_dispatch(event.pk)
    second = event_dispatch(event.pk)
    assert recorder == [event.pk]
    assert first.delivered >= 1 and second.delivered == 0
    delivery = EventDelivery.objects.get(event=event, handler="test.recorder")
    assert delivery.status == DeliveryStatus.DONE and delivery.attempts == 1
    event.refresh_from_db()
    assert event.dispatched_at is not None


def test_a_claimed_delivery_is_not_run_twice(recorder):
    client = client_create(name="Claimed")
    event = DomainEvent.objects.get(aggregate_id=str(client.pk))
    from django.utils import timezone

    EventDelivery.objects.create(
        event=event,
        handler="test.recorder",
        status=DeliveryStatus.RUNNING,
        attempts=1,
        claimed_until=timezone.now() + timezone.timedelta(minutes=5),
    )
    event_dispatch(event.pk)
    assert recorder == []  # another worker holds the claim


def test_failing_handler_rolls_back_its_writes_and_retries_with_backoff(flaky):
    client = client_create(name="Flaky")
    event = DomainEvent.objects.get(aggregate_id=str(client.pk))
    result = event_dispatch(event.pk)
    delivery = EventDelivery.objects.get(event=event, handler="test.flaky")
    assert result.failed == 1 and result.retry_in and result.retry_in >= 2
    assert delivery.status == DeliveryStatus.FAILED
    assert "remote system down" in delivery.last_error
    assert delivery.next_attempt_at is not None
    assert not Channel.objects.filter(code__startswith="half-").exists()  # rolled back
    # the other handlers were not held back
    assert EventDelivery.objects.get(event=event, handler="hub.audit_log").status == DeliveryStatus.DONE
    event.refresh_from_db()
    assert event.dispatched_at is None
    # not due yet: nothing runs
    event_dispatch(event.pk)
    assert len(flaky) == 1


def test_handler_gives_up_after_max_attempts(flaky):
    client = client_create(name="Dead")
    event = DomainEvent.objects.get(aggregate_id=str(client.pk))
    for _ in range(3):
        EventDelivery.objects.filter(event=event).update(next_attempt_at=None)
        EventDelivery.objects.filter(event=event, status=DeliveryStatus.FAILED).update(
            next_attempt_at="2000-01-01T00:00:00Z"
        )
        event_dispatch(event.pk)
    delivery = EventDelivery.objects.get(event=event, handler="test.flaky")
    assert delivery.status == DeliveryStatus.DEAD and delivery.attempts == 3
    event.refresh_from_db()
    assert event.dispatched_at is not None  # nothing more will happen; the dead row stays for the admin


def test_sweeper_finds_undispatched_events():
    client = client_create(name="Lost")
    event = DomainEvent.objects.get(aggregate_id=str(client.pk))
    from datetime import timedelta

    assert event.pk in events_pending(older_than=timedelta(0))
    event_dispatch(event.pk)
    assert event.pk not in events_pending(older_than=timedelta(0))


def test_redeliver_gives_dead_deliveries_new_attempts(flaky):
    from hub.events import event_redeliver

    client = client_create(name="Revive")
    event = DomainEvent.objects.get(aggregate_id=str(client.pk))
    EventDelivery.objects.create(event=event, handler="test.flaky", status=DeliveryStatus.DEAD, attempts=3)
    event_dispatch(event.pk)
    event.refresh_from_db()
    assert event.dispatched_at is not None and flaky == []
    result = event_redeliver(event.pk)
    assert result.failed == 1 and flaky == [event.pk]
    assert EventDelivery.objects.get(event=event, handler="test.flaky").attempts == 1


def test_request_id_travels_into_task_headers():
    from hub.observability import _publish_with_request_id, request_id_var

    token = request_id_var.set("req-123")
    try:
        headers: dict = {}
        _publish_with_request_id(headers=headers)
        assert headers["request_id"] == "req-123"
    finally:
        request_id_var.reset(token)


def test_handlers_run_per_queue(recorder, monkeypatch):
    # given a handler on the notify queue besides two on the default one
    from hub import tasks

    ran_notify = []

    @event_handler("test.notify", events=("client.*",), queue="notify")
    def notify(event):
        ran_notify.append(event.pk)

    sent = []
    monkeypatch.setattr(tasks.dispatch_event, "apply_async", lambda args, queue: sent.append((args, queue)))
    try:
        client = client_create(name="Queues")
        event = DomainEvent.objects.get(aggregate_id=str(client.pk))
        # when the first dispatch runs (on the default queue)
        tasks.dispatch_event(event.pk)
        # then the default handlers ran here, and each other queue (notify; sync for the push) got one task
        assert recorder == [event.pk] and ran_notify == []
        assert sorted(sent) == [((event.pk, "notify"), "notify"), ((event.pk, "sync"), "sync")]
        event.refresh_from_db()
        assert event.dispatched_at is None
        # when that task runs (twice: a duplicate message), the notify handler runs once
        tasks.dispatch_event(event.pk, "notify")
        tasks.dispatch_event(event.pk, "notify")
        assert ran_notify == [event.pk] and recorder == [event.pk]
        event.refresh_from_db()
        assert event.dispatched_at is None, "the sync queue's share is still due"
        tasks.dispatch_event(event.pk, "sync")
        event.refresh_from_db()
        assert event.dispatched_at is not None
    finally:
        unregister_handler("test.notify")
