from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HubConfig(AppConfig):
    name = "hub"
    verbose_name = _("CRM")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Handlers register themselves with the event registry on import.
        from . import event_handlers, pg_timestamps, schema, ui_panels  # noqa: F401

        # Other apps add panels to the client, deal and home pages from their ``panels.py``.
        ui_panels.autodiscover()
        pg_timestamps.connect()
