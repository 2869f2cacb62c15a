"""What moderators do: read the held queue, look at a comment, decide, read its audit trail.

Shared by the review API and the /moderate page; every method checks what the moderator may
see, and raises ApiError (403, 404, 409) in the contract's terms.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

from moderation.deliveries import Outbox
from moderation.errors import ApiError
from moderation.labels import LabelKind, LabelStore, kind_of_decision
from moderation.moderators import Moderator
from moderation.records import Action, Comment, Decision, Status, isoformat, utc_now
from moderation.sites import SiteStore
from moderation.store import CommentStore

#: A moderator may decide comments that are still waiting for a decision or are held; with
#: `overturn`, a comment in any state (an automatic approval rejected, a rejection approved).
DECIDABLE = (Status.PENDING, Status.HELD)
OVERTURNABLE = tuple(Status)
MAX_PAGE = 100

Position = tuple[float, str, str]  # (submitted_at, site, comment id): the queue's order


@dataclass(frozen=True)
class QueuePage:
    items: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(position: Position) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        score, site, comment_id = json.loads(base64.urlsafe_b64decode(padded))
        position = float(score), site, comment_id
        # Redis refuses a NaN score (a 500 if it got that far); ids are strings.
        if not (
            math.isfinite(position[0]) and isinstance(site, str) and isinstance(comment_id, str)
        ):
            raise ValueError("not a queue position")
        return position
    except (ValueError, TypeError, binascii.Error, RecursionError):  # RecursionError: "[[[[..."
        raise ApiError(422, "Invalid cursor.", fields={"cursor": ["Not a valid cursor."]}) from None


def matches(comment: Comment, label: str | None, reason: str | None) -> bool:
    """Whether a held comment was held for `label` (e.g. "toxicity") and/or a reason text."""
    reasons = comment.decision.reasons if comment.decision else []
    if label and not any(r.split(" ", 1)[0] == label for r in reasons):
        return False
    return not reason or any(reason.lower() in r.lower() for r in reasons)


def audit_event_json(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "at": isoformat(float(event["at"]))}


class ReviewService:
    def __init__(
        self, comments: CommentStore, sites: SiteStore, outbox: Outbox, labels: LabelStore
    ) -> None:
        self.comments = comments
        self.sites = sites
        self.outbox = outbox
        self.labels = labels

    # --- what a moderator may see ------------------------------------------------------------

    def visible_sites(self, moderator: Moderator, site: str | None = None) -> list[str]:
        """The sites whose queue the moderator reads; `site` narrows it (403 if not theirs)."""
        if site is not None:
            if not moderator.may_see(site):
                raise ApiError(403, f"You are not assigned to site {site!r}.")
            return [site]
        return [s for s in self.sites.names() if moderator.may_see(s)]

    def comment(self, moderator: Moderator, site: str, comment_id: str) -> Comment:
        if not moderator.may_see(site):
            raise ApiError(403, f"You are not assigned to site {site!r}.")
        comment = self.comments.get(site, comment_id)
        if comment is None:
            raise ApiError(404, f"No comment {comment_id!r} on site {site!r}.")
        return comment

    # --- reading -----------------------------------------------------------------------------

    def item(self, comment: Comment) -> dict[str, Any]:
        """The record plus what a moderator needs to judge it."""
        author = comment.submission.author
        return {
            **comment.record(),
            "site": comment.site,
            "content": comment.submission.content,
            "author": author,
            "context": comment.submission.context,
            "highlights": comment.highlights,
            "author_history": self.comments.author_counts(comment.site, author.get("id", "")),
        }

    def queue(
        self,
        moderator: Moderator,
        *,
        site: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
        label: str | None = None,
        reason: str | None = None,
    ) -> QueuePage:
        """Held comments of the moderator's sites, oldest first, `limit` at a time."""
        after = decode_cursor(cursor) if cursor else None
        sites = self.visible_sites(moderator, site)
        items: list[dict[str, Any]] = []
        position = after
        while len(items) < limit:
            batch = self._next_positions(sites, position, limit)
            if not batch:
                return QueuePage(items, None)
            for candidate in batch:
                position = candidate
                comment = self.comments.get(candidate[1], candidate[2])
                if comment and comment.status is Status.HELD and matches(comment, label, reason):
                    items.append(self.item(comment))
                    if len(items) == limit:
                        break
        more = bool(self._next_positions(sites, position, 1))
        return QueuePage(items, encode_cursor(position) if more and position else None)

    def _next_positions(
        self, sites: list[str], after: Position | None, count: int
    ) -> list[Position]:
        """The next `count` queue positions after `after` across `sites`, in queue order."""
        merged: list[Position] = []
        for site in sites:
            for score, comment_id in self.comments.held_page(
                site, after[0] if after else None, count
            ):
                position = (score, site, comment_id)
                if after is None or position > after:
                    merged.append(position)
        return sorted(merged)[:count]

    def audit(self, moderator: Moderator, site: str, comment_id: str) -> list[dict[str, Any]]:
        self.comment(moderator, site, comment_id)
        return [audit_event_json(event) for event in self.comments.audit(site, comment_id)]

    # --- deciding ----------------------------------------------------------------------------

    def decide(
        self,
        moderator: Moderator,
        site: str,
        comment_id: str,
        action: Action,
        note: str = "",
        *,
        overturn: bool = False,
        label: LabelKind | None = None,
    ) -> dict[str, Any]:
        """Approve or reject; 409 with the current record if someone decided it first (or, without
        `overturn`, if it was already approved or rejected). The decision is a label for the
        site's learning: `label` says why a rejection was made (else it is read from the
        reasons the comment was held for, see `labels.kind_of_decision`)."""
        comment = self.comment(moderator, site, comment_id)
        if action is Action.HOLD:
            raise ApiError(422, "A moderator approves or rejects.", fields={"action": ["hold"]})
        previous = comment.decision
        reasons = [f"moderator: {note}"] if note else []
        if action is Action.REJECT and previous:
            reasons += previous.reasons
        decision = Decision(
            action=action,
            reasons=reasons,
            scores=previous.scores if previous else None,
            models=previous.models if previous else {},
            decided_by=moderator.actor,
            decided_at=utc_now(),
            language=previous.language if previous else None,
        )
        outcome = self.comments.decide(
            site,
            comment_id,
            decision,
            allowed=OVERTURNABLE if overturn else DECIDABLE,
            note=note,
            author_id=comment.submission.author.get("id", ""),
        )
        current = self.comments.get(site, comment_id)
        if outcome.status is None or current is None:
            raise ApiError(404, f"No comment {comment_id!r} on site {site!r}.")
        if not outcome.stored:
            raise ApiError(
                409,
                f"Comment {comment_id!r} is already {current.status.value}.",
                extra={"current": current.record()},
            )
        self.outbox.flush(site, comment_id)
        kind = kind_of_decision(action, previous, label)
        self.labels.label_comment(current, kind, source=moderator.actor)
        return current.record()

    def decide_many(
        self,
        moderator: Moderator,
        site: str,
        ids: list[str],
        action: Action,
        note: str = "",
        *,
        overturn: bool = False,
        label: LabelKind | None = None,
    ) -> list[dict[str, Any]]:
        """Bulk approve or reject: one result per id, in order; one failure stops nothing."""
        results: list[dict[str, Any]] = []
        self.visible_sites(moderator, site)
        for comment_id in ids:
            try:
                record = self.decide(
                    moderator, site, comment_id, action, note, overturn=overturn, label=label
                )
                results.append({"id": comment_id, "outcome": "decided", "record": record})
            except ApiError as error:
                result = {"id": comment_id, "outcome": error.code, "error": error.message}
                results.append({**result, **error.extra})
        return results
