"""Workers benchmark: folding on PostgreSQL with 1, 2 and 3 `casefold worker` processes.

    .venv/bin/python bench/workers.py [--quick] [--alerts N] [--workers 1,2,3]

Starts a private PostgreSQL server (Debian's binaries, as the tests do, but with fsync on: a
benchmark should pay for durability as production does). Then, for each W, on a fresh database:
one `casefold serve --role api` (HTTP intake only) and W `casefold worker` processes (folding,
playbooks, outbox); N alerts are POSTed as NDJSON batches of 1,000 (bodies encoded before the
clock starts, two client threads so the client is not the bottleneck), and the clock runs from
the first POST until the store holds N alerts and none is pending folding. Reported per W:
intake alerts/s, folded alerts/s, scaling relative to W=1, cases, and where the CPU went (API,
workers, PostgreSQL, the client, other processes). The same N through one `casefold serve`
(role all, everything in one process) on PostgreSQL is the baseline.

The machine has 2 cores shared by all of these processes, so there are no targets for scaling:
the figures say how the work divides, not how far it would scale on a bigger machine. Prints a
table and writes bench/results/workers.json; exits 1 only if a run fails (lost alerts, errors).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson
import psycopg

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(BENCH))

from alerts import AlertGenerator, ndjson  # noqa: E402
from intake import INTAKE, fmt, git_commit, proc_cpu_seconds, report_head  # noqa: E402
from support.postgres import PostgresServer, find_bindir  # noqa: E402
from support.server import ServerProcess  # noqa: E402
from tailer import cpu_jiffies, loadavg  # noqa: E402

BATCH = 1000
CLIENT_THREADS = 2
POLL_SECONDS = 0.2
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- processes -----------------------------------------------------------------------------------


class Worker:
    """One `casefold worker` process; its output goes to a log file beside the data dir."""

    def __init__(self, data_dir: Path, database_url: str, index: int) -> None:
        self.log_path = data_dir.parent / f"{data_dir.name}-worker{index}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "casefold",
                    "worker",
                    "--database-url",
                    database_url,
                    "--data-dir",
                    str(data_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # finishes what it holds, then exits
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pg_settings(pg: PostgresServer) -> str:
    shown = []
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        for name in ("fsync", "synchronous_commit", "shared_buffers"):
            row = conn.execute(f"SHOW {name}").fetchone()
            shown.append(f"{name} {row[0] if row else '?'}")
    return ", ".join(shown)


def postgres_pids(pg: PostgresServer) -> list[int]:
    """The postmaster and its children (backends, background workers) alive now."""
    pid_file = pg.datadir / "postmaster.pid"
    postmaster = int(pid_file.read_text().split()[0])
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == postmaster:  # ppid
            pids.append(int(stat.parent.name))
    return pids


def cpu_of(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            out[pid] = proc_cpu_seconds(pid)
        except (OSError, ValueError):  # exited meanwhile
            pass
    return out


class CpuSplit:
    """CPU seconds per group of processes over a measurement, and what everything else used.

    PostgreSQL backends that start and end within the measurement are not seen (connection pools
    keep theirs open); "others" is the machine's busy time minus every group.
    """

    def __init__(self, groups: dict[str, list[int]], pg: PostgresServer) -> None:
        self.groups = groups
        self.pg = pg

    def __enter__(self) -> CpuSplit:
        self.wall0 = time.perf_counter()
        self.busy0 = cpu_jiffies()["cpu"][0]
        self.client0 = time.process_time()
        self.before = {name: cpu_of(pids) for name, pids in self.groups.items()}
        self.pg0 = cpu_of(postgres_pids(self.pg))
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.wall0
        used: dict[str, float] = {}
        for name, pids in self.groups.items():
            now = cpu_of(pids)
            used[name] = sum(now[p] - self.before[name].get(p, 0.0) for p in now)
        pg_now = cpu_of(postgres_pids(self.pg))
        used["postgres"] = sum(v - self.pg0.get(p, 0.0) for p, v in pg_now.items())
        used["client"] = time.process_time() - self.client0
        busy = (cpu_jiffies()["cpu"][0] - self.busy0) / CLK_TCK
        used["others"] = max(0.0, busy - sum(used.values()))
        self.pct = {name: 100 * seconds / wall for name, seconds in used.items()}


# -- one run -------------------------------------------------------------------------------------


@dataclass
class RunResult:
    label: str
    workers: int  # 0: the baseline, one `casefold serve` doing everything
    alerts: int
    intake_seconds: float
    intake_alerts_per_s: float
    folded_seconds: float  # from the first POST until none is pending
    folded_alerts_per_s: float
    pending_after_intake: int
    cases: int
    states: dict[str, int]
    errors: int
    cpu_pct: dict[str, float]  # % of one core, by process group
    backend_waits: dict[str, float]  # % of busy-backend samples while folding after intake
    scaling_vs_1: float = float("nan")
    notes: list[str] = field(default_factory=list)


def post_all(port: int, token: str, bodies: list[bytes]) -> tuple[float, float, int]:
    """POST every body over CLIENT_THREADS keep-alive connections; (start, end, errors)."""
    lock = threading.Lock()
    pending: Iterator[bytes] = iter(bodies)
    errors = 0
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}

    def client() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            while True:
                with lock:
                    body = next(pending, None)
                if body is None:
                    return
                conn.request("POST", INTAKE, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                if response.status != 202 or orjson.loads(payload)["accepted"] != BATCH:
                    with lock:
                        errors += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENT_THREADS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return start, time.perf_counter(), errors


def pending_count(conn: psycopg.Connection) -> int:
    """Alerts pending folding: a partial index holds exactly those, so polling it is cheap."""
    row = conn.execute("SELECT count(*) FROM alerts WHERE state = 'pending'").fetchone()
    assert row is not None
    return int(row[0])


def sample_waits(conn: psycopg.Connection, into: Counter[str]) -> None:
    """Count what each busy backend of this database is doing now (pg_stat_activity).

    "app" is a backend idle in a transaction: waiting for its Casefold process to send the next
    statement. "CPU" is a backend running with no wait event.
    """
    for state, wait in conn.execute(
        "SELECT state, wait_event_type || ':' || wait_event FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend' AND state <> 'idle'"
    ):
        into["app" if state.startswith("idle in transaction") else wait or "CPU"] += 1


def wait_for_workers(url: str, n: int, timeout: float = 60.0) -> None:
    """Until `n` worker processes have written their first heartbeat (they are folding)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM workers WHERE role = 'worker'").fetchone()
        if row is not None and row[0] >= n:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{n} worker(s) did not start within {timeout:.0f} s")


def one_run(
    pg: PostgresServer, tmp: Path, n_workers: int, bodies: list[bytes], timeout: float
) -> RunResult:
    url = pg.new_database()
    data_dir = tmp / f"data-w{n_workers}"
    role = "api" if n_workers else "all"
    srv = ServerProcess(data_dir, database_url=url, extra_args=("--role", role))
    srv.start(timeout=120)  # migrates the new database, writes the admin token
    workers: list[Worker] = []
    try:
        workers = [Worker(data_dir, url, i) for i in range(n_workers)]
        wait_for_workers(url, n_workers)
        assert srv.proc is not None
        groups = {"api" if n_workers else "serve": [srv.proc.pid]}
        if workers:
            groups["workers"] = [w.proc.pid for w in workers]
        alerts = len(bodies) * BATCH
        with psycopg.connect(url, autocommit=True) as conn, CpuSplit(groups, pg) as split:
            start, intake_end, errors = post_all(srv.port, srv.token, bodies)
            # Intake commits before it acknowledges: once every POST is answered, all are stored.
            pending = pending_after_intake = pending_count(conn)
            waits: Counter[str] = Counter()
            while pending:
                if time.perf_counter() - start > timeout:
                    raise TimeoutError(f"alerts still pending folding after {timeout:.0f} s")
                time.sleep(POLL_SECONDS)
                pending = pending_count(conn)
                sample_waits(conn, waits)
            done = time.perf_counter()
            states = dict(conn.execute("SELECT state, count(*) FROM alerts GROUP BY state"))
            row = conn.execute("SELECT count(*) FROM cases").fetchone()
        cases = int(row[0]) if row else 0
    finally:
        for w in workers:
            w.stop()
        srv.stop()
    label = f"{n_workers} worker{'s' if n_workers > 1 else ''} + api" if n_workers else "serve"
    return RunResult(
        label=label,
        workers=n_workers,
        alerts=alerts,
        intake_seconds=intake_end - start,
        intake_alerts_per_s=alerts / (intake_end - start),
        folded_seconds=done - start,
        folded_alerts_per_s=alerts / (done - start),
        pending_after_intake=pending_after_intake,
        cases=cases,
        states=states,
        errors=errors + (sum(states.values()) != alerts),
        cpu_pct=split.pct,
        backend_waits={k: 100 * v / max(1, waits.total()) for k, v in waits.most_common()},
    )


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10,000 alerts (a smoke test)")
    ap.add_argument("--alerts", type=int, help="alerts per run (default 60,000; quick 10,000)")
    ap.add_argument(
        "--workers",
        default="1,2,3",
        help="worker counts to run, comma-separated (the baseline always runs first)",
    )
    ap.add_argument(
        "--pg-fsync",
        choices=("on", "off"),
        default="on",
        help="PostgreSQL fsync (the tests run with it off)",
    )
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--tmp", type=Path, help="where the data dirs and logs go (default: $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the data dirs and process logs")
    ap.add_argument("--output", "--json", type=Path, default=BENCH / "results" / "workers.json")
    args = ap.parse_args(argv)
    n_alerts = args.alerts or (10_000 if args.quick else 60_000)
    n_alerts -= n_alerts % BATCH
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    bindir = find_bindir()
    if bindir is None:
        print("workers bench: no PostgreSQL binaries (initdb, pg_ctl) found", file=sys.stderr)
        return 2

    load_before = loadavg()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in load_before)}", flush=True)
    gen = AlertGenerator(seed=args.seed)
    # The same alerts in every run: each run has a fresh database, so none is a duplicate.
    bodies = [ndjson(gen.take(BATCH)) for _ in range(n_alerts // BATCH)]
    timeout = max(600.0, n_alerts / 20)
    tmp = Path(tempfile.mkdtemp(prefix="casefold-bench-workers-", dir=args.tmp))
    print(f"starting PostgreSQL ({bindir}) ...", flush=True)
    pg = PostgresServer(bindir, fsync=args.pg_fsync).start()
    runs: list[RunResult] = []
    try:
        settings = pg_settings(pg)
        for w in [0, *counts]:
            what = f"{w} worker(s) + casefold serve --role api" if w else "casefold serve (all)"
            print(f"  {what}: {n_alerts:,} alerts ...", flush=True)
            r = one_run(pg, tmp, w, bodies, timeout)
            runs.append(r)
            print(
                f"    intake {r.intake_alerts_per_s:,.0f} alerts/s, folded "
                f"{r.folded_alerts_per_s:,.0f} alerts/s, {r.cases:,} cases, errors {r.errors}",
                flush=True,
            )
    finally:
        pg.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
    load_after = loadavg()
    one = next((r for r in runs if r.workers == 1), None)
    for r in runs:
        if one is not None:
            r.scaling_vs_1 = r.folded_alerts_per_s / one.folded_alerts_per_s

    print()
    print(
        f"casefold workers benchmark  ({'quick' if args.quick else 'full'}; {n_alerts:,} alerts "
        f"per run in NDJSON batches of {BATCH:,}; PostgreSQL {settings}; commit {git_commit()})"
    )
    print(
        f"this machine has {os.cpu_count()} CPUs: the API, the workers, PostgreSQL and the client "
        "all share them, so more workers cannot add CPU"
    )
    print(
        f"{'processes':<20}{'intake/s':>10}{'folded/s':>10}{'vs 1':>7}{'seconds':>9}"
        f"{'pending':>9}{'cases':>7}{'errors':>7}   CPU, % of one core"
    )
    for r in runs:
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in r.cpu_pct.items())
        print(
            f"{r.label:<20}{r.intake_alerts_per_s:>10,.0f}{r.folded_alerts_per_s:>10,.0f}"
            f"{fmt(r.scaling_vs_1, 2):>7}{r.folded_seconds:>9.1f}{r.pending_after_intake:>9,}"
            f"{r.cases:>7,}{r.errors:>7}   {cpu}"
        )
    print(
        "    folded/s: alerts / (first POST until none pending); pending: alerts not yet folded "
        "when the last POST was acknowledged"
    )
    print("    what busy PostgreSQL backends were doing while folding (sampled every poll):")
    for r in runs:
        top = ", ".join(f"{k} {v:.0f}%" for k, v in list(r.backend_waits.items())[:4])
        print(f"      {r.label:<18}{top or '-'}")
    print(
        f"    load average {' '.join(f'{v:.2f}' for v in load_before)} before, "
        f"{' '.join(f'{v:.2f}' for v in load_after)} after"
    )
    ok = all(r.errors == 0 for r in runs) and len(runs) == 1 + len(counts)
    if len({r.cases for r in runs}) > 1:
        print("    note: the runs opened different numbers of cases from the same alerts")

    report = {
        **report_head("workers", args.quick, load_before=load_before, load_after=load_after),
        "config": {
            "alerts": n_alerts,
            "batch": BATCH,
            "client_threads": CLIENT_THREADS,
            "postgres": settings,
            "seed": args.seed,
        },
        "runs": [asdict(r) for r in runs],
        "targets": {},  # none: 2 cores cannot show how far workers scale
        "pass": ok,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    shown = args.output.relative_to(REPO) if args.output.is_relative_to(REPO) else args.output
    print(f"\nwrote {shown}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
