"""Which carrier ships where, how long it takes, and what its tracking numbers look like."""

from __future__ import annotations

import secrets
import string
from collections.abc import Collection
from dataclasses import dataclass

DEFAULT_UNSUPPORTED_COUNTRIES = frozenset({"AQ", "KP"})
_TRACKING_ALPHABET = string.ascii_uppercase + string.digits
TRACKING_LENGTH = 12


@dataclass(frozen=True)
class Carrier:
    name: str
    tracking_prefix: str
    delivery_days: int


CARRIERS = {
    "DE": Carrier("DHL", "DHL", 2),
    "US": Carrier("UPS", "1Z", 3),
    "GB": Carrier("Royal Mail", "RM", 2),
}
INTERNATIONAL = Carrier("DHL Express", "DHX", 5)


def refusal(country_code: str, unsupported: Collection[str]) -> str:
    """Why shipping to ``country_code`` is refused, or "" when it is not."""
    if country_code in unsupported:
        return f"shipping to {country_code} is not supported"
    return ""


def carrier_for(country_code: str) -> Carrier:
    return CARRIERS.get(country_code, INTERNATIONAL)


def tracking_number(carrier: Carrier) -> str:
    """The carrier's prefix and 12 random characters: unguessable, so safe to show around.

    One draw of a number below 36**12, written in the alphabet's 36 digits: as uniform as
    12 ``secrets.choice`` calls, with one read of the OS's randomness instead of twelve."""
    n = secrets.randbelow(len(_TRACKING_ALPHABET) ** TRACKING_LENGTH)
    chars = []
    for _ in range(TRACKING_LENGTH):
        n, digit = divmod(n, len(_TRACKING_ALPHABET))
        chars.append(_TRACKING_ALPHABET[digit])
    return carrier.tracking_prefix + "".join(chars)
