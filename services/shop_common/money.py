"""Exact money arithmetic in integer nanos, so no service ever rounds a float.

``shop.common.v1.Money`` is ``units`` plus ``nanos`` billionths with the same sign; sums and
products are done on the single integer ``units * 10**9 + nanos`` and converted back.
"""

from __future__ import annotations

import re

from meshkit.errors import Violations
from shop.common.v1.money_pb2 import Money

NANOS_PER_UNIT = 1_000_000_000
MAX_NANOS = 999_999_999
# Largest amount a Money can carry: units is an int64.
MAX_TOTAL_NANOS = (2**63 - 1) * NANOS_PER_UNIT + MAX_NANOS
_CURRENCY = re.compile(r"[A-Z]{3}")


def to_nanos(money: Money) -> int:
    """The amount as one integer of billionths of a unit."""
    return money.units * NANOS_PER_UNIT + money.nanos


def from_nanos(total: int, currency: str) -> Money:
    """The Money for ``total`` billionths; units and nanos get the same sign."""
    sign = -1 if total < 0 else 1
    units, nanos = divmod(abs(total), NANOS_PER_UNIT)
    return Money(currency_code=currency, units=sign * units, nanos=sign * nanos)


def format_money(money: Money) -> str:
    """``12.50 EUR``: for messages and reasons meant for people."""
    total = to_nanos(money)
    units, nanos = divmod(abs(total), NANOS_PER_UNIT)
    fraction = f"{nanos:09d}".rstrip("0").ljust(2, "0")
    return f"{'-' if total < 0 else ''}{units}.{fraction} {money.currency_code}"


def validate_money(v: Violations, field: str, money: Money) -> bool:
    """Records what is wrong with ``money`` under ``field`` (``items[0].unit_price``).

    Checks the currency is three upper-case letters, nanos is in range with the sign of
    units, and the amount is not negative. Returns whether it was valid.
    """
    ok = v.check(
        bool(_CURRENCY.fullmatch(money.currency_code)),
        f"{field}.currency_code",
        "must be an ISO 4217 code of three upper-case letters",
    )
    if not -MAX_NANOS <= money.nanos <= MAX_NANOS:
        v.add(f"{field}.nanos", "must be between -999999999 and 999999999")
        return False
    if (money.units > 0 and money.nanos < 0) or (money.units < 0 and money.nanos > 0):
        v.add(f"{field}.nanos", "must have the same sign as units")
        return False
    return v.check(to_nanos(money) >= 0, field, "must not be negative") and ok
