"""Builds the base spam model the service ships, from public labeled data.

    .venv/bin/python -m workers.learning.build_spam_base              # the shipped model
    .venv/bin/python -m workers.learning.build_spam_base --leave-out 03 --out /tmp/no03.npz

Training data (read in place from `../shared/data`, never copied; licenses in
`workers/learning/models/README.md`): the YouTube Spam Collection videos 01-03 (spam and
ham), the SMS Spam Collection (spam and ham) and the even rows of the Jigsaw sample of
Wikipedia talk comments (ham: long, ordinary discussion, which comment spam data lacks). The
odd Jigsaw rows are never trained on; `bench/spam_eval.py` measures on them, and on each video
left out in turn.

The model: logistic regression (balanced classes, C=10) over hashed word 1-2-grams, hashed
character 2-5-grams and the strengths of the spam signals (`workers/learning/features.py`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from workers.learning import public_data
from workers.learning.features import FeatureSpec, Featurizer
from workers.learning.fitting import fit_logistic
from workers.learning.linear import LinearModel
from workers.scoring.spam import SHIPPED_MODEL

#: The shipped model's name: decisions record it in `models.spam`. Bump it on every rebuild
#: that changes the data, the features or the fit.
BASE_NAME = "spam-base-1"
SPEC = FeatureSpec(signals=True)
STRENGTH = 10.0


def training_examples(
    data: Path = public_data.DEFAULT_DATA, leave_out: Sequence[str] = ()
) -> list[public_data.Example]:
    """Everything the model trains on, less the groups in `leave_out` (YouTube videos such
    as "03", or "sms"), for measuring on what it never saw."""
    examples = (
        public_data.youtube(data) + public_data.sms(data) + public_data.wikipedia_talk(data)[::2]
    )
    return [e for e in examples if e.group not in leave_out]


def build(data: Path = public_data.DEFAULT_DATA, leave_out: Sequence[str] = ()) -> LinearModel:
    examples = training_examples(data, leave_out)
    name = BASE_NAME + "".join(f"-without-{video}" for video in sorted(leave_out))
    features = Featurizer(SPEC).matrix([e.text for e in examples])
    labels = [e.label for e in examples]
    weights, bias = fit_logistic(features, labels, strength=STRENGTH, calibrate=False)
    info = {
        "kind": "spam",
        "trained_on": {
            "groups": sorted({e.group for e in examples}),
            "examples": len(examples),
            "spam": sum(labels),
        },
    }
    return LinearModel(name, SPEC, weights, bias, info)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=public_data.DEFAULT_DATA)
    parser.add_argument("--leave-out", action="append", default=[], help="a video (e.g. 03) or sms")
    parser.add_argument("--out", type=Path, default=SHIPPED_MODEL)
    args = parser.parse_args(argv)
    model = build(args.data, args.leave_out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    print(f"{model.name}: {args.out} ({args.out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
