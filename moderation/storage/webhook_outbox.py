"""Webhook bookkeeping in Redis: the outbox of decisions to announce and each delivery attempt.

Every stored decision that is to be announced adds its comment to the outbox in the same Lua
step (`CommentStore.decide` with `webhook`, which the caller learns from `Outbox.announces`), so
a crash between deciding and queueing the webhook loses nothing: `Outbox.sweep` queues what is
left. Delivery is at least once; receivers should treat a repeated event as the same news.

A decision is announced to the callback URL known when it is made (the comment's own, else its
site's; the worker's site record is the one its batch read). A decision made while there was
none skips the outbox, so nothing announces it later: a site that sets its callback URL
afterwards hears of later decisions (and of earlier ones it asks to redeliver), as it always
did when no process died between deciding and queueing. The sweep still reads the URL again
before it queues, so an entry whose URL was removed meanwhile is dropped, not delivered.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import redis

from moderation.core.records import Comment, isoformat, utc_now
from moderation.core.redis_keys import KEYS
from moderation.storage.comment_store import CommentStore, pending_member
from moderation.storage.job_queues import DeliveryEnqueuer
from moderation.storage.site_store import Site, SiteStore

#: Attempts kept per comment.
MAX_LOGGED_ATTEMPTS = 100
#: How long a receiver that timed out is remembered (an answer from it forgets it at once).
UNRESPONSIVE_MEMORY = 24 * 3600

# Lets one delivery through to a receiver that timed out once its cool-down is over; the
# others keep skipping it while that one tries (for at most the attempt time).
# KEYS: the receiver's key. ARGV: now, now + the longest an attempt takes.
# Returns 1 when the caller may try now, 0 when it should not.
_MAY_TRY_SCRIPT = """
local resume_at = tonumber(redis.call('GET', KEYS[1]))
if not resume_at then return 1 end
if tonumber(ARGV[1]) < resume_at then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
"""


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
        self,
        site: str,
        comment_id: str,
        comment: Comment | None = None,
        site_record: Site | None = None,
    ) -> str | None:
        """Where this comment's decisions go: its own callback URL, else its site's (nowhere
        for a one-off check)."""
        comment = comment or self.comments.get(site, comment_id)
        if comment is not None and comment.is_check:
            return None
        if comment is not None and comment.submission.callback_url:
            return comment.submission.callback_url
        found = site_record or self.sites.get(site)
        return found.callback_url if found else None

    def announces(self, comment: Comment, site_record: Site | None = None) -> bool:
        """Whether a decision on `comment` is to be announced by webhook (its site's record is
        read unless given, and only when the comment names no URL of its own): what a caller
        tells `CommentStore.decide` (`webhook`) before deciding, then `queue`s if stored."""
        return self.callback_url(comment.site, comment.id, comment, site_record) is not None

    def queue(self, site: str, comment_id: str) -> None:
        """Queue the webhook of a decision stored with `webhook` and take it off the outbox,
        in one transaction."""
        self.queue_many([(site, comment_id)])

    def queue_many(self, decided: Sequence[tuple[str, str]]) -> None:
        """`queue` for several decisions (site, comment id), in one transaction."""
        if not decided:
            return
        with self.redis.pipeline() as pipe:
            pipe.multi()
            for site, comment_id in decided:
                self.enqueue(pipe, site, comment_id)
                pipe.zrem(KEYS.outbox, pending_member(site, comment_id))
            pipe.execute()

    def flush(
        self,
        site: str,
        comment_id: str,
        comment: Comment | None = None,
        site_record: Site | None = None,
    ) -> bool:
        """Queue the webhook for the comment's latest decision (if anyone listens now) and
        take it off the outbox, in one transaction: for an entry whose decider died before
        its `queue`. Returns whether a delivery was queued. `comment` and `site_record`, when
        the caller has them, save reading them again."""
        member = pending_member(site, comment_id)
        with self.redis.pipeline() as pipe:
            pipe.multi()
            queued = self.callback_url(site, comment_id, comment, site_record) is not None
            if queued:
                self.enqueue(pipe, site, comment_id)
            pipe.zrem(KEYS.outbox, member)
            pipe.execute()
        return queued

    def redeliver(self, site: str, comment_id: str, comment: Comment | None = None) -> bool:
        """Queue a delivery of the comment's current state now (`comment`, when the caller has
        it, saves reading it again)."""
        if self.callback_url(site, comment_id, comment) is None:
            return False
        self.enqueue(None, site, comment_id)
        return True

    def sweep(self, older_than: float) -> int:
        """Flush outbox entries left behind by a process that died after deciding."""
        cutoff = utc_now() - older_than
        members = cast(
            list[bytes], self.redis.zrangebyscore(KEYS.outbox, "-inf", cutoff, start=0, num=500)
        )
        for member in members:
            site, _, comment_id = member.decode().partition("\n")
            self.flush(site, comment_id)
        return len(members)

    def waiting(self) -> int:
        return waiting_webhooks(self.redis)


def waiting_webhooks(connection: redis.Redis) -> int:
    """Decisions whose webhook is not queued yet."""
    return cast(int, connection.zcard(KEYS.outbox))


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
        raw = cast(list[bytes], self.redis.lrange(KEYS.deliveries(site, comment_id), 0, -1))
        return [
            {**attempt, "at": isoformat(attempt["at"])}
            for attempt in (json.loads(item) for item in raw)
        ]


def origin(url: str) -> str:
    """A URL's scheme, host and port: what one receiver is."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return url
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


class UnresponsiveReceivers:
    """Receivers that stopped answering, so that deliveries skip them for a while.

    An attempt that times out marks its receiver (scheme, host and port) for `cool_down`
    seconds. Until then deliveries there are not tried: they fail at once and are retried on
    their schedule, rather than each holding a deliverer for the whole timeout. Then one
    delivery tries again while the others keep skipping; any answer from the receiver clears
    the mark, another timeout renews it. Kept in Redis, so every deliverer process shares it.
    """

    def __init__(self, connection: redis.Redis, cool_down: float, attempt_time: float) -> None:
        self.redis = connection
        self.cool_down = cool_down
        self.attempt_time = attempt_time
        self._may_try = connection.register_script(_MAY_TRY_SCRIPT)

    def may_try(self, url: str) -> bool:
        now = utc_now()
        key = KEYS.unresponsive(origin(url))
        return bool(self._may_try(keys=[key], args=[repr(now), repr(now + self.attempt_time)]))

    def timed_out(self, url: str) -> None:
        resume_at = utc_now() + self.cool_down
        self.redis.set(KEYS.unresponsive(origin(url)), repr(resume_at), ex=UNRESPONSIVE_MEMORY)

    def answered(self, url: str) -> None:
        self.redis.delete(KEYS.unresponsive(origin(url)))
