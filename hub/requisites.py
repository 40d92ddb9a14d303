"""Checks and normal forms for requisites: INN, KPP, OGRN, phone numbers, e-mail, currency codes."""

from __future__ import annotations

import re

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from stdnum import exceptions as stdnum_exceptions
from stdnum.ru import inn as stdnum_inn
from stdnum.ru import ogrn as stdnum_ogrn

KPP_RE = re.compile(r"^\d{4}[0-9A-Z]{2}\d{3}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


def normalize_inn(value: str) -> str:
    """Return the INN as digits, or raise ``ValueError`` with a readable reason."""
    value = (value or "").strip().replace(" ", "")
    if not value:
        return ""
    try:
        return stdnum_inn.validate(value)
    except stdnum_exceptions.InvalidChecksum as exc:
        raise ValueError("INN checksum does not match.") from exc
    except stdnum_exceptions.ValidationError as exc:
        raise ValueError("INN must be 10 digits (company) or 12 digits (person).") from exc


def normalize_kpp(value: str) -> str:
    value = (value or "").strip().upper().replace(" ", "")
    if value and not KPP_RE.match(value):
        raise ValueError("KPP must be 9 characters: 4 digits, 2 digits or letters, 3 digits.")
    return value


def normalize_ogrn(value: str) -> str:
    value = (value or "").strip().replace(" ", "")
    if not value:
        return ""
    try:
        return stdnum_ogrn.validate(value)
    except stdnum_exceptions.InvalidChecksum as exc:
        raise ValueError("OGRN checksum does not match.") from exc
    except stdnum_exceptions.ValidationError as exc:
        raise ValueError("OGRN must be 13 digits (OGRNIP: 15).") from exc


def normalize_phone(value: str, *, region: str | None = None) -> str:
    """Return the phone in E.164 (``+79161234567``), or raise ``ValueError``."""
    value = (value or "").strip()
    if not value:
        return ""
    try:
        parsed = phonenumbers.parse(value, region or settings.HUB_DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("Not a phone number.") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("Not a valid phone number for its country.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: str) -> str:
    value = (value or "").strip()
    if not value:
        return ""
    try:
        validate_email(value)
    except DjangoValidationError as exc:
        raise ValueError("Not a valid e-mail address.") from exc
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def normalize_currency(value: str) -> str:
    value = (value or "").strip().upper()
    if not CURRENCY_RE.match(value):
        raise ValueError("Currency must be an ISO 4217 code such as RUB or EUR.")
    return value
