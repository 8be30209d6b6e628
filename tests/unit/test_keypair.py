"""The workload's key helper (``meshkit.security.keypair``), run as the child process the
mesh runs it as, and ``SignerClient``'s checks of a signer's answer."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from meshkit.security import certificates
from meshkit.security.certificates import SignerClient, SignerError
from meshkit.security.identity import SpiffeId
from meshkit.security.pki import create_ca, issue_leaf, sign_leaf

TD = "11111111-2222-3333-4444-555555555555.consul"


def converse(*questions: dict[str, Any]) -> list[dict[str, Any]]:
    """The key helper's answers to ``questions``, asked as the mesh asks them."""
    lines = "".join(json.dumps(q) + "\n" for q in questions)
    out = subprocess.run(
        certificates._KEYPAIR, input=lines, capture_output=True, text=True, timeout=60
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_the_helper_makes_a_csr_and_reads_the_leaf_signed_for_it() -> None:
    ca = create_ca()
    identity = SpiffeId(TD, "order")
    proc = subprocess.Popen(
        certificates._KEYPAIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None

    def ask(question: dict[str, Any]) -> dict[str, Any]:
        proc.stdin.write(json.dumps(question) + "\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        return json.loads(proc.stdout.readline())  # type: ignore[union-attr,no-any-return]

    csr = x509.load_pem_x509_csr(ask({"service": "order"})["csr"].encode())
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=order"
    cert_pem, not_after = sign_leaf(ca, csr.public_key(), identity, ["order"], 600)  # type: ignore[arg-type]
    facts = ask({"cert": cert_pem.decode(), "roots": ca.cert_pem.decode()})
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    assert facts["uris"] == [identity.uri]
    assert facts["issued_by_root"] is True
    assert dt.datetime.fromisoformat(facts["not_after"]) == not_after.replace(microsecond=0)
    key = serialization.load_pem_private_key(facts["key"].encode(), password=None)
    assert key.public_key() == csr.public_key()


def test_a_leaf_for_another_key_or_from_another_root_is_not_taken() -> None:
    ca, other = create_ca(), create_ca()
    stranger = issue_leaf(ca, SpiffeId(TD, "order"), ["order"], 600)  # not the helper's key
    _, facts = converse(
        {"service": "order"}, {"cert": stranger.cert_pem.decode(), "roots": ca.cert_pem.decode()}
    )
    assert facts["issued_by_root"] is False
    _, facts = converse(
        {"service": "order"}, {"cert": stranger.cert_pem.decode(), "roots": other.cert_pem.decode()}
    )
    assert facts["issued_by_root"] is False


def test_bad_input_gets_an_error_line_and_status_1() -> None:
    out = subprocess.run(
        certificates._KEYPAIR,
        input=json.dumps({"service": "order"}) + "\n" + json.dumps({"cert": "x", "roots": ""}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "error" in json.loads(out.stdout.splitlines()[-1])


class FakeSigner:
    """An HTTP signer whose answer the test chooses (SignerClient's checks, not TLS)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.asked: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.asked.append(body)
        csr = x509.load_pem_x509_csr(body["csr"].encode())
        return web.json_response(self.answer(csr))


@pytest.fixture
async def serve(monkeypatch: pytest.MonkeyPatch) -> Any:
    runners: list[web.AppRunner] = []

    async def start(signer: FakeSigner) -> str:
        app = web.Application()
        app.router.add_post("/v1/sign", signer.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_signer_client_takes_a_leaf_for_its_own_key(serve: Any) -> None:
    ca = create_ca()
    identity = SpiffeId(TD, "order")
    signer = FakeSigner(
        lambda csr: {"cert": sign_leaf(ca, csr.public_key(), identity, ["order"], 600)[0].decode()}
    )
    leaf = await SignerClient(await serve(signer), "tok").sign("order", 600, ca.cert_pem)
    assert leaf.identity == identity
    cert = x509.load_pem_x509_certificate(leaf.cert_pem)
    assert leaf.not_after == cert.not_valid_after_utc
    key = serialization.load_pem_private_key(leaf.key_pem, password=None)
    assert key.public_key() == cert.public_key()
    assert signer.asked[0]["ttl"] == 600


@pytest.mark.parametrize("wrong", ["another root", "another key"])
async def test_signer_client_refuses_a_leaf_it_cannot_use(serve: Any, wrong: str) -> None:
    ca, other = create_ca(), create_ca()
    identity = SpiffeId(TD, "order")

    def answer(csr: x509.CertificateSigningRequest) -> dict[str, str]:
        if wrong == "another key":
            return {"cert": issue_leaf(ca, identity, ["order"], 600).cert_pem.decode()}
        pem, _ = sign_leaf(other, csr.public_key(), identity, ["order"], 600)  # type: ignore[arg-type]
        return {"cert": pem.decode()}

    url = await serve(FakeSigner(answer))
    with pytest.raises(SignerError, match="not issued by Consul's Connect CA root"):
        await SignerClient(url, "tok").sign("order", 600, ca.cert_pem)


async def test_a_helper_that_fails_or_hangs_is_a_signer_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No leaf, a clear error, and no helper left behind."""
    client = SignerClient("http://127.0.0.1:9", "tok")  # never reached
    crash = "import sys; sys.stderr.write('Traceback ...\\nImportError: no cryptography\\n')"
    monkeypatch.setattr(certificates, "_KEYPAIR", (sys.executable, "-c", crash + "; sys.exit(3)"))
    with pytest.raises(SignerError, match="the key helper failed: ImportError: no cryptography"):
        await client.sign("order", 600, b"")
    monkeypatch.setattr(
        certificates, "_KEYPAIR", (sys.executable, "-c", "import time; time.sleep(60)")
    )
    monkeypatch.setattr(certificates, "_KEYPAIR_TIMEOUT", 0.5)
    spawned: list[asyncio.subprocess.Process] = []
    spawn = asyncio.create_subprocess_exec

    async def spy(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        spawned.append(await spawn(*args, **kwargs))
        return spawned[-1]

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spy)
    with pytest.raises(SignerError, match="the key helper did not answer"):
        await client.sign("order", 600, b"")
    assert spawned[0].returncode is not None  # killed and reaped
