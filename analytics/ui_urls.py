"""URL of the dashboards page (mounted under /app/ by ``hub.urls``)."""

from django.urls import path

from . import views

urlpatterns = [path("dashboards/", views.dashboards, name="ui-dashboards")]
