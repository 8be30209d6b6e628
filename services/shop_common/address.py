"""Validation of ``shop.common.v1.Address``, shared so order and shipping agree on it."""

from __future__ import annotations

import re

from meshkit.errors import Violations
from shop.common.v1.address_pb2 import Address

_COUNTRY = re.compile(r"[A-Z]{2}")


def validate_address(v: Violations, field: str, address: Address) -> bool:
    """Records what is missing or malformed under ``field`` (``shipping_address.city``)."""
    before = len(v.items)
    v.check(bool(address.recipient.strip()), f"{field}.recipient", "is required")
    if v.check(len(address.lines) > 0, f"{field}.lines", "needs at least one line"):
        for i, line in enumerate(address.lines):
            v.check(bool(line.strip()), f"{field}.lines[{i}]", "must not be empty")
    v.check(bool(address.city.strip()), f"{field}.city", "is required")
    v.check(bool(address.postal_code.strip()), f"{field}.postal_code", "is required")
    v.check(
        bool(_COUNTRY.fullmatch(address.country_code)),
        f"{field}.country_code",
        "must be an ISO 3166-1 alpha-2 code of two upper-case letters",
    )
    return len(v.items) == before
