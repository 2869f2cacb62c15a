"""Comments, decisions and audit events in Redis, each change one atomic step.

Key names live in `moderation.core.redis_keys`; the Lua scripts below keep a comment's record, its
indexes and its audit trail consistent. The spam counters are in `spam_counters`, the models
each worker loaded in `worker_models`, labels in `label_store`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.client import Pipeline

from moderation.core.records import (
    Comment,
    Decision,
    Status,
    Submission,
    utc_now,
)
from moderation.core.redis_keys import KEYS
from moderation.storage.durability import Durability
from moderation.storage.hourly_stats import STATS_TTL_SECONDS, decision_tallies, hour_of
from moderation.storage.label_store import FORGET_LABEL_LUA

log = logging.getLogger(__name__)

#: Enqueues the scoring job for (site, comment id) on the given transaction; returns its id.
Enqueue = Callable[[Pipeline, str, str], str]
#: What redis-py returns (typed loosely, as sync or async) for a sorted set read with its
#: scores, and for a stream read, on a client that does not decode.
ScoredMembers = list[tuple[bytes, float]]
StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]

#: Entries a site's event stream keeps (about: XADD MAXLEN ~). The one number, for the Python
#: writes and, through the line below that starts each script writing to it, for the Lua ones.
SITE_EVENTS_MAXLEN = 100_000
_EVENTS_MAXLEN_LUA = f"local EVENTS_MAXLEN = '{SITE_EVENTS_MAXLEN}'\n"

# Stores a decision only when the comment is in an allowed state, in one step: the record, the
# pending and held indexes, the author's counts, the audit trail and a wake-up for waiters.
# KEYS: comment, pending index, site's held index, comment's audit list, site's event stream,
# author's counts, retention index, webhook outbox, metric counters, the hour's dashboard
# figures, site's reported index, site's approved index. ARGV: allowed statuses
# (comma-separated), new status, decision json, pending member, channel, comment id, actor,
# action, note, time, "1" when there is an author, "1" when approved comments are indexed for
# retention, the phrases of the text that drove the scores (JSON, "" for none: kept as they are),
# the dashboard fields to count (JSON list), the span scores (JSON, "" for none), the figures'
# lifetime (seconds), how many approved comments the approved index keeps, "1" to return the
# comment's record as the step leaves it, "1" when the decision is to be announced by webhook
# (only then does it go into the webhook outbox: see webhook_outbox).
# A comment submitted with "store": false loses its text as soon as it is decided, and is not
# offered to moderators (there is nothing left to read). A moderator's decision settles the
# readers' reports so far (later reports count from zero).
# Returns {1, previous status} when stored, {0, current status} when not allowed, {-1} if gone;
# with ARGV[18] "1", the record (HGETALL) as a third element when there is one.
_DECIDE_SCRIPT = (
    _EVENTS_MAXLEN_LUA
    + """
-- the fields of the record this step reads, read once
local record = redis.call('HMGET', KEYS[1], 'status', 'keep_text', 'submitted_at', 'reports_open')
local status = record[1]
if not status then return {-1, ''} end
local function answer(code)
  if ARGV[18] == '1' then return {code, status, redis.call('HGETALL', KEYS[1])} end
  return {code, status}
end
local allowed = false
for candidate in string.gmatch(ARGV[1], '[^,]+') do
  if candidate == status then allowed = true end
end
if not allowed then return answer(0) end
local keep_text = record[2] ~= '0'
local function queue_state()
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  return redis.call('ZCARD', KEYS[3]), oldest[2] or ''
end
-- the held queue changes only when a comment enters or leaves it
local queue_changes = status == 'held' or (ARGV[2] == 'held' and keep_text)
local size_before, oldest_before
if queue_changes then size_before, oldest_before = queue_state() end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'decision', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[4])
if ARGV[2] == 'held' and keep_text then
  redis.call('ZADD', KEYS[3], record[3], ARGV[6])
else
  redis.call('ZREM', KEYS[3], ARGV[6])
end
local event = cjson.encode({at = tonumber(ARGV[10]), actor = ARGV[7], action = ARGV[8],
                            from = status, to = ARGV[2], note = ARGV[9]})
redis.call('RPUSH', KEYS[4], event)
redis.call('XADD', KEYS[5], 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'comment', ARGV[6], 'event', event)
if ARGV[11] == '1' then
  if status ~= 'pending' then redis.call('HINCRBY', KEYS[6], status, -1) end
  redis.call('HINCRBY', KEYS[6], ARGV[2], 1)
end
if not keep_text then
  redis.call('HSET', KEYS[1], 'content', '', 'author', '{}', 'context', '{}', 'honeypot', '',
             'erased_at', ARGV[10])
  redis.call('HDEL', KEYS[1], 'highlights', 'spans')
else
  if ARGV[13] ~= '' then redis.call('HSET', KEYS[1], 'highlights', ARGV[13]) end
  if ARGV[15] ~= '' then redis.call('HSET', KEYS[1], 'spans', ARGV[15]) end
  if ARGV[12] == '1' and ARGV[2] == 'approved' then
    redis.call('ZADD', KEYS[7], ARGV[10], ARGV[4])
  else
    redis.call('ZREM', KEYS[7], ARGV[4])
  end
end
if ARGV[2] == 'approved' and keep_text then
  redis.call('ZADD', KEYS[12], ARGV[10], ARGV[6])
  redis.call('ZREMRANGEBYRANK', KEYS[12], 0, -1 - tonumber(ARGV[17]))
else
  redis.call('ZREM', KEYS[12], ARGV[6])
end
if ARGV[19] == '1' then redis.call('ZADD', KEYS[8], ARGV[10], ARGV[4]) end
local decider = ARGV[7]
if string.sub(decider, 1, 10) == 'moderator:' then
  decider = 'moderator'
  if record[4] then
    redis.call('HSET', KEYS[1], 'reports_open', 0, 'reports_settled_at', ARGV[10])
  end
  redis.call('ZREM', KEYS[11], ARGV[6])
end
redis.call('HINCRBY', KEYS[9], 'decisions|' .. ARGV[8] .. '|' .. decider, 1)
for _, field in ipairs(cjson.decode(ARGV[14])) do
  redis.call('HINCRBY', KEYS[10], field, 1)
end
if queue_changes then
  local size_after, oldest_after = queue_state()
  redis.call('HSETNX', KEYS[10], 'queue_start', size_before)
  redis.call('HSETNX', KEYS[10], 'oldest_start', oldest_before)
  redis.call('HSET', KEYS[10], 'queue', size_after, 'oldest', oldest_after)
end
redis.call('EXPIRE', KEYS[10], ARGV[16])
redis.call('PUBLISH', ARGV[5], ARGV[2])
return answer(1)
"""
)

# Erases a comment's text and personal fields, keeping its status, decision and audit trail.
# Its label goes too (and the label counts and version say so, for the next training).
# KEYS: comment, pending index, site's held index, audit list, site's event stream, site's
# labels stream, retention index, site's label stats, site's approved and reported indexes, the
# comment's readers' reports (who reported it is personal data too). ARGV: comment id, pending
# member, actor, time.
_ERASE_SCRIPT = (
    FORGET_LABEL_LUA
    + _EVENTS_MAXLEN_LUA
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
local label = redis.call('HGET', KEYS[1], 'example_id')
if label and forget_label(KEYS[6], KEYS[8], label) then
  redis.call('HINCRBY', KEYS[8], 'version', 1)
end
redis.call('HDEL', KEYS[1], 'example_id', 'highlights', 'spans')
redis.call('HSET', KEYS[1], 'content', '', 'author', '{}', 'context', '{}', 'honeypot', '',
           'erased_at', ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[7], ARGV[2])
redis.call('ZREM', KEYS[9], ARGV[1])
redis.call('ZREM', KEYS[10], ARGV[1])
redis.call('DEL', KEYS[11])
local event = cjson.encode({at = tonumber(ARGV[4]), actor = ARGV[3], action = 'erase',
                            from = status, to = status, note = ''})
redis.call('RPUSH', KEYS[4], event)
redis.call('XADD', KEYS[5], 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'comment', ARGV[1], 'event', event)
return 1
"""
)


#: Approved comments a site's approved index keeps (newest first): what moderators search
#: for a decision to overturn.
APPROVED_INDEX_SIZE = 10_000
#: Comment ids an author's index keeps (newest first): their recent comments on a card.
AUTHOR_INDEX_SIZE = 200

#: The one reason of the hold a comment gets when every scoring attempt failed.
SCORING_FAILED = "scoring failed"


class ConflictError(Exception):
    """The comment id is taken on this site by a comment with different content."""

    def __init__(self, existing: Comment) -> None:
        super().__init__(f"comment {existing.id!r} exists with different content")
        self.existing = existing


@dataclass(frozen=True)
class DecideOutcome:
    """Whether a decision was stored, and the comment's status before it (None: no comment);
    when asked for, the comment as that step left it (stored or not)."""

    stored: bool
    status: Status | None
    comment: Comment | None = None


@dataclass(frozen=True)
class DecideRequest:
    """One decision to store (see `CommentStore.decide`)."""

    site: str
    comment_id: str
    decision: Decision
    author_id: str
    allowed: tuple[Status, ...] = (Status.PENDING,)
    note: str = ""
    highlights: Mapping[str, list[str]] | None = None
    #: toxicity label -> [begin, end, score] of the text's sentences (see Comment.spans)
    spans: Mapping[str, list[list[float]]] | None = None
    #: the decision it replaces, if any: the dashboard counts a moderator overturning the
    #: service's (see hourly_stats.decision_tallies)
    previous: Decision | None = None
    #: also read the comment's record as the step leaves it, in that step (DecideOutcome.comment)
    return_comment: bool = False
    #: whether the decision is to be announced by webhook (`Outbox.announces`): only then does
    #: the step put it in the webhook outbox, which the caller empties with `Outbox.queue`
    #: (or, if it dies first, `Outbox.sweep`). True when the caller does not know: the sweep
    #: then looks.
    webhook: bool = True


def _decide_outcome(site: str, result: list[Any]) -> DecideOutcome:
    code, status = int(result[0]), result[1].decode() if len(result) > 1 else ""
    if code == -1:
        return DecideOutcome(stored=False, status=None)
    comment = None
    if len(result) > 2:
        flat = result[2]
        comment = _comment_from_hash(site, dict(zip(flat[::2], flat[1::2], strict=True)))
    return DecideOutcome(stored=code == 1, status=Status(status), comment=comment)


@dataclass(frozen=True)
class Accepted:
    comment: Comment
    created: bool


def content_hash(submission: Submission) -> str:
    """Identifies a submission's content, to tell a retry from a different comment."""
    return hashlib.sha256(submission.content.encode()).hexdigest()


def pending_member(site: str, comment_id: str) -> str:
    return f"{site}\n{comment_id}"


class CommentStore:
    """Reads and writes comments; every write that matters is one atomic Redis step."""

    def __init__(
        self,
        connection: redis.Redis,
        *,
        track_retention: bool = False,
        durability: Durability | None = None,
    ) -> None:
        self.redis = connection
        self.track_retention = track_retention
        self.durability = durability or Durability()
        self._decide = connection.register_script(_DECIDE_SCRIPT)
        self._erase = connection.register_script(_ERASE_SCRIPT)

    # --- accepting --------------------------------------------------------------------------

    def accept(
        self,
        site: str,
        submission: Submission,
        enqueue: Enqueue,
        *,
        keep_text: bool = True,
        is_check: bool = False,
        confirm: bool = True,
    ) -> Accepted:
        """Store a new comment and its scoring job in one transaction, or return the existing one.

        With `keep_text` false the text and personal fields are erased when it is decided; a
        check (`is_check`) is announced to no webhook. Raises ConflictError when the id exists
        with other content. Returns once the comment keeps the durability promise, new or found
        (NotDurable if Redis does not confirm it); `confirm=False` leaves that to the caller's
        own `confirm()` after a batch.
        """
        accepted = self._store_new(site, submission, enqueue, keep_text, is_check)
        if confirm:
            self.confirm()
        return accepted

    def confirm(self) -> None:
        """Return once every write so far keeps the durability promise (see durability.py)."""
        self.durability.confirm(self.redis)

    def _store_new(
        self,
        site: str,
        submission: Submission,
        enqueue: Enqueue,
        keep_text: bool,
        is_check: bool,
    ) -> Accepted:
        key = KEYS.comment(site, submission.id)
        digest = content_hash(submission)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    existing = cast(dict[bytes, bytes], pipe.hgetall(key))
                    if existing:
                        pipe.unwatch()
                        comment = _comment_from_hash(site, existing)
                        if comment.content_hash != digest:
                            raise ConflictError(comment)
                        return Accepted(comment, created=False)
                    now = utc_now()
                    pipe.multi()
                    fields = _new_comment_hash(submission, digest, now, keep_text, is_check)
                    pipe.hset(key, mapping=fields)
                    pipe.zadd(KEYS.pending, {pending_member(site, submission.id): now})
                    event = _event(now, f"site:{site}", "submit", None, Status.PENDING, "")
                    pipe.rpush(KEYS.audit(site, submission.id), event)
                    pipe.xadd(
                        KEYS.site_events(site),
                        {"comment": submission.id, "event": event},
                        maxlen=SITE_EVENTS_MAXLEN,
                        approximate=True,
                    )
                    job_id = enqueue(pipe, site, submission.id)
                    pipe.hset(key, "job_id", job_id)
                    pipe.hincrby(KEYS.metric_counters, "accepted", 1)
                    _count_submitted(pipe, site, now)
                    author_id = submission.author.get("id", "")
                    if author_id and not is_check:
                        _index_by_author(pipe, site, author_id, submission.id, now)
                    pipe.execute()
                except redis.WatchError:
                    continue  # the same id arrived concurrently: look again
                comment = Comment(
                    site=site,
                    submission=submission,
                    content_hash=digest,
                    submitted_at=now,
                    status=Status.PENDING,
                    is_check=is_check,
                )
                return Accepted(comment, created=True)

    # --- reading ----------------------------------------------------------------------------

    def get(self, site: str, comment_id: str) -> Comment | None:
        data = cast(dict[bytes, bytes], self.redis.hgetall(KEYS.comment(site, comment_id)))
        return _comment_from_hash(site, data) if data else None

    def get_many(self, keys: Sequence[tuple[str, str]]) -> list[Comment | None]:
        """The comments of (site, id) `keys`, in one round trip (None for those missing)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for site, comment_id in keys:
                pipe.hgetall(KEYS.comment(site, comment_id))
            found = pipe.execute()
        return [
            _comment_from_hash(site, data) if data else None
            for (site, _), data in zip(keys, found, strict=True)
        ]

    def wait_for_decision(self, site: str, comment_id: str, timeout: float) -> Comment | None:
        """The comment once it is decided, or as it is after `timeout` seconds.

        Subscribes to the comment's channel before reading it, so a decision stored between the
        read and the wait still wakes it; blocks on the subscription, never polls.
        """
        deadline = time.monotonic() + timeout
        with self.redis.pubsub(ignore_subscribe_messages=True) as subscription:
            subscription.subscribe(KEYS.decided_channel(site, comment_id))
            comment = self.get(site, comment_id)
            while comment is not None and comment.status is Status.PENDING:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if subscription.get_message(timeout=remaining) is not None:
                    comment = self.get(site, comment_id)
            return comment

    def pending_before(self, cutoff: float, limit: int = 200) -> list[tuple[str, str]]:
        """(site, id) of comments still pending that arrived before `cutoff`, oldest first."""
        members = cast(
            list[bytes],
            self.redis.zrangebyscore(KEYS.pending, "-inf", cutoff, start=0, num=limit),
        )
        return [tuple(member.decode().split("\n", 1)) for member in members]  # type: ignore[misc]

    def sample_texts(self, limit: int, *, scans: int = 10) -> list[str]:
        """The texts of up to `limit` stored comments, whichever `scans` SCAN calls find
        first (erased ones and those stored without text are skipped). For measurements that
        want real comments, such as a worker choosing its engine; never logged."""
        keys: list[bytes] = []
        cursor = 0
        for _ in range(scans):
            cursor, found = cast(
                tuple[int, list[bytes]],
                self.redis.scan(cursor, match=KEYS.comment("*", "*"), count=1000),
            )
            keys += found
            if cursor == 0 or len(keys) >= 4 * limit:
                break
        with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hget(key, "content")  # type: ignore[arg-type]  # redis-py: str only; bytes work
            contents = pipe.execute()
        texts = list(dict.fromkeys(raw.decode() for raw in contents if raw))
        return texts[:limit]

    def job_id(self, site: str, comment_id: str) -> str | None:
        raw = cast(bytes | None, self.redis.hget(KEYS.comment(site, comment_id), "job_id"))
        return raw.decode() if raw else None

    def requeue(self, site: str, comment_id: str, enqueue: Enqueue) -> str | None:
        """A new scoring job for a comment that is still pending (None if it no longer is)."""
        key = KEYS.comment(site, comment_id)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                if pipe.hget(key, "status") != Status.PENDING.value.encode():
                    pipe.unwatch()
                    return None
                pipe.multi()
                job_id = enqueue(pipe, site, comment_id)
                pipe.hset(key, "job_id", job_id)
                pipe.execute()
                return job_id
            except redis.WatchError:
                return None  # it changed meanwhile: decided, most likely

    def reopen_unscored(self, site: str, comment_id: str, actor: str) -> bool:
        """Put a comment held because scoring failed back to pending (for a new attempt)."""
        key = KEYS.comment(site, comment_id)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                comment = self.get(site, comment_id)
                failed = comment is not None and comment.status is Status.HELD
                if not failed or comment is None or comment.decision is None:
                    pipe.unwatch()
                    return False
                if comment.decision.reasons != [SCORING_FAILED]:
                    pipe.unwatch()
                    return False
                event = _event(utc_now(), actor, "requeue", Status.HELD, Status.PENDING, "")
                pipe.multi()
                pipe.hset(key, "status", Status.PENDING.value)
                pipe.hdel(key, "decision")
                pipe.zadd(KEYS.pending, {pending_member(site, comment_id): utc_now()})
                pipe.zrem(KEYS.held(site), comment_id)
                pipe.rpush(KEYS.audit(site, comment_id), event)
                pipe.execute()
            except redis.WatchError:
                return False
        self.confirm()
        return True

    def pending_count(self) -> int:
        return cast(int, self.redis.zcard(KEYS.pending))

    def oldest_pending_age(self) -> float | None:
        """Seconds since the oldest undecided comment arrived, or None when there is none."""
        oldest = cast(ScoredMembers, self.redis.zrange(KEYS.pending, 0, 0, withscores=True))
        return max(0.0, utc_now() - oldest[0][1]) if oldest else None

    # --- deciding ---------------------------------------------------------------------------

    def decide(
        self,
        site: str,
        comment_id: str,
        decision: Decision,
        *,
        allowed: tuple[Status, ...] = (Status.PENDING,),
        note: str = "",
        author_id: str | None = None,
        highlights: Mapping[str, list[str]] | None = None,
        spans: Mapping[str, list[list[float]]] | None = None,
        previous: Decision | None = None,
        return_comment: bool = False,
        webhook: bool = True,
    ) -> DecideOutcome:
        """Store `decision` if the comment's status is one of `allowed`, with its audit event.

        `author_id` (the comment's author, for their counts) is read from Redis when not given.
        `highlights` (label -> phrases of the text that drove its score) are kept beside the
        decision, and erased with the text; without them, those already kept stay; so are
        `spans`. `previous`: the decision this one replaces (for the dashboard's figures).
        With `return_comment`, the outcome also carries the comment as this step left it (read
        in the same atomic step, instead of a read after it). `webhook`: whether the decision
        is to be announced by webhook (see DecideRequest.webhook).
        """
        if author_id is None:
            comment = self.get(site, comment_id)
            author_id = comment.submission.author.get("id", "") if comment else ""
        request = DecideRequest(
            site,
            comment_id,
            decision,
            author_id,
            allowed,
            note,
            highlights,
            spans,
            previous,
            return_comment,
            webhook,
        )
        result = self._decide(*self._decide_arguments(request))
        self.confirm()  # also when it was decided already: confirms that earlier decision
        return _decide_outcome(site, result)

    def decide_many(self, requests: Sequence[DecideRequest]) -> list[DecideOutcome]:
        """`decide` for several comments in one round trip (each decision atomic on its own,
        as with `decide`), then one wait for the durability promise."""
        with self.redis.pipeline(transaction=False) as pipe:
            for request in requests:
                keys, args = self._decide_arguments(request)
                self._decide(keys=keys, args=args, client=pipe)
            results = pipe.execute()
        self.confirm()
        return [
            _decide_outcome(request.site, result)
            for request, result in zip(requests, results, strict=True)
        ]

    def _decide_arguments(self, request: DecideRequest) -> tuple[list[str], list[str]]:
        """The decide script's keys and arguments for `request`."""
        site, comment_id, decision = request.site, request.comment_id, request.decision
        keys = [
            KEYS.comment(site, comment_id),
            KEYS.pending,
            KEYS.held(site),
            KEYS.audit(site, comment_id),
            KEYS.site_events(site),
            KEYS.author_counts(site, request.author_id),
            KEYS.retention,
            KEYS.outbox,
            KEYS.metric_counters,
            KEYS.hourly_stats(site, hour_of(decision.decided_at)),
            KEYS.reported(site),
            KEYS.approved(site),
        ]
        args = [
            ",".join(status.value for status in request.allowed),
            decision.action.status.value,
            json.dumps(decision.to_storage()),
            pending_member(site, comment_id),
            KEYS.decided_channel(site, comment_id),
            comment_id,
            decision.decided_by,
            decision.action.value,
            request.note,
            repr(decision.decided_at),
            "1" if request.author_id else "0",
            "1" if self.track_retention else "0",
            json.dumps(dict(request.highlights)) if request.highlights else "",
            json.dumps(decision_tallies(decision, request.previous)),
            json.dumps(dict(request.spans)) if request.spans else "",
            str(STATS_TTL_SECONDS),
            str(APPROVED_INDEX_SIZE),
            "1" if request.return_comment else "0",
            "1" if request.webhook else "0",
        ]
        return keys, args

    # --- reading the review side ------------------------------------------------------------

    def held_page(self, site: str, min_score: float | None, count: int) -> list[tuple[float, str]]:
        """Held (submitted_at, id) pairs of a site from `min_score` on, oldest first; a few more
        than `count`, so callers can skip ties they have already seen."""
        rows = self.redis.zrangebyscore(
            KEYS.held(site),
            "-inf" if min_score is None else min_score,
            "+inf",
            start=0,
            num=count + 64,
            withscores=True,
        )
        return [(score, member.decode()) for member, score in cast(ScoredMembers, rows)]

    def approved_page(self, site: str, count: int) -> list[tuple[float, str]]:
        """(decision time, id) of the site's newest `count` approved comments, newest first."""
        rows = self.redis.zrevrange(KEYS.approved(site), 0, count - 1, withscores=True)
        return [(score, member.decode()) for member, score in cast(ScoredMembers, rows)]

    def held_count(self, site: str) -> int:
        return cast(int, self.redis.zcard(KEYS.held(site)))

    def audit(self, site: str, comment_id: str) -> list[dict[str, Any]]:
        """The comment's audit events, oldest first."""
        events = cast(list[bytes], self.redis.lrange(KEYS.audit(site, comment_id), 0, -1))
        return [json.loads(raw) for raw in events]

    def latest_event_id(self, site: str) -> str:
        """The id of the site's newest audit event ("0-0" when there is none)."""
        newest = cast(StreamEntries, self.redis.xrevrange(KEYS.site_events(site), count=1))
        return newest[0][0].decode() if newest else "0-0"

    # --- erasing ----------------------------------------------------------------------------

    def forget(self, site: str, comment_id: str) -> None:
        """Remove every trace of a decided one-off check kept under its id: the record, its
        audit trail and delivery log (the site's event stream keeps the bare events)."""
        member = pending_member(site, comment_id)
        with self.redis.pipeline() as pipe:
            pipe.delete(
                KEYS.comment(site, comment_id),
                KEYS.audit(site, comment_id),
                KEYS.deliveries(site, comment_id),
            )
            pipe.zrem(KEYS.pending, member)
            pipe.zrem(KEYS.held(site), comment_id)
            pipe.zrem(KEYS.outbox, member)
            pipe.zrem(KEYS.retention, member)
            pipe.zrem(KEYS.approved(site), comment_id)
            pipe.execute()

    def erase(self, site: str, comment_id: str, actor: str) -> bool:
        """Drop the comment's text and personal fields (and its label); the status,
        decision and audit trail stay, with an "erase" event. False if there is no comment."""
        result = self._erase(
            keys=[
                KEYS.comment(site, comment_id),
                KEYS.pending,
                KEYS.held(site),
                KEYS.audit(site, comment_id),
                KEYS.site_events(site),
                KEYS.labels(site),
                KEYS.retention,
                KEYS.label_stats(site),
                KEYS.approved(site),
                KEYS.reported(site),
                KEYS.reports(site, comment_id),
            ],
            args=[comment_id, pending_member(site, comment_id), actor, repr(utc_now())],
        )
        self.confirm()
        return int(result) == 1

    def erase_approved_before(self, cutoff: float, limit: int = 500) -> int:
        """Erase approved comments decided before `cutoff` (retention); returns how many."""
        members = cast(
            list[bytes],
            self.redis.zrangebyscore(KEYS.retention, "-inf", cutoff, start=0, num=limit),
        )
        for member in members:
            site, _, comment_id = member.decode().partition("\n")
            self.erase(site, comment_id, actor="retention")
        return len(members)


def _count_submitted(pipe: Pipeline, site: str, now: float) -> None:
    """Count an accepted comment in the hour's dashboard figures."""
    key = KEYS.hourly_stats(site, hour_of(now))
    pipe.hincrby(key, "submitted", 1)
    pipe.expire(key, STATS_TTL_SECONDS)


def _index_by_author(
    pipe: Pipeline, site: str, author_id: str, comment_id: str, now: float
) -> None:
    """Keep the comment among its author's newest (their recent comments, their held ones)."""
    key = KEYS.author_comments(site, author_id)
    pipe.zadd(key, {comment_id: now})
    pipe.zremrangebyrank(key, 0, -1 - AUTHOR_INDEX_SIZE)


def _event(
    at: float, actor: str, action: str, before: Status | None, after: Status, note: str
) -> str:
    """One audit event as stored (the Lua script builds the same shape for decisions)."""
    return json.dumps(
        {
            "at": at,
            "actor": actor,
            "action": action,
            "from": before.value if before else None,
            "to": after.value,
            "note": note,
        }
    )


def _new_comment_hash(
    submission: Submission, digest: str, now: float, keep_text: bool, is_check: bool = False
) -> dict[str, str]:
    return {
        "keep_text": "1" if keep_text else "0",
        "is_check": "1" if is_check else "0",
        "id": submission.id,
        "content": submission.content,
        "content_hash": digest,
        "author": json.dumps(submission.author),
        "context": json.dumps(submission.context),
        "honeypot": submission.honeypot,
        "callback_url": submission.callback_url or "",
        "submitted_at": repr(now),
        "status": Status.PENDING.value,
    }


def _comment_from_hash(site: str, data: dict[bytes, bytes]) -> Comment:
    fields = {k.decode(): v.decode() for k, v in data.items()}
    submission = Submission(
        id=fields["id"],
        content=fields.get("content", ""),
        author=json.loads(fields.get("author", "{}")),
        context=json.loads(fields.get("context", "{}")),
        honeypot=fields.get("honeypot", ""),
        callback_url=fields.get("callback_url") or None,
    )
    decision = fields.get("decision")
    return Comment(
        site=site,
        submission=submission,
        content_hash=fields["content_hash"],
        submitted_at=float(fields["submitted_at"]),
        status=Status(fields["status"]),
        decision=Decision.from_storage(json.loads(decision)) if decision else None,
        erased_at=float(fields["erased_at"]) if "erased_at" in fields else None,
        is_check=fields.get("is_check") == "1",
        highlights=json.loads(fields.get("highlights") or "{}"),
        spans=json.loads(fields.get("spans") or "{}"),
        open_reports=int(fields.get("reports_open") or 0),
    )
