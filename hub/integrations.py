"""Seams where an app further down the dependency graph plugs into one further up.

`notifications` may not import `sync` (both sit on top of hub and invoicing), yet a notification rule can
leave a note in the CRM. The sync app registers its note sender here at start-up; notifications calls it.
"""

from __future__ import annotations

from collections.abc import Callable

NoteSender = Callable[[str, int, str], list[str]]
_note_sender: NoteSender | None = None


def register_note_sender(func: NoteSender) -> None:
    global _note_sender
    _note_sender = func


def crm_note(*, entity: str, object_id: int, text: str) -> list[str]:
    """Leave `text` on the record in every CRM connected to the hub; returns the connections noted."""
    if _note_sender is None:
        return []
    return _note_sender(entity, object_id, text)
