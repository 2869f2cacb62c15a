"""Everything the "Fast by default" issue measures, in one run and one table.

    make bench                                   # or: .venv/bin/python -m bench.suite
    .venv/bin/python -m bench.suite --quick      # a smoke run with small counts (minutes)

The phases run in this order, each in its own fresh processes (bench/stacks.py: its own
redis-server, `moderation serve`, workers), with progress lines on stderr:

1. naive: RQ's stock worker (a forked work horse per job, the model loaded in every job)
   running bench/naive_job.py, 1 and 2 workers, a few comments (bench/stacks.py `run_naive`).
2. raw per engine: every installed engine (runtime x precision) scoring YouTube and Jigsaw
   comments on one thread, in one process and in two at once, with its memory and its largest
   score difference from fp32 torch (bench/raw_engines.py).
3. the service with its defaults: the bert-base Detoxify twin (bench/detoxify_model.py) with
   nothing set about runtime, precision or batching, 2 workers (the first measures every
   engine at start and both use its choice), every comment its own POST at full load
   (bench/load_client.py). Compared with the best raw two-process YouTube rate of step 2.
4. Perspective checks behind a backlog: the same service; 2,000 comments queued through the
   batch endpoint, then `comments:analyze` calls one after another while it drains
   (bench/check_latency.py).
5. Coral phases behind a backlog: the embedded (lite) model, 2 workers, 8,000 comments queued,
   then `POST /coral/<site>` calls as Coral makes them (bench/coral_latency.py).
6. the embedded model end to end through the batch endpoint, 2 workers
   (bench/redis_commands.py): decided comments per second, Redis commands and CPU per comment.

Then it prints one markdown table (phase, configuration, measured, goal, met?) and a table of
the raw engines, headed by the date and the CPU (and whether it has AMX: the goals are set for
a 2-core machine with AMX; elsewhere the same table is reported), and writes everything as
JSON to bench/results/suite-<date>.json and suite-latest.json (a --quick run writes beside its
logs instead). Every phase records the CPU that other processes on the machine used meanwhile
(`other`, in cores): the numbers are low by about that share. Not a test: nothing fails when a
goal is missed; the exit status is 1 only when a phase could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import redis
import requests

from bench import raw_engines, redis_commands
from bench.check_latency import BEHIND, one_check, queue_backlog
from bench.comments import jigsaw_comments, shuffled_comments, youtube_comments
from bench.coral_latency import texts as coral_texts
from bench.detoxify_bench import machine, measure_service, progress, readiness
from bench.detoxify_model import CACHE, bench_model
from bench.reports import write_report
from bench.stacks import Service, machine_busy_seconds, run_naive, running_service
from bench.stats import percentile, summary
from moderation.storage.comment_store import CommentStore
from moderation.storage.job_queues import scoring_queue
from tests.support.coral import SECRET, moderation_request, send
from tests.support.processes import wait_for

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SCRATCH = CACHE / "suite-last-run"  # logs of the latest run, replaced by the next

GOAL_THROUGHPUT = 100.0  # bert-base comments/s end to end, defaults, 2 workers
GOAL_RAW_FRACTION = 0.8  # of the best raw two-process rate of any engine
GOAL_PERSPECTIVE_P95_MS = 800.0  # behind a 2,000-comment backlog
GOAL_CORAL_P95_MS = 200.0  # embedded model, behind a backlog
GOAL_EMBEDDED = 1000.0  # embedded model, decided comments/s through the batch endpoint
WORKERS = 2
#: Seconds the service's workers may take to start: with the defaults the first one measures
#: every installed engine (exporting those not cached yet) before it takes a job.
START_TIMEOUT = 900
AMX_FLAGS = {"amx_tile", "amx_bf16", "amx_int8"}
OTHER_CPU_WARNING = 0.2  # cores


# --- CPU over a whole phase ---------------------------------------------------------------------


class PhaseCpu:
    """Average cores busy over a whole phase, start-up included: `bench` (the processes the
    phase started, counted once they have exited and been waited for, as every phase's are
    when it ends), `client` (this process) and `other` (the rest of the machine)."""

    def __init__(self) -> None:
        self._before = self._sample()

    @staticmethod
    def _sample() -> dict[str, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "wall": time.perf_counter(),
            "client": own.ru_utime + own.ru_stime,
            "bench": children.ru_utime + children.ru_stime,
            "machine": machine_busy_seconds(),
        }

    def stop(self) -> dict:
        after = self._sample()
        used = {key: after[key] - self._before[key] for key in after}
        wall = used.pop("wall")
        machine_total = used.pop("machine")
        used["other"] = max(0.0, machine_total - used["bench"] - used["client"])
        cores = {name: round(seconds / wall, 2) for name, seconds in used.items()}
        return {"wall_s": round(wall, 1), "cores_busy": cores}


class Feeder(threading.Thread):
    """Runs `target(*args)` in the background, keeping the error it raised, if any."""

    def __init__(self, target: Callable[..., object], *args: object) -> None:
        super().__init__(daemon=True)
        self._call = (target, args)
        self.error: BaseException | None = None

    def run(self) -> None:
        target, args = self._call
        try:
            target(*args)
        except BaseException as error:  # reported by the thread that joins it
            self.error = error

    def finish(self) -> None:
        self.join()
        if self.error is not None:
            raise RuntimeError(f"queueing the backlog failed: {self.error!r}") from self.error


# --- the phases -----------------------------------------------------------------------------


def naive_phase(scratch: Path, texts: Sequence[str], model_env: dict[str, str]) -> dict:
    runs = []
    for workers in (1, WORKERS):
        cpu = PhaseCpu()
        run = run_naive(scratch / f"{workers}w", texts, workers, model_env)
        run["cpu"] = cpu.stop()
        runs.append(run)
    return {"runs": runs}


def raw_phase(engines: Sequence[str], count: int, scratch: Path) -> dict:
    result = raw_engines.measure(engines, count, scratch)
    result["youtube_comments"] = "the first N of the YouTube collection, in file order"
    result["jigsaw_comments"] = "the first N of the Jigsaw sample"
    return result


def service_phase(
    scratch: Path, settings: dict[str, str], full_texts: Sequence[str], warm: Sequence[str]
) -> dict:
    entry = measure_service(
        scratch, WORKERS, settings, full_texts, warm, start_timeout=START_TIMEOUT
    )
    entry["engine_choice_log"] = engine_choice_log(scratch)
    return entry


def engine_choice_log(scratch: Path) -> str | None:
    """The measuring worker's log line on what it measured and chose, if it logged one."""
    for log in sorted(scratch.glob("worker*.log")):
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if "engine auto chose" not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                return line.strip()
            return str(record.get("message") or record.get("msg") or line.strip())
    return None


def timed_calls_behind(
    call: Callable[[int], str],
    depth: Callable[[], int],
    feeder: Feeder,
    *,
    wanted: int,
    behind: int,
) -> list[dict]:
    """Calls one after another while a backlog drains, each with the queue's depth when it was
    sent, its latency and its outcome: until `wanted` were sent with at least `behind` comments
    queued, or the backlog is all queued and fewer than `behind` are left (or 4 x `wanted`
    calls in all)."""
    records: list[dict] = []
    sent_behind = 0
    while sent_behind < wanted and len(records) < 4 * wanted:
        queued = depth()
        if queued < behind and not feeder.is_alive():
            break
        started = time.perf_counter()
        outcome = call(len(records))
        records.append(
            {"queued": queued, "seconds": time.perf_counter() - started, "outcome": outcome}
        )
        sent_behind += queued >= behind
    return records


def calls_report(records: list[dict], behind: int) -> dict:
    depths = [record["queued"] for record in records]
    late = [record for record in records if record["queued"] >= behind]
    return {
        "calls": len(records),
        "queued_at_calls": {"min": min(depths), "max": max(depths)} if depths else {},
        "latency_all": summary([record["seconds"] for record in records]),
        "outcomes_all": dict(Counter(record["outcome"] for record in records)),
        f"sent_with_{behind}_or_more_queued": {
            "calls": len(late),
            "latency": summary([record["seconds"] for record in late]),
            "outcomes": dict(Counter(record["outcome"] for record in late)),
        },
    }


def behind_backlog(
    service: Service,
    backlog: int,
    call: Callable[[int], str],
    *,
    wanted: int,
    behind: int,
) -> dict:
    """Queue `backlog` comments through the batch endpoint in the background, make the calls
    while they are being decided, then wait until every comment is decided."""
    connection = redis.Redis.from_url(service.redis_url)
    queue, store = scoring_queue(connection), CommentStore(connection)
    meter = service.cpu_meter()
    meter.start()
    started = time.perf_counter()
    feeder = Feeder(queue_backlog, service.url, service.api_key, shuffled_comments(), backlog)
    feeder.start()
    wait_for(
        lambda: queue.count >= behind or not feeder.is_alive(),
        timeout=300,
        interval=0.02,
        what=f"{behind} comments queued",
    )
    records = timed_calls_behind(call, lambda: queue.count, feeder, wanted=wanted, behind=behind)
    feeder.finish()
    queued = time.perf_counter() - started
    wait_for(lambda: store.pending_count() == 0, timeout=3600, interval=0.1)
    decided = time.perf_counter() - started
    report = {
        "backlog": backlog,
        "backlog_queued_s": round(queued, 1),
        "backlog_decided_s": round(decided, 1),
        "backlog_decided_per_s": round(backlog / decided, 1),
        **calls_report(records, behind),
        "cpu": meter.stop(),
    }
    connection.close()
    return report


def perspective_phase(
    scratch: Path, settings: dict[str, str], backlog: int, checks: int, behind: int
) -> dict:
    """Perspective `comments:analyze` calls behind a backlog (bench/check_latency.py's
    `queue_backlog` and `one_check`; even numbers make it a Perspective call)."""
    texts = shuffled_comments()
    with running_service(scratch, WORKERS, settings, start_timeout=START_TIMEOUT) as service:
        ready = readiness(service.url)
        session = requests.Session()
        for n in range(2):  # first requests pay one-off costs; not measured
            one_check(session, service.url, service.api_key, 0, f"warm-up check {n}")

        def check(n: int) -> str:
            return str(one_check(session, service.url, service.api_key, 0, texts[-1 - n]))

        result = behind_backlog(service, backlog, check, wanted=checks, behind=behind)
    return {
        "workers": WORKERS,
        "settings": settings,
        "ready": ready,
        "engine_choice_log": engine_choice_log(scratch),
        "call": "POST /v1alpha1/comments:analyze (TOXICITY), one after another",
        **result,
    }


def coral_phase(scratch: Path, backlog: int, calls: int, behind: int) -> dict:
    """Coral External Moderation Phase calls behind a backlog, signed as Coral signs them
    (tests/support/coral.py), with bench/coral_latency.py's comments."""
    settings = {"MODERATION_TOXICITY_MODEL": "lite"}
    bodies = coral_texts(4 * calls)
    with running_service(scratch, WORKERS, settings) as service:
        ready = readiness(service.url)
        session = requests.Session()
        session.put(
            f"{service.url}/v1/site/coral",
            json={"signing_secrets": [SECRET]},
            headers={"Authorization": f"Bearer {service.api_key}"},
            timeout=30,
        ).raise_for_status()
        url = f"{service.url}/coral/bench"

        def coral_call(n: int, body: str | None = None) -> str:
            request = moderation_request(body or bodies[n], author_id=f"reader-{n}")
            response = send(session, url, request, [SECRET])
            if response.status_code not in (200, 204):
                raise RuntimeError(f"Coral call: {response.status_code}: {response.text[:300]}")
            return response.headers.get("X-Moderation-Outcome", "?")

        for n in range(10):  # warm-up, not measured
            coral_call(10**6 + n, f"warm-up comment number {n}")
        result = behind_backlog(service, backlog, coral_call, wanted=calls, behind=behind)
    return {
        "workers": WORKERS,
        "settings": settings,
        "ready": ready,
        "call": "POST /coral/<site> as Coral sends it, one after another",
        "coral_timeout": "the service's default (MODERATION_CORAL_TIMEOUT)",
        **result,
    }


def embedded_phase(comments: int) -> dict:
    return redis_commands.measure(comments, WORKERS)


# --- the report -----------------------------------------------------------------------------


def machine_info() -> dict:
    info = machine()
    flags = set(Path("/proc/cpuinfo").read_text().split())
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        lscpu = ""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in lscpu.splitlines()
            if line.startswith("Model name:")
        ),
        info["cpu"],
    )
    info["cpu"] = model
    info["amx"] = sorted(flags & AMX_FLAGS)
    info["cpu_flags"] = sorted(
        flags & {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", *AMX_FLAGS}
    )
    for package in ("onnxruntime", "openvino"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info


def token_stats(tokenizer: Any, texts: Sequence[str]) -> dict:
    """Tokens per comment ([CLS] and [SEP] included, before truncation)."""
    counts = [len(ids) for ids in tokenizer(list(texts))["input_ids"]]
    return {
        "comments": len(counts),
        "mean": round(sum(counts) / len(counts), 1),
        "p50": round(percentile(counts, 0.5)),
        "p90": round(percentile(counts, 0.9)),
    }


def best_raw(raw: dict, tolerance: float | None = None) -> tuple[str, float] | None:
    """The engine with the highest two-process YouTube rate (within `tolerance` of fp32 on
    every set, when given) and that rate."""
    found: list[tuple[float, str]] = []
    for engine, row in raw.get("engines", {}).items():
        rate = row.get("youtube", {}).get("two_processes_per_s")
        if rate is None:
            continue
        if tolerance is not None and (max_difference(row) or 0.0) > tolerance:
            continue
        found.append((rate, engine))
    if not found:
        return None
    rate, engine = max(found)
    return engine, rate


def max_difference(row: dict) -> float | None:
    values = [
        entry["max_difference_from_fp32"]
        for entry in row.values()
        if entry.get("max_difference_from_fp32") is not None
    ]
    return max(values) if values else None


def rows_for(report: dict) -> list[dict]:
    """The main table: one row per figure, with its goal where the issue sets one."""
    phases, args = report["phases"], report["arguments"]
    behind = args["behind"]
    rows: list[dict] = []

    def row(phase: str, configuration: str, measured: str, goal: str = "-", met=None, cpu=None):
        rows.append(
            {
                "phase": phase,
                "configuration": configuration,
                "measured": measured,
                "goal": goal,
                "met": met,
                "other_cores": other_cores(cpu),
            }
        )

    def failed(phase: str, key: str) -> bool:
        error = phases.get(key, {}).get("error")
        if error:
            row(phase, "did not run", f"error: {error}"[:160], met=None)
        return bool(error)

    if not failed("1 naive", "naive"):
        entry = phases["naive"]
        for run in entry["runs"]:
            p50 = run["latency"].get("p50_ms")
            row(
                "1 naive",
                f"stock RQ, a fork and a model load per job, torch fp32; "
                f"{_plural(run['workers'], 'worker')}, {run['comments']} comments",
                f"{run['comments_per_s']:.2f}/s, p50 {_seconds(p50)}",
                cpu=run["cpu"],
            )

    raw = phases.get("raw", {})
    best = best_raw(raw)
    if not failed("2 raw", "raw"):
        if best:
            engine, rate = best
            one = raw["engines"][engine]["youtube"]["one_process_per_s"]
            row(
                "2 raw",
                f"best of {len(raw['engines'])} engines on YouTube, 2 processes x 1 thread: "
                f"{engine} (table below)",
                f"{rate:.1f}/s (1 process {one:.1f}/s)",
                cpu=raw["cpu_phase"],
            )
        else:
            row("2 raw", "no engine measured", "-", cpu=raw.get("cpu_phase"))

    if not failed("3 service", "service"):
        entry = phases["service"]
        full = entry["full"]
        rate = full["comments_per_s"]
        row(
            "3 service",
            f"defaults, bert-base twin, {entry['workers']} workers chose {_engine(entry)}; "
            f"{full['comments']} comments, one POST each, full load",
            f"{rate:.1f}/s (steady {_number(full.get('steady_comments_per_s'))}/s)",
            f">= {GOAL_THROUGHPUT:g}/s",
            rate >= GOAL_THROUGHPUT,
            full["cpu"],
        )
        if best:
            engine, raw_rate = best
            ratio = rate / raw_rate
            row(
                "3 service",
                f"the same / best raw two-process YouTube ({engine}, {raw_rate:.1f}/s)",
                f"{ratio:.2f}",
                f">= {GOAL_RAW_FRACTION:g}",
                ratio >= GOAL_RAW_FRACTION,
                full["cpu"],
            )

    if not failed("4 Perspective", "perspective"):
        entry = phases["perspective"]
        late = entry[f"sent_with_{behind}_or_more_queued"]
        latency = late["latency"]
        p95 = latency.get("p95_ms")
        answered = late["outcomes"].get("200", 0)
        row(
            "4 Perspective",
            f"comments:analyze behind {entry['backlog']:,} queued (batch endpoint), defaults "
            f"({_engine(entry)}), {entry['workers']} workers; {late['calls']} of "
            f"{entry['calls']} calls sent with >= {behind:,} queued",
            f"p95 {_ms(p95)} (p50 {_ms(latency.get('p50_ms'))}, max "
            f"{_ms(latency.get('max_ms'))}; {answered}/{late['calls']} answered)",
            f"p95 < {GOAL_PERSPECTIVE_P95_MS:g} ms",
            p95 is not None and p95 < GOAL_PERSPECTIVE_P95_MS,
            entry["cpu"],
        )

    if not failed("5 Coral", "coral"):
        entry = phases["coral"]
        coral_behind = args["coral_behind"]
        late = entry[f"sent_with_{coral_behind}_or_more_queued"]
        latency = late["latency"]
        p95 = latency.get("p95_ms")
        timeouts = late["outcomes"].get("timeout", 0)
        row(
            "5 Coral",
            f"Coral phase behind {entry['backlog']:,} queued (batch endpoint), embedded (lite), "
            f"{entry['workers']} workers; {late['calls']} of {entry['calls']} calls sent with "
            f">= {coral_behind:,} queued",
            f"p95 {_ms(p95)} (p50 {_ms(latency.get('p50_ms'))}, max "
            f"{_ms(latency.get('max_ms'))}; {timeouts}/{late['calls']} answered 'timeout')",
            f"p95 < {GOAL_CORAL_P95_MS:g} ms",
            p95 is not None and p95 < GOAL_CORAL_P95_MS,
            entry["cpu"],
        )

    if not failed("6 embedded", "embedded"):
        entry = phases["embedded"]
        rate = entry["decided_per_s"]
        cpu_ms = entry["cpu_ms_per_comment"]
        row(
            "6 embedded",
            f"embedded (lite), {entry['workers']} workers, {entry['comments']:,} comments "
            "through the batch endpoint (100 a request)",
            f"{rate:,.0f}/s decided; {entry['redis_commands_per_comment']} Redis commands and "
            f"CPU ms workers {cpu_ms.get('workers')}, api {cpu_ms.get('api')}, redis "
            f"{cpu_ms.get('redis')} per comment",
            f">= {GOAL_EMBEDDED:,.0f}/s",
            rate >= GOAL_EMBEDDED,
            {"cores_busy": {"other": round(cpu_ms.get("other", 0.0) * rate / 1000, 2)}},
        )
    return rows


def other_cores(cpu: dict | None) -> float | None:
    return None if not cpu else cpu.get("cores_busy", {}).get("other")


def _engine(entry: dict) -> str:
    ready = entry.get("ready") or {}
    return f"{ready.get('runtime', '?')}-{ready.get('precision', '?')}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _seconds(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.1f} s"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def raw_rows(raw: dict) -> list[dict]:
    rows = []
    for engine, row in raw.get("engines", {}).items():
        youtube, jigsaw = row.get("youtube", {}), row.get("jigsaw", {})
        rss = [entry["rss_mb"] for entry in (youtube, jigsaw) if "rss_mb" in entry]
        errors = [entry["error"] for entry in (youtube, jigsaw) if "error" in entry]
        rows.append(
            {
                "engine": engine,
                "youtube_1p": youtube.get("one_process_per_s"),
                "youtube_2p": youtube.get("two_processes_per_s"),
                "jigsaw_1p": jigsaw.get("one_process_per_s"),
                "jigsaw_2p": jigsaw.get("two_processes_per_s"),
                "rss_mb": max(rss) if rss else None,
                "max_diff": max_difference(row),
                "error": "; ".join(errors) or None,
            }
        )
    return rows


def markdown(report: dict) -> list[str]:
    info = report["machine"]
    amx = ", ".join(info["amx"]) if info["amx"] else "no AMX"
    lines = [
        f"## `make bench`{' --quick (smoke run, small counts)' if report['quick'] else ''}: "
        f"{report['date']}",
        "",
        f"CPU: {info['cpu']}, {info['cores']} cores, {amx} ({', '.join(info['cpu_flags'])}); "
        f"{info['memory_gib']} GiB; torch {info['torch']}, onnxruntime {info['onnxruntime']}, "
        f"openvino {info['openvino']}; load average at start "
        f"{', '.join(map(str, info['load_average_at_start']))}.",
    ]
    if not info["amx"]:
        lines.append(
            "The goals are set for a 2-core machine with AMX; this CPU has none, so the table "
            "reports where it stands."
        )
    model = report["model"]
    tokens = report["tokens_per_comment"]
    lines += [
        f"Model: bert-base Detoxify twin ({model.get('parameters', 0) / 1e6:.0f}M parameters, "
        f"random weights) and the embedded lite model. Tokens per comment (mean / p50): "
        + "; ".join(f"{name} {t['mean']} / {t['p50']}" for name, t in tokens.items())
        + ".",
        "",
        "| phase | configuration | measured | goal | met? | other cores |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        met = "-" if row["met"] is None else ("yes" if row["met"] else "**no**")
        other = "-" if row["other_cores"] is None else f"{row['other_cores']:.2f}"
        lines.append(
            f"| {row['phase']} | {row['configuration']} | {row['measured']} | {row['goal']} "
            f"| {met} | {other} |"
        )
    raw = report["phases"].get("raw", {})
    if raw.get("engines"):
        lines += [
            "",
            f"Raw engines: {raw['comments_per_set']} comments per set, passes of "
            f"{raw['pass_size']}, one thread per process; 2p = two processes at once, both "
            "processes' comments over the longer time; max diff = largest score difference "
            "from torch fp32 on these comments (the service keeps engines within "
            f"{report['tolerance']:g}).",
            "",
            "| engine | YouTube 1p /s | YouTube 2p /s | Jigsaw 1p /s | Jigsaw 2p /s | RSS MB "
            "| max diff |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in report["raw_rows"]:
            cells = [
                _number(row[key]) for key in ("youtube_1p", "youtube_2p", "jigsaw_1p", "jigsaw_2p")
            ]
            rss = "-" if row["rss_mb"] is None else f"{row['rss_mb']:.0f}"
            diff = "-" if row["max_diff"] is None else f"{row['max_diff']:.4f}"
            error = f" (error: {row['error'][:80]})" if row["error"] else ""
            lines.append(f"| {row['engine']}{error} | {' | '.join(cells)} | {rss} | {diff} |")
    lines += ["", *(f"- {note}" for note in report["notes"])]
    return lines


def notes_for(report: dict) -> list[str]:
    phases, notes = report["phases"], []
    notes.append(
        "other cores: average cores other processes on the machine kept busy during the "
        f"measured part of each phase (for naive and raw: the whole run), of {os.cpu_count()}."
    )
    busiest = max((row["other_cores"] or 0.0 for row in report["rows"]), default=0.0)
    if busiest > OTHER_CPU_WARNING:
        notes.append(
            f"WARNING: other processes kept up to {busiest:.2f} cores busy; the figures of "
            "those phases are low by about that share."
        )
    raw = phases.get("raw", {})
    best, accurate = best_raw(raw), best_raw(raw, report["tolerance"])
    if best and accurate and best != accurate:
        notes.append(
            f"The fastest raw engine, {best[0]}, is more than {report['tolerance']:g} from "
            f"fp32 on these comments, so the service would not choose it; the fastest within "
            f"that is {accurate[0]} ({accurate[1]:.1f}/s)."
        )
    if best:
        notes.append(
            "Raw YouTube rates are on the first comments of the collection in file order, the "
            "service's on a fixed shuffle of it (tokens per comment above)."
        )
    service = phases.get("service", {})
    if service.get("engine_choice_log"):
        notes.append(f"Service worker: {service['engine_choice_log']}")
    coral = phases.get("coral", {})
    key = f"sent_with_{report['arguments']['coral_behind']}_or_more_queued"
    if coral.get(key, {}).get("outcomes", {}).get("timeout"):
        notes.append(
            "A Coral call answered 'timeout' was not decided within the service's Coral "
            "timeout: Coral got 204 (no opinion) within the phase's time."
        )
    for name, threshold in (
        ("perspective", report["arguments"]["behind"]),
        ("coral", report["arguments"]["coral_behind"]),
    ):
        entry = phases.get(name, {})
        late = entry.get(f"sent_with_{threshold}_or_more_queued")
        if late is not None and late["calls"] == 0:
            notes.append(
                f"{name}: the queue never held {threshold:,} comments while calls were made "
                f"(at most {entry['queued_at_calls'].get('max', 0):,}): no figure behind a "
                "backlog."
            )
    if report["quick"]:
        notes.append("A --quick run: small counts, for checking the plumbing, not the figures.")
    return notes


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive-comments", type=int, default=4)
    parser.add_argument("--raw-comments", type=int, default=96, help="per set and process")
    parser.add_argument("--engines", default="", help="comma-separated; default: all installed")
    parser.add_argument("--service-comments", type=int, default=512)
    parser.add_argument(
        "--full-load-repeat", type=int, default=2, help="full load submits the comments N times"
    )
    parser.add_argument("--warm-up", type=int, default=48, help="comments before measuring")
    parser.add_argument("--backlog", type=int, default=2000, help="before Perspective checks")
    parser.add_argument("--checks", type=int, default=40, help="Perspective calls behind it")
    parser.add_argument("--behind", type=int, default=BEHIND, help="what counts as behind")
    parser.add_argument("--coral-backlog", type=int, default=8000)
    parser.add_argument("--coral-calls", type=int, default=100, help="Coral calls behind it")
    parser.add_argument("--coral-behind", type=int, default=BEHIND)
    parser.add_argument("--embedded-comments", type=int, default=6000)
    parser.add_argument("--scratch", type=Path, default=SCRATCH, help="logs; emptied first")
    parser.add_argument("--results", type=Path, default=None, help="default: bench/results")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small counts")
    args = parser.parse_args(argv)
    if args.quick:
        args.naive_comments, args.raw_comments, args.service_comments = 2, 8, 32
        args.full_load_repeat, args.warm_up = 1, 8
        args.backlog, args.checks, args.behind = 300, 6, 100
        args.coral_backlog, args.coral_calls, args.coral_behind = 1500, 10, 300
        args.embedded_comments = 600
    if args.results is None:
        args.results = args.scratch if args.quick else RESULTS
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    scratch: Path = args.scratch
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    from transformers import AutoTokenizer

    from workers.scoring.calibration import TOLERANCE

    progress("model: building or reusing the cached bert-base twin", started)
    model = bench_model()
    texts = shuffled_comments()
    measured, warm = texts[: args.service_comments], texts[-args.warm_up :]
    tokenizer = AutoTokenizer.from_pretrained(model.config_dir)
    engines = args.engines.split(",") if args.engines else raw_engines.all_engines()
    report: dict = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": args.quick,
        "command": " ".join([".venv/bin/python -m bench.suite", *(argv or sys.argv[1:])]),
        "arguments": {
            key: str(value) if isinstance(value, Path) else value
            for key, value in vars(args).items()
        },
        "machine": machine_info(),
        "model": {"kind": "Detoxify checkpoint, bert-base, random weights", **model.info},
        "tolerance": TOLERANCE,
        "tokens_per_comment": {
            "raw YouTube": token_stats(tokenizer, youtube_comments()[: args.raw_comments]),
            "raw Jigsaw": token_stats(tokenizer, jigsaw_comments()[: args.raw_comments]),
            "service YouTube": token_stats(tokenizer, measured),
        },
        "goals": {
            "bert_comments_per_s": GOAL_THROUGHPUT,
            "fraction_of_best_raw": GOAL_RAW_FRACTION,
            "perspective_p95_ms": GOAL_PERSPECTIVE_P95_MS,
            "coral_p95_ms": GOAL_CORAL_P95_MS,
            "embedded_comments_per_s": GOAL_EMBEDDED,
        },
        "phases": {},
    }
    model_env = {
        "BENCH_DETOXIFY_CHECKPOINT": str(model.checkpoint),
        "BENCH_DETOXIFY_CONFIG_DIR": str(model.config_dir),
        "HF_HUB_OFFLINE": "1",
    }
    # The service's defaults: the model and nothing about runtime, precision or batching.
    defaults = {
        "MODERATION_TOXICITY_MODEL": f"detoxify:{model.checkpoint}",
        "MODERATION_DETOXIFY_CONFIG_DIR": str(model.config_dir),
    }
    phases: list[tuple[str, str, Callable[[], dict]]] = [
        (
            "naive",
            f"1/6 naive: 1 and 2 stock RQ workers, {args.naive_comments} comments",
            lambda: naive_phase(scratch / "naive", texts[: args.naive_comments], model_env),
        ),
        (
            "raw",
            f"2/6 raw: {len(engines)} engines, {args.raw_comments} comments per set",
            lambda: raw_phase(engines, args.raw_comments, scratch / "raw-engines"),
        ),
        (
            "service",
            f"3/6 service with defaults, bert twin, {WORKERS} workers (the first measures the "
            "engines at start)",
            lambda: service_phase(
                scratch / "service", defaults, measured * args.full_load_repeat, warm
            ),
        ),
        (
            "perspective",
            f"4/6 Perspective checks behind {args.backlog:,} queued, bert twin defaults",
            lambda: perspective_phase(
                scratch / "perspective", defaults, args.backlog, args.checks, args.behind
            ),
        ),
        (
            "coral",
            f"5/6 Coral calls behind {args.coral_backlog:,} queued, embedded model",
            lambda: coral_phase(
                scratch / "coral", args.coral_backlog, args.coral_calls, args.coral_behind
            ),
        ),
        (
            "embedded",
            f"6/6 embedded model end to end, {args.embedded_comments:,} comments",
            lambda: embedded_phase(args.embedded_comments),
        ),
    ]
    for key, title, run in phases:
        progress(title, started)
        cpu = PhaseCpu()
        try:
            result = run()
        except Exception as error:  # reported in the table; the other phases still run
            traceback.print_exc()
            result = {"error": f"{type(error).__name__}: {error}"}
        result["cpu_phase"] = cpu.stop()
        report["phases"][key] = result
        progress(f"{key}: done in {result['cpu_phase']['wall_s']:.0f} s", started)

    report["rows"] = rows_for(report)
    report["raw_rows"] = raw_rows(report["phases"].get("raw", {}))
    report["notes"] = notes_for(report)
    report["runtime_s"] = round(time.monotonic() - started, 1)
    report["table"] = markdown(report)
    print("\n".join(report["table"]))
    stamp = datetime.now().strftime("%Y-%m-%dT%H%M")
    path = write_report(args.results / f"suite-{stamp}.json", report)
    write_report(args.results / "suite-latest.json", report)
    print(f"\nruntime {report['runtime_s']:.0f} s; wrote {path} and suite-latest.json")
    return 1 if any("error" in phase for phase in report["phases"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
