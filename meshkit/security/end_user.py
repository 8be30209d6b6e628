"""The end user a call is made for, as the edge (the API gateway) passes it into the mesh.

The edge authenticates people and apps (OAuth2 bearer tokens) and sends the token's
subject with every call it makes, under the metadata key the mesh file names
(``[end_user] subject_metadata``). A service that scopes data by owner reads it with
``EndUser.subject_of(context)``: a call that carries it acts for that subject only; a
call without it acts for no one in particular, and is not scoped.

Both are claims a caller makes, so both are checked against its identity (the SPIFFE id
of its client certificate, which the server interceptor has already authenticated and
authorized by intentions): a subject is taken only from the identities allowed to assert
one (``[end_user] asserted_by``, the edge) and never empty, and a call without one only
from ``[end_user] unscoped`` (the mesh's own workloads, the operator). Anything else is
PERMISSION_DENIED, naming the key and the caller. The check runs when a method asks for
the subject, so only methods that scope by owner pay for it (a metadata scan and a cached
certificate parse), and a subject sent to a method that does not scope is ignored.

Without mTLS (``--insecure``) there are no identities: only the empty subject is refused.
Called in process (``meshkit.testing``: no transport, ``context`` None), there is no
subject.
"""

from __future__ import annotations

from typing import Any

from meshkit.config import EndUserSettings
from meshkit.errors import PermissionDenied
from meshkit.security.identity import identity_of_peer


class EndUser:
    """Reads and writes the end-user metadata under the configured keys."""

    def __init__(self, settings: EndUserSettings) -> None:
        self.subject_key = settings.subject_metadata
        self.client_id_key = settings.client_id_metadata
        self.asserted_by = frozenset(settings.asserted_by)
        self.unscoped = frozenset(settings.unscoped)

    def subject_of(self, context: Any) -> str | None:
        """The subject the call is made for, or None for an unscoped call.

        PermissionDenied unless the caller may make the call it makes: see ``check``."""
        if context is None:
            return None
        subject: str | None = None
        for key, value in context.invocation_metadata() or ():
            if key == self.subject_key:
                if subject is not None:
                    raise PermissionDenied(f"{self.subject_key} is sent more than once")
                subject = value if isinstance(value, str) else value.decode()
        peer = context.peer_identities()
        caller = identity_of_peer(peer).service if peer else None
        return self.check(caller, subject)

    def check(self, caller: str | None, subject: str | None) -> str | None:
        """The subject a call from ``caller`` (a service name; None without mTLS) carrying
        ``subject`` (None: no metadata) acts for; PermissionDenied unless ``caller`` may
        assert a subject (a non-empty one), or may call unscoped when it sends none."""
        if subject is not None:
            if not subject.strip():
                raise PermissionDenied(f"{self.subject_key} is empty (caller {caller})")
            if caller is not None and caller not in self.asserted_by:
                raise PermissionDenied(
                    f"{caller} may not assert {self.subject_key}: only "
                    f"{', '.join(sorted(self.asserted_by)) or 'nobody'} may"
                )
            return subject
        if caller is not None and caller not in self.unscoped:
            raise PermissionDenied(
                f"{caller} must send {self.subject_key}: calls without an end user are "
                f"only for {', '.join(sorted(self.unscoped)) or 'nobody'}"
            )
        return None

    def metadata(self, subject: str, client_id: str) -> tuple[tuple[str, str], ...]:
        """What the edge sends with a call made for ``subject`` through ``client_id``."""
        return ((self.subject_key, subject), (self.client_id_key, client_id))
