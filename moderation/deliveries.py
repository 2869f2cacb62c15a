"""Webhook bookkeeping in Redis: the outbox of decisions to announce and each delivery attempt.

Every stored decision adds its comment to the outbox in the same Lua step (see `store`), so a
crash between deciding and queueing the webhook loses nothing: `Outbox.sweep` queues what is
left. Delivery is at least once; receivers should treat a repeated event as the same news.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from moderation.keyspace import KEYS
from moderation.queue import DeliveryEnqueuer
from moderation.records import Comment, isoformat, utc_now
from moderation.sites import SiteStore
from moderation.store import CommentStore, pending_member

#: Attempts kept per comment.
MAX_LOGGED_ATTEMPTS = 100


class Outbox:
    def __init__(
        self,
        connection: redis.Redis,
        comments: CommentStore,
        sites: SiteStore,
        enqueue: DeliveryEnqueuer,
    ) -> None:
        self.redis = connection
        self.comments = comments
        self.sites = sites
        self.enqueue = enqueue

    def callback_url(
        self, site: str, comment_id: str, comment: Comment | None = None
    ) -> str | None:
        """Where this comment's decisions go: its own callback URL, else its site's."""
        comment = comment or self.comments.get(site, comment_id)
        if comment is not None and comment.submission.callback_url:
            return comment.submission.callback_url
        found = self.sites.get(site)
        return found.callback_url if found else None

    def flush(self, site: str, comment_id: str, comment: Comment | None = None) -> bool:
        """Queue the webhook for the comment's latest decision (if anyone listens) and take it
        off the outbox, in one transaction. Returns whether a delivery was queued. `comment`,
        when the caller has it, saves reading it again."""
        member = pending_member(site, comment_id)
        with self.redis.pipeline() as pipe:
            pipe.multi()
            queued = self.callback_url(site, comment_id, comment) is not None
            if queued:
                self.enqueue(pipe, site, comment_id)
            pipe.zrem(KEYS.outbox, member)
            pipe.execute()
        return queued

    def redeliver(self, site: str, comment_id: str) -> bool:
        """Queue a delivery of the comment's current state now."""
        if self.callback_url(site, comment_id) is None:
            return False
        self.enqueue(None, site, comment_id)
        return True

    def sweep(self, older_than: float) -> int:
        """Flush outbox entries left behind by a process that died after deciding."""
        cutoff = utc_now() - older_than
        members = self.redis.zrangebyscore(KEYS.outbox, "-inf", cutoff, start=0, num=500)
        for member in members:
            site, _, comment_id = member.decode().partition("\n")
            self.flush(site, comment_id)
        return len(members)

    def waiting(self) -> int:
        return waiting_webhooks(self.redis)


def waiting_webhooks(connection: redis.Redis) -> int:
    """Decisions whose webhook is not queued yet."""
    return int(connection.zcard(KEYS.outbox))


class DeliveryLog:
    """Each delivery attempt of a comment's webhooks, newest last."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def record(self, site: str, comment_id: str, attempt: dict[str, Any]) -> None:
        key = KEYS.deliveries(site, comment_id)
        outcome = "delivered" if attempt.get("ok") else attempt.get("outcome", "failed")
        with self.redis.pipeline() as pipe:
            pipe.rpush(key, json.dumps({"at": utc_now(), **attempt}))
            pipe.ltrim(key, -MAX_LOGGED_ATTEMPTS, -1)
            pipe.hincrby(KEYS.metric_counters, f"deliveries|{outcome}", 1)
            pipe.execute()

    def attempts(self, site: str, comment_id: str) -> list[dict[str, Any]]:
        raw = self.redis.lrange(KEYS.deliveries(site, comment_id), 0, -1)
        return [
            {**attempt, "at": isoformat(attempt["at"])}
            for attempt in (json.loads(item) for item in raw)
        ]
