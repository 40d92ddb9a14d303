from django.apps import AppConfig


class InvoicingConfig(AppConfig):
    name = "invoicing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Event handlers register themselves with the event registry on import.
        from . import event_handlers, triggers  # noqa: F401
