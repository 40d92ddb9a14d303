"""Thin tasks, routed to the ``notify`` queue by their ``notifications.`` prefix."""

from celery import shared_task

from .services import deliveries_due, delivery_send


@shared_task(name="notifications.deliver", bind=True, acks_late=True, max_retries=None)
def deliver(self, delivery_id: int) -> None:
    retry_in = delivery_send(delivery_id=delivery_id)
    if retry_in is not None:
        raise self.retry(countdown=max(retry_in, 0.1))


@shared_task(name="notifications.send_due")
def send_due() -> int:
    ids = deliveries_due()
    for delivery_id in ids:
        delivery_send(delivery_id=delivery_id)
    return len(ids)
