"""Training a site's model of one kind from its labels, and the gate a new model must pass.

1. The labels that teach the kind: `spam` (1) against `ok` (0) for spam, `toxic` (1) against
   `ok` (0) for toxicity. Nothing is trained before there are `min_labels` of each class.
2. Every 4th label of each class, in arrival order, is held out: never trained on, it measures.
3. The candidate is fitted on the rest: logistic regression with balanced classes (for
   toxicity, recalibrated on out-of-fold scores: rare rejections make a timid model).
4. It replaces the model in use (the base model while the site has none) only if, on the
   held-out labels, it ranks them better than chance and at least as well (ROC AUC) and is at
   least as sure of them (log loss), within small tolerances; and if, on the held-out labels
   older than the model in use, it is not clearly worse (log loss): a batch of new labels that
   contradicts the old ones (a poisoned batch) trains a model that has lost its confidence on
   them even where it still ranks them right, and the new labels cannot vouch for it.

5. A promoted candidate is fitted again on every label, held-out ones too: that is the model
   put in use. The candidate itself is kept beside it as its "held-out twin": the next
   candidate is measured against the twin, which never saw the held-out labels either.

The kinds differ in what a model reads besides the text (`SpamTask`, `ToxicityTask`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from moderation.storage.label_store import Label, LabelKind
from moderation.storage.model_registry import SPAM, TOXICITY
from workers.learning.features import FeatureSpec, Featurizer
from workers.learning.fitting import balanced_log_loss, fit_logistic, roc_auc
from workers.learning.linear import LinearModel
from workers.learning.site_models import (
    EVEN_ODDS_SHIFT,
    SITE_SPAM_SPEC,
    model_name,
    toxicity_inputs,
    toxicity_spec,
)

#: Every HOLDOUT_EVERY-th label of each class is held out.
HOLDOUT_EVERY = 4
#: Held-out labels of each class needed to measure a model (with fewer, nothing is promoted).
MIN_HELD_OUT = 2
#: "At least as well", less what a handful of held-out labels cannot tell apart.
AUC_TOLERANCE = 0.005
LOG_LOSS_TOLERANCE = 0.05
#: How much worse (log loss) than the model in use a candidate may do on the older labels.
REGRESSION_TOLERANCE = 0.2
#: Regularisation of site models (scikit-learn's C).
SITE_STRENGTH = 1.0


class Task(Protocol):
    """What training one kind of site model needs to know."""

    kind: str
    positive: LabelKind
    base: str  # the base model's name (site model names start with it)
    spec: FeatureSpec
    shift: float  # added to the fitted bias (see site_models.EVEN_ODDS_SCORE)
    calibrate: bool  # recalibrate the fit on out-of-fold scores

    def inputs(self, labels: Sequence[Label]) -> np.ndarray | None: ...

    def in_use_logits(
        self, model: LinearModel | None, labels: Sequence[Label], inputs: np.ndarray | None
    ) -> np.ndarray:
        """The logits of the model in use (None: the base model), without `shift`."""
        ...


@dataclass(frozen=True)
class Outcome:
    """What training did: the candidate fitted without the held-out labels (None when there
    were too few labels), whether it was promoted, the model to put in use then (fitted on
    every label), why, and the entry for the model log."""

    kind: str
    candidate: LinearModel | None
    promoted: bool
    reason: str
    entry: dict[str, Any] = field(default_factory=dict)
    model: LinearModel | None = None


def train(
    task: Task,
    site: str,
    labels: Sequence[Label],
    *,
    in_use: LinearModel | None,
    min_labels: int,
    new_version: Callable[[], int],
) -> Outcome:
    """Train `task`'s kind for `site` from its labels (oldest first) and decide whether the
    candidate replaces the model in use; `in_use` is that model's held-out twin (None: the
    base model)."""
    chosen = [label for label in labels if label.kind in (task.positive, LabelKind.OK)]
    y = np.array([int(label.kind is task.positive) for label in chosen])
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    needed = max(min_labels, HOLDOUT_EVERY * MIN_HELD_OUT)
    if min(positives, negatives) < needed:
        reason = (
            f"waiting for {needed} labels of each class "
            f"(has {positives} {task.positive.value}, {negatives} ok)"
        )
        return Outcome(task.kind, None, False, reason)

    held_out = _held_out(y)
    inputs = task.inputs(chosen)
    features = Featurizer(task.spec).matrix([label.text for label in chosen], inputs)
    version = new_version()
    name = model_name(task.base, site, version)
    info = {
        "kind": task.kind,
        "base": task.base,
        "newest_label": chosen[-1].id,
        "labels": {task.positive.value: positives, "ok": negatives},
    }
    candidate = _fit(task, name, info, features[~held_out], y[~held_out])

    mine = candidate.logits(features) - task.shift
    theirs = task.in_use_logits(in_use, chosen, inputs)
    older = held_out & _known_to(chosen, in_use)
    quality = _compare(y[held_out], mine[held_out], theirs[held_out])
    regression = _compare(y[older], mine[older], theirs[older]) if _measurable(y[older]) else None
    in_use_name = in_use.name if in_use else task.base
    promoted, reason = _verdict(quality, regression, in_use_name)
    model = _fit(task, name, info, features, y) if promoted else None
    entry = {
        "version": version,
        "name": name,
        "promoted": promoted,
        "reason": reason,
        "base": task.base,
        "labels": {
            task.positive.value: positives,
            "ok": negatives,
            "held_out": int(held_out.sum()),  # its twin learned from all but these
        },
        "held_out": {"in_use": in_use_name, **quality},
        "older": regression,  # the held-out labels older than the model in use
        "newest_label": chosen[-1].id,
    }
    return Outcome(task.kind, candidate, promoted, reason, entry, model)


def _fit(task: Task, name: str, info: dict[str, Any], features: Any, y: np.ndarray) -> LinearModel:
    weights, bias = fit_logistic(features, y, strength=SITE_STRENGTH, calibrate=task.calibrate)
    return LinearModel(name, task.spec, weights, bias + task.shift, dict(info))


def _held_out(y: np.ndarray) -> np.ndarray:
    """Every HOLDOUT_EVERY-th label of each class, counting in arrival order."""
    mask = np.zeros(len(y), dtype=bool)
    for value in (0, 1):
        positions = np.flatnonzero(y == value)
        mask[positions[HOLDOUT_EVERY - 1 :: HOLDOUT_EVERY]] = True
    return mask


def _known_to(labels: Sequence[Label], model: LinearModel | None) -> np.ndarray:
    """Which labels had arrived when `model` was trained (none for the base model)."""
    newest = (model.info.get("newest_label") if model else None) or ""
    if not newest:
        return np.zeros(len(labels), dtype=bool)
    return np.array([_stream_order(label.id) <= _stream_order(newest) for label in labels])


def _stream_order(label_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = label_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def _measurable(y: np.ndarray) -> bool:
    return len(y) > 0 and min(int(y.sum()), int(len(y) - y.sum())) >= MIN_HELD_OUT


def _compare(y: np.ndarray, mine: np.ndarray, theirs: np.ndarray) -> dict[str, Any]:
    """ROC AUC and log loss of the candidate (`mine`) and the model in use on the same labels."""
    return {
        "labels": len(y),
        "auc": roc_auc(y, mine),
        "in_use_auc": roc_auc(y, theirs),
        "log_loss": balanced_log_loss(y, mine),
        "in_use_log_loss": balanced_log_loss(y, theirs),
    }


def _verdict(
    quality: dict[str, Any], regression: dict[str, Any] | None, in_use: str
) -> tuple[bool, str]:
    """Whether the candidate may replace the model in use, and why (not), in words."""
    auc, their_auc = quality["auc"], quality["in_use_auc"]
    loss, their_loss = quality["log_loss"], quality["in_use_log_loss"]
    compared = (
        f"on {quality['labels']} held-out labels AUC {_fmt(auc)} ({in_use}: {_fmt(their_auc)}),"
        f" log loss {_fmt(loss)} ({in_use}: {_fmt(their_loss)})"
    )
    if auc is None or auc <= 0.5:
        return False, f"ranks no better than chance: {compared}"
    if their_auc is not None and auc < their_auc - AUC_TOLERANCE:
        return False, f"ranks worse (by more than {AUC_TOLERANCE}): {compared}"
    if their_loss is not None and loss > their_loss + LOG_LOSS_TOLERANCE:
        return False, f"less sure (log loss worse by more than {LOG_LOSS_TOLERANCE}): {compared}"
    if regression is None:
        return True, f"as good or better: {compared}"
    older = (
        f"on the {regression['labels']} labels older than {in_use} log loss "
        f"{_fmt(regression['log_loss'])} ({in_use}: {_fmt(regression['in_use_log_loss'])})"
    )
    if regression["log_loss"] > regression["in_use_log_loss"] + REGRESSION_TOLERANCE:
        return False, (
            f"worse on older labels (by more than {REGRESSION_TOLERANCE}; do new labels "
            f"contradict them?): {older}; {compared}"
        )
    return True, f"as good or better: {compared}; {older}"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# --- the two kinds ------------------------------------------------------------------------------


class SpamTask:
    """Site spam models read the base spam model's logit beside the text."""

    kind = SPAM
    positive = LabelKind.SPAM
    spec = SITE_SPAM_SPEC
    shift = 0.0
    # The base logit makes it sure already; recalibrating made it hold more ham (measured).
    calibrate = False

    def __init__(self, base_logits: Callable[[Sequence[str]], np.ndarray], base: str) -> None:
        self._base_logits = base_logits
        self.base = base

    def inputs(self, labels: Sequence[Label]) -> np.ndarray:
        return self._base_logits([label.text for label in labels]).reshape(-1, 1)

    def in_use_logits(
        self, model: LinearModel | None, labels: Sequence[Label], inputs: np.ndarray | None
    ) -> np.ndarray:
        if model is None:  # the base model: its logit is the input
            return np.asarray(inputs).ravel()
        return model.logits_of([label.text for label in labels], inputs)


class ToxicityTask:
    """Site toxicity models read the toxicity model's label scores beside the text.

    `model_scores(labels)` gives those scores for each label: kept with a moderator's label,
    computed by the worker's toxicity model for the others.
    """

    kind = TOXICITY
    positive = LabelKind.TOXIC
    shift = EVEN_ODDS_SHIFT
    calibrate = True

    def __init__(
        self,
        base: str,
        label_names: Sequence[str],
        model_scores: Callable[[Sequence[Label]], list[dict[str, float]]],
    ) -> None:
        self.base = base
        self.label_names = tuple(label_names)
        self.spec = toxicity_spec(self.label_names)
        self._model_scores = model_scores

    def inputs(self, labels: Sequence[Label]) -> np.ndarray:
        return toxicity_inputs(self._model_scores(labels), self.label_names)

    def in_use_logits(
        self, model: LinearModel | None, labels: Sequence[Label], inputs: np.ndarray | None
    ) -> np.ndarray:
        if model is None:  # the toxicity model's own `toxicity`, as a logit
            return np.asarray(inputs)[:, self.label_names.index("toxicity")]
        return model.logits_of([label.text for label in labels], inputs) - self.shift
