"""What scoring long comments whole costs: windows (now) against truncation (before).

    .venv/bin/python -m bench.long_comments [--limit N] [--out PATH]

writes bench/results/long-comments-<date>.json unless --out says otherwise.

The Jigsaw sample's comments (../shared/data/jigsaw-toxic/train_sample.csv, read in place) that
are longer than the service's 256-token windows, scored with bench/detoxify_model.py's
random-weight twin of Detoxify `original` (bert-base: compute does not depend on the weights),
fp32, one torch thread, the service's passes of DEFAULT_BATCH_SIZE windows:

- per long comment, alone as a worker scores it: truncation (its first window, as the service
  did before) and windows (all of them); the two alternate, comment by comment, so that load
  from other processes falls on both alike;
- the model's input in tokens either way, for the whole Jigsaw sample (long comments are a
  small share of it) and for the YouTube comments (short, as most web comments are);
- the service's own time outside the model (tokenizing, cutting, padding) on every comment,
  before and after, with a model that does nothing: windows must not cost short comments more;
- as a proxy for "was the toxic part past the first window", the `lite` profanity model on
  each window's text (the random-weight twin cannot tell; the labels say only which comment).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import torch

from bench.comments import DATA, ROOT, youtube_comments
from bench.detoxify_model import bench_model
from bench.stats import summary
from workers.scoring.toxicity import (
    DEFAULT_BATCH_SIZE,
    WINDOW_OVERLAP,
    LiteScorer,
    predict,
    window_starts,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MAX_TOKENS = 256  # MODERATION_MAX_TOKENS' default
PROFANE = 0.5  # `lite`'s score from which a window counts as profane
Predict = Callable[..., list[list[float]]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="time only the first N")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    torch.set_num_threads(1)
    load_before = os.getloadavg()

    from detoxify import Detoxify

    built = bench_model()
    detoxify = Detoxify(checkpoint=built.checkpoint, huggingface_config_path=built.config_dir)
    model, tokenizer = detoxify.model.eval(), detoxify.tokenizer
    rows = jigsaw_rows()
    texts = [row["comment_text"] for row in rows]
    lengths = token_lengths(tokenizer, texts)
    long = [i for i, length in enumerate(lengths) if length > MAX_TOKENS]
    timed = long[: args.limit]

    results = {
        "measured": measured_on(),
        "command": "python -m bench.long_comments"
        + (f" --limit {args.limit}" if args.limit else ""),
        "model": f"random-weight bert-base twin of Detoxify original ({built.info['parameters']:,}"
        " parameters), fp32, 1 torch thread",
        "settings": {
            "max_tokens": MAX_TOKENS,
            "overlap": min(WINDOW_OVERLAP, (MAX_TOKENS - 2) // 4),
            "windows_per_pass": DEFAULT_BATCH_SIZE,
        },
        "sample": sample_summary(rows, lengths, long),
        "model_input_tokens": {
            "jigsaw": input_tokens(lengths),
            "youtube": input_tokens(token_lengths(tokenizer, youtube_comments())),
        },
        "long_comments": time_long_comments(model, tokenizer, [texts[i] for i in timed]),
        "outside_the_model_all_comments": time_outside_the_model(tokenizer, texts),
        "beyond_the_first_window": beyond_first_window(tokenizer, rows, long),
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }
    results["seconds"] = round(time.perf_counter() - started, 1)
    out = args.out or ROOT / "bench" / "results" / f"long-comments-{datetime.date.today()}.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(report(results))
    print(f"written to {out}")
    return 0


def jigsaw_rows(data: Path = DATA) -> list[dict[str, str]]:
    """The Jigsaw sample's rows: comment_text and its six 0/1 labels."""
    path = data / "jigsaw-toxic" / "train_sample.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def token_lengths(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[int]:
    """Tokens per text, special tokens included, untruncated."""
    return [len(ids) for ids in tokenizer(list(texts), verbose=False)["input_ids"]]


def windows_of(length: int) -> int:
    """How many windows the service scores for a text of `length` tokens (specials included)."""
    return len(window_starts(length - 2, MAX_TOKENS - 2))


def sample_summary(rows: list[dict[str, str]], lengths: list[int], long: list[int]) -> dict:
    long_lengths = [lengths[i] for i in long]
    windows = [windows_of(lengths[i]) for i in long]
    return {
        "comments": len(rows),
        "longer_than_max_tokens": len(long),
        "toxic_labelled": sum(row["toxic"] == "1" for row in rows),
        "toxic_labelled_and_long": sum(rows[i]["toxic"] == "1" for i in long),
        "long_tokens": {
            "p50": statistics.median(long_lengths),
            "mean": round(statistics.mean(long_lengths), 1),
            "max": max(long_lengths),
        },
        "windows_per_long_comment": {
            "p50": statistics.median(windows),
            "mean": round(statistics.mean(windows), 2),
            "max": max(windows),
            "total": sum(windows),
        },
    }


def input_tokens(lengths: list[int]) -> dict:
    """Tokens the model reads for a whole data set, before and after (the model's cost is
    about proportional at these lengths)."""
    truncated = sum(min(length, MAX_TOKENS) for length in lengths)
    windowed = sum(
        length if length <= MAX_TOKENS else windows_of(length) * MAX_TOKENS for length in lengths
    )
    return {
        "comments": len(lengths),
        "longer_than_max_tokens": sum(length > MAX_TOKENS for length in lengths),
        "truncation": truncated,
        "windows": windowed,
        "increase_percent": round(100 * (windowed / truncated - 1), 1),
    }


def time_long_comments(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, texts: list[str]
) -> dict:
    """Each long comment scored alone, truncated and whole, alternating which goes first."""
    options = {"max_tokens": MAX_TOKENS, "batch_size": DEFAULT_BATCH_SIZE}
    predict(model, tokenizer, texts[:1], **options)  # warm-up (lazy initialisation)
    seconds: dict[str, list[float]] = {"truncation": [], "windows": []}
    for number, text in enumerate(texts):
        modes = [("truncation", 1), ("windows", None)]
        for mode, max_windows in modes if number % 2 == 0 else modes[::-1]:
            started = time.perf_counter()
            predict(model, tokenizer, [text], max_windows=max_windows, **options)
            seconds[mode].append(time.perf_counter() - started)
    total = {mode: sum(values) for mode, values in seconds.items()}
    return {
        "comments": len(texts),
        "windows": sum(windows_of(length) for length in token_lengths(tokenizer, texts)),
        **{f"{mode}_per_comment": summary(values) for mode, values in seconds.items()},
        "seconds": {mode: round(value, 2) for mode, value in total.items()},
        "windows_over_truncation": round(total["windows"] / total["truncation"], 2),
    }


class NullModel(torch.nn.Module):
    """Answers every pass with zeros at once: what is left is the service's own work."""

    def forward(self, input_ids: torch.Tensor, **_: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=torch.zeros(input_ids.shape[0], 6))


def truncating_predict(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_tokens: int,
    batch_size: int,
) -> list[list[float]]:
    """`predict` as it was before windows (commit 6addd20): sorted by characters, each pass
    tokenized with truncation and padding."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    results: list[list[float]] = [[] for _ in texts]
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        inputs = tokenizer(
            [texts[i] for i in indices],
            return_tensors="pt",
            truncation=True,
            max_length=max_tokens,
            padding=True,
        )
        with torch.inference_mode():
            rows = torch.sigmoid(model(**inputs).logits.float()).tolist()
        for index, row in zip(indices, rows, strict=True):
            results[index] = row
    return results


def time_outside_the_model(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> dict:
    """Both paths with NullModel over every comment, in worker-sized calls of 16 (the default
    MODERATION_BATCH_SIZE), best of 3 rounds; short comments alone too."""
    null = NullModel()
    short = [
        text
        for text, length in zip(texts, token_lengths(tokenizer, texts), strict=True)
        if length <= MAX_TOKENS
    ]
    paths: dict[str, Predict] = {"before": truncating_predict, "after": predict}
    results: dict[str, dict[str, float]] = {}
    for name, subset in (("all", texts), ("short_only", short)):
        best = {path: float("inf") for path in paths}
        for _ in range(3):
            for path, function in paths.items():
                started = time.perf_counter()
                for first in range(0, len(subset), 16):
                    function(
                        null,
                        tokenizer,
                        subset[first : first + 16],
                        max_tokens=MAX_TOKENS,
                        batch_size=DEFAULT_BATCH_SIZE,
                    )
                best[path] = min(best[path], time.perf_counter() - started)
        results[name] = {
            "comments": len(subset),
            **{
                f"{path}_ms_per_comment": round(1000 * s / len(subset), 3)
                for path, s in best.items()
            },
        }
    return results


def beyond_first_window(
    tokenizer: PreTrainedTokenizerBase, rows: list[dict[str, str]], long: list[int]
) -> dict:
    """Long comments whose first window `lite` finds clean but a later one profane."""
    lite = LiteScorer()
    found: list[int] = []
    for index in long:
        text = rows[index]["comment_text"]
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        size = MAX_TOKENS - 2
        pieces = [tokenizer.decode(ids[s : s + size]) for s in window_starts(len(ids), size)]
        scores = [row["toxicity"] for row in lite.score(pieces)]
        if scores[0] < PROFANE <= max(scores[1:]):
            found.append(index)
    return {
        "proxy": f"lite profanity score >= {PROFANE} in a later window, < {PROFANE} in the first",
        "long_comments": len(found),
        "of_them_toxic_labelled": sum(rows[i]["toxic"] == "1" for i in found),
        "toxic_labelled_long_comments": sum(rows[i]["toxic"] == "1" for i in long),
        "ids": [rows[i]["id"] for i in found],
    }


def measured_on() -> dict[str, str]:
    """Date, CPU (lscpu's model name) and software."""
    cpu = "unknown"
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    return {
        "date": str(datetime.date.today()),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def report(results: dict) -> str:
    """A few lines for the terminal."""
    sample, timed = results["sample"], results["long_comments"]
    truncation, windows = timed["truncation_per_comment"], timed["windows_per_comment"]
    outside = results["outside_the_model_all_comments"]
    return "\n".join(
        [
            f"{results['measured']['cpu']}; {results['model']}",
            f"{sample['longer_than_max_tokens']} of {sample['comments']} comments are longer "
            f"than {MAX_TOKENS} tokens; {sample['windows_per_long_comment']['mean']} windows "
            f"each on average (max {sample['windows_per_long_comment']['max']})",
            f"per long comment: truncation {truncation['mean_ms']:.0f} ms mean "
            f"(p95 {truncation['p95_ms']:.0f}), windows {windows['mean_ms']:.0f} ms mean "
            f"(p95 {windows['p95_ms']:.0f}): x{timed['windows_over_truncation']}",
            "model input, in tokens: "
            + ", ".join(
                f"{name} +{row['increase_percent']}%"
                for name, row in results["model_input_tokens"].items()
            ),
            "outside the model, ms per comment: "
            + ", ".join(
                f"{name} {row['before_ms_per_comment']} before, {row['after_ms_per_comment']} after"
                for name, row in outside.items()
            ),
            f"lite finds profanity only past the first window in "
            f"{results['beyond_the_first_window']['long_comments']} long comments",
            f"{results['seconds']} s",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
