"""URL of the sync health page (mounted under /app/ by ``hub.urls``)."""

from django.urls import path

from . import views

urlpatterns = [path("sync/", views.sync_health, name="ui-sync")]
