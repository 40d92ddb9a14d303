"""URLs of the CRM pages of the manager UI (mounted under /app/ by ``hub.urls``)."""

from django.urls import path

from . import views_ui

urlpatterns = [
    path("", views_ui.home, name="ui-home"),
    path("clients/", views_ui.clients, name="ui-clients"),
    path("clients/<int:pk>/", views_ui.client_detail, name="ui-client"),
    path("deals/", views_ui.deals, name="ui-deals"),
    path("deals/board/", views_ui.board, name="ui-board"),
    path("deals/<int:pk>/", views_ui.deal_detail, name="ui-deal"),
    path("deals/<int:pk>/move/", views_ui.deal_move, name="ui-deal-move"),
]
