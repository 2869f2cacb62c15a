"""Soak: tens of thousands of comments through the running service, one HTTP POST each.

    make soak                               # pytest -m soak (long fault runs), then this
    .venv/bin/python -m bench.soak          # 20,000 comments, lite model, 2 workers
    .venv/bin/python -m bench.soak --comments 2000 --model bert --rate 40

The stack is the one docker-compose.yml runs: redis-server with an append-only file
(`appendfsync everysec`, `noeviction`), `moderation serve` (gunicorn, its default 2 processes
of 8 threads) and N `moderation worker` processes, all on this machine, with the per-site
rate limit off (this measures capacity). `--model lite` is the embedded model; `--model bert`
is the bert-base Detoxify twin with random weights that bench/detoxify_model.py builds.

The load is bench/load_client.py's: by default `full_load` (4 threads POST the comments as
fast as the API takes them, 8 threads read each decision back with `GET ?wait=`); with
`--rate R`, `paced_load` (one `POST ?wait=` every 1/R s). A comment's latency runs from the
start of its POST to the moment the client holds its decision.

While it runs, the resident memory of every process (the gunicorn master and its workers,
each scoring worker and the RQ scheduler it forks, redis-server and its AOF rewrite forks),
the queue depth and the oldest pending comment's age are sampled twice a second; at the end
each live process's VmHWM (the kernel's peak) and USS (memory no other process shares) are
read too. Then every comment's audit
trail is read from Redis: lost = accepted - decided exactly once (must be 0), and how many
were decided more than once. Prints a table; writes bench/results/soak-<date>.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil
import redis
import requests
from rq.registry import FailedJobRegistry

from bench.comments import shuffled_comments
from bench.detoxify_bench import machine
from bench.detoxify_model import CACHE, bench_model
from bench.load_client import LoadResult, ServiceClient, full_load, paced_load
from bench.reports import write_report
from bench.stacks import Service, running_service
from moderation.core.redis_keys import KEYS
from moderation.storage.comment_store import CommentStore
from moderation.storage.job_queues import SCORING_QUEUE, scoring_queue
from tests.support.load import automatic_decision_counts
from tests.support.processes import wait_for

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SCRATCH = CACHE / "soak-last-run"  # logs of the latest run, replaced by the next
SITE = "bench"  # the site bench/stacks.py creates
MIB = 2**20


# --- memory of every process ------------------------------------------------------------------


@dataclass
class ProcessMemory:
    role: str
    pid: int
    first_rss: int = 0
    peak_rss: int = 0
    last_rss: int = 0
    vm_hwm: int | None = None
    uss: int | None = None

    def row(self) -> dict:
        return {
            "role": self.role,
            "pid": self.pid,
            "rss_start_mib": round(self.first_rss / MIB, 1),
            "rss_peak_sampled_mib": round(self.peak_rss / MIB, 1),
            "rss_end_mib": round(self.last_rss / MIB, 1),
            "vm_hwm_mib": round(self.vm_hwm / MIB, 1) if self.vm_hwm else None,
            "uss_end_mib": round(self.uss / MIB, 1) if self.uss else None,
        }


def vm_hwm(pid: int) -> int | None:
    """The kernel's peak resident set of a live process (/proc/<pid>/status), in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def unique_memory(pid: int) -> int | None:
    """Memory only this process holds (USS): a forked child shares most of its RSS with its
    parent, so its RSS would count the model twice."""
    try:
        return psutil.Process(pid).memory_full_info().uss
    except psutil.Error:
        return None


@dataclass
class Sampler:
    """Samples from a thread the RSS of the service's processes and of their children (found
    afresh each time: gunicorn workers, the RQ scheduler a worker forks, Redis's AOF rewrite
    forks), and the scoring queue's depth and the age of the oldest pending comment."""

    #: (role, pid, role of its children)
    roots: list[tuple[str, int, str]]
    redis_url: str
    interval: float = 0.5
    processes: dict[int, ProcessMemory] = field(default_factory=dict)
    peak_queue_depth: int = 0
    peak_oldest_pending_s: float = 0.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._redis = redis.Redis.from_url(self.redis_url)

    def members(self) -> list[tuple[str, psutil.Process]]:
        """(role, process) for each root and each of its descendants."""
        found = []
        for role, pid, child_role in self.roots:
            try:
                root = psutil.Process(pid)
                children = root.children(recursive=True)
            except psutil.Error:
                continue
            found.append((role, root))
            found += [(child_role, child) for child in children]
        return found

    def sample(self) -> None:
        for role, process in self.members():
            try:
                rss = process.memory_info().rss
            except psutil.Error:
                continue
            entry = self.processes.setdefault(process.pid, ProcessMemory(role, process.pid, rss))
            entry.peak_rss = max(entry.peak_rss, rss)
            entry.last_rss = rss
        depth = scoring_queue(self._redis).count
        oldest = CommentStore(self._redis).oldest_pending_age() or 0.0
        self.peak_queue_depth = max(self.peak_queue_depth, depth)
        self.peak_oldest_pending_s = max(self.peak_oldest_pending_s, oldest)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> list[dict]:
        """Stop sampling and read each live process's VmHWM; one row per process seen."""
        self._stop.set()
        self._thread.join()
        self.sample()
        self._redis.close()
        for entry in self.processes.values():
            entry.vm_hwm = vm_hwm(entry.pid)
            entry.uss = unique_memory(entry.pid)
        return [entry.row() for entry in self.processes.values()]


# --- what was decided -------------------------------------------------------------------------


class RecordingClient(ServiceClient):
    """The load client, remembering which comments the API accepted (202 or 200)."""

    def __init__(self, base_url: str, api_key: str) -> None:
        super().__init__(base_url, api_key)
        self.accepted: set[str] = set()
        self._lock = threading.Lock()

    def submit(self, comment_id: str, text: str, author: str, wait: float = 0) -> dict:
        record = super().submit(comment_id, text, author, wait)
        with self._lock:
            self.accepted.add(comment_id)
        return record


def integrity(service: Service, client: RecordingClient, ids: Sequence[str]) -> dict:
    """Waits until nothing is pending, then counts each accepted comment's decisions."""
    with redis.Redis.from_url(service.redis_url) as connection:
        store = CommentStore(connection)
        wait_for(lambda: store.pending_count() == 0, timeout=600, interval=0.5, what="decisions")
        with connection.pipeline(transaction=False) as pipe:
            for comment_id in ids:
                pipe.exists(KEYS.comment(SITE, comment_id))
            stored = {i for i, found in zip(ids, pipe.execute(), strict=True) if found}
        accepted = client.accepted | stored
        decisions = automatic_decision_counts(connection, SITE, sorted(accepted))
        once = sum(1 for count in decisions.values() if count == 1)
        failed = FailedJobRegistry(SCORING_QUEUE, connection=connection).count
        memory = connection.info("memory")
        persistence = connection.info("persistence")
    return {
        "posted": len(ids),
        "accepted_by_client": len(client.accepted),
        "stored_in_redis": len(stored),
        "accepted_not_stored": len(client.accepted - stored),
        "decided_exactly_once": once,
        "lost": len(accepted) - once,
        "never_decided": sum(1 for count in decisions.values() if count == 0),
        "decided_more_than_once": sum(1 for count in decisions.values() if count > 1),
        "failed_jobs": failed,
        "redis_used_memory_peak_mib": round(memory["used_memory_peak"] / MIB, 1),
        "redis_used_memory_end_mib": round(memory["used_memory"] / MIB, 1),
        "redis_aof_enabled": bool(persistence.get("aof_enabled")),
    }


def metrics_totals(url: str) -> dict[str, float]:
    """Decisions and acceptances as /metrics counts them, for a cross-check."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    totals = {"accepted": 0.0, "auto_decisions": 0.0}
    for line in text.splitlines():
        if line.startswith("moderation_comments_accepted_total "):
            totals["accepted"] = float(line.split()[-1])
        elif line.startswith("moderation_decisions_total{") and 'decider="auto"' in line:
            totals["auto_decisions"] += float(line.split()[-1])
    return totals


# --- the run ----------------------------------------------------------------------------------


def model_settings(model: str) -> tuple[dict[str, str], dict]:
    """The workers' environment for `model`, and what to report about it."""
    if model == "lite":
        return {"MODERATION_TOXICITY_MODEL": "lite"}, {"toxicity": "lite"}
    built = bench_model()
    settings = {
        "MODERATION_TOXICITY_MODEL": f"detoxify:{built.checkpoint}",
        "MODERATION_DETOXIFY_CONFIG_DIR": str(built.config_dir),
        "MODERATION_PRECISION": "auto",
        "MODERATION_TORCH_THREADS": "1",
    }
    return settings, {"toxicity": "Detoxify bert-base, random weights", **built.info}


def soak_texts(count: int, offset: int = 0) -> list[str]:
    """`count` comments: the YouTube collection in its fixed shuffle, repeated as needed, each
    copy numbered (from `offset`) so that no two texts are the same."""
    texts = shuffled_comments()
    return [f"{texts[n % len(texts)]} ({n})" for n in range(offset, offset + count)]


def run(args: argparse.Namespace) -> dict:
    """Start the stack, warm it up, run the full-load phase and then (unless --paced 0) the
    paced phase at half the full-load rate, then check every comment and read the memory."""
    shutil.rmtree(SCRATCH, ignore_errors=True)
    settings, model_info = model_settings(args.model)
    report: dict = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join([".venv/bin/python -m bench.soak", *sys.argv[1:]]),
        "model": model_info,
        "workers": args.workers,
        "stack": "redis-server --appendonly yes --appendfsync everysec --maxmemory-policy "
        f"noeviction; moderation serve (gunicorn 2 processes x 8 threads); {args.workers} x "
        "moderation worker; MODERATION_RATE_LIMIT_SITE=off",
        "phases": {},
    }
    with running_service(SCRATCH, args.workers, settings, appendonly=True) as service:
        warm = ServiceClient(service.url, service.api_key)
        full_load(warm, soak_texts(args.warm_up, offset=10**6), "warm")  # not measured
        client = RecordingClient(service.url, service.api_key)
        roots = [
            ("redis-server", service.redis_pid, "redis-server: AOF rewrite fork"),
            ("api: gunicorn master", service.api_pid, "api: gunicorn worker"),
        ]
        roots += [
            (f"worker {n}", pid, f"worker {n}: RQ scheduler fork")
            for n, pid in enumerate(service.worker_pids)
        ]
        sampler = Sampler(roots, service.redis_url)
        sampler.start()
        ids: list[str] = []
        phases: list[tuple[str, int]] = [("full", args.comments)]
        if args.paced:
            phases.append(("paced", args.paced))
        for name, count in phases:
            texts = soak_texts(count, offset=len(ids))
            meter = service.cpu_meter()
            meter.start()
            if name == "full":
                result: LoadResult = full_load(client, texts, name)
            else:
                rate = args.rate or report["phases"]["full"]["comments_per_s"] / 2
                result = paced_load(client, texts, name, rate)
            report["phases"][name] = {**result.report(), "cpu": meter.stop()}
            ids += [f"{name}-{index}" for index in range(count)]
        report["comments"] = len(ids)
        report["integrity"] = integrity(service, client, ids)
        totals = metrics_totals(service.url)
        report["metrics"] = {**totals, "warm_up": args.warm_up}
        report["memory"] = sampler.stop()
        report["backlog"] = {
            "peak_queue_depth": sampler.peak_queue_depth,
            "peak_oldest_pending_s": round(sampler.peak_oldest_pending_s, 1),
        }
    return report


# --- output -----------------------------------------------------------------------------------


def _latency(result: dict) -> str:
    latency = result["latency"]
    return (
        f"{latency.get('p50_ms')} / {latency.get('p95_ms')} / {latency.get('p99_ms')} ms "
        f"(max {latency.get('max_ms')})"
    )


def print_table(report: dict) -> None:
    check = report["integrity"]
    print(
        f"soak {report['date']}: {report['comments']} comments, one POST each, "
        f"{report['workers']} workers, toxicity model {report['model']['toxicity']}"
    )
    print(f"  machine: {report['machine']['cpu']}, {report['machine']['cores']} cores")
    rows = []
    for name, result in report["phases"].items():
        shape = "full load" if name == "full" else f"paced at {result.get('target_rate')}/s"
        cores = ", ".join(f"{k} {v}" for k, v in result["cpu"]["cores_busy"].items())
        rows += [
            (f"{name}: comments", f"{result['comments']} ({shape})"),
            (
                f"{name}: decided/s",
                f"{result['comments_per_s']:.1f} (steady {result['steady_comments_per_s']})",
            ),
            (f"{name}: p50/p95/p99", _latency(result)),
            (f"{name}: client errors", f"{result['errors']} {result['error_kinds']}"),
            (f"{name}: cores busy", cores),
        ]
    metrics = report["metrics"]
    rows += [
        ("accepted / stored", f"{check['accepted_by_client']} / {check['stored_in_redis']}"),
        ("decided exactly once", f"{check['decided_exactly_once']}"),
        ("lost (accepted - once)", f"{check['lost']}"),
        ("decided more than once", f"{check['decided_more_than_once']}"),
        ("failed jobs", f"{check['failed_jobs']}"),
        (
            "/metrics auto decisions",
            f"{metrics['auto_decisions'] - metrics['warm_up']:.0f} (less the warm-up)",
        ),
        ("redis used_memory peak", f"{check['redis_used_memory_peak_mib']} MiB"),
        ("peak queue depth", f"{report['backlog']['peak_queue_depth']}"),
        ("peak oldest pending", f"{report['backlog']['peak_oldest_pending_s']} s"),
    ]
    for name, value in rows:
        print(f"  {name:26} {value}")
    header = f"{'RSS start':>10} {'RSS peak':>9} {'VmHWM':>7} {'USS end':>8}"
    print(f"  {'process (MiB)':34} {'pid':>7} {header}")
    for row in report["memory"]:
        hwm = row["vm_hwm_mib"] if row["vm_hwm_mib"] is not None else "-"
        uss = row["uss_end_mib"] if row["uss_end_mib"] is not None else "-"
        print(
            f"  {row['role']:34} {row['pid']:>7} {row['rss_start_mib']:>10} "
            f"{row['rss_peak_sampled_mib']:>9} {hwm:>7} {uss:>8}"
        )


def write_json(report: dict) -> Path:
    return write_report(RESULTS / f"soak-{datetime.now().strftime('%Y-%m-%dT%H%M')}.json", report)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=20_000, help="at full load")
    parser.add_argument("--paced", type=int, default=2000, help="then these, paced; 0: none")
    parser.add_argument("--rate", type=float, help="of the paced phase (default: half full)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", choices=("lite", "bert"), default="lite")
    parser.add_argument("--warm-up", type=int, default=100, help="comments before measuring")
    args = parser.parse_args(argv)
    started = time.monotonic()
    report = run(args)
    report["runtime_s"] = round(time.monotonic() - started, 1)
    print_table(report)
    path = write_json(report)
    print(f"runtime {report['runtime_s']:.0f} s; wrote {path.relative_to(ROOT)}")
    check = report["integrity"]
    return 1 if check["lost"] or check["decided_more_than_once"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
