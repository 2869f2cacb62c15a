"""How long a site's retraining takes, by the number of its labels (offline, no Redis).

    .venv/bin/python -m bench.training_time [--labels 1500 20000]

Davidson's tweets as labels (hateful ones `toxic`, every 7th `spam` for the spam model, the
rest `ok`), trained as the learning job trains them (`workers.learning.training.train`), with
one thread; the toxicity inputs are fixed (scoring them is the toxicity model's time, not
training's). Prints seconds per kind, the model file's size and the peak memory.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Sequence

from moderation.storage.label_store import Label, LabelKind
from workers.learning import public_data
from workers.learning.training import SpamTask, ToxicityTask, train
from workers.scoring.spam import SpamScorer


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[1500, 20000])
    args = parser.parse_args(argv)
    tweets = [example for example, _ in public_data.tweets()]
    spam = SpamScorer.from_file()
    for count in args.labels:
        chosen = tweets[:count]
        toxic = [
            Label(f"{n + 1}-0", LabelKind.TOXIC if e.label else LabelKind.OK, e.text, "bench")
            for n, e in enumerate(chosen)
        ]
        spammy = [
            Label(f"{n + 1}-0", LabelKind.SPAM if n % 7 == 0 else LabelKind.OK, e.text, "bench")
            for n, e in enumerate(chosen)
        ]
        tasks = [
            (
                "toxicity",
                ToxicityTask("lite", ["toxicity"], lambda ls: [{"toxicity": 0.5}] * len(ls)),
                toxic,
            ),
            ("spam", SpamTask(spam.base_logits, spam.name), spammy),
        ]
        for kind, task, labels in tasks:
            started = time.perf_counter()
            outcome = train(
                task, "bench", labels, in_use=None, min_labels=10, new_version=lambda: 1
            )
            seconds = time.perf_counter() - started
            model = outcome.model or outcome.candidate
            size = len(model.to_bytes()) // 1024 if model else 0
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            print(
                f"{count} labels, {kind}: {seconds:.1f} s, model file {size} KiB, peak {peak} MiB"
            )


if __name__ == "__main__":
    main()
