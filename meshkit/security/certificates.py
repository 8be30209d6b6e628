"""Certificates of the mesh: one trust root shared with Consul's Connect CA.

Consul's Connect leaf certificates carry only a SPIFFE URI SAN, and gRPC clients (Python,
Go) insist on a DNS or IP SAN for the server's hostname check. So the mesh keeps a CA of
its own that is *also* Consul's Connect CA root (``ca_config`` with
``PrivateKey``/``RootCert``, see ``pki.consul_ca_config``), and each service gets a leaf
with both: DNS/IP SANs for gRPC, the SPIFFE URI in Consul's trust domain for identity.
Any Connect workload holding a Consul leaf chains to the same root, so it can call the
services (subject to intentions), and the services trust exactly Consul's roots.

The CA key is held by one process, the signer (``meshkit.security.signer``; devstack keeps
the CA in ``.state/signer/``, 0700; the CA's code is ``meshkit.security.pki``). A workload
makes its own key and sends a CSR with its Consul ACL token (:class:`SignerClient`); the
signer signs only for the service the token holds. The key, the CSR and the reading of
the signer's answer are made in a child process (``meshkit.security.keypair``): this
module, the workload's side, never loads ``cryptography``.

Leaves are short-lived and re-issued at two thirds of their life or when Consul's roots or
trust domain change; servers pick the new one up on the next handshake, clients rebuild
their channels (see :meth:`Certificates.subscribe`).

``python -m meshkit.tools.certs certs`` creates the CA and gets certificates for tools.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import consul.aio
import grpc

from meshkit.consul import Watch, blocking_get
from meshkit.security.identity import NoIdentity, SpiffeId, spiffe_id_among

log = logging.getLogger("mesh.certificates")

CA_CERT = "ca.pem"
# The key helper, run as a script: ``-I`` keeps the environment and the script's own
# directory out of its import path.
_KEYPAIR = (sys.executable, "-I", str(Path(__file__).with_name("keypair.py")))
# How long the key helper may take to start and answer, on a loaded machine.
_KEYPAIR_TIMEOUT = 30.0


def utc_now() -> dt.datetime:
    """Now, timezone-aware UTC, as certificates state their validity."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Leaf:
    """A private key and certificate chain (PEM), plus what the mesh needs to know of them."""

    key_pem: bytes
    cert_pem: bytes
    identity: SpiffeId
    not_after: dt.datetime


def service_dns_names(service: str) -> list[str]:
    """DNS SANs of a service's leaf; clients check ``<service>.service.consul``."""
    return [f"{service}.service.consul", service, "localhost"]


def authority(service: str) -> str:
    """The name a client expects in a server's certificate of ``service``."""
    return f"{service}.service.consul"


@dataclass(frozen=True)
class Roots:
    """Consul's Connect CA roots: the trust domain and every root (and intermediate) PEM."""

    trust_domain: str
    pem: bytes

    @classmethod
    def from_consul(cls, body: dict[str, object]) -> Roots:
        pems: list[str] = []
        for root in body.get("Roots") or []:  # type: ignore[attr-defined]
            pems.append(root["RootCert"].strip() + "\n")
            pems += [c.strip() + "\n" for c in root.get("IntermediateCerts") or []]
        return cls(str(body["TrustDomain"]), "".join(pems).encode())


class SignerError(RuntimeError):
    """The signer refused a CSR (``status`` is its HTTP status), could not be reached, or
    answered with a leaf this workload cannot use."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SignerClient:
    """A workload's way to a leaf: its own key, a CSR to the signer (``POST /v1/sign``,
    HTTPS verified against the mesh's roots), its Consul ACL token as the proof of who it
    is. The CA key stays in the signer (``meshkit.security.signer``)."""

    url: str
    token: str

    async def sign(self, service: str, ttl: float, roots_pem: bytes) -> Leaf:
        """A new key and a leaf for it, issued by one of ``roots_pem`` to ``service``'s
        identity; SignerError if the signer refuses or answers with anything else."""
        async with _Keypair() as keypair:
            csr = (await keypair.ask({"service": service}))["csr"]
            cert = await self._post(service, {"csr": csr, "ttl": ttl}, roots_pem)
            facts = await keypair.ask({"cert": cert, "roots": roots_pem.decode()})
        if not facts["issued_by_root"]:
            raise SignerError(
                f"the signer's leaf for {service} is not issued by Consul's Connect CA root: "
                "start Consul with the config from meshkit.security.pki.consul_ca_config "
                "(devstack does)"
            )
        try:
            identity = spiffe_id_among([str(u).encode() for u in facts["uris"]])
        except NoIdentity as exc:
            raise SignerError(f"the signer's leaf for {service} has no identity: {exc}") from exc
        not_after = dt.datetime.fromisoformat(facts["not_after"])
        return Leaf(str(facts["key"]).encode(), cert.encode(), identity, not_after)

    async def _post(self, service: str, body: dict[str, Any], roots_pem: bytes) -> str:
        """The signer's certificate (PEM) for the CSR in ``body``."""
        import ssl

        import aiohttp

        ctx = ssl.create_default_context(cadata=roots_pem.decode())
        headers = {"X-Consul-Token": self.token} if self.token else {}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
                session.post(
                    self.url.rstrip("/") + "/v1/sign", json=body, headers=headers, ssl=ctx
                ) as resp,
            ):
                answer = await resp.json(content_type=None)
                if resp.status != 200:
                    error = (answer or {}).get("error", "") if isinstance(answer, dict) else ""
                    raise SignerError(
                        f"the signer refused a certificate for {service}: {resp.status} {error}",
                        resp.status,
                    )
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise SignerError(f"no answer from the signer at {self.url}: {exc}") from exc
        return str(answer["cert"])


class _Keypair:
    """``meshkit.security.keypair`` in a child process, for one leaf: the key and the CSR
    are made there and the signer's answer is read there, so this process never loads
    ``cryptography`` (about 11 MiB of resident memory, for work done once per leaf)."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> _Keypair:
        self._proc = await asyncio.create_subprocess_exec(
            *_KEYPAIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return self

    async def ask(self, question: dict[str, Any]) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(question).encode() + b"\n")
        try:
            async with asyncio.timeout(_KEYPAIR_TIMEOUT):
                await proc.stdin.drain()
                line = await proc.stdout.readline()
        except (TimeoutError, ConnectionError) as exc:
            if proc.returncode is None:
                proc.kill()
            raise SignerError(f"the key helper did not answer: {exc!r}") from exc
        answer = json.loads(line) if line.strip() else {}
        if not answer or "error" in answer:
            why = answer.get("error") or await self._stderr()
            raise SignerError(f"the key helper failed: {why}")
        return answer  # type: ignore[no-any-return]

    async def _stderr(self) -> str:
        """The last line the helper wrote on stderr (a traceback's), once it has ended."""
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        await self._end(proc)
        said = (await proc.stderr.read()).decode(errors="replace").strip()
        return said.splitlines()[-1] if said else f"exit status {proc.returncode}"

    @staticmethod
    async def _end(proc: asyncio.subprocess.Process) -> None:
        """Waits for the helper to exit (its stdin closed), killing it after 5 s."""
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            async with asyncio.timeout(5):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.returncode is None:
            await self._end(self._proc)


def read_token(path: Path | str) -> str:
    return Path(path).read_text().strip()


class Certificates:
    """The instance's current leaf and trust bundle, kept fresh in the background.

    The leaf comes from the signer (``signer``): a fresh key each time, a CSR, the signer's
    answer; re-issued at two thirds of its life and when Consul's roots change. The trust
    bundle is Consul's Connect CA roots (watched), or ``roots_pem`` without Consul."""

    def __init__(
        self,
        service: str,
        signer: SignerClient,
        ttl: float,
        *,
        consul_client: consul.aio.Consul | None = None,
        trust_domain: str = "meshkit.local",
        roots_pem: bytes = b"",
    ) -> None:
        self.service = service
        self._signer = signer
        self._ttl = ttl
        self._consul = consul_client
        self._roots = Roots(trust_domain, roots_pem)
        self.leaf: Leaf | None = None
        self._issued_at = utc_now()
        self._listeners: list[Callable[[], None]] = []
        self._watch: Watch[Roots] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._reissue: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.generation = 0

    @property
    def trust_domain(self) -> str:
        return self._roots.trust_domain

    @property
    def roots_pem(self) -> bytes:
        return self._roots.pem

    @property
    def identity(self) -> SpiffeId:
        assert self.leaf is not None
        return self.leaf.identity

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every rotation of the leaf or the roots."""
        self._listeners.append(listener)

    async def start(self) -> None:
        if self._consul is not None:
            c = self._consul

            async def fetch(index: int) -> tuple[int, Roots]:
                i, body = await blocking_get(c, "/v1/agent/connect/ca/roots", index)
                return i, Roots.from_consul(body)

            self._watch = Watch("connect-ca-roots", fetch, self._on_roots).start()
            self._roots = await self._watch.ready()
        if not self._roots.pem:
            raise RuntimeError("no trust roots: neither Consul's Connect CA nor a CA file")
        await self._rotate("start")
        self._renewer = asyncio.create_task(self._renew_forever(), name="cert-renewer")

    def _on_roots(self, roots: Roots) -> None:
        if self.leaf is None:  # still starting: start() takes the first answer itself
            return
        changed_domain = roots.trust_domain != self._roots.trust_domain
        self._roots = roots
        why = "trust domain changed" if changed_domain else "roots changed"
        if self._reissue is not None:
            self._reissue.cancel()
        self._reissue = asyncio.create_task(self._rotate_until_done(why), name="cert-reissue")

    async def _rotate(self, why: str) -> None:
        async with self._lock:
            leaf = await self._signer.sign(self.service, self._ttl, self.roots_pem)
            self.leaf = leaf
            self._issued_at = utc_now()
            self.generation += 1
        log.info(
            "certificate issued (%s) for %s, valid until %s", why, leaf.identity, leaf.not_after
        )
        for listener in self._listeners:
            listener()

    async def _rotate_until_done(self, why: str) -> None:
        """Rotate, retrying (the signer restarting, Consul away) with backoff."""
        backoff = 0.5
        while True:
            try:
                await self._rotate(why)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("certificate (%s): %s; retrying in %.1fs", why, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _renew_forever(self) -> None:
        while True:
            assert self.leaf is not None
            # Two thirds into the leaf's life (the signer may have granted less than asked).
            life = (self.leaf.not_after - self._issued_at).total_seconds()
            left = (self.leaf.not_after - utc_now()).total_seconds()
            await asyncio.sleep(max(1.0, left - life / 3))
            await self._rotate_until_done("renewal")

    async def stop(self) -> None:
        tasks = [t for t in (self._renewer, self._reissue) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._watch is not None:
            await self._watch.stop()

    # --- gRPC credentials -------------------------------------------------------------

    def _server_config(self) -> grpc.ServerCertificateConfiguration:
        assert self.leaf is not None
        return grpc.ssl_server_certificate_configuration(
            [(self.leaf.key_pem, self.leaf.cert_pem)], root_certificates=self.roots_pem
        )

    def server_credentials(self) -> grpc.ServerCredentials:
        """mTLS server credentials that pick up a rotated leaf/roots on the next handshake."""
        served = [self.generation]

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            if served[0] == self.generation:
                return None
            served[0] = self.generation
            return self._server_config()

        return grpc.dynamic_ssl_server_credentials(
            self._server_config(), fetch, require_client_authentication=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """mTLS client credentials for the current leaf (build a new channel after rotation)."""
        assert self.leaf is not None
        return grpc.ssl_channel_credentials(
            root_certificates=self.roots_pem,
            private_key=self.leaf.key_pem,
            certificate_chain=self.leaf.cert_pem,
        )
