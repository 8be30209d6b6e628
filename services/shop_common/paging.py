"""Page sizes and opaque page tokens for the List methods.

A token is the base64url of a tiny JSON cursor, so clients cannot mistake it for an
offset or build one by hand, and the server can change what it carries later.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TypeVar

from meshkit.errors import Violations

T = TypeVar("T", str, int)


def page_size(v: Violations, requested: int, default: int, maximum: int) -> int:
    """0 means ``default``; larger than ``maximum`` is coerced down; negative is an error."""
    v.check(requested >= 0, "page_size", "must not be negative")
    if requested <= 0:
        return default
    return min(requested, maximum)


def encode_token(cursor: str | int) -> str:
    raw = json.dumps({"after": cursor}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(v: Violations, token: str, kind: type[T]) -> T | None:
    """The cursor in ``token`` (None for the first page); records a violation if it is bad."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = json.loads(raw)["after"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        cursor = None
    if type(cursor) is not kind:
        v.add("page_token", "is not a token from a previous response")
        return None
    return cursor
