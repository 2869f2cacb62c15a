"""Fault-test helpers: a served API process and a client thread that submits comments nonstop.

with served_api(redis_url, tmp_path) as base, CommentLoad(base, api_key) as load:
    load.wait_for(lambda: load.count(202) >= 50)
    ...
load.answers  # every (id, status, Retry-After) in the order the answers came
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis
import requests

from moderation.core.redis_keys import KEYS
from moderation.storage.site_store import SiteStore
from tests.conftest import TEST_SECRET_KEY
from tests.support.processes import moderation_env, moderation_process, running_worker, wait_for
from tests.support.redis_server import free_port


@dataclass(frozen=True)
class Answer:
    """What the API said to one submission (status None: no HTTP answer at all)."""

    comment_id: str
    status: int | None
    retry_after: str | None
    at: float  # time.monotonic() when the answer came
    error: str | None = None


class CommentLoad:
    """Submits comments with unique ids to a served API from a background thread, one at a
    time and as fast as they are answered, recording every answer."""

    def __init__(self, base_url: str, api_key: str, prefix: str = "load") -> None:
        self.url = f"{base_url}/v1/comments"
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.prefix = prefix
        self._answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="comment-load", daemon=True)

    def __enter__(self) -> CommentLoad:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        number = 0
        with requests.Session() as session:
            while not self._stop.is_set():
                comment_id = f"{self.prefix}-{number}"
                number += 1
                body = {"id": comment_id, "content": f"Thanks for article number {number}!"}
                try:
                    response = session.post(self.url, json=body, headers=self.headers, timeout=10)
                    retry_after = response.headers.get("Retry-After")
                    answer = Answer(comment_id, response.status_code, retry_after, time.monotonic())
                except requests.RequestException as error:
                    answer = Answer(comment_id, None, None, time.monotonic(), type(error).__name__)
                with self._lock:
                    self._answers.append(answer)

    @property
    def answers(self) -> list[Answer]:
        with self._lock:
            return list(self._answers)

    def count(self, status: int | None) -> int:
        return sum(1 for answer in self.answers if answer.status == status)

    def ids(self, status: int | None) -> list[str]:
        return [answer.comment_id for answer in self.answers if answer.status == status]

    def seconds_of(self, status: int | None) -> float:
        """How long ago the first answer with this status came (0 when none has)."""
        first = next((answer.at for answer in self.answers if answer.status == status), None)
        return 0.0 if first is None else time.monotonic() - first

    def wait_for(
        self, condition: Callable[[], bool], timeout: float = 30.0, what: str = ""
    ) -> None:
        """Wait for `condition` while the load thread runs (fails at once if it died)."""

        def check() -> bool:
            assert self._thread.is_alive(), "the load thread died"
            return condition()

        wait_for(check, timeout=timeout, interval=0.02, what=what)


@contextmanager
def served_api(
    redis_url: str, log_dir: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """`moderation serve` (one gunicorn process) on a free port; yields its base URL once it
    answers /healthz."""
    port = free_port()
    env = moderation_env(
        redis_url,
        {"PORT": str(port), "MODERATION_WEB_CONCURRENCY": "1", **(extra_env or {})},
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{base}/healthz", timeout=2).status_code == 200
        except requests.RequestException:  # not listening yet
            return False

    with moderation_process(["serve"], env, log_dir / "api.log") as process:
        wait_for(up, timeout=60, interval=0.05, what="the API to answer /healthz")
        yield base
        assert process.poll() is None, "the API process exited"


#: Sweep comments pending for 2 s (not 30 s) so a lost job is found within one maintenance run,
#: and let no job run more than 5 s (not 60 s): a job left "started" by a worker that lives on
#: (Redis lost the write that finished it) is given a new one after twice that.
FAST_RECOVERY = {"MODERATION_SWEEP_AFTER": "2", "MODERATION_JOB_TIMEOUT": "5"}


def outage_under_load(
    redis_url: str,
    connection: redis.Redis,
    log_dir: Path,
    outage: Callable[[CommentLoad], None],
    extra_env: Mapping[str, str] | None = None,
    *,
    recovery_timeout: float = 60,
) -> tuple[list[Answer], float]:
    """Serve a nonstop load with `moderation serve` and two `moderation worker`s on a new site
    `news`; once 100 comments were accepted over 4 s, run `outage(load)` (it breaks Redis and
    mends it); then wait for 100 more 202s. Checks that the same worker processes carried on,
    that every answer was a 202 or a 503 with Retry-After, and waits until no comment is
    pending. Returns every answer and when the outage began."""
    api_key = SiteStore(connection, TEST_SECRET_KEY).create("news").api_key
    env = {**FAST_RECOVERY, **(extra_env or {})}
    with (
        running_worker(redis_url, log_dir / "worker-1.log", env) as first,
        running_worker(redis_url, log_dir / "worker-2.log", env) as second,
        served_api(redis_url, log_dir, env) as base,  # the API sets each job's timeout
        CommentLoad(base, api_key) as load,
    ):
        load.wait_for(
            lambda: load.count(202) >= 100 and load.seconds_of(202) >= 4,
            what="100 accepted comments over 4 s",
        )
        began = time.monotonic()
        outage(load)
        accepted_before = load.count(202)
        load.wait_for(
            lambda: load.count(202) >= accepted_before + 100,
            timeout=recovery_timeout,
            what="100 more accepted comments after the outage",
        )
        load.stop()
        # the same worker processes carry on after the outage
        assert first.poll() is None and second.poll() is None
        wait_until_decided(connection, timeout=recovery_timeout)
    answers = load.answers
    assert_accepted_or_unavailable(answers)
    return answers, began


def assert_accepted_or_unavailable(answers: Sequence[Answer]) -> None:
    """Every answer was a 202, or a 503 with a Retry-After (no 500, no answer missing)."""
    statuses = {answer.status for answer in answers}
    assert statuses <= {202, 503}, [a for a in answers if a.status not in (202, 503)][:5]
    assert all(a.retry_after and int(a.retry_after) > 0 for a in answers if a.status == 503)


def wait_until_decided(connection: redis.Redis, timeout: float = 30) -> None:
    """Wait until no comment is pending any more."""
    wait_for(
        lambda: not connection.zcard(KEYS.pending),
        timeout=timeout,
        interval=0.1,
        what="every comment to be decided",
    )


def automatic_decisions(connection: redis.Redis, site: str, comment_id: str) -> int:
    """How many automatic decisions the comment's audit trail records."""
    return automatic_decision_counts(connection, site, [comment_id])[comment_id]


def automatic_decision_counts(
    connection: redis.Redis, site: str, ids: Sequence[str]
) -> dict[str, int]:
    """The same for many comments, read in pipelined chunks (0: none, or no such comment)."""
    counts: dict[str, int] = {}
    for first in range(0, len(ids), 1000):
        chunk = ids[first : first + 1000]
        with connection.pipeline(transaction=False) as pipe:
            for comment_id in chunk:
                pipe.lrange(KEYS.audit(site, comment_id), 0, -1)
            trails = pipe.execute()
        for comment_id, trail in zip(chunk, trails, strict=True):
            events = (json.loads(event) for event in trail)
            counts[comment_id] = sum(1 for event in events if event["actor"] == "auto")
    return counts
