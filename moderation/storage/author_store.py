"""Authors as moderators see them: their comment counts, their standing, what was done to them.

An author is a site's `author.id`. A moderator can ban, premoderate or trust an author, and
clear that again (`moderation.core.records.AuthorAction`); the standing lives beside the author's
counts (`mod:author:{site}:{author}`) so a worker reads both for a pass in one round trip, and
every action is kept in the author's log, oldest first. Nothing here decides a comment: the
policy reads the standing (`moderation.core.rules`), the review service acts on held comments.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from moderation.core.records import AuthorAction, Standing, isoformat, utc_now
from moderation.core.redis_keys import KEYS
from moderation.storage.durability import Durability

HISTORY_STATUSES = ("approved", "held", "rejected")
#: Actions kept per author (the oldest go first).
MAX_LOG = 500


@dataclass(frozen=True)
class AuthorRecord:
    """What a worker's policy needs about an author: approved comments and standing."""

    approved: int = 0
    standing: Standing | None = None


@dataclass(frozen=True)
class AuthorProfile:
    """An author on a site as the review page shows them."""

    site: str
    author_id: str
    counts: dict[str, int]
    standing: Standing | None = None
    standing_note: str = ""
    standing_by: str = ""
    standing_at: float | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "author_id": self.author_id,
            "standing": self.standing.value if self.standing else None,
            "standing_note": self.standing_note,
            "standing_by": self.standing_by,
            "standing_at": isoformat(self.standing_at) if self.standing_at else None,
            "counts": self.counts,
            "events": [{**event, "at": isoformat(float(event["at"]))} for event in self.events],
        }


def _standing(raw: bytes | None) -> Standing | None:
    try:
        return Standing(raw.decode()) if raw else None
    except ValueError:
        return None


class AuthorStore:
    """Reads authors' counts and standing; records what moderators do to them."""

    def __init__(self, connection: redis.Redis, durability: Durability | None = None) -> None:
        self.redis = connection
        self.durability = durability or Durability()

    def records(self, authors: Sequence[tuple[str, str]]) -> dict[tuple[str, str], AuthorRecord]:
        """The (site, author id) pairs' records, in one round trip (empty ids: no record)."""
        unique = list(dict.fromkeys(author for author in authors if author[1]))
        with self.redis.pipeline(transaction=False) as pipe:
            for site, author_id in unique:
                pipe.hmget(KEYS.author_counts(site, author_id), ["approved", "standing"])
            found = pipe.execute()
        records = {
            author: AuthorRecord(max(0, int(approved or 0)), _standing(standing))
            for author, (approved, standing) in zip(unique, found, strict=True)
        }
        return {author: records.get(author, AuthorRecord()) for author in authors}

    def profile(self, site: str, author_id: str, *, with_events: bool = True) -> AuthorProfile:
        """The author's counts, standing and (with `with_events`) every action on them."""
        [profile] = self.profiles([(site, author_id)], with_events=with_events).values()
        return profile

    def profiles(
        self, authors: Sequence[tuple[str, str]], *, with_events: bool = False
    ) -> dict[tuple[str, str], AuthorProfile]:
        """`profile` of each (site, author id), in one round trip."""
        unique = list(dict.fromkeys(authors))
        named = [author for author in unique if author[1]]
        with self.redis.pipeline(transaction=False) as pipe:
            for site, author_id in named:
                pipe.hgetall(KEYS.author_counts(site, author_id))
                if with_events:
                    pipe.lrange(KEYS.author_log(site, author_id), 0, -1)
            replies = iter(pipe.execute())
        found = {}
        for site, author_id in named:
            stored = {key.decode(): value.decode() for key, value in next(replies).items()}
            events = [json.loads(raw) for raw in next(replies)] if with_events else []
            found[(site, author_id)] = _profile(site, author_id, stored, events)
        return {author: found.get(author) or _profile(*author, {}, []) for author in unique}

    def act(
        self, site: str, author_id: str, action: AuthorAction, actor: str, note: str = ""
    ) -> None:
        """Give the author the action's standing (`clear`: none), logged, in one transaction."""
        key = KEYS.author_counts(site, author_id)
        now = utc_now()
        standing = action.standing
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    before = _standing(cast(bytes | None, pipe.hget(key, "standing")))
                    event = {
                        "at": now,
                        "actor": actor,
                        "action": action.value,
                        "from": before.value if before else None,
                        "to": standing.value if standing else None,
                        "note": note,
                    }
                    pipe.multi()
                    if standing is None:
                        pipe.hdel(key, "standing", "standing_note", "standing_by", "standing_at")
                    else:
                        fields = {
                            "standing": standing.value,
                            "standing_note": note,
                            "standing_by": actor,
                            "standing_at": repr(now),
                        }
                        pipe.hset(key, mapping=fields)
                    pipe.rpush(KEYS.author_log(site, author_id), json.dumps(event))
                    pipe.ltrim(KEYS.author_log(site, author_id), -MAX_LOG, -1)
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        self.durability.confirm(self.redis)

    def recent_comment_ids(self, site: str, author_id: str, limit: int) -> list[str]:
        """The ids of the author's newest comments on the site, newest first."""
        return self.recent_comment_ids_many([(site, author_id)], limit)[0]

    def recent_comment_ids_many(
        self, authors: Sequence[tuple[str, str]], limit: int
    ) -> list[list[str]]:
        """`recent_comment_ids` of each (site, author id), in order, in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for site, author_id in authors:
                if author_id:
                    pipe.zrevrange(KEYS.author_comments(site, author_id), 0, limit - 1)
            replies = iter(pipe.execute())
        return [
            [raw.decode() for raw in next(replies)] if author_id else [] for _, author_id in authors
        ]


def _profile(
    site: str, author_id: str, stored: dict[str, str], events: list[dict[str, Any]]
) -> AuthorProfile:
    return AuthorProfile(
        site=site,
        author_id=author_id,
        counts={status: max(0, int(stored.get(status, 0))) for status in HISTORY_STATUSES},
        standing=_standing(stored.get("standing", "").encode()),
        standing_note=stored.get("standing_note", ""),
        standing_by=stored.get("standing_by", ""),
        standing_at=float(stored["standing_at"]) if stored.get("standing_at") else None,
        events=events,
    )
