"""The Celery application: JSON-only tasks, named queues, the database beat scheduler."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

app = Celery("hub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

from hub.observability import connect_celery_signals  # noqa: E402

connect_celery_signals()
