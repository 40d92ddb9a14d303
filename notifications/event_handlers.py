"""The one handler: every event a rule can name fans out into deliveries."""

from hub.events import event_handler
from hub.models import DomainEvent

from .models import EventType
from .services import notifications_fanout


@event_handler("notifications.fanout", events=tuple(EventType.values), queue="notify")
def fanout(event: DomainEvent) -> None:
    notifications_fanout(event)
