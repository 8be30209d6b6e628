"""The end user a call is made for, as the edge (the API gateway) passes it into the mesh.

The edge authenticates people and apps (OAuth2 bearer tokens) and sends the token's
subject with every call it makes, under the metadata key the mesh file names
(``[end_user] subject_metadata``). A service that scopes data by owner reads it with
``EndUser.subject_of(context)``: a call that carries it acts for that subject only; a
call without it comes from a workload of the mesh itself (allowed by intentions) and is
not scoped.
"""

from __future__ import annotations

from typing import Any

from meshkit.config import EndUserSettings


class EndUser:
    """Reads and writes the end-user metadata under the configured keys."""

    def __init__(self, settings: EndUserSettings) -> None:
        self.subject_key = settings.subject_metadata
        self.client_id_key = settings.client_id_metadata

    def subject_of(self, context: Any) -> str | None:
        """The subject the call is made for, or None for a call from inside the mesh."""
        if context is None:
            return None
        for key, value in context.invocation_metadata() or ():
            if key == self.subject_key:
                return str(value)
        return None

    def metadata(self, subject: str, client_id: str) -> tuple[tuple[str, str], ...]:
        """What the edge sends with a call made for ``subject`` through ``client_id``."""
        return ((self.subject_key, subject), (self.client_id_key, client_id))
