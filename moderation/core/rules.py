"""The automatic policy: a pure function from scores and signals to an action with reasons."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from moderation.core.records import Action, Standing
from moderation.core.settings import PolicySettings


@dataclass(frozen=True)
class Signals:
    """Facts about a comment that are not model scores but still decide its fate."""

    link_count: int = 0
    honeypot_filled: bool = False
    spam_signals: tuple[str, ...] = field(default_factory=tuple)
    banned_words: tuple[str, ...] = ()  # entries of the policy's banned list found in the text
    suspect_words: tuple[str, ...] = ()  # entries of the suspect list found in the text
    author_approved: int = 0  # the author's approved comments on the site before this one
    #: `toxicity` is the site's own learned score, which stands for every toxicity label
    learned_toxicity: bool = False
    language: str = "und"  # the comment's detected language
    #: no live toxicity model reads the comment's language: its toxicity scores come from a
    #: model that does not read it (they may still hold it, never approve or reject it alone)
    language_unread: bool = False
    author_standing: Standing | None = None  # what moderators said about the author
    open_reports: int = 0  # distinct readers who reported it since a moderator last decided it


@dataclass(frozen=True)
class Verdict:
    action: Action
    reasons: list[str]


class ReasonKind(StrEnum):
    """What a reason of `decide` is about; read back by `reason_kind` (moderators' labels,
    Coral's flags), so the wording and its reading live here together."""

    SPAM = "spam"  # the spam score, the honeypot, too many links
    TOXICITY = "toxicity"  # a toxicity label's score
    BANNED = "banned"  # a banned word
    SUSPECT = "suspect"  # a suspect word
    LANGUAGE = "language"  # no live model reads the comment's language
    PREMODERATION = "premoderation"  # the site holds every comment
    AUTHOR = "author"  # a moderator banned or premoderated the author, or the author is new
    REPORTED = "reported"  # readers reported it


HONEYPOT_REASON = "honeypot field filled"
PREMODERATE_REASON = "site premoderates every comment"
BANNED_AUTHOR_REASON = "author banned by a moderator"
PREMODERATED_AUTHOR_REASON = "author premoderated by a moderator"
_NEW_AUTHOR_REASON = re.compile(r"new author: \d+ of \d+ comments approved")
_REPORTED_REASON = re.compile(r"reported by \d+ readers?\b.*")
#: `"toxicity 0.93 >= 0.80"`, `'spam 0.91 >= 0.70: "phrase", 2 links'` (the label first).
_SCORED_REASON = re.compile(r"(\S+) \d+(?:\.\d+)? >= \d+(?:\.\d+)?")
_LINKS_REASON = re.compile(r"\d+ links? > \d+ allowed")


def reason_kind(reason: str) -> ReasonKind | None:
    """The kind of one of a decision's reasons; None for wording this policy does not give."""
    scored = _SCORED_REASON.match(reason)
    if scored:
        return ReasonKind.SPAM if scored.group(1) == "spam" else ReasonKind.TOXICITY
    if reason == HONEYPOT_REASON or _LINKS_REASON.fullmatch(reason):
        return ReasonKind.SPAM
    if reason.startswith("banned word "):
        return ReasonKind.BANNED
    if reason.startswith("suspect word "):
        return ReasonKind.SUSPECT
    if reason.startswith("language ") and reason.endswith(": no model"):
        return ReasonKind.LANGUAGE
    if reason == PREMODERATE_REASON:
        return ReasonKind.PREMODERATION
    if reason in (BANNED_AUTHOR_REASON, PREMODERATED_AUTHOR_REASON):
        return ReasonKind.AUTHOR
    if _NEW_AUTHOR_REASON.fullmatch(reason):
        return ReasonKind.AUTHOR
    if _REPORTED_REASON.fullmatch(reason):
        return ReasonKind.REPORTED
    return None


def reported_reason(readers: int, reasons: list[str]) -> str:
    """`reported by 3 readers: abuse, spam` (the readers' reasons, most given first)."""
    noun = "reader" if readers == 1 else "readers"
    said = f": {', '.join(reason.replace('_', ' ') for reason in reasons)}" if reasons else ""
    return f"reported by {readers} {noun}{said}"


def _author_reasons(signals: Signals, policy: PolicySettings) -> list[str]:
    """Why the author's comments are held whatever their scores (banned aside)."""
    if signals.author_standing is Standing.PREMODERATED:
        return [PREMODERATED_AUTHOR_REASON]
    needed = policy.premoderate_new_authors
    if needed and signals.author_approved < needed and signals.author_standing is None:
        return [f"new author: {signals.author_approved} of {needed} comments approved"]
    return []


def _crossed(scores: Mapping[str, float], thresholds: Mapping[str, float]) -> list[str]:
    """`"toxicity 0.93 >= 0.80"` for each label at or past its threshold, highest score first."""
    hits = [
        (score, f"{label} {score:.2f} >= {thresholds[label]:.2f}")
        for label, score in scores.items()
        if label in thresholds and score >= thresholds[label]
    ]
    return [reason for _, reason in sorted(hits, key=lambda hit: -hit[0])]


def is_trusted(signals: Signals, policy: PolicySettings) -> bool:
    """An author a moderator trusts, or with `trusted_after` approved comments, skips the spam
    checks."""
    if signals.author_standing is Standing.TRUSTED:
        return True
    return policy.trusted_after > 0 and signals.author_approved >= policy.trusted_after


def _thresholds(
    thresholds: Mapping[str, float], signals: Signals, trusted: bool
) -> Mapping[str, float]:
    """The thresholds that apply: without `spam` for a trusted author; with a site's learned
    toxicity, only `toxicity` of the toxicity labels (the site model weighs all of them)."""
    return {
        label: value
        for label, value in thresholds.items()
        if not (trusted and label == "spam")
        and not (signals.learned_toxicity and label not in ("spam", "toxicity"))
    }


def _words(kind: str, entries: tuple[str, ...]) -> list[str]:
    """`banned word "x"`, `suspect word "y"` (read back by `reason_kind`)."""
    return [f'{kind} word "{entry}"' for entry in entries]


def decide(scores: Mapping[str, float], signals: Signals, policy: PolicySettings) -> Verdict:
    """Approve, hold or (when the policy allows) reject, with human-readable reasons.

    Rejection happens only with `auto_reject` on; otherwise the worst outcome is a hold, so a
    person always has the last word.
    """
    trusted = is_trusted(signals, policy)
    banned = signals.author_standing is Standing.BANNED
    if banned and policy.banned_authors == "reject":
        return Verdict(Action.REJECT, [BANNED_AUTHOR_REASON])
    if policy.auto_reject:
        reject = _thresholds(policy.reject, signals, trusted)
        if signals.language_unread:  # a model that cannot read the text rejects nothing
            reject = {label: value for label, value in reject.items() if label == "spam"}
        reject_reasons = _crossed(scores, reject)
        if signals.honeypot_filled:
            reject_reasons.append(HONEYPOT_REASON)
        reject_reasons += _words("banned", signals.banned_words)
        if reject_reasons:
            return Verdict(Action.REJECT, reject_reasons)

    reasons = _crossed(scores, _thresholds(policy.hold, signals, trusted))
    if signals.honeypot_filled:
        reasons.append(HONEYPOT_REASON)
    if signals.link_count > policy.max_links and not trusted:
        noun = "link" if signals.link_count == 1 else "links"
        reasons.append(f"{signals.link_count} {noun} > {policy.max_links} allowed")
    reasons += _words("banned", signals.banned_words)
    reasons += _words("suspect", signals.suspect_words)
    if signals.language_unread and policy.unscored_languages == "hold":
        reasons.append(f"language {signals.language}: no model")
    if banned:
        reasons.append(BANNED_AUTHOR_REASON)
    reasons += _author_reasons(signals, policy)
    if policy.report_threshold and signals.open_reports >= policy.report_threshold:
        reasons.append(reported_reason(signals.open_reports, []))
    if policy.premoderate:
        reasons.append(PREMODERATE_REASON)
    return Verdict(Action.HOLD if reasons else Action.APPROVE, reasons)
