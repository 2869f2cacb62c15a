"""What the Akismet account calls report (get-stats, key-sites, usage-limit): a site's Akismet
calls counted per month in Redis, in total and per blog (the `blog` URL each call names).

One hash per site and month (`spam`, `ham`, `missed_spam`, `false_positives`, and the same
per blog as `<blog>\\t<field>`), kept about 13 months; a set lists the months kept. A month
records at most MAX_BLOGS distinct blogs, so a client sending random `blog` values cannot grow
it without bound (its calls still count in the totals).
"""

from __future__ import annotations

import time

import redis

from moderation.keyspace import KEYS
from moderation.protocols.akismet import COUNT_FIELDS, Counts

MONTHS_KEPT_SECONDS = 400 * 86_400
MAX_BLOGS = 1_000
MAX_BLOG_CHARS = 200
BLOG_SEPARATOR = "\t"


def month_of(timestamp: float | None = None) -> str:
    """ "YYYY-MM" in UTC."""
    return time.strftime("%Y-%m", time.gmtime(timestamp))


def counts_from(fields: dict[str, int]) -> Counts:
    return Counts(**{name: fields.get(name, 0) for name in COUNT_FIELDS})


class AkismetUsage:
    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def record(self, site: str, blog: str, field: str) -> None:
        """Count one call's outcome (`field` is one of COUNT_FIELDS) for this month."""
        if field not in COUNT_FIELDS:
            raise ValueError(f"not an Akismet count: {field!r}")
        month = month_of()
        key = KEYS.akismet_usage(site, month)
        blog = blog.replace(BLOG_SEPARATOR, " ").strip()[:MAX_BLOG_CHARS]
        per_blog = f"{blog}{BLOG_SEPARATOR}{field}"
        known_blog = blog and (
            self.redis.hexists(key, per_blog)
            or self.redis.hlen(key) < (MAX_BLOGS + 1) * len(COUNT_FIELDS)
        )
        with self.redis.pipeline() as pipe:
            pipe.hincrby(key, field, 1)
            if known_blog:
                pipe.hincrby(key, per_blog, 1)
            pipe.expire(key, MONTHS_KEPT_SECONDS)
            pipe.sadd(KEYS.akismet_months(site), month)
            pipe.execute()

    def months(self, site: str) -> dict[str, Counts]:
        """Every kept month's totals, by "YYYY-MM"."""
        names = sorted(m.decode() for m in self.redis.smembers(KEYS.akismet_months(site)))
        with self.redis.pipeline() as pipe:
            for month in names:
                pipe.hmget(KEYS.akismet_usage(site, month), *COUNT_FIELDS)
            values = pipe.execute()
        found = {}
        for month, counts in zip(names, values, strict=True):
            if any(value is not None for value in counts):
                numbers = {n: int(v or 0) for n, v in zip(COUNT_FIELDS, counts, strict=True)}
                found[month] = counts_from(numbers)
        return found

    def blogs(self, site: str, month: str) -> dict[str, Counts]:
        """The month's counts per blog."""
        per_blog: dict[str, dict[str, int]] = {}
        for raw_field, raw_value in self.redis.hgetall(KEYS.akismet_usage(site, month)).items():
            blog, separator, name = raw_field.decode().rpartition(BLOG_SEPARATOR)
            if separator and name in COUNT_FIELDS:
                per_blog.setdefault(blog, {})[name] = int(raw_value)
        return {blog: counts_from(fields) for blog, fields in per_blog.items()}

    def calls(self, site: str, month: str) -> int:
        """The month's comment checks."""
        spam, ham = self.redis.hmget(KEYS.akismet_usage(site, month), "spam", "ham")
        return int(spam or 0) + int(ham or 0)
