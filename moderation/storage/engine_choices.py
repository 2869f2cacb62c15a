"""The engine measured best for a model on a kind of machine, shared by every worker.

Measuring which runtime and precision to score with takes a worker from seconds (a small model)
to a few minutes (a bert-base model exported to every installed runtime). It is done once per
model checksum, CPU model and features, runtime versions and scoring settings (the `signature`)
and kept in Redis, so the next worker to start with the same signature, on any host, reads the
answer instead. While one worker measures, the others with the same signature wait for it:
they would only slow its measurement down.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from moderation.core.redis_keys import KEYS

log = logging.getLogger(__name__)

#: A measurement is kept this long after it was last used (a worker start that read it).
KEEP_SECONDS = 90 * 24 * 3600
#: Seconds the measuring worker's claim lasts: longer than any measurement; if the worker dies
#: the others measure themselves once it lapses.
CLAIM_SECONDS = 900
#: Seconds between looks at Redis while another worker measures.
POLL_SECONDS = 0.5

Signature = Mapping[str, Any]


def signature_digest(signature: Signature) -> str:
    return hashlib.sha256(json.dumps(signature, sort_keys=True).encode()).hexdigest()[:32]


class EngineChoices:
    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def get(self, signature: Signature) -> dict[str, Any] | None:
        """The measurement kept for `signature` (refreshing how long it is kept), if any."""
        key = KEYS.engine_choice(signature_digest(signature))
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.expire(key, KEEP_SECONDS)
            raw, _ = pipe.execute()
        return None if raw is None else json.loads(raw)["choice"]

    def put(self, signature: Signature, choice: Mapping[str, Any]) -> None:
        """Keep `choice`, with the signature it was measured for (for people reading Redis)."""
        record = {"signature": dict(signature), "choice": dict(choice), "at": time.time()}
        key = KEYS.engine_choice(signature_digest(signature))
        self.redis.set(key, json.dumps(record), ex=KEEP_SECONDS)

    def forget(self, signature: Signature) -> None:
        """Drop the measurement, so that the next worker to start measures again."""
        self.redis.delete(KEYS.engine_choice(signature_digest(signature)))

    def once(
        self,
        signature: Signature,
        measure: Callable[[], Mapping[str, Any]],
        *,
        wait_seconds: float = CLAIM_SECONDS,
    ) -> tuple[dict[str, Any], bool]:
        """The choice for `signature`: the one kept, or else `measure()`'s, measured by one
        worker at a time (the others wait for it up to `wait_seconds`, then measure too).
        Also says whether this call measured it."""
        # redis-py's lock: a token set with NX and a lifetime, released only while still ours.
        claim = self.redis.lock(
            KEYS.engine_choice_lock(signature_digest(signature)),
            timeout=CLAIM_SECONDS,
            blocking=False,
            thread_local=False,
        )
        deadline = time.monotonic() + wait_seconds
        waited = False
        while True:
            kept = self.get(signature)
            if kept is not None:
                return kept, False
            if claim.acquire():
                kept = self.get(signature)  # stored and released just before the claim?
                if kept is not None:
                    _release(claim)
                    return kept, False
                break
            if time.monotonic() > deadline:
                log.warning("another worker's engine measurement is late; measuring here too")
                break
            if not waited:
                log.info("waiting for another worker's engine measurement")
                waited = True
            time.sleep(POLL_SECONDS)  # a wait on another process, bounded by the deadline
        try:
            choice = dict(measure())
            self.put(signature, choice)
            return choice, True
        finally:
            _release(claim)


def _release(claim: Lock) -> None:
    """Drop the claim if this caller holds it (one that lapsed may be another's by now)."""
    if claim.owned():
        with contextlib.suppress(LockError):  # lapsed between the look and the release
            claim.release()
