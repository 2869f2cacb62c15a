"""Batched scoring in the worker: same scores as one at a time, each comment its own job."""

from __future__ import annotations

import json

import pytest
from rq import Queue
from rq.registry import FinishedJobRegistry

from moderation.storage.comment_store import CommentStore
from moderation.storage.job_queues import SCORING_QUEUE
from tests.support.processes import running_worker, wait_for

pytestmark = pytest.mark.e2e

TEXTS = [
    "you are a stupid idiot",
    "thanks for the great post",
    "I disagree with every point here, but it is well written.",
    "idiot",
    "what a lovely photo of the harbour at dawn",
    "stupid stupid stupid",
] * 4


def score_all(client, headers, redis_server, redis_client, tiny_detoxify, tmp_path, batch_size):
    for number, text in enumerate(TEXTS):
        body = {"id": f"c-{number}", "content": f"{text} ({number})"}
        assert client.post("/v1/comments", json=body, headers=headers).status_code == 202
    env = {
        "MODERATION_TOXICITY_MODEL": f"detoxify:{tiny_detoxify.checkpoint}",
        "MODERATION_DETOXIFY_CONFIG_DIR": str(tiny_detoxify.config_dir),
        "MODERATION_BATCH_SIZE": str(batch_size),
        "MODERATION_BATCH_WAIT": "0.05",
        # fp32 torch: int8 scales its inputs per pass, so only fp32 scores the same in any pass
        "MODERATION_RUNTIME": "torch",
        "MODERATION_PRECISION": "fp32",
    }
    log = tmp_path / f"worker-{batch_size}.log"
    with running_worker(redis_server.url, log, env):
        wait_for(lambda: CommentStore(redis_client).pending_count() == 0, timeout=120)
    records = [
        client.get(f"/v1/comments/c-{number}", headers=headers).get_json()
        for number in range(len(TEXTS))
    ]
    batches = [
        json.loads(line)["batch"]
        for line in log.read_text().splitlines()
        if line.startswith("{") and "batch" in json.loads(line)
    ]
    return records, batches


def test_batched_scores_equal_one_at_a_time(
    client, redis_server, redis_client, make_site, tiny_detoxify, tmp_path
):
    one = {"Authorization": f"Bearer {make_site('one').api_key}"}
    many = {"Authorization": f"Bearer {make_site('many').api_key}"}
    singles, single_batches = score_all(
        client, one, redis_server, redis_client, tiny_detoxify, tmp_path, batch_size=1
    )
    batched, batches = score_all(
        client, many, redis_server, redis_client, tiny_detoxify, tmp_path, batch_size=16
    )

    assert set(single_batches) == {1}  # batch size 1: every comment scored on its own
    assert max(batches) > 1, batches  # the queue was full: passes of several formed
    assert sum(batches) == len(TEXTS)
    for alone, together in zip(singles, batched, strict=True):
        for label, value in alone["decision"]["scores"].items():
            if label != "spam":
                assert together["decision"]["scores"][label] == pytest.approx(value, abs=1e-4)
        assert together["decision"]["action"] == alone["decision"]["action"]

    # each comment stayed its own RQ job, finished once
    finished = FinishedJobRegistry(SCORING_QUEUE, connection=redis_client)
    assert finished.count == 2 * len(TEXTS)
    assert Queue(SCORING_QUEUE, connection=redis_client).count == 0
