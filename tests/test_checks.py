"""One-off checks: scored by a real worker, answered at once, announced to no one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from flask import Flask

from moderation.checks import CHECK_ID_PREFIX, check_now
from moderation.keyspace import KEYS
from moderation.queue import delivery_queue
from moderation.records import Action, Submission
from moderation.sites import SiteStore
from moderation.store import CommentStore
from tests.support.processes import running_worker

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
    with app.test_request_context():
        decided = check_now("news", SPAM, timeout=30)
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
    with app.test_request_context():
        decided = check_now("news", SPAM, timeout=30, keep_record=True)
    stored = CommentStore(redis_client).get("news", decided.id)
    assert stored is not None and stored.is_check
    assert stored.decision.scores == decided.decision.scores
    assert stored.submission.content == ""
    assert stored.submission.author == {}
    assert redis_client.zcard(KEYS.held("news")) == 0  # nothing for moderators to read


def test_without_a_worker_a_check_times_out_with_none(app: Flask, site, redis_client):
    with app.test_request_context():
        assert check_now("news", SPAM, timeout=0.2) is None
    # It stays queued, to be decided (text erased) when a worker comes.
    assert len(comment_keys(redis_client, "news")) == 1
