"""The sync health page for administrators, and the client page's "in other systems" panel.

The sync models are being built alongside this page, so both read them lazily and defensively: when
``sync.models`` has no ``Connection`` / ``ExternalRef`` yet (or their tables are missing), the page says
there are no connections instead of failing. Field names read here: Connection(name, system, role,
enabled, last_error), ExternalRef(connection, entity, external_id, object_id, last_synced_at),
SyncRun(connection, started_at, finished_at, status), SyncIssue(connection, resolved_at),
Conflict(connection, resolved_at). A field that does not exist reads as empty.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import FieldError, PermissionDenied
from django.db import DatabaseError
from django.shortcuts import render
from django.views.decorators.http import require_GET

from hub.selectors import user_access

logger = logging.getLogger(__name__)


def _model(name: str):
    try:
        from . import models
    except ImportError:  # pragma: no cover - the module always exists
        return None
    return getattr(models, name, None)


@dataclass
class ConnectionHealth:
    connection: Any
    last_run: Any = None
    open_issues: int | None = None
    open_conflicts: int | None = None
    extra: dict = field(default_factory=dict)


def _open_count(model, connection) -> int | None:
    if model is None:
        return None
    try:
        qs = model.objects.filter(connection=connection)
        if any(f.name == "resolved_at" for f in model._meta.get_fields()):
            qs = qs.filter(resolved_at__isnull=True)
        return qs.count()
    except (DatabaseError, FieldError):
        return None


def sync_health_rows() -> list[ConnectionHealth] | None:
    """One row per connection with its last run and open issues; ``None`` when sync is not set up."""
    Connection = _model("Connection")
    if Connection is None:
        return None
    SyncRun, SyncIssue, Conflict = _model("SyncRun"), _model("SyncIssue"), _model("Conflict")
    try:
        connections = list(Connection.objects.order_by("name"))
    except DatabaseError:
        logger.warning("sync tables are missing; the health page shows no connections")
        return None
    rows = []
    for conn in connections:
        row = ConnectionHealth(conn)
        if SyncRun is not None:
            try:
                order = (
                    "-started_at"
                    if any(f.name == "started_at" for f in SyncRun._meta.get_fields())
                    else "-id"
                )
                row.last_run = SyncRun.objects.filter(connection=conn).order_by(order).first()
            except (DatabaseError, FieldError):
                row.last_run = None
        row.open_issues = _open_count(SyncIssue, conn)
        row.open_conflicts = _open_count(Conflict, conn)
        rows.append(row)
    return rows


@login_required
@require_GET
def sync_health(request):
    if not user_access(request.user).is_admin:
        raise PermissionDenied
    rows = sync_health_rows()
    return render(
        request, "ui/sync/health.html", {"nav": "sync", "rows": rows or [], "configured": rows is not None}
    )


def external_refs_for(*, entity: str, object_id: int) -> list[Any]:
    """Where one local record lives in the other systems: connection, external id, last sync time."""
    ExternalRef = _model("ExternalRef")
    if ExternalRef is None:
        return []
    try:
        return list(
            ExternalRef.objects.filter(entity=entity, object_id=str(object_id))
            .select_related("connection")
            .order_by("connection__name")
        )
    except (DatabaseError, FieldError):
        return []
