"""`hub.phones` returns what `phonenumbers` returns: the same number or the same error from `parse`, the
same answer from `is_valid`, on every region's example numbers written many ways and mangled."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from hub import phones

TYPES = [t for t in vars(PhoneNumberType).values() if isinstance(t, int) and t != PhoneNumberType.UNKNOWN]


def _examples() -> list[phonenumbers.PhoneNumber]:
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.append(number)
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            found.append(number)
    return found


def _spelled(digits: str, rng: random.Random) -> str:
    """The digits with spaces, hyphens and parentheses put between them at random."""
    out = []
    for i, digit in enumerate(digits):
        if i and rng.random() < 0.3:
            out.append(rng.choice([" ", "-", " - ", "(", ") ", ")", "  ", "--"]))
        out.append(digit)
    return "".join(out)


def _mangled(digits: str, rng: random.Random, change: int) -> str:
    """`digits` with one digit changed (0), dropped (1, unless it is the only one) or added (2)."""
    out = list(digits)
    at = rng.randrange(len(out))
    if change == 0:
        out[at] = str(rng.randrange(10))
    elif change == 1 and len(out) > 1:
        del out[at]
    elif change == 2:
        out.insert(at, str(rng.randrange(10)))
    return "".join(out)


def _texts(rng: random.Random) -> list[str]:
    texts = []
    for number in _examples():
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        code, national = str(number.country_code), e164[1 + len(str(number.country_code)) :]
        texts += [
            e164,
            phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
            "+" + _spelled(e164[1:], rng),
            f"+{code} ({national[:3]}) {national[3:6]}-{national[6:]}",
        ]
        for _ in range(4):  # mangled: a digit changed, dropped, added; a national prefix or zeros inside
            digits = list(e164[1:])
            change = rng.randrange(6)
            if change < 3:
                digits = list(_mangled(e164[1:], rng, change))
            elif change == 3:
                digits[len(code) : len(code)] = list(rng.choice(["0", "8", "1", "00", "06", "01"]))
            elif change == 4:
                digits = digits[: rng.randrange(1, len(digits) + 1)]
            else:
                digits += [str(rng.randrange(10)) for _ in range(rng.randrange(1, 8))]
            texts.append("+" + _spelled("".join(digits), rng))
    for _ in range(3000):  # random digits: unknown calling codes, leading zeros, too short, too long
        digits = "".join(str(rng.randrange(10)) for _ in range(rng.randrange(1, 22)))
        texts.append("+" + _spelled(digits, rng))
    texts += ["+", "+7", "+79", "+0", "+00 916", "+999 123 456", "+7 (916) 012-34-56", "+7 8 916 012 34 56"]
    texts += ["+7 916 012-34-56 (", "+(7) 916 012 34 56", "+7 916 012-34-56 доб. 12", "8 916 012-34-56"]
    return texts


def _outcome(parse, text: str, region: str | None):
    try:
        return parse(text, region)
    except phonenumbers.NumberParseException as exc:
        return ("error", exc.error_type, str(exc))


@pytest.mark.parametrize("region", ["RU", "US", None])
def test_parse_and_validity_equal_phonenumbers(region):
    rng = random.Random(20261128)
    texts = _texts(rng)
    fast_path = 0
    for text in texts:
        expected = _outcome(phonenumbers.parse, text, region)
        got = _outcome(phones.parse, text, region)
        assert got == expected, text
        if isinstance(expected, phonenumbers.PhoneNumber):
            assert phones.is_valid(got) == phonenumbers.is_valid_number(expected), text
            assert phones.e164(got) == phonenumbers.format_number(expected, PhoneNumberFormat.E164)
            assert got.italian_leading_zero == expected.italian_leading_zero, text
            assert got.number_of_leading_zeros == expected.number_of_leading_zeros, text
            fast_path += phones._INTERNATIONAL.fullmatch(text) is not None
    assert len(texts) > 10_000
    assert fast_path > len(texts) // 2  # the shortcut is what was compared, mostly


def test_what_is_not_a_text_fails_as_in_phonenumbers():
    assert _outcome(phones.parse, None, "RU") == _outcome(phonenumbers.parse, None, "RU")


def test_is_valid_on_shared_calling_codes():
    """+1, +7 and +44 are shared by several regions: numbers of each, valid or not, and of none."""
    rng = random.Random(7)
    checked = 0
    for number in _examples():
        if len(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[number.country_code]) < 2:
            continue
        for _ in range(20):
            digits = list(str(number.national_number))
            digits[rng.randrange(len(digits))] = str(rng.randrange(10))
            other = phonenumbers.PhoneNumber(
                country_code=number.country_code, national_number=int("".join(digits))
            )
            assert phones.is_valid(other) == phonenumbers.is_valid_number(other), other
            checked += 1
    assert checked > 1000


def test_is_valid_on_every_region_and_length():
    """Every region's example numbers with a digit changed, dropped or added, and numbers of each
    length from 2 to 17 digits under each calling code: the joined per-length patterns give what
    the number type tests give (a number's length picks which types may fit)."""
    rng = random.Random(11)
    checked = valid = 0
    candidates = []
    for number in _examples():
        digits = str(number.national_number)
        candidates.append((number.country_code, digits, number.italian_leading_zero))
        for _ in range(10):
            mangled = _mangled(digits, rng, rng.randrange(3))
            candidates.append((number.country_code, mangled, number.italian_leading_zero))
    for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        for length in range(2, 18):
            candidates.append(
                (code, str(rng.randrange(1, 10)) + "".join(rng.choices("0123456789", k=length - 1)), False)
            )
    candidates.append((999, "12345678", False))  # a calling code of no region
    for code, digits, leading_zero in candidates:
        if not digits.strip("0"):
            continue
        number = phonenumbers.PhoneNumber(country_code=code, national_number=int(digits))
        if leading_zero:
            number.italian_leading_zero = True
        expected = phonenumbers.is_valid_number(number)
        assert phones.is_valid(number) == expected, number
        checked += 1
        valid += expected
    assert checked > 15_000 and valid > 3_000, (checked, valid)  # both answers, many times
