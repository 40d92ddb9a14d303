from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HubConfig(AppConfig):
    name = "hub"
    verbose_name = _("CRM")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Handlers register themselves with the event registry on import.
        from . import event_handlers, pg_timestamps, schema  # noqa: F401

        pg_timestamps.connect()
