"""Scores one comment with every scorer and names the models that did it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from moderation.policy import Signals
from moderation.records import ActivityCounts, Comment
from workers.scoring.spam import SpamContext, SpamResult, score_spam
from workers.scoring.toxicity import ToxicityScorer

#: Names the spam scorer in each decision's `models`; bump it when the signals change.
SPAM_MODEL = "signals-v1"


@dataclass(frozen=True)
class Scored:
    scores: dict[str, float]
    signals: Signals
    models: dict[str, str]


def spam_context(comment: Comment, activity: ActivityCounts) -> SpamContext:
    author = comment.submission.author
    return SpamContext(
        honeypot_filled=bool(comment.submission.honeypot.strip()),
        author_name=author.get("name"),
        author_email=author.get("email"),
        author_url=author.get("url"),
        duplicate_count=activity.duplicate_count,
        author_burst=activity.author_burst,
        ip_burst=activity.ip_burst,
    )


def combine(toxicity: dict[str, float], spam: SpamResult, toxicity_model: str) -> Scored:
    """One comment's scores: every toxicity label, plus `spam`, each clamped to [0, 1]."""
    scores = {label: min(1.0, max(0.0, float(value))) for label, value in toxicity.items()}
    scores["spam"] = min(1.0, max(0.0, spam.score))
    signals = Signals(
        link_count=spam.link_count,
        honeypot_filled=any(signal.name == "honeypot" for signal in spam.signals),
        spam_signals=tuple(signal.detail for signal in spam.signals),
    )
    return Scored(scores, signals, {"toxicity": toxicity_model, "spam": SPAM_MODEL})


def score_comments(
    toxicity_scorer: ToxicityScorer,
    comments: Sequence[Comment],
    activity: Sequence[ActivityCounts],
) -> list[Scored]:
    """Score a batch: one toxicity forward pass, then the spam signals per comment."""
    toxicity = toxicity_scorer.score([c.submission.content for c in comments])
    return [
        combine(tox, score_spam(c.submission.content, spam_context(c, act)), toxicity_scorer.name)
        for c, tox, act in zip(comments, toxicity, activity, strict=True)
    ]
