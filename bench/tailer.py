"""Tailer benchmark: Wazuh's alerts.json into Casefold, against integratord's process per alert.

    .venv/bin/python bench/tailer.py [--quick] [--alerts N] [--sample N] [--profile]

In one run, over the same alerts:
  (a) writes N alerts from AlertGenerator the way analysisd does: logs/alerts/YYYY/Mon/
      ossec-alerts-DD.json with alerts.json a hard link to it;
  (b) the tailer into a fresh SQLite store on one core (the process pinned to the idlest CPU):
      the Runtime's AlertsTailer catches up with the file, timed until its last batch is
      committed, the store then checked to hold N alerts; the same unpinned as a second figure;
  (c) end to end: a fresh store and the whole service runtime (tailer, folding with the default
      rules, playbooks, ...) started together, timed until no alert is pending folding;
  (d) integratord's way: for each alert a temp file and a new process running a minimal
      forwarder (integratord_forwarder.py) that POSTs it to a running `casefold serve`,
      serially, as integratord does. It manages tens of alerts a second, so it runs over a
      sample and its rate is extrapolated;
  (e) the ratios of (b) and (c) to (d).
Each measurement of (b) and (c) runs in a fresh interpreter, so its peak RSS is its own; (b) is
the median of --runs runs (3). The machine is shared: the CPU other processes used during each
measurement is reported beside it.
Targets: (b) pinned >= 20,000 alerts/s, (c) >= 5,000 alerts/s. Prints a table, writes
bench/results/tailer.json, exits 1 if a target is missed. `--profile` instead runs (b) under
cProfile (the tailer's thread and the writer's) and prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(BENCH))

from alerts import AlertGenerator, ndjson  # noqa: E402
from intake import (  # noqa: E402
    INTAKE,
    fmt,
    git_commit,
    percentile,
    proc_cpu_seconds,
    report_head,
)
from support.server import ServerProcess  # noqa: E402

from casefold.config import Settings  # noqa: E402
from casefold.sources.alert_files import archive_name  # noqa: E402

TARGET_PINNED_ALERTS_PER_S = 20_000.0
TARGET_END_TO_END_ALERTS_PER_S = 5_000.0
FORWARDER = BENCH / "integratord_forwarder.py"
GENERATE_CHUNK = 5_000  # alerts generated and written at a time (bounded memory)
POLL_SECONDS = 0.1


# -- the machine ---------------------------------------------------------------------------------


def cpu_jiffies() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per line of /proc/stat: "cpu" (all) and "cpu0", "cpu1", ..."""
    out: dict[str, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if not line.startswith("cpu"):
            break
        name, *values = line.split()
        ticks = [int(v) for v in values[:8]]  # user nice system idle iowait irq softirq steal
        total = sum(ticks)
        out[name] = (total - ticks[3] - ticks[4], total)
    return out


def python_speed_ms() -> float:
    """Milliseconds one core takes for a fixed pure-Python loop (best of 3).

    This VM's speed drifts by 1.5x over minutes (its host is shared), with no steal time to show
    it: this probe, taken before and after, says how fast the machine was during the run."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return best * 1000


def loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def idlest_cpu(allowed: set[int], seconds: float = 0.5) -> int:
    """The allowed CPU that was busiest least over `seconds` (others share this machine)."""
    before = cpu_jiffies()
    time.sleep(seconds)
    after = cpu_jiffies()

    def busy(cpu: int) -> int:
        return after[f"cpu{cpu}"][0] - before[f"cpu{cpu}"][0]

    return min(sorted(allowed), key=busy)


class Others:
    """CPU used by everything but the measured process tree while a measurement runs.

    /proc/stat's busy time over the interval, minus the CPU our own children used (waited-for
    child processes, from getrusage) and this process's; in % of one core. `cpu` narrows it to
    one CPU, for a measurement pinned there (all of whose CPU then falls on that CPU).
    """

    def __init__(self, cpu: int | None = None, pids: tuple[int, ...] = ()) -> None:
        self.key = "cpu" if cpu is None else f"cpu{cpu}"
        self.pids = pids  # ours too: running children not waited for yet (a server)
        self.ticks = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> Others:
        self.wall0 = time.perf_counter()
        self.busy0 = cpu_jiffies()[self.key][0]
        self.ours0 = self._ours()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.wall0
        busy = (cpu_jiffies()[self.key][0] - self.busy0) / self.ticks
        ours = self._ours() - self.ours0
        self.pct = max(0.0, 100 * (busy - ours) / wall) if wall > 0 else float("nan")

    def _ours(self) -> float:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        running = sum(proc_cpu_seconds(pid) for pid in self.pids)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime + running


# -- (a) the alerts, laid out as analysisd writes them -------------------------------------------


def write_alerts(logs_alerts: Path, n: int, seed: int) -> Path:
    """Today's ossec-alerts-DD.json holding `n` alerts, alerts.json hard-linked to it.

    Today's local date, as analysisd names it: the tailer recognises the live file's archive
    name by looking at today's and yesterday's.
    """
    day_file = logs_alerts / archive_name(date.today())
    day_file.parent.mkdir(parents=True, exist_ok=True)
    gen = AlertGenerator(seed=seed)
    with open(day_file, "wb") as out:
        left = n
        while left:
            k = min(left, GENERATE_CHUNK)
            out.write(ndjson(gen.take(k)))
            left -= k
    link = logs_alerts / "alerts.json"
    os.link(day_file, link)
    # Written back now, not during the first measurement (its commits' fsyncs would wait for it).
    os.sync()
    return link


def first_lines(path: Path, n: int) -> list[bytes]:
    lines: list[bytes] = []
    with open(path, "rb") as fh:
        for line in fh:
            lines.append(line)
            if len(lines) == n:
                break
    return lines


# -- (b) and (c): measured in a fresh interpreter -------------------------------------------------


def measure_tailer(
    alerts_json: Path,
    data_dir: Path,
    expected: int,
    batch_lines: int,
    profiler: cProfile.Profile | None = None,
) -> dict:
    """The Runtime's tailer reading the whole file into a fresh store, writer only (no folding).

    `profiler` (--profile) profiles the calling thread over the timed part only.
    """
    from sqlalchemy import func, select

    from casefold.runtime import Runtime, tune_gc
    from casefold.store.tables import alerts

    settings = Settings(
        data_dir=data_dir, tail_alerts_json=alerts_json, tail_batch_lines=batch_lines
    )
    rt = Runtime(settings)
    rt.start(folding=False)  # migrates the store first: not timed
    tune_gc()  # as `casefold serve` does once started
    tailer = rt.tailer
    assert tailer is not None
    if profiler is not None:
        profiler.enable()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    tailer.catch_up()
    tailer.stop()  # settles: returns once the last batch is committed
    seconds = time.perf_counter() - wall0
    if profiler is not None:
        profiler.disable()
    cpu = time.process_time() - cpu0
    with rt.engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(alerts)).scalar_one()
    rt.stop()
    return {
        "alerts": expected,
        "stored": stored,
        "rejected": tailer.rejected,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "alerts_per_s": expected / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure_end_to_end(alerts_json: Path, data_dir: Path, expected: int, batch_lines: int) -> dict:
    """The whole runtime started on a fresh store; timed until every alert is folded."""
    from sqlalchemy import func, select

    from casefold.runtime import Runtime, tune_gc
    from casefold.store.tables import ALERT_PENDING, alerts, cases

    settings = Settings(
        data_dir=data_dir, tail_alerts_json=alerts_json, tail_batch_lines=batch_lines
    )
    rt = Runtime(settings)
    rt.open_store()  # the migration is not part of the rate
    tune_gc()
    tailer = rt.tailer
    assert tailer is not None
    pending_q = select(func.count()).select_from(alerts).where(alerts.c.state == ALERT_PENDING)
    timeout = max(600.0, expected / 100)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    rt.start()  # tailer, folding and the other loops, as `casefold serve` runs them
    stored_at = None
    with rt.engine.connect() as conn:
        while True:
            time.sleep(POLL_SECONDS)
            now = time.perf_counter() - wall0
            if now > timeout:
                raise TimeoutError(f"alerts still pending folding after {timeout:.0f} s")
            # The tailer's own count is free; the store is asked only once all are in.
            if tailer.stored + tailer.duplicates + tailer.rejected < expected:
                continue
            stored_at = stored_at or now
            if conn.execute(pending_q).scalar_one() == 0:
                break
            conn.rollback()  # end the read transaction: the next poll sees new commits
    seconds = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    rt.stop()
    with rt.engine.connect() as conn:
        states = dict(
            conn.execute(select(alerts.c.state, func.count()).group_by(alerts.c.state)).all()
        )
        n_cases = conn.execute(select(func.count()).select_from(cases)).scalar_one()
    rt.engine.dispose()
    return {
        "alerts": expected,
        "stored": sum(states.values()),
        "states": states,
        "cases": n_cases,
        "seconds": seconds,
        "stored_after_s": stored_at,
        "cpu_seconds": cpu,
        "alerts_per_s": expected / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


MEASURES = {"tailer": measure_tailer, "end-to-end": measure_end_to_end}


def run_child(kind: str, args: argparse.Namespace, alerts_json: Path, cpu: int | None) -> dict:
    """Run one measurement in a fresh interpreter (pinned to `cpu` if given) on a fresh store."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"casefold-bench-{kind}-", dir=args.tmp))
    cmd = [
        sys.executable,
        __file__,
        "--measure",
        kind,
        "--alerts-json",
        str(alerts_json),
        "--data-dir",
        str(data_dir),
        "--alerts",
        str(args.alerts),
        "--batch-lines",
        str(args.batch_lines),
    ]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    with Others(cpu) as others:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, check=False)
    if not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {kind} measurement failed (exit {done.returncode})")
    result = orjson.loads(done.stdout.splitlines()[-1])
    result["cpu"] = "all" if cpu is None else cpu
    result["others_cpu_pct"] = others.pct
    return result


def child_main(args: argparse.Namespace) -> int:
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # before any thread starts: they inherit it
    measure = MEASURES[args.measure]
    result = measure(args.alerts_json, args.data_dir, args.alerts, args.batch_lines)
    sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_NON_STR_KEYS) + b"\n")
    return 0


# -- (d) integratord's way -----------------------------------------------------------------------


@dataclass
class IntegratordResult:
    sample: int
    interpreter: str
    errors: int
    delivery_seconds: float
    alerts_per_s: float  # delivered (acknowledged by Casefold)
    folded_after_s: float  # from the first spawn until none of them was pending
    end_to_end_alerts_per_s: float
    p50_ms: float  # one alert: temp file, process, POST, exit, unlink
    p99_ms: float
    others_cpu_pct: float


def forwarder_interpreter() -> str:
    """The system's python3, as a custom integration's `#!/usr/bin/env python3` would find it.

    Not the virtualenv's: its site-packages add start-up time no Wazuh manager has.
    """
    for candidate in ("/usr/bin/python3", shutil.which("python3", path=os.defpath)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


def measure_integratord(args: argparse.Namespace, alerts_json: Path) -> IntegratordResult:
    warmup = 3
    lines = first_lines(alerts_json, warmup + args.sample)
    python = forwarder_interpreter()
    srv = ServerProcess(Path(tempfile.mkdtemp(prefix="casefold-bench-integratord-", dir=args.tmp)))
    print(f"  starting casefold serve (SQLite, {srv.data_dir}) ...", flush=True)
    srv.start()
    token, hook_url = srv.token, srv.url + INTAKE
    spool = Path(tempfile.mkdtemp(prefix="integratord-", dir=args.tmp))

    def deliver(line: bytes) -> int:
        # Integratord's temp file: /tmp/<name>-<time>-<random>.alert, one JSON line, unlinked
        # as soon as the integration exits (wazuh.md §1.4).
        path = spool / f"custom-casefold-{int(time.time())}-{secrets.randbits(31)}.alert"
        path.write_bytes(line)
        try:
            return subprocess.run(
                [python, str(FORWARDER), str(path), token, hook_url],
                stdout=subprocess.DEVNULL,
                check=False,
            ).returncode
        finally:
            path.unlink()

    try:
        for line in lines[:warmup]:  # the interpreter's files into the page cache; not timed
            deliver(line)
        srv.wait_folded(timeout=60)
        latencies: list[float] = []
        errors = 0
        assert srv.proc is not None
        with Others(pids=(srv.proc.pid,)) as others:
            start = time.perf_counter()
            for line in lines[warmup:]:
                t0 = time.perf_counter()
                errors += deliver(line) != 0
                latencies.append(time.perf_counter() - t0)
            delivered = time.perf_counter() - start
            srv.wait_folded(timeout=120)
            folded = time.perf_counter() - start
    finally:
        srv.stop()
    latencies.sort()
    n = len(lines) - warmup
    return IntegratordResult(
        sample=n,
        interpreter=python,
        errors=errors,
        delivery_seconds=delivered,
        alerts_per_s=n / delivered,
        folded_after_s=folded,
        end_to_end_alerts_per_s=n / folded,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        others_cpu_pct=others.pct,
    )


# -- --profile -----------------------------------------------------------------------------------


def profile_tailer(args: argparse.Namespace, alerts_json: Path, cpu: int) -> None:
    """(b) under cProfile: the calling thread (reads, parses) and the writer thread (stores)."""
    os.sched_setaffinity(0, {cpu})
    profiles: dict[str, cProfile.Profile] = {}

    def start_profiling(*_: Any) -> None:
        # threading.setprofile hands this to every thread started from now on; the thread then
        # swaps it for its own cProfile (enable() profiles only the calling thread).
        prof = profiles[threading.current_thread().name] = cProfile.Profile()
        prof.enable()

    main_prof = profiles["caller (tailer)"] = cProfile.Profile()
    threading.setprofile(start_profiling)
    data_dir = Path(tempfile.mkdtemp(prefix="casefold-bench-profile-", dir=args.tmp))
    result = measure_tailer(alerts_json, data_dir, args.alerts, args.batch_lines, main_prof)
    threading.setprofile(None)  # type: ignore[arg-type]
    print(
        f"\nprofiled tailer run: {result['alerts_per_s']:,.0f} alerts/s under cProfile "
        f"(pinned to CPU {cpu}; the profiler itself slows it down)"
    )
    for name, prof in profiles.items():
        if name.startswith("casefold-writer") or name == "caller (tailer)":
            print(f"\n===== {name}: top functions by own time")
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)


# -- reporting -----------------------------------------------------------------------------------


def median_run(runs: list[dict]) -> dict:
    """The run with the median rate (the lower middle one of an even count), with every rate."""
    ordered = sorted(runs, key=lambda r: r["alerts_per_s"])
    return {
        **ordered[(len(ordered) - 1) // 2],
        "runs_alerts_per_s": [r["alerts_per_s"] for r in runs],
    }


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="20,000 alerts, a sample of 100")
    ap.add_argument("--alerts", type=int, help="alerts in the file (default 200,000; quick 20,000)")
    ap.add_argument(
        "--sample", type=int, help="alerts sent integratord's way (default 500; quick 100)"
    )
    ap.add_argument("--runs", type=int, help="runs of each (b), the median reported (3; quick 1)")
    ap.add_argument(
        "--batch-lines",
        type=int,
        default=Settings.model_fields["tail_batch_lines"].default,
        help="tail_batch_lines (default: Casefold's)",
    )
    ap.add_argument("--cpu", type=int, help="the CPU to pin (b) to (default: the idlest)")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--tmp", type=Path, help="where the files and stores go (default: $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the alerts file and the stores")
    ap.add_argument("--profile", action="store_true", help="profile (b) instead; no results")
    ap.add_argument("--output", "--json", type=Path, default=BENCH / "results" / "tailer.json")
    # One measurement in a fresh interpreter (run_child); not for direct use.
    ap.add_argument("--measure", choices=sorted(MEASURES), help=argparse.SUPPRESS)
    ap.add_argument("--alerts-json", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.alerts = args.alerts or (20_000 if args.quick or args.profile else 200_000)
    args.sample = args.sample or (100 if args.quick else 500)
    args.runs = args.runs or (1 if args.quick else 3)
    if args.measure:
        return child_main(args)

    load_before = loadavg()
    speed_before = python_speed_ms()
    print(
        f"load average before: {' '.join(f'{v:.2f}' for v in load_before)}; "
        f"speed probe {speed_before:.0f} ms",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="casefold-bench-tailer-", dir=args.tmp))
    args.tmp = tmp
    try:
        print(f"(a) writing {args.alerts:,} alerts in Wazuh's layout under {tmp} ...", flush=True)
        alerts_json = write_alerts(tmp / "logs" / "alerts", args.alerts, args.seed)
        file_mb = alerts_json.stat().st_size / 2**20
        allowed = os.sched_getaffinity(0)
        cpu = args.cpu if args.cpu is not None else idlest_cpu(allowed)
        if args.profile:
            profile_tailer(args, alerts_json, cpu)
            return 0
        print(
            f"(b) the tailer into SQLite, pinned to CPU {cpu}, {args.runs} run(s) ...", flush=True
        )
        pinned_runs = [run_child("tailer", args, alerts_json, cpu) for _ in range(args.runs)]
        pinned = median_run(pinned_runs)
        print(f"    {pinned['alerts_per_s']:,.0f} alerts/s; unpinned ...", flush=True)
        unpinned_runs = [run_child("tailer", args, alerts_json, None) for _ in range(args.runs)]
        unpinned = median_run(unpinned_runs)
        print(f"    {unpinned['alerts_per_s']:,.0f} alerts/s", flush=True)
        print("(c) end to end: tailer + folding with the default rules ...", flush=True)
        e2e = run_child("end-to-end", args, alerts_json, None)
        print(f"    {e2e['alerts_per_s']:,.0f} alerts/s, {e2e['cases']:,} cases", flush=True)
        print(f"(d) integratord's way: {args.sample} alerts, a process each ...", flush=True)
        integ = measure_integratord(args, alerts_json)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
    load_after = loadavg()
    speed_after = python_speed_ms()

    targets = {
        "tailer_pinned_alerts_per_s": {
            "target": f">= {TARGET_PINNED_ALERTS_PER_S:,.0f}",
            "measured": pinned["alerts_per_s"],
            "pass": pinned["alerts_per_s"] >= TARGET_PINNED_ALERTS_PER_S
            and pinned["stored"] == args.alerts,
        },
        "end_to_end_alerts_per_s": {
            "target": f">= {TARGET_END_TO_END_ALERTS_PER_S:,.0f}",
            "measured": e2e["alerts_per_s"],
            "pass": e2e["alerts_per_s"] >= TARGET_END_TO_END_ALERTS_PER_S
            and e2e["stored"] == args.alerts,
        },
    }
    ratios = {
        "tailer_pinned_vs_integratord": ratio(pinned["alerts_per_s"], integ.alerts_per_s),
        "tailer_unpinned_vs_integratord": ratio(unpinned["alerts_per_s"], integ.alerts_per_s),
        "end_to_end_vs_integratord": ratio(e2e["alerts_per_s"], integ.end_to_end_alerts_per_s),
    }
    hours = args.alerts / integ.alerts_per_s / 3600

    print()
    print(
        f"casefold tailer benchmark  ({'quick' if args.quick else 'full'}; {args.alerts:,} alerts, "
        f"{file_mb:,.0f} MB; {os.cpu_count()} CPUs; commit {git_commit()})"
    )
    print(
        f"{'scenario':<46}{'alerts/s':>10}{'seconds':>9}{'CPU s':>8}{'peak RSS':>10}"
        f"{'others':>8}{'stored':>9}"
    )
    rows = (
        (f"(b) tailer -> SQLite, pinned to CPU {cpu}", pinned, f"{pinned['others_cpu_pct']:.0f}%"),
        ("(b) tailer -> SQLite, unpinned (2 CPUs)", unpinned, f"{unpinned['others_cpu_pct']:.0f}%"),
        (f"(c) end to end, {e2e['cases']:,} cases", e2e, f"{e2e['others_cpu_pct']:.0f}%"),
    )
    for label, m, others in rows:
        print(
            f"{label:<46}{m['alerts_per_s']:>10,.0f}{m['seconds']:>9.1f}{m['cpu_seconds']:>8.1f}"
            f"{m['peak_rss_mb']:>7.0f} MB{others:>8}{m['stored']:>9,}"
        )
    print(
        f"{'(d) integratord, a process per alert':<46}{integ.alerts_per_s:>10,.1f}"
        f"{integ.delivery_seconds:>9.1f}{'-':>8}{'-':>10}{integ.others_cpu_pct:>7.0f}%"
        f"{integ.sample - integ.errors:>9,}"
    )
    print(
        f"    (d) is a sample of {integ.sample} alerts, extrapolated: {args.alerts:,} alerts would "
        f"take {hours:.1f} h that way; one alert p50 {integ.p50_ms:.0f} ms, p99 "
        f"{integ.p99_ms:.0f} ms; folded {integ.end_to_end_alerts_per_s:,.1f}/s; forwarder run "
        f"by {integ.interpreter}"
    )
    rates = ", ".join(
        f"{label} " + " / ".join(f"{v:,.0f}" for v in m["runs_alerts_per_s"])
        for label, m in (("pinned", pinned), ("unpinned", unpinned))
    )
    print(f"    (b) median of {args.runs} run(s) each: {rates} alerts/s")
    print(
        f"    (c) every alert was stored after {e2e['stored_after_s']:.1f} s and folded after "
        f"{e2e['seconds']:.1f} s; alert states {e2e['states']}"
    )
    print("    others = CPU used by other processes meanwhile, in % of one core (of the pinned")
    print(
        f"    CPU for the pinned run); load average {' '.join(f'{v:.2f}' for v in load_before)} "
        f"before, {' '.join(f'{v:.2f}' for v in load_after)} after; speed probe (a fixed Python "
        f"loop, lower is faster) {speed_before:.0f} ms before, {speed_after:.0f} ms after"
    )
    print()
    print(f"{'ratio':<46}{'x':>10}")
    for name, value in ratios.items():
        print(f"{name:<46}{fmt(value, 0):>10}")
    print()
    print(f"{'target':<30}{'wanted':>10}{'measured':>12}  result")
    for name, t in targets.items():
        verdict = "PASS" if t["pass"] else "FAIL"
        print(f"{name:<30}{t['target']:>10}{fmt(t['measured'], 0):>12}  {verdict}")

    report = {
        **report_head(
            "tailer",
            args.quick,
            load_before=load_before,
            load_after=load_after,
            speed_probe_ms=[speed_before, speed_after],
        ),
        "config": {
            "alerts": args.alerts,
            "file_mb": file_mb,
            "sample": args.sample,
            "batch_lines": args.batch_lines,
            "pinned_cpu": cpu,
            "runs": args.runs,
            "seed": args.seed,
        },
        "tailer_pinned": {**pinned, "all_runs": pinned_runs},
        "tailer_unpinned": {**unpinned, "all_runs": unpinned_runs},
        "end_to_end": e2e,
        "integratord": {**asdict(integ), "extrapolated_hours_for_all": hours},
        "ratios": ratios,
        "targets": targets,
        "pass": all(t["pass"] for t in targets.values()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(
        orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n"
    )
    shown = args.output.relative_to(REPO) if args.output.is_relative_to(REPO) else args.output
    print(f"\nwrote {shown}")
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
