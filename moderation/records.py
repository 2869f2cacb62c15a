"""The domain's value types: statuses, actions, decisions and comment records.

Plain dataclasses with no I/O: `store` turns them into Redis hashes, `schemas` into JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


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
    scores: dict[str, float]
    models: dict[str, str]
    decided_by: str
    decided_at: float
    policy_version: int | None = None  # the site policy version an automatic decision used

    def to_json(self) -> dict[str, Any]:
        data = {
            "action": self.action.value,
            "reasons": list(self.reasons),
            "scores": dict(self.scores),
            "models": dict(self.models),
            "decided_by": self.decided_by,
            "decided_at": isoformat(self.decided_at),
        }
        if self.policy_version is not None:
            data["policy_version"] = self.policy_version
        return data

    def to_storage(self) -> dict[str, Any]:
        return {**self.to_json(), "decided_at": self.decided_at}

    @classmethod
    def from_storage(cls, data: dict[str, Any]) -> Decision:
        return cls(
            action=Action(data["action"]),
            reasons=list(data["reasons"]),
            scores={k: float(v) for k, v in data["scores"].items()},
            models=dict(data["models"]),
            decided_by=data["decided_by"],
            decided_at=float(data["decided_at"]),
            policy_version=data.get("policy_version"),
        )


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
    #: A one-off check (moderation.checks): scored like any comment, announced to no one.
    is_check: bool = False

    @property
    def id(self) -> str:
        return self.submission.id

    def record(self) -> dict[str, Any]:
        """The contract's record: what host sites read back."""
        record = {
            "id": self.id,
            "status": self.status.value,
            "submitted_at": isoformat(self.submitted_at),
            "decision": self.decision.to_json() if self.decision else None,
        }
        if self.erased_at is not None:
            record["erased_at"] = isoformat(self.erased_at)
        return record
