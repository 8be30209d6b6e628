"""The console's settings: where its built page is, and whether admin actions are on.

Admin actions (flipping intentions, toggling fault scenarios) write to Consul, which the
gateway's own identity may not do: they are on only when the gateway is given a token of
its own for them (``--console-admin-token-file``, a Consul token of the ``console-admin``
policy that devstack makes), and each request for one needs the ``console:admin`` scope.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

READ_SCOPE = "console:read"
ADMIN_SCOPE = "console:admin"
DEFAULT_DIST = Path("console/dist")
DEFAULT_FAULTS_DIR = Path("infra/faults")


@dataclass(frozen=True)
class ConsoleConfig:
    dist: Path = DEFAULT_DIST
    faults_dir: Path = DEFAULT_FAULTS_DIR
    admin_token_file: Path | None = None
    refresh: float = 2.0  # how often the page asks for the topology (seconds)

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        env = os.environ
        p.add_argument(
            "--console-dist",
            type=Path,
            default=Path(env.get("CONSOLE_DIST", DEFAULT_DIST)),
            help="the console's built page (scripts/install-console.sh)",
        )
        p.add_argument(
            "--console-admin-token-file",
            type=Path,
            default=Path(env["CONSOLE_ADMIN_TOKEN_FILE"])
            if env.get("CONSOLE_ADMIN_TOKEN_FILE")
            else None,
            help="a Consul token that may write intentions and mesh/faults/: turns the"
            " console's admin actions on (off without it)",
        )
        p.add_argument("--faults-dir", type=Path, default=DEFAULT_FAULTS_DIR)

    @classmethod
    def from_namespace(cls, a: argparse.Namespace) -> ConsoleConfig:
        token_file: Path | None = a.console_admin_token_file
        if token_file is not None and not token_file.is_file():
            raise SystemExit(f"--console-admin-token-file: no file {token_file}")
        return cls(dist=a.console_dist, faults_dir=a.faults_dir, admin_token_file=token_file)
