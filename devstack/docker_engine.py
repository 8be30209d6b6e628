"""A Docker engine of our own: Debian's ``dockerd`` on a socket under a directory of a run.

Each run (``make images``, ``make run-containers``, a test session) starts its own
``dockerd`` with its socket, data root, exec root and pidfile under one directory, so two
runs never share an engine, and none touches a system Docker. The engine creates no
bridge and changes no iptables rules (``--bridge none --iptables=false``): containers run
with host networking on free loopback ports, and builds run with ``--network host``, so
parallel engines have no network of theirs to collide on. It needs root (as dockerd does).

    with DockerEngine(Path("/tmp/run/docker")) as engine:
        engine.docker("image", "ls")

The base image (Debian bookworm, minbase) is made without any image registry:
``debootstrap`` from the machine's own Debian mirror, tarred into the cache once (keyed by
the suite, the mirror and the day), then ``docker import``-ed into each engine.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from devstack.process import ChildProcess

BASE_IMAGE = "meshkit/base:bookworm"
SUITE = "bookworm"
# The Docker client of Debian's docker.io, the same version as the engine (a newer client
# elsewhere on the PATH may want buildx for BuildKit).
DOCKER_CLIENT = "/usr/bin/docker"


def cache_dir() -> Path:
    """The project's binary cache (as the install scripts compute it)."""
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("MESHKIT_CACHE") or Path(xdg) / "meshkit-shop")


@dataclass
class DockerEngine(ChildProcess):
    """``dockerd`` with everything of its own under ``root`` (a short path: the socket's
    length is limited); ready when ``docker version`` answers."""

    name: ClassVar[str] = "dockerd"
    ready_timeout: ClassVar[float] = 60.0
    stop_timeout: ClassVar[float] = 30.0
    poll_interval: ClassVar[float] = 0.2

    root: Path = Path()

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        if self.log_path is None:
            self.log_path = self.root / "dockerd.log"

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        """The DOCKER_HOST of this engine."""
        return f"unix://{self.socket}"

    def command(self) -> list[str]:
        if os.geteuid() != 0:
            raise PermissionError("dockerd needs root: run as root (CI does)")
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        for sub in ("data", "exec"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return [
            dockerd,
            "--host", self.host,
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "dockerd.pid"),
            "--storage-driver", "overlay2",
            "--bridge", "none",
            "--iptables=false",
            "--ip-masq=false",
            "--ip-forward=false",
        ]  # fmt: skip

    def client_env(self) -> dict[str, str]:
        """The environment of a ``docker`` client of this engine (BuildKit on)."""
        return {
            **os.environ,
            "DOCKER_HOST": self.host,
            "DOCKER_BUILDKIT": "1",
            "DOCKER_CONFIG": str(self.root / "client"),  # no user's config or credentials
        }

    def is_ready(self) -> bool:
        out = self.docker("version", "--format", "{{.Server.Version}}", check=False)
        return out.returncode == 0 and bool(out.stdout.strip())

    def docker(
        self, *args: str, check: bool = True, input: bytes | str | None = None, timeout=None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker <args>`` against this engine; its output captured (text)."""
        try:
            return subprocess.run(
                [DOCKER_CLIENT, *args],
                env=self.client_env(),
                check=check,
                capture_output=True,
                text=True,
                input=input,
                timeout=timeout,
            )
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(
                f"docker {' '.join(args[:3])}... failed ({exc.returncode}): "
                f"{(exc.stderr or '')[-3000:]}"
            ) from exc

    def has_image(self, ref: str) -> bool:
        return self.docker("image", "inspect", ref, check=False).returncode == 0

    def cleanup(self) -> None:
        """Whatever the engine left mounted under its root (it unmounts its own on a
        clean stop; after a SIGKILL it cannot)."""
        mounts = Path("/proc/self/mounts").read_text().splitlines()
        for line in reversed(mounts):
            point = line.split()[1].replace("\\040", " ")
            if point.startswith(f"{self.root}/"):
                subprocess.run(["umount", "-l", point], check=False, capture_output=True)


# --- the base image -------------------------------------------------------------------


def debian_mirror() -> str:
    """The machine's own Debian mirror: the first ``URIs:``/``deb`` line of apt's sources
    naming the main archive (not the security one)."""
    sources = [*sorted(Path("/etc/apt/sources.list.d").glob("*")), Path("/etc/apt/sources.list")]
    for path in sources:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            m = re.match(r"\s*(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(\S+)", line)
            if m and "security" not in m.group(1):
                return m.group(1)
    raise RuntimeError("no Debian mirror in /etc/apt/sources.list(.d): cannot make the base image")


def base_tarball(mirror: str | None = None, today: datetime.date | None = None) -> Path:
    """The root filesystem of Debian minbase (``debootstrap --variant=minbase``) as a
    tarball in the cache: made once per day and mirror (~35 s), reused afterwards; the
    tarballs of earlier days are removed."""
    mirror = mirror or debian_mirror()
    day = (today or datetime.date.today()).isoformat()
    key = hashlib.sha256(f"{SUITE} {mirror}".encode()).hexdigest()[:10]
    folder = cache_dir() / "images"
    tarball = folder / f"debian-{SUITE}-minbase-{day}-{key}.tar"
    if tarball.exists():
        return tarball
    folder.mkdir(parents=True, exist_ok=True)
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    with tempfile.TemporaryDirectory(prefix="meshkit-rootfs-", dir=folder) as tmp:
        rootfs = Path(tmp) / "rootfs"
        out = subprocess.run(
            [debootstrap, "--variant=minbase", SUITE, str(rootfs), mirror],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise RuntimeError(f"debootstrap failed ({out.returncode}): {out.stdout[-3000:]}")
        # No package lists or downloaded .debs in the image (apt-get update in a build).
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = Path(tmp) / "rootfs.tar"
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."], check=True
        )
        partial.rename(tarball)
    for old in folder.glob(f"debian-{SUITE}-minbase-*.tar"):
        if old != tarball:
            old.unlink(missing_ok=True)
    return tarball


def import_base(engine: DockerEngine, ref: str = BASE_IMAGE) -> str:
    """The base image in ``engine`` (imported from the cached tarball unless there)."""
    if not engine.has_image(ref):
        tarball = base_tarball()
        engine.docker(
            "import",
            "--change", "ENV LANG=C.UTF-8",
            "--change", 'CMD ["bash"]',
            str(tarball),
            ref,
        )  # fmt: skip
    return ref
