"""The in-app inbox page and its live unread counter (polled by htmx from every page)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from . import selectors, services


@login_required
@require_GET
def inbox(request):
    unread_only = request.GET.get("unread") == "1"
    qs = selectors.inbox_list(user=request.user)
    if unread_only:
        qs = qs.filter(read_at__isnull=True)
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "ui/notifications/inbox.html",
        {
            "nav": "notifications",
            "page": page,
            "unread_only": unread_only,
            "query": "unread=1" if unread_only else "",
        },
    )


@never_cache
@require_GET
def unread(request):
    """The badge's text: the unread count, or nothing (the badge hides itself when empty)."""
    if not request.user.is_authenticated:
        return HttpResponse("")
    count = selectors.inbox_unread_count(user=request.user)
    return HttpResponse(str(count) if count else "")


@login_required
@require_POST
def mark_read(request, pk: int | None = None):
    services.notifications_mark_read(user=request.user, ids=[pk] if pk else None)
    return redirect("ui-notifications")
