"""Training a site's model from its labels, and the gate a candidate must pass: enough labels,
a held-out slice, at least as good as the model in use, and not fooled by a poisoned batch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import expit as sigmoid

from moderation.storage.label_store import Label, LabelKind
from tests.support.site_labels import SITE_ABUSE, SITE_BANTER, SITE_HAM, SITE_SPAM
from workers.learning.site_models import EVEN_ODDS_SCORE, toxicity_inputs
from workers.learning.training import SpamTask, ToxicityTask, _held_out, train
from workers.scoring.spam import SpamScorer


@pytest.fixture(scope="module")
def spam_task() -> SpamTask:
    scorer = SpamScorer.from_file()
    return SpamTask(scorer.base_logits, scorer.name)


def labeled(*batches: tuple[LabelKind, list[str]], start: int = 0) -> list[Label]:
    """Labels in arrival order, with stream-like ids."""
    ids = itertools.count(start + 1)
    return [
        Label(f"{next(ids)}-0", kind, text, "test") for kind, texts in batches for text in texts
    ]


def versions():
    numbers = itertools.count(1)
    return lambda: next(numbers)


def test_nothing_is_trained_before_enough_labels_of_each_class(spam_task) -> None:
    labels = labeled((LabelKind.SPAM, SITE_SPAM[:4]), (LabelKind.OK, SITE_HAM))
    outcome = train(spam_task, "news", labels, in_use=None, min_labels=10, new_version=versions())
    assert outcome.candidate is None and not outcome.promoted
    assert outcome.reason == "waiting for 10 labels of each class (has 4 spam, 12 ok)"


def test_every_fourth_label_of_each_class_is_held_out() -> None:
    y = np.array([1, 0] * 8 + [1] * 4)
    held = _held_out(y)
    assert list(np.flatnonzero(held & (y == 1))) == [6, 14, 19]  # the 4th, 8th, 12th positive
    assert list(np.flatnonzero(held & (y == 0))) == [7, 15]


def test_a_site_model_that_does_better_is_promoted_and_fitted_on_every_label(spam_task) -> None:
    labels = labeled((LabelKind.SPAM, SITE_SPAM), (LabelKind.OK, SITE_HAM))
    outcome = train(spam_task, "news", labels, in_use=None, min_labels=10, new_version=versions())
    assert outcome.promoted, outcome.reason
    assert outcome.model.name == outcome.candidate.name == "spam-base-1+news.v1"
    quality = outcome.entry["held_out"]
    assert quality["auc"] >= quality["in_use_auc"] and quality["in_use"] == "spam-base-1"
    assert outcome.entry["labels"] == {"spam": 12, "ok": 12, "held_out": 6}
    # The model in use learned from the held-out labels too; its twin did not.
    held_out_spam = [SITE_SPAM[3]]
    inputs = spam_task.inputs(labeled((LabelKind.SPAM, held_out_spam)))
    assert outcome.model.logits_of(held_out_spam, inputs) != outcome.candidate.logits_of(
        held_out_spam, inputs
    )
    unseen = "Zorblax tonic cured my elbow in a week, ask for zorblax"
    base_logit = spam_task.inputs(labeled((LabelKind.SPAM, [unseen])))
    assert sigmoid(outcome.model.logits_of([unseen], base_logit))[0] > 0.7


def test_labels_in_arrival_order_decide_what_the_model_in_use_already_knew(spam_task) -> None:
    """A poisoned batch (the site's spam called ham, twice over) is measured only on labels older
    than the model in use: the candidate still ranks them, but has lost its confidence."""
    good = labeled((LabelKind.SPAM, SITE_SPAM), (LabelKind.OK, SITE_HAM))
    first = train(spam_task, "news", good, in_use=None, min_labels=10, new_version=versions())
    poison = labeled((LabelKind.OK, SITE_SPAM * 2), (LabelKind.SPAM, SITE_HAM), start=len(good))
    second = train(
        spam_task,
        "news",
        good + poison,
        in_use=first.candidate,
        min_labels=10,
        new_version=versions(),
    )
    assert second.candidate is not None and not second.promoted, second.reason
    assert second.model is None
    older = second.entry["older"]
    assert older["labels"] == 6 and older["log_loss"] > older["in_use_log_loss"] + 0.2
    assert second.reason.startswith("worse on older labels")
    # More good labels of the same kind are promoted over the first model.
    more = labeled((LabelKind.SPAM, SITE_SPAM[::-1]), (LabelKind.OK, SITE_HAM[::-1]), start=99)
    third = train(
        spam_task,
        "news",
        good + more,
        in_use=first.candidate,
        min_labels=10,
        new_version=versions(),
    )
    assert third.promoted, third.reason


def test_a_site_toxicity_model_learns_what_its_moderators_reject() -> None:
    """The lite model calls banter toxic and misses abuse without swearing; the site's labels
    teach the opposite. Even odds of rejection land on the default hold threshold."""
    from workers.scoring.toxicity import LiteScorer

    lite = LiteScorer()
    labels = labeled((LabelKind.TOXIC, SITE_ABUSE), (LabelKind.OK, SITE_BANTER))
    texts = [label.text for label in labels]
    scores = {label.id: row for label, row in zip(labels, lite.score(texts), strict=True)}
    task = ToxicityTask("lite", lite.labels, lambda chosen: [scores[c.id] for c in chosen])
    outcome = train(task, "news", labels, in_use=None, min_labels=10, new_version=versions())
    assert outcome.promoted, outcome.reason
    assert outcome.model.name == "lite+news.v1" and outcome.model.info["base"] == "lite"

    texts = ["People from the coast are vermin, drive them out", "Fucking great game, damn good"]
    raw = lite.score(texts)
    learned = sigmoid(outcome.model.logits_of(texts, toxicity_inputs(raw, lite.labels)))
    assert raw[0]["toxicity"] < EVEN_ODDS_SCORE <= raw[1]["toxicity"]
    assert learned[0] >= EVEN_ODDS_SCORE > learned[1]
