"""Overload: a burst many times larger than the workers score meanwhile.

The queue grows, memory stays bounded (Redis per accepted comment; a worker holds at most one
batch of jobs, so its memory does not follow the backlog), /readyz and /metrics show the
backlog to the operator, and in the end every comment has exactly one automatic decision.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

import psutil
import pytest
import redis
from flask.testing import FlaskClient
from rq.registry import StartedJobRegistry

from moderation.app import create_app
from moderation.core.records import Comment, Status, Submission, utc_now
from moderation.core.redis_keys import KEYS
from moderation.core.settings import Settings
from moderation.storage.comment_store import CommentStore
from moderation.storage.job_queues import SCORING_QUEUE, SCORING_RESULT_TTL
from moderation.storage.spam_counters import SpamCounters
from tests.support.load import automatic_decision_counts
from tests.support.processes import running_worker, wait_for

BATCH_SIZE = 16  # MODERATION_BATCH_SIZE given to the workers
MIB = 2**20
#: Redis memory per accepted comment at any moment of the run: while it waits, the record
#: and its RQ job (about 4.3 KiB for a 300-character comment); once decided, the record with
#: its decision, audit trail and site event, plus the finished job and its result (about
#: 10 KiB), until these expire after SCORING_RESULT_TTL.
REDIS_BYTES_PER_COMMENT = 12 * 1024
#: What stays in Redis per decided comment (the `mod:` keys): about 2.5 KiB here.
REDIS_KEPT_BYTES_PER_COMMENT = 4 * 1024
#: How much a worker's resident memory may grow while a backlog of thousands builds and
#: drains: allocator noise, not one allocation per waiting comment.
WORKER_RSS_GROWTH = 8 * MIB

SENTENCE = (
    "thanks for the article I think the second point is wrong because the data says otherwise "
    "great video please post more about this topic my friend sent me here and I agree"
)
WORDS = SENTENCE.split()


def comment_text(number: int) -> str:
    """A different, plausible comment for each number (about 300 characters)."""
    picked = [WORDS[(number * 7 + step * 3) % len(WORDS)] for step in range(50)]
    return f"#{number} " + " ".join(picked)


# --- what the test watches while the backlog builds and drains -------------------------------


def gauge(text: str, name: str) -> float:
    """One unlabelled sample from Prometheus text (fails when the metric is missing)."""
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


@dataclass
class Peaks:
    """The largest values seen while sampling."""

    queue_depth: int = 0
    oldest_pending_s: float = 0.0
    in_hand: int = 0
    worker_rss: dict[int, int] = field(default_factory=dict)
    redis_memory: int = 0


class Watcher:
    """Samples /readyz, /metrics, Redis, the started registry and the workers' memory."""

    def __init__(self, client: FlaskClient, connection: redis.Redis) -> None:
        self.client = client
        self.redis = connection
        self.started = StartedJobRegistry(SCORING_QUEUE, connection=connection)
        self.workers: dict[int, psutil.Process] = {}
        self.peaks = Peaks()
        #: (readyz body, /metrics gauges) when the queue was deepest, and the latest ones.
        self.backlog: tuple[dict, dict[str, float]] | None = None
        self.last: tuple[dict, dict[str, float]] | None = None

    def watch(self, pid: int) -> int:
        """Start following a worker's memory; returns its resident set now."""
        self.workers[pid] = psutil.Process(pid)
        return self.workers[pid].memory_info().rss

    def forget(self, pid: int) -> None:
        self.workers.pop(pid, None)

    def sample(self) -> dict:
        ready = self.client.get("/readyz")
        assert ready.status_code == 200, ready.get_json()  # a backlog is not unreadiness
        body = ready.get_json()
        text = self.client.get("/metrics").get_data(as_text=True)
        names = ("queue_depth", "pending_comments", "oldest_pending_seconds", "live_workers")
        figures = {name: gauge(text, f"moderation_{name}") for name in names}
        peaks = self.peaks
        peaks.queue_depth = max(peaks.queue_depth, body["queue_depth"])
        peaks.oldest_pending_s = max(peaks.oldest_pending_s, figures["oldest_pending_seconds"])
        peaks.in_hand = max(peaks.in_hand, len(self.started.get_job_ids()))
        peaks.redis_memory = max(peaks.redis_memory, used_memory(self.redis))
        for pid, process in self.workers.items():
            peaks.worker_rss[pid] = max(peaks.worker_rss.get(pid, 0), process.memory_info().rss)
        self.last = (body, figures)
        if self.backlog is None or body["queue_depth"] > self.backlog[0]["queue_depth"]:
            self.backlog = self.last
        return body


# --- submitting and checking --------------------------------------------------------------


def submit_burst(
    client: FlaskClient, auth: dict, prefix: str, count: int, between: Callable[[], object]
) -> list[str]:
    """POST `count` comments through the batch endpoint, 100 a request, calling `between`
    after each request. Returns the ids accepted."""
    accepted: list[str] = []
    for first in range(0, count, 100):
        comments = [
            {"id": f"{prefix}-{n}", "content": comment_text(n), "author": {"id": f"u{n % 500}"}}
            for n in range(first, min(count, first + 100))
        ]
        response = client.post("/v1/comments/batch", json={"comments": comments}, headers=auth)
        assert response.status_code == 200, response.get_json()
        results = response.get_json()["results"]
        accepted += [r["id"] for r in results if r["status"] == "accepted"]
        between()
    return accepted


def used_memory(connection: redis.Redis) -> int:
    return int(connection.info("memory")["used_memory"])


def kept_memory(connection: redis.Redis) -> int:
    """Bytes of every `mod:` key: what the service keeps once the RQ jobs have expired."""
    keys = list(connection.scan_iter(match="mod:*", count=1000))
    with connection.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        return sum(size or 0 for size in pipe.execute())


def assert_scoring_jobs_expire(connection: redis.Redis, site: str, comment_id: str) -> None:
    """A decided comment's finished job and its RQ result expire within a minute."""
    job_id = CommentStore(connection).job_id(site, comment_id)
    for key in (f"rq:job:{job_id}", f"rq:results:{job_id}"):
        assert 0 < connection.ttl(key) <= SCORING_RESULT_TTL, key


def pending(connection: redis.Redis) -> int:
    return CommentStore(connection).pending_count()


@pytest.fixture
def unlimited_client(settings: Settings) -> Iterator[FlaskClient]:
    """The API without the per-site rate limit: these tests measure capacity, not limits."""
    app = create_app(settings.with_overrides(rate_limit_site=None))
    yield app.test_client()
    app.extensions["moderation"].redis.close()


def assert_backlog_reported(watcher: Watcher) -> None:
    """While the backlog stood, /readyz and /metrics said how deep and how old it was."""
    assert watcher.backlog is not None, "never saw a backlog"
    body, figures = watcher.backlog
    assert body["status"] == "ok" and body["workers"] >= 1
    assert body["pending"] >= body["queue_depth"] > 100
    assert body["oldest_pending_seconds"] > 0
    # /metrics was read a moment later, while the worker went on draining.
    assert figures["queue_depth"] > body["queue_depth"] // 2
    assert figures["pending_comments"] > body["pending"] // 2
    assert figures["oldest_pending_seconds"] > 0
    assert figures["live_workers"] >= 1


def assert_drained(watcher: Watcher) -> None:
    body, figures = watcher.last or ({}, {})
    assert (body["queue_depth"], body["pending"], body["oldest_pending_seconds"]) == (0, 0, None)
    assert (figures["queue_depth"], figures["pending_comments"]) == (0, 0)
    assert figures["oldest_pending_seconds"] == 0


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_burst_far_beyond_capacity_queues_drains_and_decides_each_comment_once(
    unlimited_client, auth, redis_server, redis_client, tmp_path
):
    client = unlimited_client
    burst = 3000
    env = {"MODERATION_BATCH_SIZE": str(BATCH_SIZE)}
    with running_worker(redis_server.url, tmp_path / "worker.log", env) as worker:
        # The first batches pay one-off costs (imports, first model pass): not measured.
        warm = submit_burst(client, auth, "warm", 200, lambda: None)
        wait_for(lambda: pending(redis_client) == 0, timeout=60, what="the warm-up")
        watcher = Watcher(client, redis_client)
        rss_before = watcher.watch(worker.pid)
        memory_before = used_memory(redis_client)
        kept_before = kept_memory(redis_client)

        ids = submit_burst(client, auth, "c", burst, watcher.sample)
        assert len(ids) == burst
        wait_for(
            lambda: watcher.sample()["pending"] == 0,
            timeout=90,
            interval=0.1,
            what="the backlog to drain",
        )
        memory_after = used_memory(redis_client)

    peaks = watcher.peaks
    # The queue grew: the burst arrived far faster than one worker scores.
    assert peaks.queue_depth > burst // 4, peaks
    assert_backlog_reported(watcher)
    assert_drained(watcher)
    # Memory stayed bounded: the worker held one batch at a time, whatever the backlog.
    assert 1 <= peaks.in_hand <= BATCH_SIZE, peaks
    assert peaks.worker_rss[worker.pid] - rss_before < WORKER_RSS_GROWTH, (rss_before, peaks)
    for memory in (peaks.redis_memory, memory_after):
        assert (memory - memory_before) / burst < REDIS_BYTES_PER_COMMENT, (memory_before, peaks)
    kept = (kept_memory(redis_client) - kept_before) / burst
    assert kept < REDIS_KEPT_BYTES_PER_COMMENT, kept
    assert_scoring_jobs_expire(redis_client, "news", ids[-1])
    # Nothing lost, nothing decided twice.
    decisions = automatic_decision_counts(redis_client, "news", warm + ids)
    assert sorted(set(decisions.values())) == [1]


@pytest.mark.soak
@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_a_long_overload_survives_a_killed_worker_and_the_sweeper(
    unlimited_client, auth, redis_server, redis_client, tmp_path
):
    """20,000 comments at two workers while the sweeper runs every maintenance round (it must
    leave queued jobs alone) and one worker is killed with SIGKILL mid-backlog: every comment
    still ends with exactly one automatic decision."""
    client = unlimited_client
    burst = 20_000
    env = {"MODERATION_BATCH_SIZE": str(BATCH_SIZE), "MODERATION_SWEEP_AFTER": "2"}
    watcher = Watcher(client, redis_client)
    with ExitStack() as stack:
        workers = [
            stack.enter_context(running_worker(redis_server.url, tmp_path / f"w{n}.log", env))
            for n in range(2)
        ]
        rss_before = {process.pid: watcher.watch(process.pid) for process in workers}
        memory_before = used_memory(redis_client)
        ids = submit_burst(client, auth, "c", burst, watcher.sample)
        assert len(ids) == burst
        assert watcher.peaks.queue_depth > burst // 4, watcher.peaks

        # Kill one worker while it holds a batch; a fresh one joins.
        victim = workers[0]
        wait_for(lambda: watcher.started.get_job_ids(), timeout=30, interval=0.005, what="a batch")
        watcher.forget(victim.pid)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        stack.enter_context(running_worker(redis_server.url, tmp_path / "w2.log", env))
        wait_for(
            lambda: watcher.sample()["pending"] == 0,
            timeout=600,
            interval=0.5,
            what="the backlog to drain",
        )

    assert_backlog_reported(watcher)
    assert_drained(watcher)
    peaks = watcher.peaks
    # Started jobs: a batch per live worker, plus the killed one's until they are swept.
    assert 1 <= peaks.in_hand <= 3 * BATCH_SIZE, peaks
    survivor = workers[1].pid
    assert peaks.worker_rss[survivor] - rss_before[survivor] < WORKER_RSS_GROWTH, peaks
    growth = peaks.redis_memory - memory_before
    assert growth / burst < REDIS_BYTES_PER_COMMENT, (memory_before, peaks)
    # The sweeper left the queued backlog alone: at most the killed worker's batch was lost.
    requeued = sum(
        int(count)
        for log in tmp_path.glob("w*.log")
        for count in re.findall(r"sweeper: (\d+) pending comments", log.read_text())
    )
    assert requeued <= BATCH_SIZE, requeued
    decisions = automatic_decision_counts(redis_client, "news", ids)
    assert sorted(set(decisions.values())) == [1], {
        count: sum(1 for value in decisions.values() if value == count)
        for count in set(decisions.values())
    }


def test_spam_counters_still_count_a_burst_scored_after_a_long_backlog(redis_client):
    """Regression: the recent-activity sets were trimmed by the clock (now - window), so a
    comment scored more than a burst window after it arrived dropped its own entry and its
    neighbours', and an author's burst in a backlog counted 0 (never held as a burst)."""
    counters = SpamCounters(redis_client)
    arrived = utc_now() - 300  # five minutes in the queue; the burst window is one minute
    counts = []
    for number in range(5):
        comment = Comment(
            site="news",
            submission=Submission(id=f"c-{number}", content=f"text {number}", author={"id": "u"}),
            content_hash="-",
            submitted_at=arrived + number,
            status=Status.PENDING,
        )
        activity = counters.count_activity(
            comment, f"fingerprint-{number}", duplicate_window=3600, burst_window=60
        )
        counts.append(activity.author_burst)
    assert counts == [1, 2, 3, 4, 5]
    # The sets still expire: a backlog's lag is added to the window, nothing lives forever.
    ttl = redis_client.ttl(KEYS.recent("author", "news", "u"))
    assert 60 < ttl <= 60 + 301
