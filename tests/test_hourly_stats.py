"""The dashboard's figures: what each decision counts, and the queue's state hour by hour, read
back from a real Redis."""

from __future__ import annotations

import pytest

from moderation.core.records import Action, Decision, Status, Submission, utc_now
from moderation.storage.comment_store import CommentStore
from moderation.storage.hourly_stats import DashboardStats, decision_tallies, hour_of, review_labels

HOUR = 3600.0


def decision(action: Action, reasons: list[str], by: str = "auto") -> Decision:
    return Decision(action, reasons, {"toxicity": 0.9, "spam": 0.1}, {}, by, utc_now())


def test_an_automatic_decision_counts_its_outcome_and_each_label_it_named() -> None:
    assert decision_tallies(decision(Action.APPROVE, []), None) == ["auto|approved"]
    reasons = ["insult 0.95 >= 0.80", "toxicity 0.93 >= 0.80", "3 links > 2 allowed", "odd"]
    assert decision_tallies(decision(Action.HOLD, reasons), None) == [
        "auto|held",
        "reason|insult",
        "reason|toxicity",
        "reason|spam",
        "reason|other",
    ]
    reported = decision(Action.HOLD, ["reported by 3 readers: abuse"])
    assert decision_tallies(reported, None) == ["auto|held", "reason|reported", "reported"]
    banned = decision(Action.REJECT, ["author banned by a moderator"])
    assert decision_tallies(banned, None) == ["auto|rejected", "rejection|author"]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        # A moderator approving a hold disagrees with each label it named.
        (
            decision(Action.HOLD, ["insult 0.95 >= 0.80", "toxicity 0.85 >= 0.80"]),
            Action.APPROVE,
            [
                "reviewed",
                "overturned",
                "reviewed|insult",
                "overturned|insult",
                "reviewed|toxicity",
                "overturned|toxicity",
            ],
        ),
        (
            decision(Action.HOLD, ['banned word "x"']),
            Action.REJECT,
            ["reviewed", "reviewed|banned"],
        ),
        (
            decision(Action.APPROVE, []),
            Action.REJECT,
            ["reviewed", "overturned", "reviewed|approved", "overturned|approved"],
        ),
        (
            decision(Action.REJECT, ["author banned by a moderator"]),
            Action.REJECT,
            ["reviewed", "reviewed|author"],
        ),
        # A moderator deciding again what a moderator decided reviews no automatic decision.
        (decision(Action.APPROVE, [], by="moderator:bob"), Action.REJECT, []),
        (None, Action.APPROVE, []),
    ],
)
def test_a_moderators_decision_counts_agreement_per_label(before, after, expected) -> None:
    moderator = decision(after, [], by="moderator:ann")
    outcome = "approved" if after is Action.APPROVE else "rejected"
    assert decision_tallies(moderator, before) == [f"moderated|{outcome}", *expected]


def test_review_labels_name_scores_and_kinds() -> None:
    held = decision(Action.HOLD, ["spam 0.91 >= 0.70: 2 links", "honeypot field filled"])
    assert review_labels(held) == ["spam"]
    assert review_labels(decision(Action.HOLD, ["scoring failed"])) == ["other"]


def accepted(store: CommentStore, comment_id: str) -> None:
    store.accept("news", Submission(comment_id, f"text {comment_id}"), lambda pipe, s, i: "job")


def test_the_queue_is_known_for_every_hour_from_its_changes(redis_client) -> None:
    store = CommentStore(redis_client)
    for comment_id in ("c-1", "c-2", "c-3"):
        accepted(store, comment_id)
    holds = {i: decision(Action.HOLD, ["toxicity 0.93 >= 0.80"]) for i in ("c-1", "c-2")}
    for comment_id, hold in holds.items():
        assert store.decide("news", comment_id, hold).stored
    assert store.decide("news", "c-3", decision(Action.APPROVE, [])).stored
    approve = decision(Action.APPROVE, [], by="moderator:ann")
    assert store.decide(
        "news", "c-1", approve, allowed=(Status.HELD,), previous=holds["c-1"]
    ).stored
    c2 = store.get("news", "c-2")
    assert c2 is not None

    # Read five hours later: nothing changed since, so the queue stayed as the changes left it.
    later = utc_now() + 5 * HOUR
    stats = DashboardStats(redis_client).read(["news"], 24, now=later)
    changed = stats["buckets"].index(
        next(b for b, n in zip(stats["buckets"], stats["submitted"], strict=True) if n)
    )
    assert stats["queue"]["size"][:changed] == [0] * changed  # before: empty, as it started
    assert set(stats["queue"]["size"][changed:]) == {1}
    assert stats["queue"]["oldest_age_seconds"][:changed] == [None] * changed
    assert stats["queue"]["oldest_age_seconds"][-1] == pytest.approx(later - c2.submitted_at, abs=1)
    assert stats["queue"]["now"]["size"] == 1
    assert stats["totals"] == {
        "submitted": 3,
        "approved": 1,
        "held": 2,
        "rejected": 0,
        "moderated": 1,
        "moderator_approved": 1,
        "moderator_rejected": 0,
        "reported": 0,
        "reports": 0,
        "reviewed": 1,
        "overturned": 1,
    }
    assert stats["overturns"] == {"toxicity": {"reviewed": 1, "overturned": 1, "rate": 1.0}}
    assert stats["held_by_reason"] == {"toxicity": 2}
    assert len(stats["buckets"]) == 24
    assert stats["buckets"][-1].endswith(":00:00Z")
    assert hour_of(later) - hour_of(utc_now()) == 5


def test_sites_are_added_up_and_no_site_reads_as_zeros(redis_client) -> None:
    store = CommentStore(redis_client)
    accepted(store, "c-1")
    store.accept("blog", Submission("c-1", "text"), lambda pipe, s, i: "job")
    stats = DashboardStats(redis_client)
    assert stats.read(["news", "blog"], 24)["totals"]["submitted"] == 2
    empty = stats.read([], 168)
    assert sum(empty["submitted"]) == 0 and len(empty["buckets"]) == 168
    assert empty["queue"]["now"] == {"size": 0, "oldest_age_seconds": None}
