"""What moderators do: read the held queue, the reported comments and the recent approvals,
look at a comment in its context, decide, act on its author, read its audit trail.

Shared by the review API and the /moderate page; every method checks what the moderator may
see, and raises the domain errors (`moderation.core.domain_errors`) that the HTTP layer
answers in the contract's terms (403, 404, 409, 422).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

from moderation.actions.reader_reports import Report, ReportStore, label_kind_of_reports
from moderation.core.domain_errors import (
    AlreadyDecided,
    CommentNotFound,
    DomainError,
    InvalidRequest,
    NotAssigned,
)
from moderation.core.records import (
    Action,
    AuthorAction,
    Comment,
    Decision,
    Status,
    isoformat,
    utc_now,
)
from moderation.storage.author_store import AuthorProfile, AuthorStore
from moderation.storage.comment_store import CommentStore
from moderation.storage.label_store import LabelKind, LabelStore, kind_of_decision
from moderation.storage.moderator_store import Moderator
from moderation.storage.site_store import SiteStore
from moderation.storage.webhook_outbox import Outbox

#: A moderator may decide comments that are still waiting for a decision or are held; with
#: `overturn`, a comment in any state (an automatic approval rejected, a rejection approved).
DECIDABLE = (Status.PENDING, Status.HELD)
OVERTURNABLE = tuple(Status)
MAX_PAGE = 100
#: The author's other recent comments a card shows, and how much of each comment's text.
RECENT_BY_AUTHOR = 5
EXCERPT_CHARS = 400
#: Approved comments searched per site for `approved` (the newest first).
APPROVED_SEARCH_DEPTH = 2_000

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
        raise InvalidRequest("Invalid cursor.", {"cursor": ["Not a valid cursor."]}) from None


def matches(comment: Comment, label: str | None, reason: str | None) -> bool:
    """Whether a held comment was held for `label` (e.g. "toxicity") and/or a reason text."""
    reasons = comment.decision.reasons if comment.decision else []
    if label and not any(r.split(" ", 1)[0] == label for r in reasons):
        return False
    return not reason or any(reason.lower() in r.lower() for r in reasons)


def _decided_automatically(comment: Comment) -> bool:
    return comment.decision is not None and comment.decision.decided_by == "auto"


def _searchable(comment: Comment) -> str:
    author = comment.submission.author
    parts = (comment.submission.content, author.get("name", ""), author.get("id", ""), comment.id)
    return "\n".join(parts).casefold()


def audit_event_json(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "at": isoformat(float(event["at"]))}


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def glance(comment: Comment) -> dict[str, Any]:
    """A comment in a line: another comment a card shows for context."""
    author = comment.submission.author
    return {
        "id": comment.id,
        "status": comment.status.value,
        "submitted_at": isoformat(comment.submitted_at),
        "author_name": author.get("name") or author.get("id") or "",
        "content": excerpt(comment.submission.content),
        "reasons": list(comment.decision.reasons) if comment.decision else [],
        "decided_by": comment.decision.decided_by if comment.decision else "",
    }


def standing_json(profile: AuthorProfile) -> dict[str, Any] | None:
    if profile.standing is None:
        return None
    return {
        "standing": profile.standing.value,
        "note": profile.standing_note,
        "by": profile.standing_by,
        "at": isoformat(profile.standing_at) if profile.standing_at else None,
    }


def reports_json(reports: list[Report]) -> dict[str, Any]:
    reasons: dict[str, int] = {}
    for report in reports:
        reasons[report.reason.value] = reasons.get(report.reason.value, 0) + 1
    return {"open": len(reports), "reasons": reasons, "items": [r.to_json() for r in reports]}


class ReviewService:
    def __init__(
        self,
        comments: CommentStore,
        sites: SiteStore,
        outbox: Outbox,
        labels: LabelStore,
        authors: AuthorStore,
        reports: ReportStore,
    ) -> None:
        self.comments = comments
        self.sites = sites
        self.outbox = outbox
        self.labels = labels
        self.authors = authors
        self.reports = reports

    # --- what a moderator may see ------------------------------------------------------------

    def visible_sites(self, moderator: Moderator, site: str | None = None) -> list[str]:
        """The sites whose queue the moderator reads; `site` narrows it (403 if not theirs)."""
        if site is not None:
            if not moderator.may_see(site):
                raise NotAssigned(site)
            return [site]
        return [s for s in self.sites.names() if moderator.may_see(s)]

    def comment(self, moderator: Moderator, site: str, comment_id: str) -> Comment:
        if not moderator.may_see(site):
            raise NotAssigned(site)
        comment = self.comments.get(site, comment_id)
        if comment is None:
            raise CommentNotFound(site, comment_id)
        return comment

    # --- reading -----------------------------------------------------------------------------

    def item(self, comment: Comment) -> dict[str, Any]:
        """The record plus what a moderator needs to judge it."""
        return self.items([comment])[0]

    def items(self, comments: list[Comment]) -> list[dict[str, Any]]:
        """`item` for several comments, their context read in a few round trips in all: the
        author's standing and counts, the parent comment of a reply, the author's other recent
        comments on the site, and the readers' open reports."""
        authors = [(c.site, c.submission.author.get("id", "")) for c in comments]
        profiles = self.authors.profiles(authors)
        recent_ids = self.authors.recent_comment_ids_many(authors, RECENT_BY_AUTHOR + 1)
        parent_keys = [(c.site, c.submission.context.get("parent_id", "")) for c in comments]
        wanted = [key for key in parent_keys if key[1]]
        wanted += [
            (site, i) for (site, _), ids in zip(authors, recent_ids, strict=True) for i in ids
        ]
        found = dict(zip(wanted, self.comments.get_many(wanted), strict=True))
        reports = self.reports.open_many([(c.site, c.id, c.open_reports) for c in comments])
        items = []
        for comment, author, parent, ids, open_reports in zip(
            comments, authors, parent_keys, recent_ids, reports, strict=True
        ):
            candidates = [found.get((comment.site, i)) for i in ids if i != comment.id]
            recent = [c for c in candidates if c and c.erased_at is None]
            parent_comment = found.get(parent) if parent[1] else None
            items.append(
                {
                    **comment.record(),
                    "site": comment.site,
                    "content": comment.submission.content,
                    "author": comment.submission.author,
                    "context": comment.submission.context,
                    "highlights": comment.highlights,
                    "spans": comment.spans,
                    "author_history": profiles[author].counts,
                    "author_standing": standing_json(profiles[author]),
                    "author_recent": [glance(c) for c in recent][:RECENT_BY_AUTHOR],
                    "parent": glance(parent_comment) if parent_comment else None,
                    "reports": reports_json(open_reports),
                }
            )
        return items

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
        held: list[Comment] = []
        position = after
        while len(held) < limit:
            batch = self._next_positions(sites, position, limit)
            if not batch:
                return QueuePage(self.items(held), None)
            found = self.comments.get_many([(c[1], c[2]) for c in batch])
            for candidate, comment in zip(batch, found, strict=True):
                position = candidate
                if comment and comment.status is Status.HELD and matches(comment, label, reason):
                    held.append(comment)
                    if len(held) == limit:
                        break
        more = bool(self._next_positions(sites, position, 1))
        return QueuePage(self.items(held), encode_cursor(position) if more and position else None)

    def reported(
        self, moderator: Moderator, *, site: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """Comments of the moderator's sites with readers' reports no moderator has settled,
        the most recently reported first (published ones and those held again alike)."""
        rows: list[tuple[float, str, str]] = []
        for name in self.visible_sites(moderator, site):
            rows += [(at, name, i) for at, i in self.reports.reported_page(name, limit)]
        rows = sorted(rows, reverse=True)[:limit]
        found = self.comments.get_many([(name, i) for _, name, i in rows])
        return self.items([c for c in found if c and c.open_reports > 0])

    def approved(
        self,
        moderator: Moderator,
        *,
        site: str | None = None,
        query: str = "",
        limit: int = 20,
        automatic_only: bool = False,
    ) -> list[dict[str, Any]]:
        """Recently approved comments of the moderator's sites, newest first, to overturn:
        those whose text, author name or id, or comment id contains `query` (any case), among
        each site's newest APPROVED_SEARCH_DEPTH."""
        needle = query.strip().casefold()
        # Filtering drops rows, so a filtered list looks further back to fill its page.
        depth = APPROVED_SEARCH_DEPTH if needle or automatic_only else limit
        rows: list[tuple[float, str, str]] = []
        for name in self.visible_sites(moderator, site):
            rows += [(at, name, i) for at, i in self.comments.approved_page(name, depth)]
        rows.sort(reverse=True)
        chosen: list[Comment] = []
        for start in range(0, len(rows), 200):
            chunk = rows[start : start + 200]
            for comment in self.comments.get_many([(name, i) for _, name, i in chunk]):
                if comment is None or comment.status is not Status.APPROVED:
                    continue
                if automatic_only and not _decided_automatically(comment):
                    continue
                if needle and needle not in _searchable(comment):
                    continue
                chosen.append(comment)
                if len(chosen) == limit:
                    return self.items(chosen)
        return self.items(chosen)

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
        comment: Comment | None = None,
    ) -> dict[str, Any]:
        """Approve or reject; 409 with the current record if someone decided it first (or, without
        `overturn`, if it was already approved or rejected). The decision is a label for the
        site's learning: `label` says why a rejection was made (else it is read from the
        reasons the comment was held for, see `labels.kind_of_decision`). `comment`: the
        comment as the caller just read it, to save reading it again (the decide step checks
        its status as it stores the decision either way)."""
        if comment is None:
            comment = self.comment(moderator, site, comment_id)
        else:
            self.visible_sites(moderator, site)  # what `self.comment` checks before reading
        if action is Action.HOLD:
            raise InvalidRequest("A moderator approves or rejects.", {"action": ["hold"]})
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
        if label is None and action is Action.REJECT and comment.open_reports:
            label = label_kind_of_reports(self.reports.of(site, comment_id))
        webhook = self.outbox.announces(comment)  # the comment's own URL, else the site's
        outcome = self.comments.decide(
            site,
            comment_id,
            decision,
            allowed=OVERTURNABLE if overturn else DECIDABLE,
            note=note,
            author_id=comment.submission.author.get("id", ""),
            previous=previous,
            return_comment=True,  # the record as the decision left it, read in its own step
            webhook=webhook,  # into the outbox only if announced
        )
        current = outcome.comment
        if outcome.status is None or current is None:
            raise CommentNotFound(site, comment_id)
        if not outcome.stored:
            raise AlreadyDecided(comment_id, current)
        if webhook:
            self.outbox.queue(site, comment_id)
        kind = kind_of_decision(action, previous, label)
        self.labels.label_comment(current, kind, source=moderator.actor)
        return current.record()

    # --- authors -------------------------------------------------------------------------------

    def author(self, moderator: Moderator, site: str, author_id: str) -> dict[str, Any]:
        """The author's standing, counts, every action on them, and their recent comments."""
        self.visible_sites(moderator, site)
        profile = self.authors.profile(site, author_id)
        ids = self.authors.recent_comment_ids(site, author_id, 20)
        recent = [c for c in self.comments.get_many([(site, i) for i in ids]) if c]
        return {**profile.to_json(), "recent": [glance(c) for c in recent]}

    def act_on_author(
        self,
        moderator: Moderator,
        site: str,
        author_id: str,
        action: AuthorAction,
        note: str = "",
        *,
        reject_held: bool = False,
    ) -> dict[str, Any]:
        """Ban, premoderate, trust or clear the author (their later comments follow it); with
        `reject_held` (a ban), also reject their comments held now, each a moderator decision."""
        self.visible_sites(moderator, site)
        if reject_held and action is not AuthorAction.BAN:
            raise InvalidRequest("Only a ban rejects held comments.", {"reject_held": ["ban only"]})
        self.authors.act(site, author_id, action, moderator.actor, note)
        rejected: list[str] = []
        if reject_held:
            ids = self.authors.recent_comment_ids(site, author_id, 1000)
            held = [c for c in self.comments.get_many([(site, i) for i in ids]) if c]
            for comment in held:
                if comment.status is not Status.HELD:
                    continue
                try:
                    self.decide(
                        moderator,
                        site,
                        comment.id,
                        Action.REJECT,
                        note or "author banned",
                        label=LabelKind.OTHER,  # a ban says who, not what: no model learns it
                        comment=comment,  # read above: not again
                    )
                    rejected.append(comment.id)
                except AlreadyDecided:
                    pass  # decided by someone else meanwhile: fine
        return {**self.author(moderator, site, author_id), "rejected": rejected}

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
            except DomainError as error:
                result = {"id": comment_id, "outcome": error.code, "error": error.message}
                results.append({**result, **error.extra})
        return results
