"""The home page's "my notifications" panel."""

from __future__ import annotations

from hub.ui_panels import Panel, register_panel

from . import selectors


@register_panel("home", key="notifications", order=5)
def home_notifications(obj, user, request) -> Panel:
    latest = list(selectors.inbox_list(user=user).filter(read_at__isnull=True)[:6])
    return Panel("ui/notifications/panel_home.html", {"latest": latest})
