"""The comments the benchmarks score, read in place from ../shared/data (never copied).

Every configuration of bench/detoxify_bench.py scores the same sample: YouTube Spam
Collection comments (a realistic mix of web comment lengths) in a fixed shuffled order.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SEED = 2015  # the YouTube Spam Collection's year; any fixed value would do


def youtube_comments(data: Path = DATA) -> list[str]:
    """The CONTENT column of every YouTube Spam Collection file, in file order."""
    texts: list[str] = []
    for path in sorted((data / "youtube-spam").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            texts += [row["CONTENT"] for row in csv.DictReader(handle)]
    return texts


def jigsaw_comments(data: Path = DATA) -> list[str]:
    """The comment_text column of the Jigsaw toxic comment sample."""
    path = data / "jigsaw-toxic" / "train_sample.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["comment_text"] for row in csv.DictReader(handle)]


def shuffled_comments(data: Path = DATA) -> list[str]:
    """All YouTube comments in one fixed pseudo-random order. The benchmark measures on a
    prefix of this list and warms the service up with comments from its end."""
    texts = youtube_comments(data)
    random.Random(SEED).shuffle(texts)
    return texts
