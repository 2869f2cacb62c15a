"""Per-site policies in Redis: read with the service default as fallback, replaced as a whole."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, replace
from typing import Any, cast

import redis

from moderation.core.redis_keys import KEYS
from moderation.core.settings import PolicySettings


class VersionConflictError(Exception):
    """The policy changed since the version the caller based its change on."""

    def __init__(self, current: PolicySettings) -> None:
        super().__init__(f"the policy is at version {current.version}")
        self.current = current


def policy_to_json(policy: PolicySettings) -> dict[str, Any]:
    data = asdict(policy)
    data["hold"] = dict(policy.hold)
    data["reject"] = dict(policy.reject)
    data["banned_words"] = list(policy.banned_words)
    data["suspect_words"] = list(policy.suspect_words)
    return {"version": data.pop("version"), **data}


def policy_from_json(data: dict[str, Any]) -> PolicySettings:
    return PolicySettings(
        hold=dict(data["hold"]),
        reject=dict(data["reject"]),
        auto_reject=bool(data["auto_reject"]),
        max_links=int(data["max_links"]),
        premoderate=bool(data["premoderate"]),
        banned_words=tuple(data["banned_words"]),
        suspect_words=tuple(data["suspect_words"]),
        trusted_after=int(data["trusted_after"]),
        # policies stored before languages were detected lack it
        unscored_languages=str(data.get("unscored_languages", "hold")),
        # and those stored before moderators' tools, these three
        report_threshold=int(data.get("report_threshold", 3)),
        premoderate_new_authors=int(data.get("premoderate_new_authors", 0)),
        banned_authors=str(data.get("banned_authors", "reject")),
        version=int(data["version"]),
    )


class PolicyStore:
    def __init__(self, connection: redis.Redis, default: PolicySettings) -> None:
        self.redis = connection
        self.default = default

    def get(self, site: str) -> PolicySettings:
        """The site's policy, or the service default (version 0) when it has none."""
        raw = cast(bytes | None, self.redis.get(KEYS.policy(site)))
        return policy_from_json(json.loads(raw)) if raw else self.default

    def get_many(self, sites: Iterable[str]) -> dict[str, PolicySettings]:
        """The policies of `sites`, in one round trip."""
        unique = list(dict.fromkeys(sites))
        raws = (
            cast(list[bytes | None], self.redis.mget([KEYS.policy(site) for site in unique]))
            if unique
            else []
        )
        return {
            site: policy_from_json(json.loads(raw)) if raw else self.default
            for site, raw in zip(unique, raws, strict=True)
        }

    def replace(
        self, site: str, policy: PolicySettings, expected_version: int | None = None
    ) -> PolicySettings:
        """Store `policy` as the site's next version; VersionConflictError if someone else
        changed it since `expected_version` (when given)."""
        key = KEYS.policy(site)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = cast(bytes | None, pipe.get(key))
                    current = policy_from_json(json.loads(raw)) if raw else self.default
                    if expected_version is not None and expected_version != current.version:
                        pipe.unwatch()
                        raise VersionConflictError(current)
                    stored = replace(policy, version=current.version + 1)
                    pipe.multi()
                    pipe.set(key, json.dumps(policy_to_json(stored)))
                    pipe.execute()
                    return stored
                except redis.WatchError:
                    continue
