"""Waiting callers first, at the level of a forward pass: a check that arrives while a worker
scores a batch is decided before the batch's next pass, not after the whole batch.

The worker runs in this process (a real `ScoringWorker` on the session's Redis, its runtime
started from settings with a tiny Detoxify model); its model is wrapped so that the check is
queued, through the same call the API makes, while the worker's first pass is being scored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest
import redis
from flask.testing import FlaskClient

from moderation.core.records import Submission
from moderation.core.redis_keys import KEYS
from moderation.core.settings import Settings
from moderation.storage.comment_store import CommentStore
from moderation.storage.job_queues import ScoringEnqueuer, is_check_job, scoring_queue
from tests.support.tiny_detoxify import TinyDetoxify
from workers.scoring import runtime as worker_runtime
from workers.scoring.toxicity import DetoxifyScorer
from workers.scoring.worker import ScoringWorker, worker_name

PASS_SIZE = 2
BATCH_SIZE = 12
CHECK_ID = "check-arrives-mid-batch"


class CheckArrivesDuringFirstPass:
    """The worker's model, which queues a check while it scores its first pass."""

    def __init__(self, inner: DetoxifyScorer, queue_check: Callable[[], None]) -> None:
        self.inner, self.queue_check = inner, queue_check
        self.name, self.labels, self.languages = inner.name, inner.labels, inner.languages
        self.batch_size = inner.batch_size
        self.passes: list[int] = []

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        if not self.passes:
            self.queue_check()
        self.passes.append(len(texts))
        return self.inner.score(texts)


def decisions_in_order(connection: redis.Redis, site: str) -> list[str]:
    """The ids of the site's comments in the order their decisions were stored."""
    events = connection.xrange(KEYS.site_events(site))
    decided = [f for _, f in events if json.loads(f[b"event"])["action"] != "submit"]
    return [fields[b"comment"].decode() for fields in decided]


@pytest.mark.e2e
def test_a_check_arriving_mid_batch_is_decided_before_the_next_pass(
    client: FlaskClient,
    auth: dict[str, str],
    settings: Settings,
    redis_client: redis.Redis,
    tiny_detoxify: TinyDetoxify,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    comments = [{"id": f"b{n}", "content": f"Comment number {n}."} for n in range(BATCH_SIZE)]
    response = client.post("/v1/comments/batch", json={"comments": comments}, headers=auth)
    assert response.status_code == 200, response.get_json()
    monkeypatch.setattr(worker_runtime, "_runtime", None)
    worker_settings = settings.with_overrides(
        toxicity_model=f"detoxify:{tiny_detoxify.checkpoint}",
        detoxify_config_dir=tiny_detoxify.config_dir,
        runtime="torch",
        precision="fp32",
        pass_size=PASS_SIZE,
        batch_size=BATCH_SIZE,
    )
    started = worker_runtime.start_runtime(worker_settings)
    store, enqueue = CommentStore(redis_client), ScoringEnqueuer(redis_client, worker_settings)

    def queue_check() -> None:  # what moderation.actions.immediate_checks.check_now does
        check = Submission(id=CHECK_ID, content="a question someone is waiting on")
        store.accept("news", check, enqueue.ahead, keep_text=False, is_check=True)

    model = CheckArrivesDuringFirstPass(started.toxicity, queue_check)  # type: ignore[arg-type]
    monkeypatch.setattr(worker_runtime, "_runtime", replace(started, toxicity=model))
    queue = scoring_queue(redis_client)
    worker = ScoringWorker([queue], connection=redis_client, name=worker_name("test"))
    worker.register_birth()
    try:
        taken = worker.dequeue_job_and_maintain_ttl(None)
        assert taken is not None and not is_check_job(taken[0].id)
        worker.execute_job(*taken)
    finally:
        worker.register_death()

    order = decisions_in_order(redis_client, "news")
    assert sorted(order) == sorted([CHECK_ID, *(c["id"] for c in comments)])
    # Decided right after the pass during which it arrived, before the batch's other passes.
    assert order.index(CHECK_ID) == PASS_SIZE, order
    assert model.passes == [PASS_SIZE, 1, *[PASS_SIZE] * (BATCH_SIZE // PASS_SIZE - 1)]
    assert queue.count == 0
