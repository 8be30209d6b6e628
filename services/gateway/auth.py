"""OAuth2 bearer tokens at the edge: JWT access tokens checked against the issuer's keys.

The issuer's keys come from its JWKS, found through OpenID discovery
(``{issuer}/.well-known/openid-configuration`` → ``jwks_uri``), cached, and fetched again
when a token names a key id (``kid``) the cache does not hold, as after a key rotation;
such refetches are rate-limited (``min_refetch``), so a flood of tokens with made-up
``kid``s costs the issuer one request per interval. A token is accepted when its
signature verifies with an asymmetric algorithm, it is within ``exp``/``nbf`` (with a
small ``leeway`` for clock skew), and its ``iss`` and ``aud`` are the expected ones.

Scopes come from ``scp`` (a list, as Ory Hydra writes it) or ``scope`` (a space-separated
string, RFC 9068); the client id from ``client_id`` (RFC 9068), else the subject.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import jwt

from services.gateway.status import EdgeError

log = logging.getLogger("gateway.auth")

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
REALM = "meshkit-shop"


@dataclass(frozen=True)
class Principal:
    """Who a request is from, per its access token."""

    subject: str
    client_id: str
    scopes: frozenset[str]
    claims: dict[str, Any]

    def require(self, scope: str) -> None:
        """Raise 403 (insufficient_scope) unless the token grants ``scope``."""
        if scope not in self.scopes:
            raise insufficient_scope(scope)


def unauthorized(description: str, error: str | None = "invalid_token") -> EdgeError:
    """401 with the RFC 6750 challenge; no ``error`` when the request had no token at all."""
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += f', error="{error}", error_description="{_quote(description)}"'
    return EdgeError(
        grpc.StatusCode.UNAUTHENTICATED, description, headers={"WWW-Authenticate": challenge}
    )


def insufficient_scope(scope: str) -> EdgeError:
    return EdgeError(
        grpc.StatusCode.PERMISSION_DENIED,
        f"the token lacks the scope {scope}",
        headers={
            "WWW-Authenticate": (
                f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}"'
            )
        },
    )


def _quote(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; 401 if there is none."""
    if not authorization:
        raise unauthorized("a bearer token is required (Authorization: Bearer <token>)", None)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("the Authorization header must be 'Bearer <token>'", "invalid_request")
    return token.strip()


# Seconds before a failed fetch of the issuer's keys is tried again while none is held.
COLD_RETRY = 1.0


class Jwks:
    """The issuer's signing keys by ``kid``: discovered, cached, refetched on a new kid.

    A refresh is single-flight and runs as a task of its own: however many requests ask at
    once (a rotation, or a flood of made-up ``kid``s), one fetch is in flight, no lock is
    held across it, and requests whose key is cached keep being served meanwhile. Only a
    request whose ``kid`` is not cached (or the first, with no keys at all) waits for it.
    Fetches caused by unknown kids are at most one per ``min_refetch``; the whole set is
    fetched again in the background when it is older than ``max_age``. A fetch that fails
    is tried again after ``min_refetch``, or after ``COLD_RETRY`` while no key is held.
    """

    def __init__(
        self,
        issuer: str,
        http: httpx.AsyncClient,
        min_refetch: float = 10.0,
        max_age: float = 3600.0,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self._http = http
        self._min_refetch = min_refetch
        self._max_age = max_age
        self._keys: dict[str, jwt.PyJWK] = {}
        self._jwks_uri: str | None = None
        self._fetched_at = -float("inf")  # when the last fetch started (min_refetch)
        self._stale_at = -float("inf")  # when the cached set is due for a refresh
        self._refresh: asyncio.Task[None] | None = None
        self.fetches = 0

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key ``kid`` names; raises 401 when the issuer does not publish it."""
        now = time.monotonic()
        known = kid in self._keys or (kid is None and len(self._keys) == 1)
        if now >= self._stale_at:
            task = self._start_refresh()
            if not self._keys:
                await asyncio.shield(task)
        elif not known and now - self._fetched_at >= self._min_refetch:
            await asyncio.shield(self._start_refresh())
        elif not known and self._refresh is not None and not self._refresh.done():
            await asyncio.shield(self._refresh)  # a fetch already on its way: its result
        if not self._keys:
            raise EdgeError(
                grpc.StatusCode.UNAVAILABLE,
                "the token issuer's keys are not available; try again later",
            )
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        found = self._keys.get(kid or "")
        if found is None:
            raise unauthorized(f"the token is signed with an unknown key ({kid})")
        return found

    def _start_refresh(self) -> asyncio.Task[None]:
        """The refresh in flight, or a new one: never two at once."""
        if self._refresh is None or self._refresh.done():
            self._fetched_at = time.monotonic()
            self._refresh = asyncio.create_task(self._refresh_once())
        return self._refresh

    async def _refresh_once(self) -> None:
        try:
            await self._fetch()
            self._stale_at = time.monotonic() + self._max_age
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            # Not a client error: keep serving with the keys we have; try again later,
            # soon while there are none (every token is refused meanwhile: the issuer
            # slow at a cold start, say), at most one fetch a second.
            log.warning("could not fetch the issuer's keys: %s", exc)
            retry = self._min_refetch if self._keys else min(self._min_refetch, COLD_RETRY)
            self._stale_at = time.monotonic() + retry

    async def _fetch(self) -> None:
        if self._jwks_uri is None:
            resp = await self._http.get(f"{self.issuer}/.well-known/openid-configuration")
            resp.raise_for_status()
            config = resp.json()
            if str(config.get("issuer", "")).rstrip("/") != self.issuer:
                raise ValueError(f"discovery names issuer {config.get('issuer')!r}")
            self._jwks_uri = str(config["jwks_uri"])
        resp = await self._http.get(self._jwks_uri)
        resp.raise_for_status()
        keys = {}
        for data in resp.json().get("keys", []):
            if data.get("use", "sig") != "sig" or "kid" not in data:
                continue
            try:
                keys[data["kid"]] = jwt.PyJWK(data)
            except jwt.PyJWTError as exc:
                log.info("skipping key %s: %s", data.get("kid"), exc)
        self._keys = keys
        self._fetched_at = time.monotonic()
        self.fetches += 1
        log.info("fetched %d signing key(s) from %s", len(keys), self._jwks_uri)


class Authenticator:
    """Turns an ``Authorization`` header into a Principal, or a 401."""

    def __init__(
        self,
        jwks: Jwks,
        audience: str,
        leeway: float = 30.0,
        algorithms: Iterable[str] = ALGORITHMS,
    ) -> None:
        self.jwks = jwks
        self.issuer = jwks.issuer
        self.audience = audience
        self.leeway = leeway
        self.algorithms = tuple(algorithms)

    async def authenticate(self, authorization: str | None) -> Principal:
        return await self.verify(bearer_token(authorization))

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise unauthorized(f"the token is not a JWT: {exc}") from exc
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise unauthorized(f"the token's algorithm {alg!r} is not accepted")
        key = await self.jwks.key(header.get("kid"))
        if key.algorithm_name and key.algorithm_name != alg:
            raise unauthorized("the token's algorithm does not match its key")
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise unauthorized("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise unauthorized("the token is not valid yet (nbf/iat)") from exc
        except jwt.InvalidAudienceError as exc:
            raise unauthorized(f"the token is not for this audience ({self.audience})") from exc
        except jwt.InvalidIssuerError as exc:
            raise unauthorized("the token is from another issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise unauthorized(f"the token lacks the claim {exc.claim}") from exc
        except jwt.PyJWTError as exc:
            raise unauthorized(f"the token is invalid: {exc}") from exc
        return principal_of(claims)


def principal_of(claims: dict[str, Any]) -> Principal:
    scopes: set[str] = set()
    scp = claims.get("scp")
    if isinstance(scp, list):
        scopes.update(str(s) for s in scp)
    elif isinstance(scp, str):
        scopes.update(scp.split())
    if isinstance(claims.get("scope"), str):
        scopes.update(claims["scope"].split())
    subject = str(claims["sub"])
    client_id = str(claims.get("client_id") or subject)
    for name, value in (("sub", subject), ("client_id", client_id)):
        # They travel as gRPC metadata: printable ASCII only.
        if not value or len(value) > 256 or not all(" " <= c <= "~" for c in value):
            raise unauthorized(f"the token's {name} is not a printable ASCII id")
    return Principal(subject, client_id, frozenset(scopes), claims)
