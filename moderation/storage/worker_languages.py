"""Which languages the live scoring workers' toxicity models read, from their registrations.

Each scoring worker registers the languages its toxicity model reads (`languages`: "en,fr");
a language is covered when at least one live worker reads it. The API (Perspective's
`languages`) and the workers (handing a comment over to a worker that reads it) ask here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import redis

from moderation.storage.job_queues import live_scoring_workers
from moderation.storage.worker_models import WorkerModels

#: What a worker that registered no languages reads (workers from before languages).
DEFAULT_LANGUAGES = frozenset({"en"})
#: Seconds a reading of the live workers' languages is reused (workers come and go rarely;
#: reading them costs a few Redis round trips per worker).
REFRESH_AFTER = 5.0


def languages_field(languages: Iterable[str]) -> str:
    """The registration field: sorted codes separated by commas."""
    return ",".join(sorted(languages))


def registered_languages(registration: Mapping[str, str]) -> frozenset[str]:
    """The languages one worker registered."""
    raw = registration.get("languages")
    return frozenset(raw.split(",")) if raw else DEFAULT_LANGUAGES


def languages_read(registrations: Iterable[Mapping[str, str]]) -> frozenset[str]:
    """The languages some one of these workers reads."""
    return frozenset().union(*map(registered_languages, registrations))


def live_registrations(connection: redis.Redis) -> dict[str, dict[str, str]]:
    """Each live scoring worker's registration (models, labels, languages), by name."""
    return WorkerModels(connection).of(live_scoring_workers(connection))


class LiveLanguages:
    """The languages some live worker reads, read again at most every `refresh_after` s."""

    def __init__(self, connection: redis.Redis, refresh_after: float = REFRESH_AFTER) -> None:
        self.connection = connection
        self.refresh_after = refresh_after
        self._read_at = -float("inf")
        self._languages: frozenset[str] = frozenset()

    def covered(self) -> frozenset[str]:
        """The union of the live workers' languages (empty when no worker is alive)."""
        if time.monotonic() - self._read_at > self.refresh_after:
            self._languages = languages_read(live_registrations(self.connection).values())
            self._read_at = time.monotonic()
        return self._languages

    def covers(self, language: str) -> bool:
        return language in self.covered()
