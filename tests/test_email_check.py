"""`hub.requisites.email_valid` (Django's `validate_email` with each domain's verdict remembered)
accepts exactly what `validate_email` accepts."""

from __future__ import annotations

import random

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from hub.requisites import email_valid, normalize_email

LOCALS = [
    "client",
    "a.b",
    "a..b",
    ".a",
    "a.",
    "o'neil",
    '"quoted x"',
    '"bad"x',
    "us+tag",
    "ивan",
    "x" * 65,
    "",
]
DOMAINS = [
    "example.com", "EXAMPLE.COM", "mail.example.co.uk", "localhost", "пример.рф", "xn--e1afmkfd.xn--p1ai",
    "[127.0.0.1]", "[::1]", "[300.1.1.1]", "-bad.com", "bad-.com", "a..com", "com", "example", "ex_ample.com",
    "a" * 64 + ".com", "example.c", "example.123", "exa mple.com", "", "example.com.",
]  # fmt: skip


def _accepted(value: str) -> bool:
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def test_email_valid_equals_django():
    rng = random.Random(11)
    values = [f"{local}@{domain}" for local in LOCALS for domain in DOMAINS]
    values += ["", "@", "no-at-sign", "a@b@example.com", "x" * 320 + "@example.com", "client@example.com "]
    for _ in range(2000):
        local = rng.choice(LOCALS) + "".join(rng.choice("ab.+-_%!#'") for _ in range(rng.randrange(4)))
        values.append(f"{local}@{rng.choice(DOMAINS)}")
    for _ in range(2):  # the second time each domain's verdict comes from the cache
        for value in values:
            assert email_valid(value) == _accepted(value), value
    assert sum(map(_accepted, values)) > 200
    assert sum(not _accepted(v) for v in values) > 200


def test_normalize_email_lowers_the_domain_only():
    assert normalize_email("  Client.One@Example.COM ") == "Client.One@example.com"
