"""Counters and histograms kept in Redis, which many processes on many hosts add to.

Workers produce most figures (decisions, scoring latency, webhook deliveries) and serve no HTTP;
`moderation.http.metrics` reads these at scrape time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import redis

from moderation.core.redis_keys import KEYS

#: Scoring latency buckets (seconds): the lite model takes microseconds, bert-base on a CPU
#: up to a second or so per comment.
SCORING_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RedisCounters:
    """Counters and histograms that many processes on many hosts add to."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def increment(self, name: str, amount: int = 1) -> None:
        self.redis.hincrby(KEYS.metric_counters, name, amount)

    def add(self, counts: Mapping[str, int]) -> None:
        """Several counters at once, in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for name, amount in counts.items():
                pipe.hincrby(KEYS.metric_counters, name, amount)
            pipe.execute()

    def observe_scoring(self, model: str, seconds: float, comments: int = 1) -> None:
        """Record `comments` scored in `seconds` (each at the per-comment average)."""
        each = seconds / max(1, comments)
        with self.redis.pipeline(transaction=False) as pipe:
            key = KEYS.scoring_histogram(model)
            for bound in SCORING_BUCKETS:
                if each <= bound:
                    pipe.hincrby(key, f"le:{bound}", comments)
            pipe.hincrby(key, "count", comments)
            pipe.hincrbyfloat(key, "sum", seconds)
            pipe.sadd(KEYS.scoring_models, model)
            pipe.execute()

    def counters(self) -> dict[str, int]:
        raw = cast(dict[bytes, bytes], self.redis.hgetall(KEYS.metric_counters))
        return {key.decode(): int(value) for key, value in raw.items()}

    def scoring_histograms(self) -> dict[str, dict[str, float]]:
        names = cast(set[bytes], self.redis.smembers(KEYS.scoring_models))
        models = sorted(m.decode() for m in names)
        histograms = {}
        for model in models:
            raw = cast(dict[bytes, bytes], self.redis.hgetall(KEYS.scoring_histogram(model)))
            histograms[model] = {key.decode(): float(value) for key, value in raw.items()}
        return histograms
