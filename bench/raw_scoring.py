"""In-process Detoxify scoring on one torch thread: the ceiling for one scoring worker.

Run by bench/detoxify_bench.py in its own process (so torch's thread settings are its own):

    python -m bench.raw_scoring --checkpoint X --config-dir Y --comments 256 --out raw.json

Measures, on the benchmark's comments in their fixed order:

- `predict`: `Detoxify.predict` on consecutive batches of 32 (unsorted, padded to the longest
  comment of each batch), in fp32 (on the first `--fp32-comments` only: it is slow) and in the
  service's precision (on those too, to compare like with like, and on all);
- `service batching`: the service's own `DetoxifyScorer.score` on consecutive chunks of B
  comments, which is what a worker does with a full batch of B jobs;
- `sorted`: `DetoxifyScorer.score` on all comments at once (sorted by length before
  batching), and `one-by-one` (no batching, so no padding): references for what padding costs.

A comment's latency is the duration of the model call that scored it.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from bench.comments import shuffled_comments
from bench.stats import percentile, summary

if TYPE_CHECKING:
    from detoxify import Detoxify
    from transformers import PreTrainedTokenizerBase

    from workers.scoring.toxicity import DetoxifyScorer

PREDICT_BATCH = 32


def timed_chunks(
    score: Callable[[list[str]], object], texts: Sequence[str], chunk: int
) -> dict[str, object]:
    """Score `texts` chunk by chunk; throughput and per-comment latency."""
    latencies: list[float] = []
    started = time.perf_counter()
    for first in range(0, len(texts), chunk):
        part = list(texts[first : first + chunk])
        call_started = time.perf_counter()
        score(part)
        latencies += [time.perf_counter() - call_started] * len(part)
    elapsed = time.perf_counter() - started
    return {
        "comments": len(texts),
        "seconds": round(elapsed, 3),
        "comments_per_s": round(len(texts) / elapsed, 2),
        "latency_s": summary(latencies),
    }


def token_counts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_tokens: int) -> dict:
    """How many tokens the comments have (with [CLS] and [SEP], before truncation)."""
    counts = [len(ids) for ids in tokenizer(list(texts))["input_ids"]]
    return {
        "mean": round(sum(counts) / len(counts), 1),
        "p50": round(percentile(counts, 0.5)),
        "p90": round(percentile(counts, 0.9)),
        "p99": round(percentile(counts, 0.99)),
        "max": max(counts),
        f"over_{max_tokens}": sum(count > max_tokens for count in counts),
    }


def service_scorer(detoxify: Detoxify, max_tokens: int) -> tuple[DetoxifyScorer, dict]:
    """The service's scorer at the precision the service would choose, and how it was chosen.

    With MODERATION_PRECISION=auto the service measures at start which precision is fastest
    within its score tolerance; that choice is used when auto reports one. Otherwise bf16 on
    CPUs with bf16 instructions, else fp32. The model is left as it was when auto copies it.
    """
    from workers.scoring.toxicity import DetoxifyScorer

    scorer = DetoxifyScorer(detoxify, "raw", precision="auto", max_tokens=max_tokens)
    calibration = getattr(scorer, "calibration", None)
    if calibration is not None:
        choice = {
            "chosen_by": "MODERATION_PRECISION=auto",
            "calibration": calibration.summary(),
            "deviations": calibration.deviations,
            "calibration_comments_per_s": calibration.comments_per_s,
        }
        return scorer, choice
    precision = "bf16" if cpu_has_bf16() else "fp32"
    scorer = DetoxifyScorer(detoxify, "raw", precision=precision, max_tokens=max_tokens)
    return scorer, {"chosen_by": f"auto unavailable or undecided; {precision} by CPU flags"}


def cpu_has_bf16() -> bool:
    flags = Path("/proc/cpuinfo").read_text().split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--config-dir", required=True)
    parser.add_argument("--comments", type=int, default=256)
    parser.add_argument("--fp32-comments", type=int, default=64, help="fp32 is slow: fewer")
    parser.add_argument("--batch-sizes", default="16,32", help="service batch sizes to mimic")
    parser.add_argument("--max-tokens", type=int, default=256, help="MODERATION_MAX_TOKENS")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    from detoxify import Detoxify
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    texts = shuffled_comments()[: args.comments]
    detoxify = Detoxify(checkpoint=args.checkpoint, huggingface_config_path=args.config_dir)
    # Detoxify.predict truncates at the tokenizer's limit (512); the service at max_tokens.
    detoxify.tokenizer.model_max_length = args.max_tokens
    results: dict[str, object] = {
        "tokens_per_comment": token_counts(detoxify.tokenizer, texts, args.max_tokens)
    }
    runs: dict[str, object] = {}
    warm = ["warm up"] * 4  # one small pass: lazy initialisation is not measured
    fp32_texts = texts[: args.fp32_comments]
    detoxify.predict(warm)
    runs["predict fp32 b32"] = timed_chunks(detoxify.predict, fp32_texts, PREDICT_BATCH)
    # Only now: a precision other than fp32 may convert detoxify.model in place.
    scorer, choice = service_scorer(detoxify, args.max_tokens)
    precision = scorer.precision
    results.update(precision=precision, precision_choice=choice)
    detoxify.model = scorer.model  # Detoxify.predict at the service's precision
    detoxify.predict(warm)
    runs[f"predict {precision} b32 fp32-subset"] = timed_chunks(
        detoxify.predict, fp32_texts, PREDICT_BATCH
    )
    runs[f"predict {precision} b32"] = timed_chunks(detoxify.predict, texts, PREDICT_BATCH)
    for size in (int(part) for part in args.batch_sizes.split(",")):
        runs[f"service-batching {precision} b{size}"] = timed_chunks(scorer.score, texts, size)
    runs[f"sorted {precision}"] = timed_chunks(scorer.score, texts, len(texts))
    runs[f"one-by-one {precision}"] = timed_chunks(scorer.score, texts, 1)
    results["scorer_sub_batch"] = scorer.batch_size
    results["runs"] = runs
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
