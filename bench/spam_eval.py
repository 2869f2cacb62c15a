"""How well the base spam model does on comments it never saw (offline, no service needed).

    .venv/bin/python bench/spam_eval.py        # or: make bench-spam

Each figure comes from a model trained without the data it is measured on, built the way the
shipped one is (`workers.learning.build_spam_base`):

- leave one video out: for each YouTube video, a model trained on the two others (plus the SMS
  collection and the even Jigsaw rows) scores the comments of that video;
- the odd rows of the Jigsaw sample (Wikipedia talk comments, none of them spam), which no
  model ever trains on: how often ordinary discussion is held for spam;
- SMS left out: a model trained without the SMS collection scores it (text messages, another
  domain, reported as it is).

Scores are the model's alone (no honeypot, repeat or burst counters: the data has none), held
at the default threshold 0.70. Writes bench/results/spam_eval.json.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scipy.special import expit as sigmoid  # noqa: E402

from workers.learning import public_data  # noqa: E402
from workers.learning.build_spam_base import build  # noqa: E402
from workers.learning.fitting import roc_auc  # noqa: E402
from workers.learning.linear import LinearModel  # noqa: E402

OUT = ROOT / "bench" / "results" / "spam_eval.json"
HOLD = 0.7


def measure(model: LinearModel, examples: Sequence[public_data.Example]) -> dict:
    """ROC AUC, and how much spam and how many legitimate texts are held at the threshold."""
    labels = np.array([e.label for e in examples])
    scores = sigmoid(model.logits_of([e.text for e in examples]))
    held = scores >= HOLD
    legitimate = labels == 0
    return {
        "n": len(examples),
        "spam": int(labels.sum()),
        "roc_auc": None if labels.all() or not labels.any() else round(roc_auc(labels, scores), 4),
        "spam_held": round(float(held[~legitimate].mean()), 4) if (~legitimate).any() else None,
        "legitimate_held": round(float(held[legitimate].mean()), 4),
        "legitimate_held_count": int(held[legitimate].sum()),
    }


def main() -> None:
    youtube = public_data.youtube()
    results: dict[str, dict] = {}
    for video in sorted({e.group for e in youtube}):
        model = build(leave_out=[video])
        results[f"youtube {video} (left out)"] = measure(
            model, [e for e in youtube if e.group == video]
        )
    shipped = LinearModel.load(ROOT / "workers" / "learning" / "models" / "spam-base.npz")
    results["wikipedia talk, odd rows (never trained on)"] = measure(
        shipped, public_data.wikipedia_talk()[1::2]
    )
    results["sms (left out)"] = measure(build(leave_out=["sms"]), public_data.sms())
    print(f"| data | comments | spam | ROC AUC | spam held at {HOLD} | legitimate held |")
    print("|---|---|---|---|---|---|")
    for name, row in results.items():
        auc = "" if row["roc_auc"] is None else f"{row['roc_auc']:.3f}"
        spam_held = "" if row["spam_held"] is None else f"{row['spam_held']:.1%}"
        print(
            f"| {name} | {row['n']} | {row['spam']} | {auc} | {spam_held} | "
            f"{row['legitimate_held']:.1%} ({row['legitimate_held_count']}) |"
        )
    OUT.write_text(json.dumps({"hold_threshold": HOLD, "results": results}, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
