"""The registry of connectors: system name → class. No `if system == ...` anywhere else."""

from __future__ import annotations

import importlib
import pkgutil

from sync.connectors.base import Connector

_REGISTRY: dict[str, type[Connector]] = {}
_loaded = False


def register(cls: type[Connector]) -> type[Connector]:
    """Class decorator: make a connector available under its `system` name."""
    if not cls.system:
        raise ValueError(f"{cls.__name__} has no system name")
    _REGISTRY[cls.system] = cls
    return cls


def unregister(system: str) -> None:
    """Forget a connector (tests that register a stand-in)."""
    _REGISTRY.pop(system, None)


def _load() -> None:
    """Import every module of this package once: each registers the connectors it defines."""
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def connector_class(system: str) -> type[Connector]:
    _load()
    try:
        return _REGISTRY[system]
    except KeyError:
        raise KeyError(f"unknown system {system!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def systems() -> dict[str, type[Connector]]:
    _load()
    return dict(sorted(_REGISTRY.items()))
