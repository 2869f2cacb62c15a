"""Spam counters: each comment in its site's recent-activity sets (the same text, the same
author, the same IP address), and how many comments each set holds around it.

The sets are sorted sets keyed by comment id and scored by submission time (see
`moderation.core.redis_keys`, `recent`), so counting a comment twice (a retry, a redelivered
job) counts it once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import redis

from moderation.core.records import ActivityCounts, Comment, utc_now
from moderation.core.redis_keys import KEYS


class SpamCounters:
    """Records comments in their recent-activity sets and counts their neighbours there."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def count_activity(
        self,
        comment: Comment,
        fingerprint: str,
        duplicate_window: int,
        burst_window: int,
    ) -> ActivityCounts:
        """Record the comment in its recent-activity sets and count its neighbours."""
        [counts] = self.count_activity_many(
            [(comment, fingerprint)], duplicate_window, burst_window
        )
        return counts

    def count_activity_many(
        self,
        comments: Sequence[tuple[Comment, str]],
        duplicate_window: int,
        burst_window: int,
    ) -> list[ActivityCounts]:
        """`count_activity` for several (comment, text fingerprint), in one round trip, in
        order (a comment counts those before it).

        Members are comment ids, so running this twice for one comment counts it once. The
        sets are trimmed by submission time, not by the clock: in a backlog a comment is scored
        long after it arrived, and its window (and those of the comments queued behind it)
        still needs entries older than now - window.
        """
        if not comments:
            return []
        now = utc_now()
        every: list[dict[str, tuple[str, int]]] = []
        with self.redis.pipeline(transaction=False) as pipe:
            for comment, fingerprint in comments:
                author = comment.submission.author
                windows = {"text": (fingerprint, duplicate_window)}
                if author.get("id"):
                    windows["author"] = (author["id"], burst_window)
                if author.get("ip"):
                    windows["ip"] = (author["ip"], burst_window)
                at = comment.submitted_at
                backlog = math.ceil(max(0.0, now - at))
                for kind, (value, window) in windows.items():
                    key = KEYS.recent(kind, comment.site, value)
                    pipe.zadd(key, {comment.id: at})
                    pipe.zremrangebyscore(key, "-inf", f"({at - window}")
                    pipe.expire(key, window + backlog)
                    pipe.zcount(key, at - window, at)
                every.append(windows)
            replies = pipe.execute()
        found: list[ActivityCounts] = []
        for windows in every:
            mine, replies = replies[: 4 * len(windows)], replies[4 * len(windows) :]
            counts = dict(zip(windows, mine[3::4], strict=True))
            found.append(
                ActivityCounts(
                    duplicate_count=int(counts.get("text", 1)),
                    author_burst=int(counts.get("author", 1)),
                    ip_burst=int(counts.get("ip", 1)),
                )
            )
        return found
