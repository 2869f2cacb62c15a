"""What the Akismet account calls report (get-stats, key-sites, usage-limit): a site's Akismet
calls counted per month in Redis, in total and per blog (the `blog` URL each call names).

One hash per site and month, kept about 13 months (a set lists the months kept):
`spam`, `ham`, `missed_spam`, `false_positives` in total; the same per blog as
`<blog><TAB><count>`; a marker `<blog><TAB>` per blog listed and their number in `blogs`. A
month lists at most MAX_BLOGS blogs, so a client sending a new `blog` with every call cannot
grow it without bound (its calls still count in the totals).
"""

from __future__ import annotations

import time
from typing import cast

import redis

from moderation.core.redis_keys import KEYS
from moderation.protocols.akismet import COUNT_FIELDS, Counts

MONTHS_KEPT_SECONDS = 400 * 86_400
MAX_BLOGS = 1_000
MAX_BLOG_CHARS = 200
BLOG_SEPARATOR = "\t"

#: One round trip on the check's path, and the cap on blogs cannot be overrun by a race.
#: KEYS: the month's hash, the set of months. ARGV: the count, the blog ('' for none), the cap
#: on blogs, the seconds to keep the month, the month.
_RECORD_SCRIPT = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if ARGV[2] ~= '' then
  local marker = ARGV[2] .. '\\t'
  local listed = redis.call('HEXISTS', KEYS[1], marker) == 1
  if not listed and tonumber(redis.call('HGET', KEYS[1], 'blogs') or '0') < tonumber(ARGV[3]) then
    redis.call('HSET', KEYS[1], marker, 1)
    redis.call('HINCRBY', KEYS[1], 'blogs', 1)
    listed = true
  end
  if listed then redis.call('HINCRBY', KEYS[1], marker .. ARGV[1], 1) end
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[5])
"""


def month_of(timestamp: float | None = None) -> str:
    """ "YYYY-MM" in UTC."""
    return time.strftime("%Y-%m", time.gmtime(timestamp))


def counts_from(fields: dict[str, int]) -> Counts:
    return Counts(**{name: fields.get(name, 0) for name in COUNT_FIELDS})


class AkismetUsage:
    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection
        self._record = connection.register_script(_RECORD_SCRIPT)

    def record(self, site: str, blog: str, field: str) -> None:
        """Count one call's outcome (`field` is one of COUNT_FIELDS) for this month."""
        if field not in COUNT_FIELDS:
            raise ValueError(f"not an Akismet count: {field!r}")
        month = month_of()
        blog = blog.replace(BLOG_SEPARATOR, " ").strip()[:MAX_BLOG_CHARS]
        self._record(
            keys=[KEYS.akismet_usage(site, month), KEYS.akismet_months(site)],
            args=[field, blog, MAX_BLOGS, MONTHS_KEPT_SECONDS, month],
        )

    def months(self, site: str) -> dict[str, Counts]:
        """Every kept month's totals, by "YYYY-MM"."""
        months = cast(set[bytes], self.redis.smembers(KEYS.akismet_months(site)))
        names = sorted(m.decode() for m in months)
        with self.redis.pipeline() as pipe:
            for month in names:
                pipe.hmget(KEYS.akismet_usage(site, month), list(COUNT_FIELDS))
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
        raw = cast(dict[bytes, bytes], self.redis.hgetall(KEYS.akismet_usage(site, month)))
        for raw_field, raw_value in raw.items():
            blog, separator, name = raw_field.decode().rpartition(BLOG_SEPARATOR)
            if separator and name in COUNT_FIELDS:
                per_blog.setdefault(blog, {})[name] = int(raw_value)
        return {blog: counts_from(fields) for blog, fields in per_blog.items()}

    def calls(self, site: str, month: str) -> int:
        """The month's comment checks."""
        spam, ham = cast(
            list[bytes | None], self.redis.hmget(KEYS.akismet_usage(site, month), ["spam", "ham"])
        )
        return int(spam or 0) + int(ham or 0)
