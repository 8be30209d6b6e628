"""A Docker engine of our own: Debian's ``dockerd`` on a socket under a directory of a run.

Each run (``make images``, ``make run-containers``, a test session) starts its own
``dockerd`` with its socket, data root, exec root and pidfile under one directory, so two
runs never share an engine, and none touches a system Docker. The engine creates no
bridge and changes no iptables rules (``--bridge none --iptables=false``): containers run
with host networking on free loopback ports, and builds run with ``--network host``, so
parallel engines have no network of theirs to collide on. It needs root (as dockerd does).

    with DockerEngine(Path("/tmp/run/docker")) as engine:
        engine.docker("image", "ls")

The base images (Debian bookworm minbase, and the same with python3) are made without any
image registry:
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
PYTHON_IMAGE = "meshkit/python:bookworm"
PYTHON_PACKAGES = ("python3",)
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
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float | None = None,
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
    """The machine's own Debian mirror: ``MESHKIT_DEBIAN_MIRROR``, else the first
    ``URIs:``/``deb`` line of apt's sources naming a Debian archive (not the security one),
    else (a machine that is not Debian) deb.debian.org."""
    if os.environ.get("MESHKIT_DEBIAN_MIRROR"):
        return os.environ["MESHKIT_DEBIAN_MIRROR"]
    sources = [*sorted(Path("/etc/apt/sources.list.d").glob("*")), Path("/etc/apt/sources.list")]
    for path in sources:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            m = re.match(r"\s*(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(\S+)", line)
            if m and "/debian" in m.group(1) and "security" not in m.group(1):
                return m.group(1)
    return "http://deb.debian.org/debian"


def base_tarballs(mirror: str | None = None, today: datetime.date | None = None) -> dict[str, Path]:
    """The root filesystems of the two base images as tarballs in the cache: Debian minbase
    (``debootstrap --variant=minbase``) and the same with Debian's ``python3`` installed
    (from the package lists debootstrap fetched: no ``apt-get update``, in no build).
    Made once per day and mirror (~45 s on an idle machine), reused afterwards; those of
    earlier days are removed. Neither holds package lists or downloaded ``.deb`` files."""
    mirror = mirror or debian_mirror()
    day = (today or datetime.date.today()).isoformat()
    key = hashlib.sha256(f"{SUITE} {mirror} {' '.join(PYTHON_PACKAGES)}".encode()).hexdigest()
    folder = cache_dir() / "images"
    tarballs = {
        image: folder / f"debian-{SUITE}-{kind}-{day}-{key[:10]}.tar"
        for image, kind in ((BASE_IMAGE, "minbase"), (PYTHON_IMAGE, "python"))
    }
    if all(t.exists() for t in tarballs.values()):
        return tarballs
    folder.mkdir(parents=True, exist_ok=True)
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    with tempfile.TemporaryDirectory(prefix="meshkit-rootfs-", dir=folder) as tmp:
        rootfs, lists = Path(tmp) / "rootfs", Path(tmp) / "lists"
        out = subprocess.run(
            [debootstrap, "--variant=minbase", SUITE, str(rootfs), mirror],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise RuntimeError(f"debootstrap failed ({out.returncode}): {out.stdout[-3000:]}")
        shutil.move(rootfs / "var/lib/apt/lists", lists)  # for python3, not in the base
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
        _clean(rootfs)
        _tar(rootfs, tarballs[BASE_IMAGE])
        shutil.rmtree(rootfs / "var/lib/apt/lists")
        shutil.move(lists, rootfs / "var/lib/apt/lists")
        subprocess.run(["mount", "-t", "proc", "proc", str(rootfs / "proc")], check=True)
        try:
            out = subprocess.run(
                ["chroot", str(rootfs), "apt-get", "install", "-y", "--no-install-recommends",
                 *PYTHON_PACKAGES],
                capture_output=True,
                text=True,
                env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            )  # fmt: skip
        finally:
            subprocess.run(["umount", "-l", str(rootfs / "proc")], check=False)
        if out.returncode != 0:
            raise RuntimeError(
                f"apt-get install python3 failed: {(out.stdout + out.stderr)[-3000:]}"
            )
        _clean(rootfs)
        _tar(rootfs, tarballs[PYTHON_IMAGE])
    for old in folder.glob(f"debian-{SUITE}-*.tar"):
        if old not in tarballs.values():
            old.unlink(missing_ok=True)
    return tarballs


def _clean(rootfs: Path) -> None:
    """No package lists, apt caches, downloaded .debs, docs, manuals or locales in an image."""
    for junk in ("var/cache/apt", "var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (rootfs / junk).glob("*"):
            if entry.is_file():
                entry.unlink()
    for junk in ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale"):
        for entry in (rootfs / junk).glob("*"):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def _tar(rootfs: Path, tarball: Path) -> None:
    partial = tarball.with_name(tarball.name + ".partial")
    subprocess.run(
        ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."], check=True
    )
    partial.rename(tarball)


def import_base(engine: DockerEngine) -> dict[str, str]:
    """The base images in ``engine`` (imported from the cached tarballs unless there):
    ``{"BASE": minbase, "PYTHON_BASE": minbase with python3}``, the Dockerfile's args."""
    missing = [ref for ref in (BASE_IMAGE, PYTHON_IMAGE) if not engine.has_image(ref)]
    if missing:
        tarballs = base_tarballs()
        for ref in missing:
            engine.docker(
                "import",
                "--change", "ENV LANG=C.UTF-8",
                "--change", 'CMD ["bash"]',
                str(tarballs[ref]),
                ref,
            )  # fmt: skip
    return {"BASE": BASE_IMAGE, "PYTHON_BASE": PYTHON_IMAGE}
