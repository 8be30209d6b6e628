"""A stack of the console tests' own (Consul, NATS, the four services, Hydra, the gateway
with the console's admin token), and Debian's chromium driven by Playwright (from PyPI;
no browser is downloaded: ``executable_path=/usr/bin/chromium``)."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from devstack.edge import Edge, console_admin_token_file, start_console_client
from devstack.stack import DOMAIN_SERVICES, Stack
from devstack.tools import ROOT
from tests.support.polling import eventually_sync

CHROMIUM = Path("/usr/bin/chromium")
# Each expectation polls for its state up to this long: a loaded machine (2 cores).
expect.set_options(timeout=20_000)
# Per the machine's notes: without the background-networking flags chromium keeps trying
# hosts this closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class ConsoleStack:
    stack: Stack
    edge: Edge
    link: str  # the sign-in link: <gateway>/console#token=...
    shots: Path  # where screenshots go

    @property
    def url(self) -> str:
        return self.edge.url


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    if not (ROOT / "console" / "dist" / "index.html").is_file():
        pytest.fail("the console is not built: bash scripts/install-console.sh (make setup)")
    state = tmp_path_factory.mktemp("console-stack")
    stack = Stack(state, log_dir=state)
    try:
        stack.start()
        stack.start_services(DOMAIN_SERVICES)
        assert stack.consul is not None
        admin = console_admin_token_file(stack.consul)
        edge = stack.start_edge("--console-admin-token-file", str(admin))
        link = start_console_client(edge, state)
        wait_signed_in(edge, link)
        shots = tmp_path_factory.mktemp("console-screenshots")
        print(f"\nconsole screenshots in {shots}")
        yield ConsoleStack(stack, edge, link, shots)
    finally:
        stack.close()


def wait_signed_in(edge: Edge, link: str) -> None:
    """Until the gateway takes the link's token (``/console/api/session``): at a cold
    start its first fetch of the issuer's keys may fail, answered 503 until the next."""
    token = link.partition("#token=")[2]

    def accepted() -> bool:
        request = urllib.request.Request(
            f"{edge.url}/console/api/session", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status == 200
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                raise  # a refusal other than "not yet" is the test's failure
            return False
        except OSError:
            return False

    eventually_sync(accepted, 60.0, interval=0.5, what="the gateway taking the console's token")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    if not CHROMIUM.exists():
        pytest.fail(f"no {CHROMIUM}: bash scripts/install-console.sh installs Debian's chromium")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 1100},
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def page(browser: BrowserContext, console_stack: ConsoleStack) -> Iterator[Page]:
    """The console, signed in through the link `make run` prints."""
    p = browser.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.goto(console_stack.link)
    yield p
    p.close()
    assert not errors, f"the page raised: {errors}"
