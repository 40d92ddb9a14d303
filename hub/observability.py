"""Request ids and JSON log lines, so one request can be followed through web and worker logs."""

import contextvars
import json
import logging
import re
import uuid
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Takes ``X-Request-ID`` from the proxy when it is sane, otherwise makes one; echoes it back."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        request.request_id = rid
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = rid
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def _publish_with_request_id(headers=None, **kwargs) -> None:
    """Carry the request id into the task's headers, so worker log lines name the request."""
    if headers is not None and "request_id" not in headers:
        headers["request_id"] = request_id_var.get()


def _task_starts(task=None, **kwargs) -> None:
    if task is None or getattr(task.request, "is_eager", False):
        return  # run inline (tests, eager mode): the caller's request id stays
    rid = getattr(task.request, "request_id", None)
    request_id_var.set(rid or f"task-{task.request.id}")


def connect_celery_signals() -> None:
    from celery.signals import before_task_publish, task_prerun

    before_task_publish.connect(_publish_with_request_id, weak=False)
    task_prerun.connect(_task_starts, weak=False)
