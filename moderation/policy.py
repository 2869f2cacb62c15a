"""The automatic policy: a pure function from scores and signals to an action with reasons."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from moderation.records import Action
from moderation.settings import PolicySettings


@dataclass(frozen=True)
class Signals:
    """Facts about a comment that are not model scores but still decide its fate."""

    link_count: int = 0
    honeypot_filled: bool = False
    spam_signals: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Verdict:
    action: Action
    reasons: list[str]


def _crossed(scores: Mapping[str, float], thresholds: Mapping[str, float]) -> list[str]:
    """`"toxicity 0.93 >= 0.80"` for each label at or past its threshold, highest score first."""
    hits = [
        (score, f"{label} {score:.2f} >= {thresholds[label]:.2f}")
        for label, score in scores.items()
        if label in thresholds and score >= thresholds[label]
    ]
    return [reason for _, reason in sorted(hits, key=lambda hit: -hit[0])]


def decide(scores: Mapping[str, float], signals: Signals, policy: PolicySettings) -> Verdict:
    """Approve, hold or (when the policy allows) reject, with human-readable reasons.

    Rejection happens only with `auto_reject` on; otherwise the worst outcome is a hold, so a
    person always has the last word.
    """
    if policy.auto_reject:
        reject_reasons = _crossed(scores, policy.reject)
        if signals.honeypot_filled:
            reject_reasons.append("honeypot field filled")
        if reject_reasons:
            return Verdict(Action.REJECT, reject_reasons)

    reasons = _crossed(scores, policy.hold)
    if signals.honeypot_filled:
        reasons.append("honeypot field filled")
    if signals.link_count > policy.max_links:
        noun = "link" if signals.link_count == 1 else "links"
        reasons.append(f"{signals.link_count} {noun} > {policy.max_links} allowed")
    if policy.premoderate:
        reasons.append("site premoderates every comment")
    return Verdict(Action.HOLD if reasons else Action.APPROVE, reasons)
