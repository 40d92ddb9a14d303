"""The Celery application: JSON-only tasks, named queues, the database beat scheduler."""

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

app = Celery("hub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

from hub.observability import connect_celery_signals  # noqa: E402

connect_celery_signals()


@setup_logging.connect
def use_django_logging(**kwargs) -> None:
    """Workers and beat log like the web process (JSON lines with the request id), not Celery's format."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
