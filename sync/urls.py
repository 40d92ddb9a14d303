from django.urls import path

from . import views

app_name = "sync"

urlpatterns = [
    path("webhooks/<slug:name>/", views.webhook, name="webhook"),
]
