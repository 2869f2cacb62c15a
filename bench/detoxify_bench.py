"""Detoxify throughput and latency: naive RQ, raw in-process scoring, and the service end to end.

    .venv/bin/python -m bench.detoxify_bench
    .venv/bin/python -m bench.detoxify_bench --quick    # a smoke run with few comments

(`make bench` runs bench/suite.py, which reuses parts of this one.)

One run scores the same YouTube comments (../shared/data, read in place) with the same model, a
bert-base Detoxify checkpoint with random weights built and cached by bench/detoxify_model.py
(compute cost does not depend on weight values), in three ways:

- naive: RQ's stock `Worker` (a forked work horse per job) running bench/naive_job.py, which
  loads Detoxify in every job; 1 and 2 worker processes, a handful of comments.
- raw: Detoxify in one process on one torch thread (bench/raw_scoring.py): the ceiling for one
  worker. `Detoxify.predict` on unsorted batches of 32 in fp32 and on the service's engine
  (the runtime and precision MODERATION_RUNTIME=auto and MODERATION_PRECISION=auto choose; when
  that is a torch model), the service's own scorer on chunks of each batch size, and globally
  sorted and one by one for reference.
- service: Redis + `moderation serve` + N `moderation worker` on that engine, one thread
  each, every comment its own HTTP POST: at full load (the comments submitted twice, as
  fast as the API takes them: throughput) and at half that rate (latency); MODERATION_BATCH_SIZE
  16 and 32 with 2 workers, the better one with 1 worker; and the `lite` model, 1 and 2 workers.

Prints a table and the goals, and writes everything as JSON to bench/results/ (a dated file and
latest.json). Not a test: the numbers depend on the machine and on whatever else runs on it,
which the JSON records as `other` CPU use per phase.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path

import psutil
import requests

from bench.comments import shuffled_comments
from bench.detoxify_model import CACHE, bench_model
from bench.load_client import ServiceClient, full_load, paced_load
from bench.reports import write_report
from bench.stacks import log_sizes, run_naive, running_service, worker_batches

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SCRATCH = CACHE / "last-run"  # logs of the latest run, replaced by the next

GOAL_THROUGHPUT = 50.0  # comments/s, service at full load with 2 workers
GOAL_RAW_FRACTION = 0.8  # of raw in-process scoring at the same precision and batching
GOAL_P99_MS = 1000.0  # decision latency at half load


def progress(message: str, started: float) -> None:
    print(f"[{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr, flush=True)


# --- the three ways of scoring ----------------------------------------------------------------


def run_raw(model_paths: dict[str, str], args: argparse.Namespace, scratch: Path) -> dict:
    out = scratch / "raw.json"
    command = [
        sys.executable,
        "-m",
        "bench.raw_scoring",
        "--checkpoint",
        model_paths["checkpoint"],
        "--config-dir",
        model_paths["config_dir"],
        "--comments",
        str(args.comments),
        "--fp32-comments",
        str(args.fp32_comments),
        "--batch-sizes",
        ",".join(map(str, args.batch_sizes)),
        "--out",
        str(out),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with (scratch / "raw.log").open("wb") as log:
        subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=log, check=True)
    return json.loads(out.read_text())


def measure_service(
    scratch: Path,
    workers: int,
    settings: dict[str, str],
    full_texts: Sequence[str],
    warm: Sequence[str],
    half_texts: Sequence[str] = (),
    *,
    start_timeout: float = 180,
) -> dict:
    """Start the service, warm it up, then full load on `full_texts` and, when given, half
    load (half the full-load rate) on `half_texts`. `start_timeout`: seconds the workers may
    take to load their model (with runtime or precision `auto`, the first one measures every
    installed engine first). Also records what `/readyz` says the workers run."""
    entry: dict = {"workers": workers, "settings": settings}
    with running_service(scratch, workers, settings, start_timeout=start_timeout) as service:
        entry["ready"] = readiness(service.url)
        client = ServiceClient(service.url, service.api_key)
        full_load(client, warm, "warm")  # first batches pay one-off costs; not measured
        phases = ["full"] + (["half"] if half_texts else [])
        for phase in phases:
            offsets = log_sizes(service.worker_logs)
            meter = service.cpu_meter()
            meter.start()
            if phase == "full":
                result = full_load(client, full_texts, phase)
            else:
                rate = entry["full"]["comments_per_s"] / 2
                result = paced_load(client, half_texts, phase, rate)
            entry[phase] = result.report()
            entry[phase]["cpu"] = meter.stop()
            entry[phase]["worker_batches"] = worker_batches(
                service.worker_logs, offsets, len(result.posted)
            )
    return entry


def readiness(url: str) -> dict:
    """What `/readyz` says the workers run: model, runtime and precision."""
    body = requests.get(f"{url}/readyz", timeout=10).json()
    return {key: body.get(key) for key in ("toxicity_model", "runtime", "precision", "workers")}


# --- report -----------------------------------------------------------------------------------


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model_name = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor(),
    )
    flags = set(cpuinfo.split())
    try:
        redis_version = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=False
        ).stdout.split()[2]
    except (OSError, IndexError):
        redis_version = "?"
    versions = {name: _version(name) for name in ("torch", "transformers", "detoxify", "rq")}
    return {
        "cpu": model_name,
        "cores": os.cpu_count(),
        "cpu_flags": sorted(flags & {"avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni"}),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        **versions,
        "redis_server": redis_version.removeprefix("v="),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def rows_for(report: dict) -> list[dict]:
    """One row per measured configuration, with the ratios the table shows."""
    raw = report["raw"]
    engine = raw["engine"]
    runs = raw["runs"]
    naive = {entry["workers"]: entry for entry in report["naive"]}
    rows: list[dict] = []
    for entry in report["naive"]:
        rows.append(
            _row(f"naive RQ fork/job ({entry['workers']}w)", entry, "torch-fp32", entry["latency"])
        )
    for name, run in runs.items():
        shape, run_precision, *rest = name.split()
        label = f"raw {shape} {' '.join(rest)}".replace("fp32-subset", f"(first {run['comments']})")
        row = _row(label.strip(), run, run_precision, run["latency_s"])
        row["workers"] = "1 proc"
        rows.append(row)
    for entry in [*report["service"], *report["lite"]]:
        model = entry["settings"]["MODERATION_TOXICITY_MODEL"]
        lite = model == "lite"
        batch = entry["settings"].get("MODERATION_BATCH_SIZE", "16")
        for phase in ("full", "half"):
            if phase not in entry:
                continue
            result = entry[phase]
            label = f"service {'lite' if lite else f'b{batch}'} {phase} load"
            row = _row(label, result, "-" if lite else engine, result["latency"])
            row["workers"] = entry["workers"]
            if phase == "full" and not lite:
                workers = entry["workers"]
                rate = result["comments_per_s"]
                row["vs_naive"] = _ratio(rate, naive.get(workers, {}).get("comments_per_s"))
                predict = runs.get(f"predict {engine} b32")  # absent for a non-torch engine
                row["vs_raw"] = _ratio(
                    rate, workers * predict["comments_per_s"] if predict else None
                )
                same = runs.get(f"service-batching {engine} b{batch}")
                row["vs_raw_same_batching"] = _ratio(
                    rate, workers * same["comments_per_s"] if same else None
                )
            rows.append(row)
    return rows


def _row(name: str, result: dict, engine: str, latency: dict) -> dict:
    return {
        "configuration": name,
        "workers": result.get("workers", ""),
        "engine": engine,
        "comments": result["comments"],
        "comments_per_s": result["comments_per_s"],
        "p50_ms": latency.get("p50_ms"),
        "p95_ms": latency.get("p95_ms"),
        "p99_ms": latency.get("p99_ms"),
    }


def _ratio(value: float, reference: float | None) -> float | None:
    return round(value / reference, 2) if reference else None


def per_worker_core(entry: dict) -> float:
    full = entry["full"]
    return full["comments_per_s"] / max(full["cpu"]["cores_busy"]["workers"], 0.01)


def cpu_rows(report: dict) -> list[dict]:
    """Where the CPU went in each service phase: average cores busy per role, and how much of
    the workers' time went to batch scoring (model pass plus reading the batch's comments)."""
    rows = []
    for entry in [*report["service"], *report["lite"]]:
        lite = entry["settings"]["MODERATION_TOXICITY_MODEL"] == "lite"
        batch = entry["settings"].get("MODERATION_BATCH_SIZE", "16")
        for phase in ("full", "half"):
            if phase not in entry:
                continue
            result = entry[phase]
            cores = result["cpu"]["cores_busy"]
            batches = result["worker_batches"]
            wall = result["cpu"]["wall_s"]
            rows.append(
                {
                    "phase": f"{'lite' if lite else f'b{batch}'} {phase} {entry['workers']}w",
                    **cores,
                    # Single jobs (no batch formed) are not logged with their scoring time.
                    "mean_batch": batches["mean_batch"] if batches["batches"] else 1,
                    "batch_scoring_share": round(
                        batches["batch_scoring_s"] / (entry["workers"] * wall), 2
                    )
                    if batches["batches"]
                    else None,
                    "comments_per_worker_core": _ratio(
                        result["comments_per_s"], cores.get("workers")
                    ),
                }
            )
    return rows


def goals_for(report: dict) -> list[dict]:
    raw = report["raw"]
    engine = raw["engine"]
    chosen = report["chosen_batch_size"]
    two = next(
        e
        for e in report["service"]
        if e["workers"] == 2 and e["settings"]["MODERATION_BATCH_SIZE"] == str(chosen)
    )
    throughput = two["full"]["comments_per_s"]
    same = raw["runs"][f"service-batching {engine} b{chosen}"]["comments_per_s"]
    fraction = throughput / (2 * same)
    p99 = two["half"]["latency"]["p99_ms"]
    return [
        {
            "goal": f"service, full load, 2 workers >= {GOAL_THROUGHPUT:g} comments/s",
            "value": f"{throughput:.1f}/s",
            "met": throughput >= GOAL_THROUGHPUT,
        },
        {
            "goal": f">= {GOAL_RAW_FRACTION:g} of raw in-process scoring "
            f"({engine}, same batching b{chosen}, 2 x 1 process)",
            "value": f"{fraction:.2f}",
            "met": fraction >= GOAL_RAW_FRACTION,
        },
        {
            "goal": f"p99 decision latency < {GOAL_P99_MS / 1000:g} s at half load (2 workers)",
            "value": f"{p99:.0f} ms" if p99 is not None else "n/a",
            "met": p99 is not None and p99 < GOAL_P99_MS,
        },
    ]


def print_table(report: dict) -> None:
    raw = report["raw"]
    tokens = raw.get("tokens_per_comment", {})
    choice = raw["engine_choice"]
    print(
        f"{report['machine']['cpu']}, {report['machine']['cores']} cores; model: bert-base "
        f"Detoxify checkpoint, random weights; {report['comments']['measured']} YouTube comments, "
        f"tokens mean {tokens.get('mean')} p50 {tokens.get('p50')} p99 {tokens.get('p99')}"
    )
    print(f"engine {raw['engine']}: {choice.get('calibration', choice['chosen_by'])}")
    for note in raw.get("notes", []):
        print(f"note: {note}")
    header = (
        f"{'configuration':34} {'workers':>7} {'engine':>17} {'n':>5} {'c/s':>8} {'p50 ms':>9} "
        f"{'p95 ms':>9} {'p99 ms':>9} {'/naive':>7} {'/raw':>6} {'/raw-sb':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in report["rows"]:
        print(
            f"{row['configuration']:34} {row['workers']!s:>7} {row['engine']:>17} "
            f"{row['comments']:5d} {row['comments_per_s']:8.2f} {_cell(row['p50_ms'], 9)} "
            f"{_cell(row['p95_ms'], 9)} {_cell(row['p99_ms'], 9)} "
            f"{_cell(row.get('vs_naive'), 7, 'x')} "
            f"{_cell(row.get('vs_raw'), 6)} {_cell(row.get('vs_raw_same_batching'), 7)}"
        )
    print(
        "/naive: service / naive RQ with as many workers. /raw: service / (workers x raw "
        "Detoxify.predict b32, same engine, 1 thread). /raw-sb: the same against raw with "
        "the service's batching (its scorer on chunks of the batch size)."
    )
    print(
        "Latency: naive and full load from enqueue/POST to decision, so it includes the wait "
        "behind the whole burst; raw = duration of the model call that scored the comment."
    )
    print(
        f"batch size chosen by full-load comments/s per worker core, 2 workers: "
        f"{report['chosen_batch_size']}"
    )
    for goal in report["goals"]:
        print(f"goal {'met   ' if goal['met'] else 'MISSED'} {goal['goal']}: {goal['value']}")
    print()
    print(f"where the CPU went (average cores busy; the machine has {os.cpu_count()})")
    print(
        f"{'phase':18} {'workers':>7} {'api':>5} {'redis':>5} {'client':>6} {'other':>5} "
        f"{'batch':>5} {'in batch scoring':>16} {'c/s per worker core':>19}"
    )
    for row in report["cpu"]:
        print(
            f"{row['phase']:18} {row['workers']:7.2f} {row['api']:5.2f} {row['redis']:5.2f} "
            f"{row['client']:6.2f} {row['other']:5.2f} {row['mean_batch']:5.1f} "
            f"{_percent(row['batch_scoring_share']):>16} "
            f"{_cell(row['comments_per_worker_core'], 19)}"
        )
    busiest = max(row["other"] for row in report["cpu"])
    if busiest > 0.2:
        print(
            f"WARNING: other processes on this machine kept up to {busiest:.2f} cores busy "
            "during the service phases; the service's numbers are low by about that share."
        )


def _cell(value: float | None, width: int, suffix: str = "") -> str:
    if value is None:
        return f"{'-':>{width}}"
    text = f"{value:.0f}" if value >= 100 else f"{value:.2f}"
    return f"{text + suffix:>{width}}"


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def write_json(report: dict) -> Path:
    stamp = datetime.now().strftime("%Y-%m-%dT%H%M")
    write_report(RESULTS / "latest.json", report)
    return write_report(RESULTS / f"bench-{stamp}.json", report)


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=256, help="for raw and the service")
    parser.add_argument("--naive-comments", type=int, default=4)
    parser.add_argument("--fp32-comments", type=int, default=64, help="raw fp32 is slow")
    parser.add_argument(
        "--full-load-repeat", type=int, default=2, help="full load submits the comments N times"
    )
    parser.add_argument("--half-load-comments", type=int, default=128)
    parser.add_argument("--lite-repeat", type=int, default=4, help="lite is fast: more comments")
    parser.add_argument("--warm-up", type=int, default=48, help="comments before measuring")
    parser.add_argument("--batch-sizes", default="16,32", help="MODERATION_BATCH_SIZE to try")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few comments")
    args = parser.parse_args(argv)
    args.batch_sizes = [int(part) for part in args.batch_sizes.split(",")]
    if args.quick:
        args.comments, args.naive_comments, args.fp32_comments, args.warm_up = 48, 2, 16, 16
        args.half_load_comments, args.lite_repeat, args.full_load_repeat = 32, 1, 1
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    shutil.rmtree(SCRATCH, ignore_errors=True)
    SCRATCH.mkdir(parents=True)
    progress("model: building or reusing the cached bert-base checkpoint", started)
    model = bench_model()
    paths = {"checkpoint": str(model.checkpoint), "config_dir": str(model.config_dir)}
    texts = shuffled_comments()
    measured, warm = texts[: args.comments], texts[-args.warm_up :]
    full_texts = measured * args.full_load_repeat  # more batches: less ramp-up and tail
    half_texts = measured[: args.half_load_comments]
    report: dict = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "model": {"kind": "Detoxify checkpoint, bert-base, random weights", **model.info},
        "comments": {
            "source": "YouTube Spam Collection CONTENT (../shared/data), fixed shuffle",
            "measured": len(measured),
            "naive": args.naive_comments,
            "raw_fp32": args.fp32_comments,
            "full_load": len(full_texts),
            "half_load": len(half_texts),
            "lite_full_load": len(measured) * args.lite_repeat,
            "warm_up": len(warm),
            "mean_chars": round(sum(map(len, measured)) / len(measured), 1),
        },
    }

    progress("raw: in-process scoring on one thread", started)
    report["raw"] = raw = run_raw(paths, args, SCRATCH)

    model_env = {
        "BENCH_DETOXIFY_CHECKPOINT": paths["checkpoint"],
        "BENCH_DETOXIFY_CONFIG_DIR": paths["config_dir"],
        "HF_HUB_OFFLINE": "1",
    }
    report["naive"] = []
    for workers in (1, 2):
        progress(f"naive: {workers} stock RQ worker(s)", started)
        naive_texts = measured[: args.naive_comments]
        report["naive"].append(
            run_naive(SCRATCH / f"naive-{workers}", naive_texts, workers, model_env)
        )

    detoxify = {
        "MODERATION_TOXICITY_MODEL": f"detoxify:{paths['checkpoint']}",
        "MODERATION_DETOXIFY_CONFIG_DIR": paths["config_dir"],
        "MODERATION_RUNTIME": raw["runtime"],
        "MODERATION_PRECISION": raw["precision"],
        "MODERATION_TORCH_THREADS": "1",
    }
    report["service"] = []
    for size in args.batch_sizes:
        progress(f"service: 2 workers, batch size {size}", started)
        settings = {**detoxify, "MODERATION_BATCH_SIZE": str(size)}
        scratch = SCRATCH / f"service-2w-b{size}"
        report["service"].append(
            measure_service(scratch, 2, settings, full_texts, warm, half_texts)
        )
    # Chosen by throughput per core the workers got: other processes on the machine can take
    # a different share of the CPU in each run, which raw throughput would reward by chance.
    chosen = max(report["service"], key=per_worker_core)
    report["chosen_batch_size"] = size = int(chosen["settings"]["MODERATION_BATCH_SIZE"])
    progress(f"service: 1 worker, batch size {size}", started)
    settings = {**detoxify, "MODERATION_BATCH_SIZE": str(size)}
    report["service"].append(
        measure_service(SCRATCH / f"service-1w-b{size}", 1, settings, full_texts, warm, half_texts)
    )

    report["lite"] = []
    for workers in (1, 2):
        progress(f"service: lite model, {workers} worker(s)", started)
        scratch = SCRATCH / f"lite-{workers}w"
        settings = {"MODERATION_TOXICITY_MODEL": "lite"}
        report["lite"].append(
            measure_service(scratch, workers, settings, measured * args.lite_repeat, warm)
        )

    report["rows"] = rows_for(report)
    report["goals"] = goals_for(report)
    report["cpu"] = cpu_rows(report)
    report["runtime_s"] = round(time.monotonic() - started, 1)
    print_table(report)
    path = write_json(report)
    print(f"runtime {report['runtime_s']:.0f} s; wrote {path.relative_to(ROOT)} and latest.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
