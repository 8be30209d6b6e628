"""1. Per-call overhead: one servicer served three ways in one run, side by side.

- bare grpcio aio, insecure;
- bare grpcio aio with mTLS (``ssl_server_credentials``, no interceptors);
- the mesh: the same servicer through the runtime (mTLS, authorization by intentions,
  deadline policy, telemetry: spans, RED metrics, the access log), registered in Consul.

Load from ghz (a Go client: the server's share of the cost alone) at fixed concurrency and
count after a warm-up, in interleaved rounds (median reported, so a burst of load from
elsewhere hits all three alike), then rate-limited at half of bare-mTLS saturation for the
added latency; and from the Python client (bench/client.py), whose mesh run goes through
``open_mesh``: the Consul-resolved channel and the client interceptors, i.e. both ends of
a hop.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.load import Target, client_args, ghz_measured, python_client
from bench.profiles import Profile
from bench.report import Report, at_least, at_most
from bench.stack import GET_STOCK, Stack

SECTION = "1. per-call overhead (GetStock)"
WAYS = {"bare": "bare insecure", "tls": "bare mTLS", "mesh": "mesh"}
HALF = "half of bare mTLS"
TENTH = "a tenth of bare mTLS"
BOTH = "half of the slower's"
# Rate-limited runs: a share of bare-mTLS saturation, and (BOTH) half of the saturation of
# the slower of bare mTLS and the mesh, a rate both sustain without queueing up.
LOADS = {HALF: 0.5, BOTH: 0.5, TENTH: 0.1}
SHORT = {HALF: "at half load", BOTH: "at a rate both sustain", TENTH: "at 1/10 load"}
# Targets of the latency a hop adds (ms), by load and percentile (ghz: the server's side).
LATENCY_TARGETS = {(HALF, "p50"): 0.3, (HALF, "p99"): 1.0, (TENTH, "p90"): 1.0}


def paced_rate(level: str, saturation: dict[str, Any], key: str = "qps") -> float:
    """The rate of a rate-limited run at ``level``, from the saturation runs' QPS."""
    base = saturation["tls"][key]
    if level == BOTH:
        base = min(base, saturation["mesh"][key])
    return LOADS[level] * base


ISTIO = "for scale, Istio: sidecars add 2.65 ms p90 per hop, ambient (ztunnel) 0.17 ms"


def median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure, the median over rounds."""
    out: dict[str, Any] = {"rounds": results}
    for key, value in results[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = statistics.median(r[key] for r in results)
    return out


def run(stack: Stack, profile: Profile, report: Report) -> dict[str, Any]:
    bare, tls, mesh = stack.servers(
        ("bare", "inventory", False), ("tls", "inventory", False), ("mesh", "inventory", False)
    )
    assert stack.consul is not None
    stack.consul.wait_passing("inventory")
    operator = stack.certs("operator")
    servers = {"bare": bare, "tls": tls, "mesh": mesh}
    targets = {
        "bare": Target("insecure", bare.address),
        "tls": Target("tls", tls.address, operator),
        "mesh": Target("mesh", mesh.address, operator),
    }
    protoset = stack.protoset()
    load = {"concurrency": profile.ghz_concurrency, "connections": profile.ghz_connections}
    raw: dict[str, Any] = {"servers": {w: s.info for w, s in servers.items()}}

    # a. Saturation with ghz, in rounds that rotate which way goes first.
    rounds: dict[str, list[dict[str, Any]]] = {w: [] for w in WAYS}
    order = list(WAYS)
    for r in range(profile.rounds):
        for way in order[r % 3 :] + order[: r % 3]:
            rounds[way].append(
                ghz_measured(
                    targets[way],
                    protoset,
                    GET_STOCK,
                    [servers[way].pid],
                    warmup=profile.ghz_warmup,
                    total=profile.ghz_total,
                    **load,
                )
            )
    saturation = {w: median_of(rounds[w]) for w in WAYS}
    raw["ghz_saturation"] = saturation

    # b. ghz rate-limited, at half of bare-mTLS saturation (the targets' load), at a rate
    # both sustain, and at a light load (a tenth of it): the latency a hop adds, with little
    # or no queueing. In rounds that rotate the order too (median): on 2 shared cores a
    # single run at half load now and then settles into a queued state, whichever server.
    ghz_paced: dict[str, dict[str, Any]] = {}
    for level in LOADS:
        rate = paced_rate(level, saturation)
        total = max(1, round(rate * profile.paced_seconds))
        paced: dict[str, list[dict[str, Any]]] = {w: [] for w in WAYS}
        for r in range(profile.rounds):
            for way in order[r % 3 :] + order[: r % 3]:
                paced[way].append(
                    ghz_measured(
                        targets[way], protoset, GET_STOCK, [servers[way].pid], warmup=0,
                        rps=rate, total=total, **load,
                    )
                )  # fmt: skip
        ghz_paced[level] = {"rate": rate, **{w: median_of(paced[w]) for w in WAYS}}
    raw["ghz_paced"] = ghz_paced

    # c. The Python client, closed loop; d. rate-limited, at half and a tenth of its own
    # bare-mTLS saturation, at most as many calls in flight as the closed loop.
    def py(way: str, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        args = client_args(targets[way], stack.consul_addr, stack.state)
        args += ["--warmup", str(profile.py_warmup), "--concurrency", str(profile.py_concurrency)]
        return python_client(
            "unary", [*args, *extra], log=stack.log, server_pids=[servers[way].pid], env=env
        )

    py_closed = {w: py(w, "--total", str(profile.py_total)) for w in WAYS}
    # e. What the client's resilience layer (breaker, ejection, bulkhead) costs with no
    # fault set: the mesh's Python client with it and without it (MESH_RESILIENCE=off),
    # in alternating rounds, the median of each.
    layer: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for _ in range(profile.rounds):
        for mode in layer:
            layer[mode].append(
                py("mesh", "--total", str(profile.py_total), env={"MESH_RESILIENCE": mode})
            )
    resilience = {mode: median_of(runs) for mode, runs in layer.items()}
    raw["python_resilience"] = resilience
    py_paced: dict[str, dict[str, Any]] = {}
    for level in LOADS:
        rate = paced_rate(level, py_closed)
        py_paced[level] = {"rate": rate}
        for w in WAYS:
            py_paced[level][w] = py(
                w, "--rate", f"{rate:.1f}", "--duration", str(profile.paced_seconds)
            )
    raw["python_closed"] = py_closed
    raw["python_paced"] = py_paced
    rss = {w: servers[w].peak_rss_mib() for w in WAYS}
    raw["peak_rss_mib"] = rss
    for child in servers.values():
        stack.stop(child)

    # The figures, three ways side by side ...
    report.describe(
        SECTION,
        "ghz (Go): the server's cost alone; the Python client: both ends of a hop (the mesh"
        " column\ncalls through open_mesh). Rate-limited runs: at half and at a tenth of bare-mTLS"
        " saturation,\nand at half of the slower one's (a rate both sustain); at most c calls in"
        " flight; ghz's\nin rounds too (median). CPU from /proc of the server process.",
    )
    c, n = profile.ghz_concurrency, profile.ghz_total
    sat = f"ghz c={c} n={n}, median of {profile.rounds}"
    rows: list[tuple[str, dict[str, Any], str, str]] = [
        (f"{sat}: QPS", saturation, "qps", "/s"),
        (f"{sat}: p50", saturation, "p50_ms", "ms"),
        (f"{sat}: p90", saturation, "p90_ms", "ms"),
        (f"{sat}: p99", saturation, "p99_ms", "ms"),
        (f"{sat}: server CPU per 1000 calls", saturation, "cpu_s_per_1000", "s"),
        (f"{sat}: server CPU per call", saturation, "cpu_us_per_call", "µs"),
    ]
    for level, runs in ghz_paced.items():
        at = f"ghz at {runs['rate']:,.0f}/s ({level})"
        rows += [
            (f"{at}: QPS reached", runs, "qps", "/s"),
            (f"{at}: p50", runs, "p50_ms", "ms"),
            (f"{at}: p90", runs, "p90_ms", "ms"),
            (f"{at}: p99", runs, "p99_ms", "ms"),
        ]
    pyc = f"Python client c={profile.py_concurrency}"
    rows += [
        (f"{pyc}: QPS", py_closed, "qps", "/s"),
        (f"{pyc}: p50", py_closed, "p50_ms", "ms"),
        (f"{pyc}: p99", py_closed, "p99_ms", "ms"),
        (f"{pyc}: server CPU per call", py_closed, "cpu_us_per_call", "µs"),
        (f"{pyc}: client CPU per call", py_closed, "client_cpu_us_per_call", "µs"),
    ]
    for level, runs in py_paced.items():
        at = f"Python at {runs['rate']:,.0f}/s ({level})"
        rows += [
            (f"{at}: QPS reached", runs, "qps", "/s"),
            (f"{at}: p50", runs, "p50_ms", "ms"),
            (f"{at}: p90", runs, "p90_ms", "ms"),
            (f"{at}: p99", runs, "p99_ms", "ms"),
        ]
    for name, results, key, unit in rows:
        for way, label in WAYS.items():
            report.add(SECTION, name, results[way][key], unit, column=label)
    runs_of = [saturation, py_closed, *ghz_paced.values(), *py_paced.values()]
    for way, label in WAYS.items():
        report.add(SECTION, "server peak RSS (VmHWM)", rss[way], "MiB", column=label)
        errors = sum(  # every round's, where a figure is a median of rounds
            int(one["errors"]) for r in runs_of for one in r[way].get("rounds", [r[way]])
        )
        report.add(SECTION, "failed calls (all runs)", errors, "", column=label)

    # ... and what the mesh adds, against its targets.
    ratio = 100.0 * saturation["mesh"]["qps"] / saturation["tls"]["qps"]
    # Each round's own ratio too: on shared cores they spread far wider than the median.
    per_round = [
        100.0 * m["qps"] / t["qps"]
        for m, t in zip(saturation["mesh"]["rounds"], saturation["tls"]["rounds"], strict=True)
    ]
    report.add(
        SECTION, "mesh QPS / bare-mTLS QPS (ghz, saturation)", ratio, "%", at_least(85),
        note="rounds: " + ", ".join(f"{r:.0f} %" for r in per_round),
    )  # fmt: skip
    py_ratio = 100.0 * py_closed["mesh"]["qps"] / py_closed["tls"]["qps"]
    report.add(
        SECTION, "mesh QPS / bare-mTLS QPS (Python client: both ends)", py_ratio, "%",
        at_least(85),
    )  # fmt: skip
    for level in LOADS:
        for source, runs, where in (
            ("ghz", ghz_paced[level], "server side"),
            ("Python", py_paced[level], "both ends"),
        ):
            for q in ("p50", "p90", "p99"):
                added = runs["mesh"][f"{q}_ms"] - runs["tls"][f"{q}_ms"]
                bound = LATENCY_TARGETS.get((level, q)) if source == "ghz" else None
                target = at_most(bound) if bound is not None else None
                report.add(
                    SECTION,
                    f"added latency per hop, {q} {SHORT[level]} ({source}: {where})",
                    added,
                    "ms",
                    target,
                    note=ISTIO if q == "p90" and source == "Python" and level == HALF else "",
                )
    added_cpu = saturation["mesh"]["cpu_us_per_call"] - saturation["tls"]["cpu_us_per_call"]
    report.add(
        SECTION, "added server CPU per call (ghz, saturation)", added_cpu, "µs", at_most(100)
    )
    added_client = (
        py_closed["mesh"]["client_cpu_us_per_call"] - py_closed["tls"]["client_cpu_us_per_call"]
    )
    report.add(SECTION, "added client CPU per call (Python client)", added_client, "µs")
    on, off = resilience["on"], resilience["off"]
    report.add(
        SECTION,
        "client resilience layer, no fault set: client CPU per call (on - off)",
        on["client_cpu_us_per_call"] - off["client_cpu_us_per_call"],
        "µs",
    )
    report.add(
        SECTION,
        "client resilience layer, no fault set: QPS on / off (Python client)",
        100.0 * on["qps"] / off["qps"],
        "%",
    )
    report.add(SECTION, "peak RSS of the mesh server process", rss["mesh"], "MiB", at_most(80))
    return raw
