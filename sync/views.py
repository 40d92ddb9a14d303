"""Inbound webhooks: `/sync/webhooks/<connection name>/`. Stored first, processed by a task after."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import services


@csrf_exempt
@require_http_methods(["GET", "POST", "PUT"])
def webhook(request: HttpRequest, name: str) -> HttpResponse:
    headers = dict(request.headers)
    # Signatures that cover the method and URI (HubSpot v3) need them as received.
    headers["X-Hub-Method"] = request.method
    headers["X-Hub-Uri"] = request.build_absolute_uri()
    reply = services.webhook_receive(name=name, headers=headers, body=request.body)
    return HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)
