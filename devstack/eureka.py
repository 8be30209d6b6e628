"""A real Eureka server (Spring Cloud Netflix, infra/eureka) as a child process on loopback.

The jar is built by Maven and cached (scripts/install-eureka.sh, ``make setup`` with
``DISCOVERY=eureka``). Its registry is in memory: a restarted server comes back empty,
and the instances register again at their next heartbeat (answered 404).
"""

from __future__ import annotations

import functools
import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from devstack.ports import free_port
from devstack.process import ChildProcess
from devstack.tools import installed


@functools.cache
def eureka_jar() -> Path:
    """The Eureka server's jar: cached, else built (scripts/install-eureka.sh)."""
    return Path(installed("install-eureka.sh")) / "eureka-server.jar"


@dataclass
class EurekaServer(ChildProcess):
    """``java -jar eureka-server.jar`` on 127.0.0.1; a free port (0) or a fixed one, kept
    across restarts so every instance finds it again."""

    name: ClassVar[str] = "eureka"
    # A JVM and Spring Boot: ~10 s on an idle machine, 30 s and more on a loaded one.
    ready_timeout: ClassVar[float] = 180.0

    port: int = 0

    @property
    def url(self) -> str:
        """The service URL clients use (``--discovery-url``)."""
        return f"http://127.0.0.1:{self.port}/eureka"

    def command(self) -> list[str]:
        if not self.port:
            self.port = free_port()
        return [
            "java",
            # a small heap; C1 only and one GC thread: a faster start on 2 busy cores
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-jar",
            str(eureka_jar()),
            f"--server.port={self.port}",
        ]

    def is_ready(self) -> bool:
        return "applications" in self.apps()

    def apps(self) -> dict[str, Any]:
        """``GET /eureka/apps``: the registry, as JSON."""
        req = urllib.request.Request(self.url + "/apps", headers={"Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            body: dict[str, Any] = json.loads(resp.read())
            return body

    def instances(self, service: str, status: str | None = "UP") -> list[dict[str, Any]]:
        """The instances of ``service`` with ``status`` (``None``: any)."""
        out = []
        for app in self.apps()["applications"].get("application") or []:
            if app["name"] == service.upper():
                out += [i for i in app["instance"] if status is None or i["status"] == status]
        return out


def main() -> None:
    """``make eureka``: a Eureka server on 127.0.0.1:8761 until Ctrl-C."""
    server = EurekaServer(port=8761).start()
    print(f"eureka on {server.url} (dashboard at http://127.0.0.1:8761/); Ctrl-C stops it")
    try:
        assert server.process is not None
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
