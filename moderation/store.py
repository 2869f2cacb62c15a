"""Comments, decisions and activity counters in Redis. The only module that knows key names.

Layout (every key under the `mod:` prefix):

    mod:comment:{site}:{id}        hash    the comment, its status and decision
    mod:pending                    zset    "{site}\\n{id}" by submission time: not yet decided
    mod:decided:{site}:{id}        channel published once when a decision is stored
    mod:recent:{kind}:{site}:{v}   zset    comment ids by submission time, for spam counters
    mod:worker-models              hash    worker name -> the models it scores with

Sites live in `moderation.sites`, which shares `Keyspace` with this module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.client import Pipeline

from moderation.records import (
    ActivityCounts,
    Comment,
    Decision,
    Status,
    Submission,
    utc_now,
)

log = logging.getLogger(__name__)

#: Enqueues the scoring job for (site, comment id) on the given transaction; returns its id.
Enqueue = Callable[[Pipeline, str, str], str]

# Stores a decision only when the comment is still in the expected state, in one step, and
# tells anyone waiting. KEYS: comment, pending index. ARGV: expected status, new status,
# decision json, pending member, channel.
_DECIDE_SCRIPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'decision', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[2])
return 1
"""


class Keyspace:
    """Key names; nothing outside the storage modules builds one."""

    prefix = "mod"

    def comment(self, site: str, comment_id: str) -> str:
        return f"{self.prefix}:comment:{site}:{comment_id}"

    @property
    def pending(self) -> str:
        return f"{self.prefix}:pending"

    def decided_channel(self, site: str, comment_id: str) -> str:
        return f"{self.prefix}:decided:{site}:{comment_id}"

    def recent(self, kind: str, site: str, value: str) -> str:
        return f"{self.prefix}:recent:{kind}:{site}:{value}"

    def site(self, name: str) -> str:
        return f"{self.prefix}:site:{name}"

    @property
    def sites(self) -> str:
        return f"{self.prefix}:sites"

    def api_key(self, key_digest: str) -> str:
        return f"{self.prefix}:apikey:{key_digest}"

    @property
    def worker_models(self) -> str:
        return f"{self.prefix}:worker-models"


KEYS = Keyspace()


class ConflictError(Exception):
    """The comment id is taken on this site by a comment with different content."""

    def __init__(self, existing: Comment) -> None:
        super().__init__(f"comment {existing.id!r} exists with different content")
        self.existing = existing


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

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection
        self._decide = connection.register_script(_DECIDE_SCRIPT)

    # --- accepting --------------------------------------------------------------------------

    def accept(self, site: str, submission: Submission, enqueue: Enqueue) -> Accepted:
        """Store a new comment and its scoring job in one transaction, or return the existing one.

        Raises ConflictError when the id exists with other content.
        """
        key = KEYS.comment(site, submission.id)
        digest = content_hash(submission)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    existing = pipe.hgetall(key)
                    if existing:
                        pipe.unwatch()
                        comment = _comment_from_hash(site, existing)
                        if comment.content_hash != digest:
                            raise ConflictError(comment)
                        return Accepted(comment, created=False)
                    now = utc_now()
                    pipe.multi()
                    pipe.hset(key, mapping=_new_comment_hash(submission, digest, now))
                    pipe.zadd(KEYS.pending, {pending_member(site, submission.id): now})
                    job_id = enqueue(pipe, site, submission.id)
                    pipe.hset(key, "job_id", job_id)
                    pipe.execute()
                except redis.WatchError:
                    continue  # the same id arrived concurrently: look again
                comment = Comment(
                    site=site,
                    submission=submission,
                    content_hash=digest,
                    submitted_at=now,
                    status=Status.PENDING,
                )
                return Accepted(comment, created=True)

    # --- reading ----------------------------------------------------------------------------

    def get(self, site: str, comment_id: str) -> Comment | None:
        data = self.redis.hgetall(KEYS.comment(site, comment_id))
        return _comment_from_hash(site, data) if data else None

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

    def pending_count(self) -> int:
        return int(self.redis.zcard(KEYS.pending))

    def oldest_pending_age(self) -> float | None:
        """Seconds since the oldest undecided comment arrived, or None when there is none."""
        oldest = self.redis.zrange(KEYS.pending, 0, 0, withscores=True)
        return max(0.0, utc_now() - oldest[0][1]) if oldest else None

    # --- deciding ---------------------------------------------------------------------------

    def decide(
        self, site: str, comment_id: str, decision: Decision, expected: Status = Status.PENDING
    ) -> bool:
        """Store `decision` if the comment is still `expected`; False if it was not (or is gone)."""
        result = self._decide(
            keys=[KEYS.comment(site, comment_id), KEYS.pending],
            args=[
                expected.value,
                decision.action.status.value,
                json.dumps(decision.to_storage()),
                pending_member(site, comment_id),
                KEYS.decided_channel(site, comment_id),
            ],
        )
        return int(result) == 1

    # --- spam counters ----------------------------------------------------------------------

    def count_activity(
        self,
        comment: Comment,
        fingerprint: str,
        duplicate_window: int,
        burst_window: int,
    ) -> ActivityCounts:
        """Record the comment in its recent-activity sets and count its neighbours.

        Members are comment ids, so running this twice for one comment counts it once.
        """
        author = comment.submission.author
        windows = {"text": (fingerprint, duplicate_window)}
        if author.get("id"):
            windows["author"] = (author["id"], burst_window)
        if author.get("ip"):
            windows["ip"] = (author["ip"], burst_window)
        at = comment.submitted_at
        with self.redis.pipeline(transaction=False) as pipe:
            for kind, (value, window) in windows.items():
                key = KEYS.recent(kind, comment.site, value)
                pipe.zadd(key, {comment.id: at})
                pipe.zremrangebyscore(key, "-inf", utc_now() - window)
                pipe.expire(key, window)
                pipe.zcount(key, at - window, at)
            replies = pipe.execute()
        counts = dict(zip(windows, replies[3::4], strict=True))
        return ActivityCounts(
            duplicate_count=int(counts.get("text", 1)),
            author_burst=int(counts.get("author", 1)),
            ip_burst=int(counts.get("ip", 1)),
        )


def _new_comment_hash(submission: Submission, digest: str, now: float) -> dict[str, str]:
    return {
        "id": submission.id,
        "content": submission.content,
        "content_hash": digest,
        "author": json.dumps(submission.author),
        "context": json.dumps(submission.context),
        "honeypot": submission.honeypot,
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
    )
    decision = fields.get("decision")
    return Comment(
        site=site,
        submission=submission,
        content_hash=fields["content_hash"],
        submitted_at=float(fields["submitted_at"]),
        status=Status(fields["status"]),
        decision=Decision.from_storage(json.loads(decision)) if decision else None,
    )


class WorkerModels:
    """Which models each worker process loaded, so /readyz can say what is active."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def register(self, worker_name: str, models: dict[str, str]) -> None:
        self.redis.hset(KEYS.worker_models, worker_name, json.dumps(models))

    def unregister(self, worker_name: str) -> None:
        self.redis.hdel(KEYS.worker_models, worker_name)

    def of(self, worker_names: list[str]) -> dict[str, dict[str, str]]:
        """Models of the named (live) workers."""
        models = {
            k.decode(): json.loads(v) for k, v in self.redis.hgetall(KEYS.worker_models).items()
        }
        return {name: models[name] for name in worker_names if name in models}
