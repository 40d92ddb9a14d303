"""What every endpoint shares: the one error shape, cursor pagination, ``updated_since``, idempotency."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from datetime import UTC
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.http import Http404
from django_filters import rest_framework as filters
from rest_framework import exceptions, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from .errors import ApplicationError
from .models import IdempotencyRecord
from .observability import request_id_var
from .renderers import FastJSONRenderer  # noqa: F401  (importable from here as before)

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one error shape: ``{"error": {"code", "message", "fields"}, "request_id"}``."""
    return {
        "error": {"code": code, "message": message, "fields": fields or {}},
        "request_id": request_id_var.get(),
    }


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten(value, name))
    elif isinstance(detail, list):
        if all(not isinstance(v, dict | list) for v in detail):
            out[prefix or "non_field_errors"] = [str(v) for v in detail]
        else:
            for i, value in enumerate(detail):
                out.update(_flatten(value, f"{prefix}[{i}]"))
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # Imported here: rest_framework.views reads the renderer setting, which points back at this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        names = ", ".join(sorted(k for k in fields if k != "non_field_errors"))
        message = (
            f"Invalid value for: {names}."
            if names
            else "; ".join(fields.get("non_field_errors", ["Invalid."]))
        )
        return Response(error_body("validation_error", message, fields), status=status.HTTP_400_BAD_REQUEST)
    # Imported here: DRF's settings import this module while ``rest_framework.views`` is being built
    # (its renderer and pagination classes live here), so a top-level import is a cycle whenever
    # this module happens to be imported first (Celery's model check at worker start does that).

    response = drf_exception_handler(exc, context)
    if response is not None:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        response.data = error_body(str(code), str(detail))
        return response
    if isinstance(exc, IntegrityError):
        logger.warning("integrity error reached the API", exc_info=exc)
        return Response(
            error_body("conflict", "The change conflicts with stored data."), status=status.HTTP_409_CONFLICT
        )
    logger.exception("unhandled API error", exc_info=exc)
    return Response(
        error_body("server_error", "Internal error; quote the request id when reporting it."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


class HubCursorPagination(CursorPagination):
    """Cursor pagination: no COUNT, stable under inserts, O(page) at any depth."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-id"

    def paginate_queryset(self, queryset, request, view=None):
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        """Refuse a cursor whose position does not fit the ordering field (a hostile or stale cursor)."""
        cursor = super().decode_cursor(request)
        if cursor is None or cursor.position is None:
            return cursor
        field_name = self.ordering[0].lstrip("-")
        try:
            field = self._model._meta.get_field(field_name)
            value = field.to_python(cursor.position)
            if isinstance(value, str) and "\x00" in value:
                raise ValueError("NUL in cursor")
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise ValueError("out of range")
        except Exception as exc:
            raise exceptions.NotFound(self.invalid_cursor_message) from exc
        return cursor


class UtcIsoDateTimeFilter(filters.IsoDateTimeFilter):
    """An ISO 8601 instant, compared in UTC. Local zones of centuries past carry second-level offsets
    (LMT) that PostgreSQL refuses, so a hostile ``0248-09-05T10:23`` must not reach it as one."""

    def filter(self, qs, value):
        if value is not None:
            if value.year < 1900:
                raise exceptions.ValidationError({self.field_name: ["Dates before 1900 are not accepted."]})
            value = value.astimezone(UTC)
        return super().filter(qs, value)


class QueryFilterBackend(filters.DjangoFilterBackend):
    """django-filter, skipped when the query string names none of the view's filters.

    Building the filter form costs about a millisecond a request; most list calls (a sync reading
    pages by cursor) pass no filter at all.
    """

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None:
            return queryset
        params = request.query_params
        if not any(name in params for name in filterset_class.base_filters):
            return queryset
        return super().filter_queryset(request, queryset, view)


class UpdatedSinceFilterSet(filters.FilterSet):
    updated_since = UtcIsoDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gte",
        label="Only objects changed at or after this ISO 8601 time.",
    )


# --- Idempotency-Key ----------------------------------------------------------------------------


def _principal(request) -> str:
    auth = request.auth
    if auth is not None and hasattr(auth, "prefix"):
        return f"key:{auth.prefix}"
    return f"user:{request.user.pk}"


def _fingerprint(request) -> str:
    try:
        body = json.dumps(request.data, sort_keys=True, default=str)
    except (TypeError, ValueError):
        body = repr(request.data)
    raw = f"{request.method} {request.path}\n{body}"
    return hashlib.sha256(raw.encode()).hexdigest()


def idempotent(view_method):
    """``Idempotency-Key`` on POST: a replay returns the first response; another body gets 422."""

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            return view_method(self, request, *args, **kwargs)
        if len(key) > 255:
            return Response(
                error_body("invalid_idempotency_key", "Idempotency-Key is longer than 255 characters."),
                status=status.HTTP_400_BAD_REQUEST,
            )
        principal, fingerprint = _principal(request), _fingerprint(request)
        record = IdempotencyRecord.objects.filter(principal=principal, key=key).first()
        if record is None:
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(
                        principal=principal,
                        key=key,
                        method=request.method,
                        path=request.path[:500],
                        fingerprint=fingerprint,
                    )
            except IntegrityError:
                record = IdempotencyRecord.objects.get(principal=principal, key=key)
            else:
                try:
                    response = view_method(self, request, *args, **kwargs)
                except Exception:
                    # Nothing was done: let the client retry with the same key.
                    IdempotencyRecord.objects.filter(pk=record.pk).delete()
                    raise
                if response.status_code >= 500:
                    IdempotencyRecord.objects.filter(pk=record.pk).delete()
                else:
                    IdempotencyRecord.objects.filter(pk=record.pk).update(
                        status_code=response.status_code, response_body=_jsonable(response.data)
                    )
                return response
        if record.fingerprint != fingerprint:
            return Response(
                error_body(
                    "idempotency_key_reused", "This Idempotency-Key was used with another request body."
                ),
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        if record.status_code is None:
            return Response(
                error_body("idempotency_in_progress", "The first request with this key is still running."),
                status=status.HTTP_409_CONFLICT,
            )
        response = Response(record.response_body, status=record.status_code)
        response["Idempotent-Replayed"] = "true"
        return response

    return wrapper


def _jsonable(data: Any) -> Any:
    from django.core.serializers.json import DjangoJSONEncoder

    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))
