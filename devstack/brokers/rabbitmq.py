"""A real RabbitMQ node (Debian's ``rabbitmq-server``, scripts/install-rabbitmq.sh) as a
child process on loopback, for ``make run BROKER=rabbitmq`` and tests/brokers.

Everything of one node is its own: its AMQP port, its Erlang distribution port, its
``epmd`` (on a port of its own, ``ERL_EPMD_PORT``, started in the node's process group and
stopped with it, so parallel test tiers never share one), its data, config, plugins file
and Erlang cookie (``HOME``) under ``store_dir``, which survives ``stop()``/``start()``: a
restart keeps the queues and their messages.

Secure by default: no ``guest``. The users come from a definitions file imported at boot
(``<store>/definitions.json``, 0600; passwords in ``<store>/creds/<user>.secret``, 0600,
made once and kept), made from the mesh file's ``[events]``:

- a service (an owner in ``[events.owners]``, or one of ``identities``) may publish on
  the events exchange only the event types it owns (topic permissions on the routing
  key), and may declare, bind, read and write only its own queues
  (``<stream>.<service>`` and its retry exchange and queues);
- ``admin`` (tag ``administrator``) may do anything: devstack provisions each service's
  queue with it once the node is up, bound to the events the service may consume, so
  nothing published before a service first starts is lost for it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shlex
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from devstack.brokers import MeshIdentities
from devstack.ports import free_ports, wait_port_free
from devstack.process import ChildProcess
from meshkit.security.secrets import write_secret

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
AMQP_PORT = 5672  # make run's (the AMQP default)
ADMIN = "admin"
VHOST = "/"


def queue_name(stream: str, durable: str) -> str:
    """The quorum queue of consumer group ``durable`` (a service)."""
    return f"{stream}.{durable}"


@dataclass(kw_only=True)
class RabbitMQServer(MeshIdentities, ChildProcess):
    """One RabbitMQ node on 127.0.0.1; restartable on the same ports and data."""

    name: ClassVar[str] = "rabbitmq"
    ready_timeout: ClassVar[float] = 90.0
    stop_timeout: ClassVar[float] = 30.0

    store_dir: Path
    fixed_ports: bool = False
    port: int = 0
    dist_port: int = 0
    epmd_port: int = 0

    # --- what clients get ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where clients connect (no credential in it)."""
        return f"amqp://127.0.0.1:{self.port}/"

    def user_url(self, user: str) -> str:
        """The AMQP URL of ``user``, with its password."""
        password = quote(self.password(user), safe="")
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/"

    def env(self, service: str) -> dict[str, str]:
        """A service's settings: its own user and password (in the URL); an identity the
        node has no user for gets the bare URL (and is refused when it connects)."""
        known = service in {ADMIN, *self.service_identities()}
        url = self.user_url(service) if known else self.url
        return {"MESH_BROKER": "rabbitmq", "MESH_BROKER_URL": url}

    def admin_env(self) -> dict[str, str]:
        """The administrator's settings (it may publish every event type)."""
        return self.env(ADMIN)

    def password(self, user: str) -> str:
        """``user``'s password (made on first use, kept in ``<store>/creds``); KeyError for
        a user the node does not have."""
        if user not in {ADMIN, *self.service_identities()}:
            raise KeyError(f"RabbitMQ has no user {user!r} (the mesh file's [events.owners])")
        path = self.store_dir / "creds" / f"{user}.secret"
        if path.exists():
            return path.read_text().strip()
        secret = secrets.token_urlsafe(24)
        write_secret(path, secret + "\n")
        return secret

    # --- the process ------------------------------------------------------------------

    def _ports(self) -> None:
        if not self.port:
            amqp, self.dist_port, self.epmd_port = free_ports(3)
            self.port = AMQP_PORT if self.fixed_ports else amqp
        elif not self.dist_port:
            self.dist_port, self.epmd_port = free_ports(2)

    def command(self) -> list[str]:
        self._ports()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        epmd = f"epmd -port {self.epmd_port} -address 127.0.0.1"
        # epmd first, in this process group (never a daemon of its own: `-start_epmd
        # false` below), and with the node's death signal; then the node, once epmd answers.
        script = (
            f"setpriv --pdeathsig TERM {epmd} & "
            f"for i in $(seq 200); do {epmd} -names >/dev/null 2>&1 && break; sleep 0.05; done; "
            f"exec {shlex.quote(str(RABBITMQ_BIN / 'rabbitmq-server'))}"
        )
        return ["bash", "-c", script]

    def environment(self) -> dict[str, str]:
        store = self.store_dir
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(store),  # the Erlang cookie: the node's and its CLI's own
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODENAME": "rabbit@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(store / "mnesia"),
            "RABBITMQ_LOG_BASE": str(store / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_CONFIG_FILE": str(store / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(store / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(store / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(store / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(store / "rabbitmq.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-start_epmd false",
        }

    def write_config(self) -> None:
        """rabbitmq.conf (loopback listener, definitions imported at boot, console log),
        no plugins, and the definitions (users, permissions, the events exchange)."""
        store = self.store_dir
        definitions = store / "definitions.json"
        write_secret(definitions, json.dumps(self.definitions(), indent=2) + "\n")
        (store / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            f"load_definitions = {definitions}\n"
            "log.console = true\n"
            "log.console.level = warning\n"
            "log.file = false\n"
            "log.connection.level = error\n"
        )
        (store / "enabled_plugins").write_text("[].\n")
        # what rabbitmqctl needs to reach this node: env $(cat <store>/cli.env) rabbitmqctl ...
        (store / "cli.env").write_text(
            f"HOME={store} ERL_EPMD_PORT={self.epmd_port} RABBITMQ_NODENAME=rabbit@localhost\n"
        )
        (store / "rabbitmq-env.conf").write_text("# devstack sets everything in the environment\n")

    def definitions(self) -> dict[str, Any]:
        events = self.events
        stream = events.stream
        users = [_user(ADMIN, self.password(ADMIN), ["administrator"])]
        permissions = [_permission(ADMIN, ".*", ".*", ".*")]
        topic_permissions = [_topic_permission(ADMIN, stream, ".*", ".*")]
        for service in self.service_identities():
            own = re.escape(queue_name(stream, service))
            mine = f"^{own}(\\..*)?$"
            exchange_or_mine = f"^({re.escape(stream)}|{own}(\\..*)?)$"
            users.append(_user(service, self.password(service), []))
            permissions.append(_permission(service, mine, exchange_or_mine, exchange_or_mine))
            owned = events.owned_by(service)
            write = "^(" + "|".join(re.escape(t) for t in owned) + ")$" if owned else "^$"
            topic_permissions.append(_topic_permission(service, stream, write, ".*"))
        return {
            "rabbit_version": "3.10.8",
            "users": users,
            "vhosts": [{"name": VHOST}],
            "permissions": permissions,
            "topic_permissions": topic_permissions,
            "exchanges": [
                {
                    "name": stream,
                    "vhost": VHOST,
                    "type": "topic",
                    "durable": True,
                    "auto_delete": False,
                    "internal": False,
                    "arguments": {},
                }
            ],
        }

    def is_ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def wait_ready(self, timeout: float | None = None) -> RabbitMQServer:
        super().wait_ready(timeout)
        self.provision()
        return self

    def provision(self) -> None:
        """Each service's queue, made by ``admin`` if it is not there yet (on a new node),
        bound to every event type the service does not own; the service narrows the
        bindings to what it handles when it consumes (meshkit/events/rabbitmq.py)."""
        from meshkit.events.rabbitmq import RabbitBus

        events = self.events
        self.provision_queues(
            lambda: RabbitBus.connect(self.user_url(ADMIN), "devstack", events),
            "rabbitmq-provision",
        )

    def ctl(self, *args: str) -> str:
        """``rabbitmqctl <args>`` against this node (its output); raises if it fails."""
        env = {**self.environment(), "RABBITMQ_CTL_ERL_ARGS": ""}
        out = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", "rabbit@localhost", "-q", *args],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout

    def cleanup(self) -> None:
        """Wait until the port is free again, so that a restart can bind it."""
        wait_port_free(self.port)


def password_hash(password: str) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _user(name: str, password: str, tags: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "password_hash": password_hash(password),
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": tags,
        "limits": {},
    }


def _permission(user: str, configure: str, write: str, read: str) -> dict[str, str]:
    return {"user": user, "vhost": VHOST, "configure": configure, "write": write, "read": read}


def _topic_permission(user: str, exchange: str, write: str, read: str) -> dict[str, str]:
    return {"user": user, "vhost": VHOST, "exchange": exchange, "write": write, "read": read}
