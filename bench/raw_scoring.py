"""In-process Detoxify scoring on one torch thread: the ceiling for one scoring worker.

Run by bench/detoxify_bench.py in its own process (so torch's thread settings are its own):

    python -m bench.raw_scoring --checkpoint X --config-dir Y --comments 256 --out raw.json

Measures, on the benchmark's comments in their fixed order:

- `predict`: `Detoxify.predict` on consecutive batches of 32 (unsorted, padded to the longest
  comment of each batch), in fp32 (on the first `--fp32-comments` only: it is slow) and on the
  service's engine (on those too, to compare like with like, and on all) when that engine is a
  torch model (`Detoxify.predict` runs torch modules only; otherwise it is skipped, with a note);
- `service batching`: the service's own `DetoxifyScorer.score` on consecutive chunks of B
  comments, which is what a worker does with a full batch of B jobs, on the engine (runtime and
  precision) the service chooses with MODERATION_RUNTIME=auto and MODERATION_PRECISION=auto;
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
    """The service's scorer on the engine the service would choose, and how it was chosen.

    With MODERATION_RUNTIME=auto and MODERATION_PRECISION=auto (the defaults) the service
    measures every installed engine at start and keeps the fastest within its score tolerance
    of fp32; this does the same measurement here (exports cached where the service caches
    them). `detoxify.model` is left as it was.
    """
    from workers.scoring.toxicity import DetoxifyScorer, EngineRequest

    request = EngineRequest(runtime="auto", precision="auto")
    scorer = DetoxifyScorer(detoxify, "raw", engine=request, max_tokens=max_tokens)
    calibration = scorer.calibration
    if calibration is None:  # only one engine to choose from: nothing was measured
        return scorer, {"chosen_by": "the only engine installed"}
    choice = {
        "chosen_by": "MODERATION_RUNTIME=auto, MODERATION_PRECISION=auto",
        "calibration": calibration.summary(),
        "deviations": calibration.deviations,
        "calibration_comments_per_s": calibration.comments_per_s,
    }
    return scorer, choice


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

    from workers.scoring.torch_engine import TorchEngine

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
    runs["predict torch-fp32 b32"] = timed_chunks(detoxify.predict, fp32_texts, PREDICT_BATCH)
    # Only now: choosing an engine measures each one, and the model must be as loaded for fp32.
    scorer, choice = service_scorer(detoxify, args.max_tokens)
    engine = f"{scorer.runtime}-{scorer.precision}"
    results.update(
        runtime=scorer.runtime, precision=scorer.precision, engine=engine, engine_choice=choice
    )
    notes: list[str] = []
    if isinstance(scorer.engine, TorchEngine):
        detoxify.model = scorer.engine.model  # Detoxify.predict on the service's engine
        detoxify.predict(warm)
        runs[f"predict {engine} b32 fp32-subset"] = timed_chunks(
            detoxify.predict, fp32_texts, PREDICT_BATCH
        )
        runs[f"predict {engine} b32"] = timed_chunks(detoxify.predict, texts, PREDICT_BATCH)
    else:
        notes.append(
            f"Detoxify.predict on the service's engine not measured: {engine} is not a torch "
            "model, and Detoxify.predict runs torch modules only"
        )
    for size in (int(part) for part in args.batch_sizes.split(",")):
        runs[f"service-batching {engine} b{size}"] = timed_chunks(scorer.score, texts, size)
    runs[f"sorted {engine}"] = timed_chunks(scorer.score, texts, len(texts))
    runs[f"one-by-one {engine}"] = timed_chunks(scorer.score, texts, 1)
    results["scorer_sub_batch"] = scorer.batch_size
    results["runs"] = runs
    results["notes"] = notes
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
