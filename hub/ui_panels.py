"""Panels other apps add to the CRM pages, so ``hub`` shows invoices, figures and sync state without
importing ``invoicing``, ``analytics`` or ``sync``.

An app registers a function per slot in its ``panels.py`` module (found by ``autodiscover``, like the
admin's ``admin.py``)::

    @register_panel("client", key="invoices", order=20)
    def client_invoices(obj, user, request) -> Panel | None: ...

Slots: ``home`` (obj is None), ``client`` (a Client), ``deal`` (a Deal). A function returns ``None``
to show nothing (no permission, nothing to say). A panel that fails is logged and left out: one
broken panel must not take the whole page down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.template.loader import render_to_string
from django.utils.module_loading import autodiscover_modules
from django.utils.safestring import SafeString, mark_safe

logger = logging.getLogger(__name__)

SLOTS = ("home", "client", "deal")


@dataclass
class Panel:
    template: str
    context: dict[str, Any] = field(default_factory=dict)


PanelFunc = Callable[[Any, Any, Any], Panel | None]


@dataclass(frozen=True)
class _Registered:
    key: str
    order: int
    func: PanelFunc


_registry: dict[str, dict[str, _Registered]] = {slot: {} for slot in SLOTS}


def register_panel(slot: str, *, key: str, order: int = 100) -> Callable[[PanelFunc], PanelFunc]:
    if slot not in _registry:
        raise ValueError(f"Unknown panel slot {slot!r}; one of {', '.join(SLOTS)}.")

    def decorate(func: PanelFunc) -> PanelFunc:
        _registry[slot][key] = _Registered(key, order, func)
        return func

    return decorate


def unregister_panel(slot: str, key: str) -> None:
    _registry[slot].pop(key, None)


def panels_render(slot: str, *, obj, request) -> list[tuple[str, SafeString]]:
    """``(key, html)`` of every panel of the slot that has something to show, in order."""
    out = []
    for item in sorted(_registry[slot].values(), key=lambda r: (r.order, r.key)):
        try:
            panel = item.func(obj, request.user, request)
            if panel is None:
                continue
            html = render_to_string(panel.template, panel.context, request=request)
        except Exception:
            logger.exception("panel failed", extra={"slot": slot, "panel": item.key})
            continue
        out.append((item.key, mark_safe(html)))  # rendered by our own templates
    return out


def autodiscover() -> None:
    """Import ``panels`` of every installed app (called from ``HubConfig.ready``)."""
    autodiscover_modules("panels")
