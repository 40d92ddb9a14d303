"""The hub's own checks on a client (`client_create` / `client_update` in `hub.services`), run without
writing, for the bulk pull (`sync.bulk`): a record passes only when the hub would surely accept it;
anything else goes through `engine.apply_record`, which quarantines it with the hub's own reason."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from django.db import models

from hub.models import Client, ClientKind, VatMode
from hub.phones import is_valid as phone_is_valid
from hub.services import (
    CLIENT_FIELDS,
    apply_changes,
    clean_fields,
    client_cleaners,
    client_rules,
    require_fields,
)
from sync.entities import ENTITIES

ENTITY = "clients"

_CHAR_LIMITS = [
    (f.attname, f.max_length)
    for f in Client._meta.concrete_fields
    if isinstance(f, models.CharField) and f.max_length and f.attname in CLIENT_FIELDS
]
_KINDS = set(ClientKind.values)
_VAT_MODES = set(VatMode.values) | {""}
_CLIENT_ROW = {f.attname: f.get_default() for f in Client._meta.concrete_fields}
_INVALID_PHONE = "Not a valid phone number for its country."


def _fits(values: Mapping[str, Any]) -> bool:
    """What `full_clean` checks on a client the cleaners accepted: lengths, choices, required text."""
    for attname, limit in _CHAR_LIMITS:
        value = values[attname]
        if not isinstance(value, str) or len(value) > limit:
            return False
    return (
        values["kind"] in _KINDS
        and values["vat_mode"] in _VAT_MODES
        and bool(values["name"].strip())
        and bool(values["country"])
    )


def _all_text(data: dict[str, Any]) -> bool:
    return all(type(v) is str for v in data.values())


class ClientChecks:
    """The hub's client cleaners and rules (`client_create` / `client_update`), without writing. A
    phone the mapping has just parsed (`phone_parse`) is checked on its parsed number: what
    `normalize_phone` would find parsing its E.164 text again, at half the cost."""

    def __init__(self, phones: dict[str, Any]):
        self.phones = phones
        self.by_country: dict[Any, dict[str, Any]] = {}

    def cleaners(self, country: Any) -> dict[str, Any]:
        if country not in self.by_country:  # text or None: the values were checked to be text
            self.by_country[country] = self._cleaners(country)
        return self.by_country[country]

    def _cleaners(self, country: Any) -> dict[str, Any]:
        cleaners = client_cleaners(country)
        parse_again = cleaners["phone"]
        phones = self.phones

        def phone(value: Any) -> Any:
            number = phones.get(value) if type(value) is str else None
            if number is None:
                return parse_again(value)
            if not phone_is_valid(number):
                raise ValueError(_INVALID_PHONE)
            return value

        cleaners["phone"] = phone
        return cleaners

    def new_row(self, canonical: dict[str, Any]) -> dict[str, Any] | None:
        """The row `Clients.create` ► `client_create` would insert, or None when it might refuse it
        (then `apply_record` runs and quarantines with the hub's own reason)."""
        data = ENTITIES[ENTITY]._data(canonical)
        if not _all_text(data):
            return None
        data.setdefault("kind", "person" if len(data.get("inn") or "") == 12 else "company")
        cleaned, errors = clean_fields(data, self.cleaners(data.get("country")))
        require_fields(cleaned, ["name"], errors)
        if errors:
            return None
        row = dict(_CLIENT_ROW)
        for key, value in cleaned.items():
            if key not in CLIENT_FIELDS or key not in row:
                return None
            row[key] = value
        client_rules(SimpleNamespace(**row), errors)
        if errors or not _fits(row):
            return None
        if row["inn"] and row["inn"] != data.get("inn"):
            return None  # matching saw another INN than the one saved: let the duplicate check speak
        return row

    def changed(self, obj: Client, changes: dict[str, Any]) -> tuple[Client, dict[str, Any]] | None:
        """The client `Clients.update` ► `client_update` would save, with its change list; None when
        it might refuse it or needs its duplicate check."""
        if changes.get("archived"):
            return None
        data = ENTITIES[ENTITY]._data(changes)
        if not data:
            return obj, {}
        if not _all_text(data):
            return None
        cleaned, errors = clean_fields(data, self.cleaners(data.get("country", obj.country)))
        if "name" in cleaned:
            require_fields(cleaned, ["name"], errors)
        if errors:
            return None
        client = copy.copy(obj)
        applied = apply_changes(client, cleaned, CLIENT_FIELDS)
        client_rules(client, errors)
        if errors:
            return None
        if applied and ("inn" in applied or "kpp" in applied or not _fits(vars(client))):
            return None
        return client, applied
