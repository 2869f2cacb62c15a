"""Raw scoring per engine (runtime x precision), no service: what each one does on this CPU.

    .venv/bin/python -m bench.raw_engines [--comments 96] [--engines torch-fp32,onnxruntime-int8]

For every engine installed (`workers.scoring.engines.candidates()`), the bert-base Detoxify
twin (bench/detoxify_model.py) is built into it once (exports cached under bench/.cache/), then
scores the same comments the way a worker does (`predict`: length-sorted passes of 4 windows of
at most 256 tokens), on one thread per process:

- `youtube`: YouTube Spam Collection comments (short: a median of about 20 tokens);
- `jigsaw`: Jigsaw toxic comment sample (longer: a median of about 60 tokens);

once in one process, then in two processes at once (each its own copy, each scoring all the
comments: two workers on two cores). It reports comments per second (the two-process figure is
both processes' comments over the longer wall time), the resident memory of a process, and
each engine's largest score difference from fp32 torch on the same real comments. Prints one
JSON document. Each measurement runs in a fresh process (`--child`), so that one engine's
threads and memory do not affect the next.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.comments import jigsaw_comments, youtube_comments
from bench.detoxify_model import CACHE, bench_model

ENGINE_CACHE = CACHE / "engines"
PASS_SIZE = 4
MAX_TOKENS = 256
SETS = ("youtube", "jigsaw")


def texts_of(name: str, count: int) -> list[str]:
    texts = youtube_comments() if name == "youtube" else jigsaw_comments()
    return texts[:count]


def child(args: argparse.Namespace) -> None:
    """Build (or load from the cache) one engine and score one set; write JSON to --out."""
    import psutil
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    from transformers.utils import logging as transformers_logging

    from workers.scoring.engines import Candidate, build_engine, model_checksum
    from workers.scoring.toxicity import _load_offline, predict

    transformers_logging.disable_progress_bar()
    detoxify = _load_offline(Path(args.checkpoint), Path(args.config_dir))
    model, tokenizer = detoxify.model.eval(), detoxify.tokenizer
    texts = texts_of(args.set, args.comments)
    windows = tokenizer(texts[:64], truncation=True, max_length=MAX_TOKENS)["input_ids"]
    started = time.perf_counter()
    engine = build_engine(
        model,
        tokenizer,
        Candidate.parse(args.engine),
        cache_dir=ENGINE_CACHE,
        checksum=model_checksum(model),
        threads=1,
        calibration_windows=windows,
    )
    built = time.perf_counter() - started
    del model, detoxify
    options = {"max_tokens": MAX_TOKENS, "batch_size": PASS_SIZE}
    predict(engine, tokenizer, texts[:8], **options)  # warm-up: lazy initialisation
    if args.ready:
        Path(args.ready).touch()
        while not Path(args.go).exists():  # start together with the sibling process
            time.sleep(0.01)
    started = time.perf_counter()
    scores = predict(engine, tokenizer, texts, **options)
    seconds = time.perf_counter() - started
    result = {
        "engine": args.engine,
        "set": args.set,
        "comments": len(texts),
        "seconds": seconds,
        "build_s": round(built, 1),
        "rss_mb": round(psutil.Process().memory_info().rss / 2**20),
        "scores": scores,
    }
    Path(args.out).write_text(json.dumps(result))


def run_children(
    model: dict[str, str], engine: str, name: str, count: int, processes: int, scratch: Path
) -> list[dict]:
    """`processes` child processes scoring the same set at once; their results."""
    go = scratch / f"go-{engine}-{name}-{processes}"
    go.unlink(missing_ok=True)
    launched = []
    for number in range(processes):
        out = scratch / f"{engine}-{name}-{processes}-{number}.json"
        ready = scratch / f"{out.name}.ready"
        ready.unlink(missing_ok=True)
        command = [
            sys.executable, "-m", "bench.raw_engines", "--child",
            "--checkpoint", model["checkpoint"], "--config-dir", model["config_dir"],
            "--engine", engine, "--set", name, "--comments", str(count), "--out", str(out),
            "--ready", str(ready), "--go", str(go),
        ]  # fmt: skip
        launched.append((subprocess.Popen(command), out, ready))
    deadline = time.monotonic() + 1800
    while not all(ready.exists() for _, _, ready in launched):
        if any(process.poll() not in (None, 0) for process, _, _ in launched):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{engine} did not get ready")
        time.sleep(0.05)  # waiting on child processes, bounded by the deadline
    go.touch()
    results = []
    for process, out, _ in launched:
        if process.wait() != 0:
            raise RuntimeError(f"{engine} on {name} failed (exit {process.returncode})")
        results.append(json.loads(out.read_text()))
    return results


def max_difference(scores: list[list[float]], reference: list[list[float]]) -> float:
    pairs = zip(scores, reference, strict=True)
    return max(abs(a - b) for row, ref in pairs for a, b in zip(row, ref, strict=True))


def measure(engines: Sequence[str], count: int, scratch: Path) -> dict:
    built = bench_model()
    model = {"checkpoint": str(built.checkpoint), "config_dir": str(built.config_dir)}
    scratch.mkdir(parents=True, exist_ok=True)
    report: dict = {"comments_per_set": count, "pass_size": PASS_SIZE, "engines": {}}
    references: dict[str, list[list[float]]] = {}
    for engine in engines:
        row: dict = {}
        for name in SETS:
            try:
                [alone] = run_children(model, engine, name, count, 1, scratch)
                pair = run_children(model, engine, name, count, 2, scratch)
            except (RuntimeError, TimeoutError) as error:
                row[name] = {"error": str(error)}
                continue
            if engine == "torch-fp32":
                references[name] = alone["scores"]
            wall = max(result["seconds"] for result in pair)
            row[name] = {
                "one_process_per_s": round(alone["comments"] / alone["seconds"], 1),
                "two_processes_per_s": round(2 * count / wall, 1),
                "rss_mb": max(result["rss_mb"] for result in pair),
                "build_s": alone["build_s"],
                "max_difference_from_fp32": (
                    round(max_difference(alone["scores"], references[name]), 4)
                    if name in references
                    else None
                ),
            }
        report["engines"][engine] = row
        print(f"{engine}: {json.dumps(row)}", file=sys.stderr, flush=True)
    return report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=96, help="per set")
    parser.add_argument("--engines", default="", help="comma-separated; default: all installed")
    parser.add_argument("--scratch", type=Path, default=CACHE / "raw-engines")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--checkpoint", "--config-dir", "--engine", "--set", "--out", "--ready", "--go"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def all_engines() -> list[str]:
    from workers.scoring.engines import candidates

    names = [candidate.name for candidate in candidates()]
    return ["torch-fp32", *(name for name in names if name != "torch-fp32")]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    engines = args.engines.split(",") if args.engines else all_engines()
    if engines[0] != "torch-fp32":
        engines = ["torch-fp32", *(e for e in engines if e != "torch-fp32")]
    print(json.dumps(measure(engines, args.comments, args.scratch), indent=2))


if __name__ == "__main__":
    main()
