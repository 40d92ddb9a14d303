from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = _("Sync")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Outbound handlers register themselves with the event registry on import.
        from hub.integrations import register_note_sender

        from . import event_handlers  # noqa: F401
        from .services import note_to_crm

        register_note_sender(
            lambda entity, object_id, text: note_to_crm(entity=entity, object_id=object_id, text=text)
        )
