"""The client 360° page's sync status: the record's id and last sync time in each external system."""

from __future__ import annotations

from hub.ui_panels import Panel, register_panel

from .views import external_refs_for


@register_panel("client", key="sync", order=90)
def client_sync(client, user, request) -> Panel:
    return Panel(
        "ui/sync/panel_refs.html", {"refs": external_refs_for(entity="clients", object_id=client.pk)}
    )


@register_panel("deal", key="sync", order=90)
def deal_sync(deal, user, request) -> Panel:
    return Panel("ui/sync/panel_refs.html", {"refs": external_refs_for(entity="deals", object_id=deal.pk)})
