"""Amounts in words for the printed invoice («сумма прописью»)."""

from __future__ import annotations

from decimal import Decimal

from num2words import num2words

from hub.pricing import money


def amount_in_words(amount: Decimal, *, currency: str = "RUB", lang: str = "ru") -> str:
    """``Одна тысяча двести тридцать четыре рубля 56 копеек``: rubles in words, kopecks in digits.

    num2words reads an ``int`` as kopecks, so the amount is always passed as a ``Decimal`` with two
    places. A currency num2words does not know is written as the number in words and the ISO code.
    """
    value = money(Decimal(amount))
    try:
        text = num2words(value, lang=lang, to="currency", currency=currency, cents=False, separator="")
    except NotImplementedError:
        whole = int(value)
        cents = int((value - whole) * 100)
        text = f"{num2words(whole, lang=lang)} {currency} {cents:02d}"
    return text[:1].upper() + text[1:]
