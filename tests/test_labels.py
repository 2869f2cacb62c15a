"""Labels: what each decision amounts to, kept per site with counts and a version; a comment's
label replaced by a later decision and removed by erasure; scores kept for text-only labels."""

from __future__ import annotations

import pytest
import redis

from moderation.core.records import Action, Decision, Submission, utc_now
from moderation.storage.comment_store import CommentStore
from moderation.storage.label_store import (
    LabelKind,
    LabelScores,
    LabelStore,
    TrainingLock,
    kind_of_decision,
)

SPAM_HOLD = Decision(
    Action.HOLD, ["spam 0.91 >= 0.70"], {"toxicity": 0.1, "spam": 0.91}, {}, "auto", 0
)
LINKS_HOLD = Decision(
    Action.HOLD, ["4 links > 2 allowed"], {"toxicity": 0.1, "spam": 0.4}, {}, "auto", 0
)
TOXIC_HOLD = Decision(
    Action.HOLD,
    ["insult 0.95 >= 0.80"],
    {"toxicity": 0.7, "insult": 0.95, "spam": 0.2},
    {},
    "auto",
    0,
)
BANNED_HOLD = Decision(
    Action.HOLD, ['banned word "x"'], {"toxicity": 0.1, "spam": 0.3}, {}, "auto", 0
)
APPROVED_SPAMMY = Decision(Action.APPROVE, [], {"toxicity": 0.05, "spam": 0.4}, {}, "auto", 0)
APPROVED_RUDE = Decision(Action.APPROVE, [], {"toxicity": 0.6, "spam": 0.1}, {}, "auto", 0)


@pytest.mark.parametrize(
    ("action", "before", "said", "kind"),
    [
        (Action.APPROVE, SPAM_HOLD, None, LabelKind.OK),
        (Action.REJECT, SPAM_HOLD, None, LabelKind.SPAM),
        (Action.REJECT, LINKS_HOLD, None, LabelKind.SPAM),
        (Action.REJECT, TOXIC_HOLD, None, LabelKind.TOXIC),
        (Action.REJECT, BANNED_HOLD, None, LabelKind.TOXIC),
        (Action.REJECT, APPROVED_SPAMMY, None, LabelKind.SPAM),  # overturned: the higher score
        (Action.REJECT, APPROVED_RUDE, None, LabelKind.TOXIC),
        (Action.REJECT, SPAM_HOLD, LabelKind.OTHER, LabelKind.OTHER),  # the moderator said
        (Action.REJECT, None, None, LabelKind.OTHER),  # never scored: no evidence either way
    ],
)
def test_what_a_moderators_decision_amounts_to(action, before, said, kind) -> None:
    assert kind_of_decision(action, before, said) is kind


def decided(connection: redis.Redis, comment_id: str, decision: Decision, text: str = "t"):
    store = CommentStore(connection)
    store.accept("news", Submission(comment_id, text), lambda pipe, site, cid: "job")
    store.decide("news", comment_id, decision)
    return store.get("news", comment_id)


def test_a_comments_label_is_replaced_by_a_later_decision(redis_client) -> None:
    changes: list[str] = []
    labels = LabelStore(redis_client, on_change=changes.append)
    comment = decided(redis_client, "c-1", SPAM_HOLD, "buy now")
    labels.label_comment(comment, LabelKind.SPAM, "moderator:ann")
    labels.label_comment(comment, LabelKind.OK, "moderator:bob")  # overturned
    [label] = labels.recent("news", 10)
    assert (label.kind, label.text, label.comment, label.source) == (
        LabelKind.OK,
        "buy now",
        "c-1",
        "moderator:bob",
    )
    assert label.scores == {"toxicity": 0.1} and label.toxicity_model == ""
    assert labels.counts("news") == {"spam": 0, "toxic": 0, "ok": 1, "other": 0}
    assert labels.version("news") == 2 and changes == ["news", "news"]


def test_erasing_a_comment_removes_its_label_and_bumps_the_version(redis_client) -> None:
    labels = LabelStore(redis_client)
    comment = decided(redis_client, "c-1", TOXIC_HOLD)
    labels.label_comment(comment, LabelKind.TOXIC, "moderator:ann")
    labels.label_text("news", "kept", LabelKind.OK, "akismet:submit-ham")
    assert CommentStore(redis_client).erase("news", "c-1", "site:news")
    assert [label.text for label in labels.recent("news", 10)] == ["kept"]
    assert labels.counts("news")["toxic"] == 0 and labels.version("news") == 3
    erased = CommentStore(redis_client).get("news", "c-1")
    assert labels.label_comment(erased, LabelKind.TOXIC, "moderator:ann") is None


def test_the_learned_toxicity_is_no_label_input_the_models_own_score_is(redis_client) -> None:
    learned = Decision(
        Action.HOLD,
        ["toxicity 0.90 >= 0.80"],
        {"toxicity": 0.9, "base_toxicity": 0.2, "insult": 0.1, "spam": 0.3},
        {"toxicity": "lite+news.v2", "spam": "spam-base-1"},
        "auto",
        utc_now(),
    )
    labels = LabelStore(redis_client)
    labels.label_comment(decided(redis_client, "c-1", learned), LabelKind.TOXIC, "m")
    [label] = labels.recent("news", 10)
    assert label.toxicity_model == "lite"
    assert label.scores == {"toxicity": 0.2, "insult": 0.1}


def test_sites_whose_labels_changed_since_training(redis_client) -> None:
    labels = LabelStore(redis_client)
    labels.label_text("news", "a", LabelKind.SPAM, "akismet:submit-spam")
    labels.label_text("blog", "b", LabelKind.OK, "akismet:submit-ham")
    labels.mark_trained("blog", labels.version("blog"))
    assert labels.untrained_sites(["news", "blog", "quiet"]) == ["news"]


def test_labels_stored_before_they_had_a_kind_are_read(redis_client) -> None:
    stream = "mod:examples:news"
    for label, labeler in [
        ("spam", "akismet:submit-spam"),
        ("ham", "akismet:submit-ham"),
        ("approved", "moderator:ann"),
        ("rejected", "moderator:ann"),
        ("rejected", "perspective:suggestscore"),
    ]:
        fields = {"comment": "", "content": "x", "scores": "{}", "label": label}
        redis_client.xadd(stream, {**fields, "labeler": labeler})
    kinds = [label.kind.value for label in LabelStore(redis_client).recent("news", 10)]
    assert kinds == ["spam", "ok", "ok", "other", "toxic"]


def test_scores_of_text_only_labels_are_kept_per_model(redis_client) -> None:
    lite = LabelScores(redis_client, "news", "lite")
    lite.put({"1-0": {"toxicity": 0.3}})
    assert lite.get(["1-0", "2-0"]) == {"1-0": {"toxicity": 0.3}}
    assert LabelScores(redis_client, "news", "detoxify:original").get(["1-0"]) == {}


def test_one_process_at_a_time_trains_a_site(redis_client) -> None:
    first = TrainingLock(redis_client, "news", "host-a:1", ttl=60)
    second = TrainingLock(redis_client, "news", "host-b:2", ttl=60)
    assert first.acquire() and not second.acquire()
    second.release()  # not its lock: nothing happens
    assert not second.acquire()
    first.release()
    assert second.acquire()
