"""Checks and normal forms for requisites: INN, KPP, OGRN, phone numbers, e-mail, currency codes."""

from __future__ import annotations

import functools
import re

import phonenumbers
from django.conf import settings
from django.core.validators import EmailValidator
from stdnum import exceptions as stdnum_exceptions
from stdnum.ru import inn as stdnum_inn
from stdnum.ru import ogrn as stdnum_ogrn

from hub import phones

KPP_RE = re.compile(r"^\d{4}[0-9A-Z]{2}\d{3}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


def normalize_inn(value: str) -> str:
    """Return the INN as digits, or raise ``ValueError`` with a readable reason."""
    value = (value or "").strip().replace(" ", "")
    if not value:
        return ""
    if value.isascii() and value.isdigit() and len(value) in (10, 12):
        # what `stdnum_inn.validate` checks once its `compact` (a cleaner of separators and look-alike
        # characters, two thirds of its cost) has left plain digits as they are
        if len(value) == 10:
            valid = stdnum_inn.calc_company_check_digit(value) == value[-1]
        else:
            valid = stdnum_inn.calc_personal_check_digits(value) == value[-2:]
        if not valid:
            raise ValueError("INN checksum does not match.")
        return value
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
        parsed = phones.parse(value, region or settings.HUB_DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("Not a phone number.") from exc
    if not phones.is_valid(parsed):
        raise ValueError("Not a valid phone number for its country.")
    return phones.e164(parsed)


def normalize_email(value: str) -> str:
    value = (value or "").strip()
    if not value:
        return ""
    if not email_valid(value):
        raise ValueError("Not a valid e-mail address.")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


_EMAIL = EmailValidator()
_EMAIL_USER = re.compile(EmailValidator.user_regex.pattern, re.IGNORECASE)  # (Django's, compiled)


def email_valid(value: str) -> bool:
    """Whether Django's `validate_email` accepts the address, with each domain's verdict remembered:
    the domain pattern costs half the check, and a file of clients repeats a few domains."""
    if not value or "@" not in value or len(value) > 320:
        return False
    user, domain = value.rsplit("@", 1)
    return _EMAIL_USER.match(user) is not None and _domain_valid(domain)


@functools.lru_cache(maxsize=4096)
def _domain_valid(domain: str) -> bool:
    return domain in _EMAIL.domain_allowlist or _EMAIL.validate_domain_part(domain)


def normalize_currency(value: str) -> str:
    value = (value or "").strip().upper()
    if not CURRENCY_RE.match(value):
        raise ValueError("Currency must be an ISO 4217 code such as RUB or EUR.")
    return value
