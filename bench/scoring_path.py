"""The worker's scoring path in one process: the YouTube comments through
`workers.scoring.pipeline.score_comments` (lite toxicity model, the shipped spam model, no
site models), in batches of 16, as a worker scores them. No Redis, no policy.

    .venv/bin/python -m bench.scoring_path [--rounds 10]

Prints the time per comment; whole-process comparisons: `farm-bench --vs`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from moderation.core.records import ActivityCounts, Comment, Status, Submission
from workers.learning import public_data
from workers.scoring.pipeline import Scorers, score_comments
from workers.scoring.spam import SpamScorer
from workers.scoring.toxicity import LiteScorer

BATCH = 16


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    comments = [
        Comment("bench", Submission(f"c-{n}", e.text), "", 0.0, Status.PENDING)
        for n, e in enumerate(public_data.youtube())
    ]
    scorers = Scorers(LiteScorer(), SpamScorer.from_file())
    activity = [ActivityCounts()] * BATCH
    started = time.perf_counter()
    for _ in range(args.rounds):
        for first in range(0, len(comments), BATCH):
            batch = comments[first : first + BATCH]
            score_comments(scorers, batch, activity[: len(batch)], {})
    seconds = time.perf_counter() - started
    scored = args.rounds * len(comments)
    print(f"{scored} comments in {seconds:.2f} s: {seconds / scored * 1000:.3f} ms a comment")


if __name__ == "__main__":
    main()
