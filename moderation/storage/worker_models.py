"""The models each live scoring worker loaded, registered at its start and dropped at its end:
what /readyz, `GET /v1/models`, the Perspective API and the hand-over of languages read."""

from __future__ import annotations

import json
from typing import cast

import redis

from moderation.core.redis_keys import KEYS


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
        raw = cast(dict[bytes, bytes], self.redis.hgetall(KEYS.worker_models))
        models = {k.decode(): json.loads(v) for k, v in raw.items()}
        return {name: models[name] for name in worker_names if name in models}
