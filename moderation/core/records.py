"""The domain's value types: statuses, actions, decisions and comment records.

Plain dataclasses with no I/O: `store` turns them into Redis hashes, `schemas` into JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

#: When a site's own toxicity model decided, the toxicity model's own `toxicity` score is kept
#: under this label (and `toxicity` is the site's learned one).
BASE_TOXICITY = "base_toxicity"
#: A site model's name is its base model's, this, then the site's version: `lite+news.v2`.
SITE_MODEL_SEPARATOR = "+"
#: The language of a comment whose language could not be told (ISO 639-2's code for it).
UNDETERMINED_LANGUAGE = "und"


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    HELD = "held"
    REJECTED = "rejected"


class Action(StrEnum):
    APPROVE = "approve"
    HOLD = "hold"
    REJECT = "reject"

    @property
    def status(self) -> Status:
        """The comment status this action leaves behind."""
        return {
            Action.APPROVE: Status.APPROVED,
            Action.HOLD: Status.HELD,
            Action.REJECT: Status.REJECTED,
        }[self]


class Standing(StrEnum):
    """What moderators said about an author on a site (no standing: the site's policy alone)."""

    BANNED = "banned"  # later comments rejected (or held, per the policy's `banned_authors`)
    PREMODERATED = "premoderated"  # later comments held
    TRUSTED = "trusted"  # later comments skip the spam checks


class AuthorAction(StrEnum):
    """What a moderator can do to an author; `clear` takes the standing away."""

    BAN = "ban"
    PREMODERATE = "premoderate"
    TRUST = "trust"
    CLEAR = "clear"

    @property
    def standing(self) -> Standing | None:
        return {
            AuthorAction.BAN: Standing.BANNED,
            AuthorAction.PREMODERATE: Standing.PREMODERATED,
            AuthorAction.TRUST: Standing.TRUSTED,
            AuthorAction.CLEAR: None,
        }[self]


class ReportReason(StrEnum):
    """Why a reader reported a published comment."""

    SPAM = "spam"
    ABUSE = "abuse"
    OFF_TOPIC = "off_topic"
    OTHER = "other"


def utc_now() -> float:
    """Seconds since the epoch; every stored time is one of these."""
    return datetime.now(UTC).timestamp()


def isoformat(timestamp: float) -> str:
    """`2026-11-25T13:00:00Z`: the contract's time format (UTC, whole seconds)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Decision:
    """What was decided about a comment, by whom, and why."""

    action: Action
    reasons: list[str]
    #: None when the comment could not be scored: never made-up numbers
    scores: dict[str, float] | None
    models: dict[str, str]
    decided_by: str
    decided_at: float
    policy_version: int | None = None  # the site policy version an automatic decision used
    #: the comment's language (ISO 639-1, `und` when unknown); None for decisions made
    #: before languages were detected
    language: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "action": self.action.value,
            "reasons": list(self.reasons),
            "scores": dict(self.scores) if self.scores is not None else None,
            "models": dict(self.models),
            "decided_by": self.decided_by,
            "decided_at": isoformat(self.decided_at),
            "language": self.language or UNDETERMINED_LANGUAGE,
        }
        if self.policy_version is not None:
            data["policy_version"] = self.policy_version
        return data

    def to_storage(self) -> dict[str, Any]:
        return {**self.to_json(), "decided_at": self.decided_at}

    def model_scores(self) -> tuple[str, dict[str, float]]:
        """The toxicity model that scored the comment (without the site model's suffix) and the
        scores it gave, as it gave them (the inputs a site toxicity model learns from)."""
        if self.scores is None:
            return self.models.get("toxicity", ""), {}
        scores = {k: v for k, v in self.scores.items() if k not in ("spam", BASE_TOXICITY)}
        if BASE_TOXICITY in self.scores:
            scores["toxicity"] = self.scores[BASE_TOXICITY]
        return self.models.get("toxicity", "").split(SITE_MODEL_SEPARATOR, 1)[0], scores

    @classmethod
    def from_storage(cls, data: dict[str, Any]) -> Decision:
        return cls(
            action=Action(data["action"]),
            reasons=list(data["reasons"]),
            scores=_scores_from_storage(data["scores"]),
            models=dict(data["models"]),
            decided_by=data["decided_by"],
            decided_at=float(data["decided_at"]),
            policy_version=data.get("policy_version"),
            language=data.get("language"),
        )


def _scores_from_storage(scores: dict[str, Any] | None) -> dict[str, float] | None:
    return None if scores is None else {k: float(v) for k, v in scores.items()}


@dataclass(frozen=True)
class Submission:
    """A comment as a host site sent it, already validated."""

    id: str
    content: str
    author: dict[str, str] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)
    honeypot: str = ""
    callback_url: str | None = None  # overrides the site's callback URL for this comment


@dataclass(frozen=True)
class ActivityCounts:
    """How busy the sender and the text were when the comment arrived (for spam signals)."""

    duplicate_count: int = 1
    author_burst: int = 1
    ip_burst: int = 1


@dataclass(frozen=True)
class Comment:
    """A stored comment: the submission, what the service counted, and its state."""

    site: str
    submission: Submission
    content_hash: str
    submitted_at: float
    status: Status
    decision: Decision | None = None
    erased_at: float | None = None
    #: A one-off check (moderation.actions.immediate_checks): scored like any comment, announced to
    #: no one.
    is_check: bool = False
    #: label -> the phrases of the text that drove its learned score (erased with the text).
    highlights: dict[str, list[str]] = field(default_factory=dict)
    #: toxicity label -> [begin, end, score] of each sentence, for comments held for one
    #: (Perspective-style span scores; erased with the text).
    spans: dict[str, list[list[float]]] = field(default_factory=dict)
    #: distinct readers who reported it since a moderator last decided it
    open_reports: int = 0

    @property
    def id(self) -> str:
        return self.submission.id

    def record(self, *, quote_text: bool = True) -> dict[str, Any]:
        """The contract's record: what host sites read back. Reasons quote the phrases that
        drove a learned score unless `quote_text` is false (webhooks carry no comment text)."""
        decision = self.decision.to_json() if self.decision else None
        if decision and quote_text and self.highlights:
            decision["reasons"] = quoted_reasons(decision["reasons"], self.highlights)
        record = {
            "id": self.id,
            "status": self.status.value,
            "submitted_at": isoformat(self.submitted_at),
            "decision": decision,
        }
        if self.erased_at is not None:
            record["erased_at"] = isoformat(self.erased_at)
        return record


def quoted_reasons(reasons: list[str], highlights: Mapping[str, list[str]]) -> list[str]:
    """`spam 0.94 >= 0.70: 3 links` with the spam phrases becomes
    `spam 0.94 >= 0.70: "check out my channel", "subscribe", 3 links`."""
    quoted = []
    for reason in reasons:
        phrases = highlights.get(reason.split(" ", 1)[0])
        if phrases:
            head, _, tail = reason.partition(": ")
            said = ", ".join(json.dumps(phrase, ensure_ascii=False) for phrase in phrases)
            reason = f"{head}: {said}" + (f", {tail}" if tail else "")
        quoted.append(reason)
    return quoted
