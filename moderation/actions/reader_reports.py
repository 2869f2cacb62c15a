"""Readers' reports: a published comment that enough readers report goes back to review.

A host site forwards each report (`POST /v1/comments/<id>/reports`). One report per reader
counts; each counted report adds one to the comment's open reports. When the open reports of an
approved comment reach the site policy's `report_threshold`, the comment is held again (an
automatic decision, reason `reported by 3 readers: abuse, spam`) and the host gets the webhook.
A moderator's decision settles the reports so far (the decide script sets the open count back to
zero); the readers who reported stay recorded, and do not count twice. When a moderator rejects
a reported comment, the readers' reasons say which label it becomes (`label_kind_of_reports`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from moderation.core.records import Action, Decision, ReportReason, Status, isoformat, utc_now
from moderation.core.redis_keys import KEYS
from moderation.core.rules import reported_reason
from moderation.storage.comment_store import CommentStore
from moderation.storage.hourly_stats import STATS_TTL_SECONDS, hour_of
from moderation.storage.label_store import LabelKind
from moderation.storage.policy_store import PolicyStore
from moderation.storage.webhook_outbox import Outbox

# Records one reader's report. KEYS: comment, its reports, the site's reported index, the hour's
# dashboard figures. ARGV: reader, report (JSON), time, the figures' lifetime, comment id.
# Returns {-1} when there is no comment, else {1 when counted (0: this reader had reported it),
# open reports, status, when a moderator last settled its reports ("" never), reader, report,
# reader, report, ...}.
_REPORT_SCRIPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {-1} end
local counted = redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
local open = tonumber(redis.call('HGET', KEYS[1], 'reports_open') or '0')
if counted == 1 then
  open = redis.call('HINCRBY', KEYS[1], 'reports_open', 1)
  local erased = redis.call('HEXISTS', KEYS[1], 'erased_at') == 1
  if status ~= 'rejected' and not erased then
    redis.call('ZADD', KEYS[3], ARGV[3], ARGV[5])
  end
  redis.call('HINCRBY', KEYS[4], 'reports', 1)
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
local settled = redis.call('HGET', KEYS[1], 'reports_settled_at') or ''
local result = {counted, open, status, settled}
for _, value in ipairs(redis.call('HGETALL', KEYS[2])) do table.insert(result, value) end
return result
"""

#: A rejected comment's label, by the reason most of its open reports gave.
_LABEL_OF_REASON = {
    ReportReason.SPAM: LabelKind.SPAM,
    ReportReason.ABUSE: LabelKind.TOXIC,
    ReportReason.OFF_TOPIC: LabelKind.OTHER,
    ReportReason.OTHER: LabelKind.OTHER,
}


@dataclass(frozen=True)
class Report:
    reporter: str
    reason: ReportReason
    note: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "reporter": self.reporter,
            "reason": self.reason.value,
            "note": self.note,
            "at": isoformat(self.at),
        }


@dataclass(frozen=True)
class ReportTally:
    """A comment's reports after one more arrived."""

    counted: bool  # False: this reader had reported it already
    status: Status
    open: list[Report]  # since a moderator last decided it, oldest first

    def reasons(self) -> list[str]:
        """The open reports' reasons, the most given first."""
        counts = Counter(report.reason.value for report in self.open)
        return [reason for reason, _ in sorted(counts.items(), key=lambda c: (-c[1], c[0]))]


def label_kind_of_reports(reports: list[Report]) -> LabelKind | None:
    """The label the reports' most given reason stands for (None without reports)."""
    counts = Counter(_LABEL_OF_REASON[report.reason] for report in reports)
    ranked = sorted(counts.items(), key=lambda count: (-count[1], count[0].value))
    return ranked[0][0] if ranked else None


def _reports(stored: dict[bytes, bytes]) -> list[Report]:
    """A comment's stored reports (reader -> JSON), oldest first."""
    reports = []
    for reporter, raw in stored.items():
        data = json.loads(raw)
        reason = ReportReason(data["reason"])
        reports.append(Report(reporter.decode(), reason, data["note"], float(data["at"])))
    return sorted(reports, key=lambda report: report.at)


def _open_reports(stored: dict[bytes, bytes], settled_at: float | None) -> list[Report]:
    """Those made after a moderator last decided the comment (`settled_at`; None: never)."""
    return [r for r in _reports(stored) if settled_at is None or r.at > settled_at]


def _tally(result: list[Any]) -> ReportTally:
    counted, _, status, settled_raw, *pairs = result
    settled_at = float(settled_raw) if settled_raw else None
    stored = dict(zip(pairs[::2], pairs[1::2], strict=True))
    return ReportTally(
        counted=int(counted) == 1,
        status=Status(status.decode()),
        open=_open_reports(stored, settled_at),
    )


class ReportStore:
    """Stores readers' reports and reads them back."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection
        self._report = connection.register_script(_REPORT_SCRIPT)

    def add(self, site: str, comment_id: str, report: Report) -> ReportTally | None:
        """Record `report` (once per reader); None when there is no such comment."""
        body = {"reason": report.reason.value, "note": report.note, "at": report.at}
        result = self._report(
            keys=[
                KEYS.comment(site, comment_id),
                KEYS.reports(site, comment_id),
                KEYS.reported(site),
                KEYS.hourly_stats(site, hour_of(report.at)),
            ],
            args=[
                report.reporter,
                json.dumps(body),
                repr(report.at),
                STATS_TTL_SECONDS,
                comment_id,
            ],
        )
        return None if int(result[0]) == -1 else _tally(result)

    def of(self, site: str, comment_id: str) -> list[Report]:
        """The comment's open reports (since a moderator last decided it), oldest first."""
        return self.open_many([(site, comment_id, 1)])[0]

    def open_many(self, comments: Sequence[tuple[str, str, int]]) -> list[list[Report]]:
        """The open reports of each (site, id, open count), in one round trip (none are read
        for a comment whose open count is 0)."""
        asked = [(site, i) for site, i, open_count in comments if open_count]
        with self.redis.pipeline(transaction=False) as pipe:
            for site, comment_id in asked:
                pipe.hget(KEYS.comment(site, comment_id), "reports_settled_at")
                pipe.hgetall(KEYS.reports(site, comment_id))
            replies = iter(pipe.execute())
        found: dict[tuple[str, str], list[Report]] = {}
        for key in asked:
            settled_raw, stored = next(replies), next(replies)
            settled = float(settled_raw) if settled_raw else None
            found[key] = _open_reports(stored, settled)
        return [found.get((site, i), []) for site, i, _ in comments]

    def reported_page(self, site: str, count: int) -> list[tuple[float, str]]:
        """(time of the latest report, id) of the site's comments with reports no moderator
        has settled, the most recently reported first."""
        rows = cast(
            list[tuple[bytes, float]],
            self.redis.zrevrange(KEYS.reported(site), 0, count - 1, withscores=True),
        )
        return [(score, row.decode()) for row, score in rows]

    def reported_count(self, site: str) -> int:
        return cast(int, self.redis.zcard(KEYS.reported(site)))


class ReaderReports:
    """Takes a reader's report and, at the policy's threshold, holds the comment again."""

    def __init__(
        self, comments: CommentStore, reports: ReportStore, policies: PolicyStore, outbox: Outbox
    ) -> None:
        self.comments = comments
        self.reports = reports
        self.policies = policies
        self.outbox = outbox

    def report(
        self, site: str, comment_id: str, reporter: str, reason: ReportReason, note: str = ""
    ) -> dict[str, Any] | None:
        """Record the report; the outcome as the API answers it (None: no such comment)."""
        tally = self.reports.add(site, comment_id, Report(reporter, reason, note, utc_now()))
        if tally is None:
            return None
        threshold = self.policies.get(site).report_threshold
        status = tally.status
        reached = tally.counted and threshold and len(tally.open) >= threshold
        if reached and status is Status.APPROVED and self._hold_again(site, comment_id, tally):
            status = Status.HELD
        self.comments.confirm()
        return {
            "comment": comment_id,
            "reporter": reporter,
            "counted": tally.counted,
            "open_reports": len(tally.open),
            "threshold": threshold,
            "status": status.value,
        }

    def _hold_again(self, site: str, comment_id: str, tally: ReportTally) -> bool:
        """Hold a published comment for its reports (unless something else decided it first);
        its host hears of it by webhook."""
        comment = self.comments.get(site, comment_id)
        if comment is None or comment.decision is None:
            return False
        previous = comment.decision
        decision = Decision(
            action=Action.HOLD,
            reasons=[reported_reason(len(tally.open), tally.reasons())],
            scores=previous.scores,
            models=previous.models,
            decided_by="auto",
            decided_at=utc_now(),
            policy_version=previous.policy_version,
            language=previous.language,
        )
        webhook = self.outbox.announces(comment)
        outcome = self.comments.decide(
            site,
            comment_id,
            decision,
            allowed=(Status.APPROVED,),
            note=f"{len(tally.open)} readers reported it",
            author_id=comment.submission.author.get("id", ""),
            previous=previous,
            webhook=webhook,  # into the outbox only if announced
        )
        if outcome.stored and webhook:
            self.outbox.queue(site, comment_id)
        return outcome.stored
