"""URLs of the inbox pages (mounted under /app/ by ``hub.urls``)."""

from django.urls import path

from . import views

urlpatterns = [
    path("notifications/", views.inbox, name="ui-notifications"),
    path("notifications/unread/", views.unread, name="ui-unread"),
    path("notifications/read/", views.mark_read, name="ui-notifications-read-all"),
    path("notifications/<int:pk>/read/", views.mark_read, name="ui-notification-read"),
]
