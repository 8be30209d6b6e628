"""``make bench`` / ``make bench-quick``: every section, one table, one JSON file.

    python -m bench.run            the full run (a few minutes)
    python -m bench.run --quick    the same sections with tiny counts (CI: the harness works)
    python -m bench.run --sections 1,4

Everything runs on loopback in processes of its own (a Consul dev agent, NATS, the servers,
the load generators), bounded in count and time, and is stopped at the end, whatever
happens (a child also gets SIGTERM if this process dies). The table goes to stdout, each
figure beside its target with PASS or MISS; the same figures, with every raw measurement,
go to bench/results/<timestamp>.json. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import chain, failover, orders, overhead, scaling
from bench.profiles import PROFILES, Profile
from bench.report import Report, finish, machine_info, speed_probe, steal_ticks
from bench.stack import Stack

RESULTS = Path(__file__).resolve().parent / "results"

Section = Callable[[Stack, Profile, Report], dict[str, Any]]
SECTIONS: dict[str, tuple[str, Section]] = {
    "1": ("overhead", overhead.run),
    "2": ("chain", chain.run),
    "3": ("orders", orders.run),
    "4": ("failover", failover.run),
    "5": ("scaling", scaling.run),
}


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM/SIGHUP end the run like Ctrl-C: the finally blocks stop every process."""
    raise KeyboardInterrupt(f"signal {signum}")


def run(
    profile: Profile, sections: list[str], out: Path, keep: bool, mesh_env: dict[str, str]
) -> Report:
    started = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = Report(profile.name, started)
    machine = machine_info()
    # Inherited by every process of the run; only the mesh's processes read these.
    os.environ.update(mesh_env)
    machine["mesh_env"] = mesh_env
    print(
        f"meshkit-shop bench ({profile.name}): {machine['cpus']} CPUs ({machine['cpu_model']}), "
        f"load average {machine['load_avg'][0]:.2f} at start, Python {machine['python']}, "
        f"grpcio {machine['grpcio']}" + "".join(f", {k}={v}" for k, v in mesh_env.items()),
        flush=True,
    )
    t0 = time.monotonic()
    with Stack(keep=keep) as stack:
        machine["state_dir"] = str(stack.state)
        stack.start_consul()
        for key in sections:
            name, section = SECTIONS[key]
            began = time.monotonic()
            print(f"bench: section {key} ({name}) ...", file=sys.stderr, flush=True)
            probe, (stolen, ticks) = speed_probe(), steal_ticks()
            try:
                report.raw[name] = section(stack, profile, report)
            except Exception as exc:  # the other sections still run; the exit code says it
                traceback.print_exc(file=sys.stderr)
                report.errors[name] = f"{type(exc).__name__}: {exc}"
            took = time.monotonic() - began
            report.raw.setdefault("seconds", {})[name] = took
            # How fast the machine was around the section: figures of two runs compare only
            # as well as their machines did.
            stolen_after, ticks_after = steal_ticks()
            speed = {
                "probe_ms_before": probe,
                "probe_ms_after": speed_probe(),
                "steal_pct": 100.0 * (stolen_after - stolen) / max(ticks_after - ticks, 1),
            }
            report.raw.setdefault("machine_speed", {})[name] = speed
            print(
                f"bench: section {key} ({name}) took {took:.1f} s; speed probe"
                f" {speed['probe_ms_before']:.1f} -> {speed['probe_ms_after']:.1f} ms,"
                f" steal {speed['steal_pct']:.1f} %",
                file=sys.stderr,
                flush=True,
            )
        if keep:
            print(f"bench: state kept in {stack.state}", file=sys.stderr)
    finish(report, out, machine, t0)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny counts: proves the harness")
    p.add_argument("--sections", default=",".join(SECTIONS), help="e.g. 1,2 (default: all)")
    p.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    p.add_argument("--keep-state", action="store_true", help="keep the logs and state dir")
    p.add_argument(
        "--mesh-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for the mesh's processes, e.g. OTEL_TRACES_SAMPLER=always_off"
        " or MESH_ACCESS_LOG=0, to see what a feature costs (repeatable)",
    )
    a = p.parse_args(argv)
    bad = [e for e in a.mesh_env if "=" not in e]
    if bad:
        p.error(f"--mesh-env takes NAME=VALUE, not {bad}")
    mesh_env = dict(e.split("=", 1) for e in a.mesh_env)
    sections = [s.strip() for s in a.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {unknown}; there are {list(SECTIONS)}")
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    profile = PROFILES["quick" if a.quick else "full"]
    report = run(profile, sections, a.out, a.keep_state, mesh_env)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
