"""Phone numbers parsed and validated with `phonenumbers`' own results, at the cost a bulk import can
pay: `parse` and `is_valid` are `phonenumbers.parse` and `phonenumbers.is_valid_number`, with
shortcuts that change nothing in what they return (tests/test_phones.py compares both ways on every
region's example numbers, formatted and mangled):

- A number written internationally with nothing but digits, spaces, hyphens and parentheses
  ("+7 (916) 012-34-56") skips the lenient front end of `parse` (looking for the number inside a
  text, RFC 3966, extensions, vanity letters, non-ASCII digits), which does nothing to such a text
  and costs three quarters of the parse; the steps that follow are `phonenumbers`' own functions.
- `is_valid_number` tests a number against up to eleven patterns of its region (the general
  description, then each number type in turn until one fits); here the types' patterns that admit
  the number's length are joined into one, compiled once per region and length, so a number costs
  two pattern matches. And for a calling code shared by several regions (+1, +7, +44, ...),
  `is_valid_number` finds the number's region by testing its number type for each region, then
  tests it again for the region found; a number whose type was found known is valid, so the second
  test is skipped.

About 7 us instead of 22 us for a parse, a validity check and the E.164 text. The shortcuts read
internals of `phonenumbers`, which is pinned in pyproject.toml: the tests run on each upgrade.
"""

from __future__ import annotations

import re
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberType
from phonenumbers import phonenumberutil as _util
from phonenumbers.phonemetadata import PhoneMetadata

# `phonenumbers` compiles a metadata pattern each time it uses one unless asked to keep them (its own
# switch); they are a few thousand at most, and Python's `re` cache (512) would let them go and come
# back with the rest of the application's patterns
phonenumbers.enable_pattern_cache()

# "+", a digit, then digits, spaces, hyphens and parentheses, ending with a digit
_INTERNATIONAL = re.compile(r"\+[0-9][0-9 ()\-]*[0-9]")
_DROP = str.maketrans("", "", " ()-")
_SHORT_OR_LOCAL = (
    _util.ValidationResult.TOO_SHORT,
    _util.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    _util.ValidationResult.INVALID_LENGTH,
)
_UNKNOWN = PhoneNumberType.UNKNOWN


def parse(text: Any, region: str | None = None) -> PhoneNumber:
    """`phonenumbers.parse(text, region)`: the same number, or the same `NumberParseException`."""
    if type(text) is str and len(text) <= _util._MAX_INPUT_STRING_LENGTH and _INTERNATIONAL.fullmatch(text):
        number = _international(text[1:].translate(_DROP))
        if number is not None:
            return number
    return phonenumbers.parse(text, region)


def _international(digits: str) -> PhoneNumber | None:
    """What `phonenumbers.parse` makes of "+" and `digits` (ASCII digits only), or None to let it
    parse the text itself (and raise its own error) when the number is not plainly possible."""
    country_code, national = _util._extract_country_code(digits)
    if not country_code:
        return None
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, _util.region_code_for_country_code(country_code)
    )
    if metadata is None or len(national) < _util._MIN_LENGTH_FOR_NSN:
        return None
    _, stripped, _ = _util._maybe_strip_national_prefix_carrier_code(national, metadata)
    if _util._test_number_length(stripped, metadata) not in _SHORT_OR_LOCAL:
        national = stripped
    if not _util._MIN_LENGTH_FOR_NSN <= len(national) <= _util._MAX_LENGTH_FOR_NSN:
        return None
    number = PhoneNumber(country_code=country_code)
    _util._set_italian_leading_zeros_for_phone_number(national, number)
    number.national_number = int(national)
    return number


def is_valid(number: PhoneNumber) -> bool:
    """`phonenumbers.is_valid_number(number)`, testing the number type once per region at most."""
    regions = _util.COUNTRY_CODE_TO_REGION_CODE.get(number.country_code)
    if not regions:
        return False  # (no region has that calling code)
    national = phonenumbers.national_significant_number(number)
    if len(regions) == 1:  # as `is_valid_number_for_region` tests the one region
        region = regions[0]
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(number.country_code, region.upper())
        if metadata is None or (
            region != _util.REGION_CODE_FOR_NON_GEO_ENTITY
            and number.country_code != _util.country_code_for_valid_region(region)
        ):
            return False
        return _type_known(national, metadata)
    for region in regions:  # as `region_code_for_number` looks for the number's region
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            continue
        if metadata.leading_digits is not None:
            if re.match(metadata.leading_digits, national):
                return _type_known(national, metadata)
        elif _type_known(national, metadata):
            return True  # (the region found; `is_valid_number_for_region` would test the same again)
    return False


def _type_known(national: str, metadata: PhoneMetadata) -> bool:
    """`_number_type_helper(national, metadata) != UNKNOWN` with two patterns instead of up to eleven:
    the number fits the general description and at least one type (the types' patterns that admit
    its length, joined into one pattern per length)."""
    key = (metadata.id, metadata.country_code)  # ("001", the non-geographic entities, has several codes)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _plan(metadata)
    general_lengths, general, by_length, any_length = plan
    length = len(national)
    if (
        general is None
        or (general_lengths and length not in general_lengths)
        or not general.fullmatch(national)
    ):
        return False
    pattern = by_length.get(length, any_length)
    return pattern is not None and pattern.fullmatch(national) is not None


def _plan(metadata: PhoneMetadata) -> tuple[Any, ...]:
    """What `_type_known` tests: the general description's lengths and pattern (None: it matches
    nothing); per number length, one pattern of the types `_number_type_helper` tests that admit it
    (mobile only where its pattern is not the fixed line's); and that of the types that admit any."""

    def admits(desc: Any, length: int | None) -> bool:
        return (
            desc is not None
            and bool(desc.national_number_pattern)
            and (not desc.possible_length or length in desc.possible_length)
        )

    def joined(length: int | None) -> re.Pattern | None:
        patterns = [d.national_number_pattern for d in types if admits(d, length)]
        return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None

    general = metadata.general_desc
    types = [
        metadata.premium_rate, metadata.toll_free, metadata.shared_cost, metadata.voip,
        metadata.personal_number, metadata.pager, metadata.uan, metadata.voicemail, metadata.fixed_line,
    ]  # fmt: skip
    if not metadata.same_mobile_and_fixed_line_pattern:
        types.append(metadata.mobile)
    general_pattern = None
    if general is not None and general.national_number_pattern:
        general_pattern = re.compile(general.national_number_pattern)
    lengths = {n for d in types if d is not None for n in d.possible_length}
    by_length = {length: joined(length) for length in lengths}
    general_lengths = frozenset(general.possible_length or ()) if general is not None else frozenset()
    return general_lengths, general_pattern, by_length, joined(None)


_PLANS: dict[tuple[str, int], tuple[Any, ...]] = {}  # (region id, calling code): `_plan` of its metadata


def e164(number: PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
