"""How each client example under clients/<lang>/ is built and run (the test and the README).

Builds reuse what ``make setup`` fetched (scripts/install-client-tools.sh): Go's module and
build caches, ``clients/node/node_modules`` (re-installed by ``npm ci`` only when
package-lock.json is newer), and ``~/.m2`` (Maven runs offline first, online only if
something is missing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
CLIENTS = ROOT / "clients"


class BuildError(RuntimeError):
    pass


def _run(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _check(out: subprocess.CompletedProcess[str], what: str) -> None:
    if out.returncode != 0:
        raise BuildError(f"{what} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")


def build_go(out_dir: Path, program: str = "place-order", timeout: float = 300) -> list[str]:
    """``clients/go/cmd/<program>`` built into ``out_dir``."""
    binary = out_dir / program
    res = _run(["go", "build", "-o", str(binary), f"./cmd/{program}"], CLIENTS / "go", timeout)
    _check(res, "go build")
    return [str(binary)]


def build_node(out_dir: Path, program: str = "place-order", timeout: float = 300) -> list[str]:
    """``clients/node/src/<program>.ts`` compiled (with the rest of src/) into dist/."""
    node = CLIENTS / "node"
    installed = node / "node_modules" / ".package-lock.json"
    lock = node / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        cmd = ["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"]
        _check(_run(cmd, node, timeout), "npm ci")
    _check(_run([str(node / "node_modules" / ".bin" / "tsc"), "-p", "."], node, timeout), "tsc")
    return ["node", str(node / "dist" / "clients" / "node" / "src" / f"{program}.js")]


def build_java(out_dir: Path, timeout: float = 600) -> list[str]:
    java = CLIENTS / "java"
    mvn = ["mvn", "-B", "-q", "-Dstyle.color=never", "package"]
    res = _run([*mvn[:1], "-o", *mvn[1:]], java, timeout)
    if res.returncode != 0:  # something not in ~/.m2 yet: fetch it from Maven Central
        res = _run(mvn, java, timeout)
    _check(res, "mvn package")
    return ["java", "-jar", str(java / "target" / "place-order.jar")]


def require_tools(*tools: str, what: str) -> None:
    """Skip unless every tool is on PATH; under CI (``CI`` set) fail instead, since CI is
    expected to have every client toolchain."""
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return
    reason = f"{', '.join(missing)} not on PATH: {what} needs it"
    if os.environ.get("CI"):
        pytest.fail(reason + " (and CI must have every client toolchain)")
    pytest.skip(reason)


@dataclass(frozen=True)
class Example:
    lang: str
    tools: tuple[str, ...]

    def require_tools(self) -> None:
        require_tools(*self.tools, what=f"the {self.lang} client example")

    def build(self, out_dir: Path) -> list[str]:
        """Build the example; return the command that runs it."""
        return {"go": build_go, "node": build_node, "java": build_java}[self.lang](out_dir)


EXAMPLES = (
    Example("go", ("go",)),
    Example("node", ("node", "npm")),
    Example("java", ("java", "mvn")),
)


def mesh_env(consul_http_addr: str, consul_token: str, cert_dir: Path) -> dict[str, str]:
    """What every example reads: where Consul is, the storefront's ACL token, and its
    certificates."""
    return {
        **os.environ,
        "CONSUL_HTTP_ADDR": consul_http_addr,
        "CONSUL_HTTP_TOKEN": consul_token,
        "MESH_CERT_DIR": str(cert_dir),
    }
