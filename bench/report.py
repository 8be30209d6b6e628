"""The figures of a run: each beside its target (PASS/MISS), printed as a table and written
as JSON (bench/results/<timestamp>.json)."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Target:
    """``value <op> bound``: ``>=`` or ``<=``."""

    op: str
    bound: float

    def met(self, value: float) -> bool:
        if value is None or math.isnan(value):
            return False
        return value >= self.bound if self.op == ">=" else value <= self.bound

    def __str__(self) -> str:
        return f"{'≥' if self.op == '>=' else '≤'} {self.bound:g}"


def at_least(bound: float) -> Target:
    return Target(">=", bound)


def at_most(bound: float) -> Target:
    return Target("<=", bound)


@dataclass
class Figure:
    section: str
    name: str
    value: float
    unit: str = ""
    target: Target | None = None
    note: str = ""
    column: str = ""  # figures of one name side by side (e.g. bare / mTLS / mesh)

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        return "PASS" if self.target.met(self.value) else "MISS"


@dataclass
class Report:
    profile: str
    started: str
    figures: list[Figure] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    legends: dict[str, str] = field(default_factory=dict)

    def describe(self, section: str, legend: str) -> None:
        """A line or two printed under the section's heading: how to read its figures."""
        self.legends[section] = legend

    def add(
        self,
        section: str,
        name: str,
        value: float,
        unit: str = "",
        target: Target | None = None,
        note: str = "",
        column: str = "",
    ) -> Figure:
        figure = Figure(section, name, float(value), unit, target, note, column)
        self.figures.append(figure)
        return figure

    def to_json(self, machine: dict[str, Any]) -> dict[str, Any]:
        return _clean(
            {
                "profile": self.profile,
                "started": self.started,
                "machine": machine,
                "figures": [
                    {
                        **{k: v for k, v in asdict(f).items() if k != "target"},
                        "target": str(f.target) if f.target else None,
                        "verdict": f.verdict or None,
                    }
                    for f in self.figures
                ],
                "legends": self.legends,
                "sections": self.raw,
                "errors": self.errors,
            }
        )

    def table(self) -> str:
        """Sections in order; figures with columns side by side, the others one a line."""
        lines: list[str] = []
        sections: dict[str, list[Figure]] = {}
        for f in self.figures:
            sections.setdefault(f.section, []).append(f)
        for section, figures in sections.items():
            lines += ["", f"[{section}]"]
            if section in self.legends:
                lines += [f"  {line}" for line in self.legends[section].splitlines()]
            lines += _matrix([f for f in figures if f.column])
            single = [f for f in figures if not f.column]
            if single:
                lines.append(f"  {'':<{NAME}} {'measured':>{VALUE}}  {'target':<{TARGET}}")
            for f in single:
                lines.append(
                    f"  {f.name:<{NAME}} {_fmt(f.value, f.unit):>{VALUE}}  "
                    f"{_target(f):<{TARGET}} {f.verdict}".rstrip()
                )
                if f.note:
                    lines.append(f"      ({f.note})")
        for section, error in self.errors.items():
            lines += ["", f"[{section}] FAILED: {error}"]
        passed = sum(f.verdict == "PASS" for f in self.figures)
        missed = [f for f in self.figures if f.verdict == "MISS"]
        lines += ["", f"targets: {passed} met, {len(missed)} missed"]
        for f in missed:
            lines.append(
                f"  MISS [{f.section}] {f.name}: {_fmt(f.value, f.unit)}, target {_target(f)}"
            )
        return "\n".join(lines)


NAME, VALUE, TARGET = 60, 14, 12


def _matrix(figures: list[Figure]) -> list[str]:
    if not figures:
        return []
    columns: list[str] = []
    rows: dict[str, dict[str, Figure]] = {}
    for f in figures:
        if f.column not in columns:
            columns.append(f.column)
        rows.setdefault(f.name, {})[f.column] = f
    width = max(VALUE, *(len(c) for c in columns))
    lines = [f"  {'':<{NAME}}" + "".join(f" {c:>{width}}" for c in columns)]
    for name, cells in rows.items():
        values = [_fmt(cells[c].value, cells[c].unit) if c in cells else "" for c in columns]
        lines.append(f"  {name:<{NAME}}" + "".join(f" {v:>{width}}" for v in values))
    return lines


def _target(f: Figure) -> str:
    if f.target is None:
        return ""
    return f"{f.target}{(' ' + f.unit) if f.unit and f.unit != 'x' else ''}".replace(" %", "%")


def _fmt(value: float, unit: str) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "x":
        return f"{value:.2f}x"
    if not unit and value == int(value):
        return f"{int(value):,}"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _clean(value: Any) -> Any:
    """JSON has no NaN: None instead."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    import grpc

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "load_avg": list(os.getloadavg()),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "kernel": platform.release(),
    }


def speed_probe() -> float:
    """Milliseconds for a fixed piece of pure-Python work (the median of 5): on a shared
    virtual machine the same code runs faster or slower from one hour to the next, and
    every figure of a section moves with it."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        x = 0
        for i in range(200_000):
            x += i * i % 7
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def steal_ticks() -> tuple[int, int]:
    """(stolen, total) CPU ticks of the machine so far (/proc/stat): time the hypervisor
    gave the virtual CPUs to someone else."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def write_json(report: Report, directory: Path, machine: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{report.started}.json"
    path.write_text(json.dumps(report.to_json(machine), indent=2) + "\n")
    return path


def finish(report: Report, directory: Path, machine: dict[str, Any], t0: float) -> Path:
    """The end of a bench run begun at monotonic ``t0``: the table on stdout, the JSON in
    ``directory`` (with the load average at the end and the run's seconds)."""
    machine["load_avg_end"] = list(os.getloadavg())
    machine["seconds"] = time.monotonic() - t0
    print(report.table())
    path = write_json(report, directory, machine)
    print(f"\n{len(report.figures)} figures in {machine['seconds']:.0f} s; JSON: {path}")
    return path
