"""Money helpers: integer VND amounts, exact rates and the single rounding rule.

Amounts of money (prices, line amounts, totals) are ``int`` VND. Rates (VND per
minute, depreciation per machine-minute) and quantities are exact: ``Decimal`` in
the catalogue, ``Fraction`` during arithmetic, so no binary floating point is ever
involved. The only rounding in the subsystem is :func:`round_vnd` (half-up to the
whole dong), applied once per line; see :mod:`pricing_norms.costing`.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

__all__ = ["decimal_text", "line_amount", "round_vnd", "to_decimal"]


def round_vnd(value: Fraction | Decimal | int) -> int:
    """Round an exact amount to whole dong, halves away from zero (ROUND_HALF_UP)."""
    exact = Fraction(value)
    magnitude = math.floor(abs(exact) + Fraction(1, 2))
    return -magnitude if exact < 0 else magnitude


def line_amount(quantity: Decimal | int, unit_cost: Fraction | Decimal | int) -> int:
    """Return ``round_vnd(quantity * unit_cost)`` computed exactly."""
    return round_vnd(Fraction(quantity) * Fraction(unit_cost))


def to_decimal(value: Fraction | Decimal | int, places: int = 4) -> Decimal:
    """Display form of an exact rate: a Decimal rounded half-up to ``places`` digits.

    Used only to *show* derived rates; amounts are always computed from the exact value.
    """
    exact = Fraction(value)
    quotient = Decimal(exact.numerator) / Decimal(exact.denominator)
    shown = quotient.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return Decimal(decimal_text(shown))


def decimal_text(value: Decimal | int) -> str:
    """Canonical text of a number: no exponent, no trailing zeros ("1.5", "100", "0")."""
    number = Decimal(value)
    if number == 0:
        return "0"
    text = format(number.normalize(), "f")
    return text
