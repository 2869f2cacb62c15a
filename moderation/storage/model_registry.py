"""The sites' own models in Redis: every version's file, which one is in use, and a log of
every training and rollback.

The learning job (`workers.learning.retraining`) adds versions; every scoring worker, on any host,
reads which version each site uses before each batch and loads a new one when it changes, so
a new model takes effect without a restart. The API (`GET /v1/models`) and the command line
(`moderation models`) read and roll back. Version 0 means the base model alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, cast

import redis

from moderation.core.records import utc_now
from moderation.core.redis_keys import KEYS

#: The kinds of site model: each site may have one of each.
SPAM = "spam"
TOXICITY = "toxicity"
KINDS = (SPAM, TOXICITY)
#: Files of this many promoted versions are kept per site and kind (for rollback).
KEEP_VERSIONS = 10
#: Log entries kept per site and kind.
KEEP_LOG = 50


class UnknownVersionError(LookupError):
    """The version asked for does not exist (or its file is no longer kept)."""


class ModelRegistry:
    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    # --- what is in use ---------------------------------------------------------------------

    def active(self, site: str) -> dict[str, int]:
        """kind -> version in use (kinds without one use the base model)."""
        return self.active_many([site])[site]

    def active_many(self, sites: Iterable[str]) -> dict[str, dict[str, int]]:
        """The same for several sites, in one round trip."""
        names = list(dict.fromkeys(sites))
        with self.redis.pipeline(transaction=False) as pipe:
            for site in names:
                pipe.hgetall(KEYS.site_models(site))
            replies = pipe.execute()
        return {
            site: {kind.decode(): int(version) for kind, version in reply.items()}
            for site, reply in zip(names, replies, strict=True)
        }

    def model_file(self, site: str, kind: str, version: int) -> bytes | None:
        return cast(bytes | None, self.redis.get(KEYS.site_model(site, kind, version)))

    def twin_file(self, site: str, kind: str, version: int) -> bytes | None:
        """The version's held-out twin (fitted without the labels that measured it), which
        the next candidate is measured against."""
        return cast(bytes | None, self.redis.get(KEYS.site_model_twin(site, kind, version)))

    # --- recording training -----------------------------------------------------------------

    def next_version(self, site: str, kind: str) -> int:
        """A new version number (numbers are never reused, even for models not promoted)."""
        return cast(int, self.redis.hincrby(KEYS.model_sequence(site), kind, 1))

    def record(
        self,
        site: str,
        kind: str,
        entry: dict[str, Any],
        model_file: bytes | None = None,
        twin_file: bytes | None = None,
    ) -> None:
        """Log a training (`entry`, with its `version`); with `model_file` (and its held-out
        twin) and `entry["promoted"]`, store the files and put that version in use."""
        version = int(entry["version"])
        with self.redis.pipeline() as pipe:
            if model_file is not None and entry.get("promoted"):
                pipe.set(KEYS.site_model(site, kind, version), model_file)
                if twin_file is not None:
                    pipe.set(KEYS.site_model_twin(site, kind, version), twin_file)
                pipe.hset(KEYS.site_models(site), kind, str(version))
                self._forget_old_files(pipe, site, kind, version)
            self._log(pipe, site, kind, {"event": "trained", "at": utc_now(), **entry})
            pipe.execute()

    def rollback(self, site: str, kind: str, to: int | None = None, actor: str = "") -> int:
        """Use version `to` (0: the base model), or the promoted version before the one in use
        whose file is still kept. Returns the version now in use."""
        current = self.active(site).get(kind, 0)
        if to is None:
            to = next((v for v in self.promoted_versions(site, kind) if v < current), 0)
        if to and self.model_file(site, kind, to) is None:
            raise UnknownVersionError(f"no stored {kind} model version {to} for site {site!r}")
        with self.redis.pipeline() as pipe:
            if to:
                pipe.hset(KEYS.site_models(site), kind, str(to))
            else:
                pipe.hdel(KEYS.site_models(site), kind)
            entry = {"event": "rollback", "at": utc_now(), "from": current, "to": to}
            self._log(pipe, site, kind, {**entry, "actor": actor})
            pipe.execute()
        return to

    # --- reading the log --------------------------------------------------------------------

    def log(self, site: str, kind: str, limit: int = KEEP_LOG) -> list[dict[str, Any]]:
        """Trainings and rollbacks, newest first."""
        raw = cast(list[bytes], self.redis.lrange(KEYS.model_log(site, kind), 0, limit - 1))
        return [json.loads(item) for item in raw]

    def promoted_versions(self, site: str, kind: str) -> list[int]:
        """Versions that were put in use and whose files are kept, newest first."""
        versions = sorted(
            {
                int(e["version"])
                for e in self.log(site, kind)
                if e["event"] == "trained" and e.get("promoted")
            },
            reverse=True,
        )
        with self.redis.pipeline(transaction=False) as pipe:
            for version in versions:
                pipe.exists(KEYS.site_model(site, kind, version))
            kept = pipe.execute()
        return [version for version, exists in zip(versions, kept, strict=True) if exists]

    def entry(self, site: str, kind: str, version: int) -> dict[str, Any] | None:
        """The log entry of the training that made `version`."""
        return training_entry(self.log(site, kind), version)

    # --- helpers ----------------------------------------------------------------------------

    def _log(self, pipe: redis.client.Pipeline, site: str, kind: str, entry: dict) -> None:
        pipe.lpush(KEYS.model_log(site, kind), json.dumps(entry))
        pipe.ltrim(KEYS.model_log(site, kind), 0, KEEP_LOG - 1)

    def _forget_old_files(
        self, pipe: redis.client.Pipeline, site: str, kind: str, newest: int
    ) -> None:
        kept = [newest, *self.promoted_versions(site, kind)]
        for version in sorted(set(kept), reverse=True)[KEEP_VERSIONS:]:
            pipe.delete(KEYS.site_model(site, kind, version))
            pipe.delete(KEYS.site_model_twin(site, kind, version))


def training_entry(log: list[dict[str, Any]], version: int) -> dict[str, Any] | None:
    """The entry of `log` (as `ModelRegistry.log` reads it) of the training that made `version`."""
    return next((e for e in log if e["event"] == "trained" and e.get("version") == version), None)
