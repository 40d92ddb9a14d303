"""Pages and endpoints of sync: inbound webhooks, the sync health page for administrators, and the
client/deal pages' "in other systems" panel data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from hub.selectors import user_access

from . import services
from .models import Connection, ExternalRef, SyncRun


@csrf_exempt
@require_http_methods(["GET", "POST", "PUT"])
def webhook(request: HttpRequest, name: str) -> HttpResponse:
    """`/sync/webhooks/<connection name>/`: stored first, processed by a task after."""
    headers = dict(request.headers)
    # Signatures that cover the method and URI (HubSpot v3) need them as received.
    headers["X-Hub-Method"] = request.method
    headers["X-Hub-Uri"] = request.build_absolute_uri()
    reply = services.webhook_receive(name=name, headers=headers, body=request.body)
    return HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)


@dataclass
class ConnectionHealth:
    connection: Any
    last_run: Any = None
    open_issues: int = 0
    open_conflicts: int = 0


def sync_health_rows() -> list[ConnectionHealth]:
    """One row per connection: its last run, open quarantine and open conflicts (three queries)."""
    connections = list(
        Connection.objects.annotate(
            n_issues=Count("issues", filter=Q(issues__status="open"), distinct=True),
            n_conflicts=Count("conflicts", filter=Q(conflicts__status="open"), distinct=True),
        ).order_by("name")
    )
    last_runs: dict[int, SyncRun] = {}
    for run in SyncRun.objects.filter(connection__in=connections, dry_run=False).order_by(
        "connection_id", "-started_at"
    ):
        last_runs.setdefault(run.connection_id, run)
    return [ConnectionHealth(c, last_runs.get(c.pk), c.n_issues, c.n_conflicts) for c in connections]


@login_required
@require_GET
def sync_health(request):
    if not user_access(request.user).is_admin:
        raise PermissionDenied
    rows = sync_health_rows()
    return render(request, "ui/sync/health.html", {"nav": "sync", "rows": rows, "configured": True})


def external_refs_for(*, entity: str, object_id: int) -> list[ExternalRef]:
    """Where one hub record lives in the other systems: connection, external id, last sync time."""
    return list(
        ExternalRef.objects.filter(entity=entity, object_id=object_id)
        .select_related("connection")
        .order_by("connection__name")
    )
