"""One-off checks: scored by a real worker, answered at once, announced to no one."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis
from flask import Flask

from moderation.actions.immediate_checks import CHECK_ID_PREFIX, check_now
from moderation.core.records import Action, Submission
from moderation.core.redis_keys import KEYS
from moderation.storage.comment_store import CommentStore
from moderation.storage.job_queues import delivery_queue, scoring_queue
from moderation.storage.site_store import SiteStore
from tests.support.processes import running_worker, wait_for

SPAM = Submission(
    id="",
    content="BUY CHEAP PILLS NOW!!! http://a.example http://b.example http://c.example",
    author={"id": "u-1", "ip": "203.0.113.9"},
)


@pytest.fixture
def worker(redis_server, tmp_path) -> Iterator[None]:
    with running_worker(redis_server.url, tmp_path / "worker.log"):
        yield


def comment_keys(connection: redis.Redis, site: str) -> list[bytes]:
    return list(connection.scan_iter(KEYS.comment(site, "*")))


@pytest.mark.e2e
def test_a_check_is_scored_answered_and_forgotten(app: Flask, site, redis_client, worker):
    SiteStore(redis_client, app.extensions["moderation"].settings.secret_key).set_callback_url(
        "news", "https://receiver.example/hook"
    )
    decided = check_now(app.extensions["moderation"], "news", SPAM, timeout=30)
    assert decided is not None
    assert decided.id.startswith(CHECK_ID_PREFIX)
    assert decided.decision.action is Action.HOLD
    assert decided.decision.scores["spam"] >= 0.7
    assert "toxicity" in decided.decision.scores
    # Nothing stays: no record, no audit trail, no review queue entry, no webhook.
    assert comment_keys(redis_client, "news") == []
    assert not redis_client.exists(KEYS.audit("news", decided.id))
    assert redis_client.zcard(KEYS.held("news")) == 0
    assert redis_client.zcard(KEYS.pending) == 0
    assert redis_client.zcard(KEYS.outbox) == 0
    assert delivery_queue(redis_client).count == 0


@pytest.mark.e2e
def test_a_kept_check_keeps_its_scores_but_not_its_text(app: Flask, site, redis_client, worker):
    decided = check_now(app.extensions["moderation"], "news", SPAM, timeout=30, keep_record=True)
    stored = CommentStore(redis_client).get("news", decided.id)
    assert stored is not None and stored.is_check
    assert stored.decision.scores == decided.decision.scores
    assert stored.submission.content == ""
    assert stored.submission.author == {}
    assert redis_client.zcard(KEYS.held("news")) == 0  # nothing for moderators to read


def test_without_a_worker_a_check_times_out_with_none(app: Flask, site, redis_client):
    assert check_now(app.extensions["moderation"], "news", SPAM, timeout=0.2) is None
    # It stays queued, to be decided (text erased) when a worker comes.
    assert len(comment_keys(redis_client, "news")) == 1


@pytest.mark.e2e
def test_a_check_is_scored_ahead_of_a_backlog(
    app: Flask, client, auth, site, redis_client, redis_server, tmp_path
):
    """Its caller waits; the queued comments' callers do not: the check jumps the queue."""
    backlog = 300
    for first in range(0, backlog, 100):
        batch = [{"id": f"b{n}", "content": f"Comment {n}."} for n in range(first, first + 100)]
        response = client.post("/v1/comments/batch", json={"comments": batch}, headers=auth)
        assert response.status_code == 200, response.get_json()
    answer: dict[str, object] = {}

    def check() -> None:
        svc = app.extensions["moderation"]
        answer["decided"] = check_now(svc, "news", SPAM, timeout=60, keep_record=True)

    waiting = threading.Thread(target=check)
    waiting.start()
    queue = scoring_queue(redis_client)
    wait_for(lambda: queue.count == backlog + 1, what="the check to be queued")
    with running_worker(redis_server.url, tmp_path / "worker.log"):
        waiting.join(timeout=90)
    assert not waiting.is_alive(), "check_now did not return"
    decided = answer["decided"]
    assert decided is not None
    # The site's event stream, from the check's submission on, holds only decisions, in the
    # order they were stored: the check's is in the worker's first batch, not behind 300.
    events = [f[b"comment"].decode() for _, f in redis_client.xrange(KEYS.site_events("news"))]
    decisions = events[events.index(decided.id) + 1 :]
    batch_size = app.extensions["moderation"].settings.batch_size
    assert decisions.index(decided.id) < batch_size, decisions[:40]
