"""Template context of the manager UI: the caller's roles, for the navigation."""

from __future__ import annotations

from .selectors import user_access


def ui(request) -> dict:
    if not request.path.startswith("/app/"):
        return {}
    return {"access": user_access(request.user)}
