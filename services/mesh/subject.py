"""The end user a call is made for, as the API gateway passes it into the mesh.

The gateway authenticates people and apps at the edge (OAuth2 bearer tokens) and sends
the token's subject with every call it makes as the ``x-shop-subject`` metadata entry.
A service that scopes data by owner reads it with ``subject_of(context)``: a call that
carries it acts for that subject only; a call without it comes from a workload of the
mesh itself (allowed by intentions) and is not scoped. Only the gateway faces the
outside, so only the gateway sets it.
"""

from __future__ import annotations

from typing import Any

SUBJECT_METADATA = "x-shop-subject"
CLIENT_ID_METADATA = "x-shop-client-id"


def subject_of(context: Any) -> str | None:
    """The subject the call is made for, or None for a call from inside the mesh."""
    if context is None:
        return None
    for key, value in context.invocation_metadata() or ():
        if key == SUBJECT_METADATA:
            return str(value)
    return None
