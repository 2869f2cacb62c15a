"""Comments through real worker processes: submitted over HTTP, scored via RQ, decided."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
import requests
from rq import Queue

from moderation.storage.comment_store import CommentStore
from moderation.storage.job_queues import SCORE_COMMENT_JOB, SCORING_QUEUE, scoring_queue
from tests.support.processes import (
    live_workers,
    moderation_env,
    moderation_process,
    running_worker,
    wait_for,
)
from tests.support.redis_server import free_port
from tests.support.tiny_detoxify import CLEAN_EXAMPLE, LABELS, TOXIC_EXAMPLE

pytestmark = pytest.mark.e2e


@pytest.fixture
def worker(redis_server, redis_client, tmp_path):
    with running_worker(redis_server.url, tmp_path / "worker.log") as process:
        yield process


def decided(client, auth, comment_id: str) -> dict:
    """The record once decided (the API blocks on the decision; the loop only bounds retries)."""
    record = wait_for(
        lambda: (
            (r := client.get(f"/v1/comments/{comment_id}?wait=5", headers=auth).get_json())
            and r["decision"]
            and r
        ),
        timeout=60,
        what=f"a decision on {comment_id}",
    )
    return record


def test_clean_comment_is_approved(client, auth, worker):
    body = {"id": "clean", "content": "I disagree with the budget figures, but well argued."}
    assert client.post("/v1/comments", json=body, headers=auth).status_code == 202

    record = decided(client, auth, "clean")
    assert record["status"] == "approved"
    decision = record["decision"]
    assert decision["action"] == "approve"
    assert decision["reasons"] == []
    assert decision["decided_by"] == "auto"
    assert decision["models"]["toxicity"] == "lite"
    assert decision["models"]["spam"]
    assert set(decision["scores"]) >= {"toxicity", "spam"}
    assert all(0.0 <= value <= 1.0 for value in decision["scores"].values())


def test_a_decided_job_leaves_rqs_intermediate_list(
    client, auth, worker, redis_server, redis_client
):
    """The worker listens on language queues too; RQ clears its intermediate list only for a
    one-queue worker, so the worker does it (else RQ's maintenance fails the job later)."""
    body = {"id": "c-1", "content": "I disagree with the budget figures, but well argued."}
    assert client.post("/v1/comments", json=body, headers=auth).status_code == 202
    assert decided(client, auth, "c-1")["status"] == "approved"
    [scoring] = live_workers(redis_server.url)
    assert len(scoring.queue_names()) > 1  # the case RQ does not handle itself
    assert redis_client.llen(scoring_queue(redis_client).intermediate_queue_key) == 0


def test_link_spam_is_held(client, auth, worker):
    content = (
        "Great post! Check out my channel http://spam.example/a and http://bit.ly/xyz "
        "and www.cheap-pills.example and http://crypto.example/win subscribe!!!"
    )
    client.post("/v1/comments", json={"id": "spam", "content": content}, headers=auth)

    record = decided(client, auth, "spam")
    assert record["status"] == "held"
    reasons = record["decision"]["reasons"]
    assert "4 links > 2 allowed" in reasons
    assert any(reason.startswith("spam ") for reason in reasons)


def test_toxic_comment_is_held(client, auth, worker):
    body = {"id": "toxic", "content": "You are a fucking idiot and a worthless piece of shit."}
    client.post("/v1/comments", json=body, headers=auth)

    record = decided(client, auth, "toxic")
    assert record["status"] == "held"
    assert any(r.startswith("toxicity ") for r in record["decision"]["reasons"])


def test_honeypot_is_held(client, auth, worker):
    body = {"id": "bot", "content": "Nice article.", "honeypot": "http://bot.example"}
    client.post("/v1/comments", json=body, headers=auth)

    record = decided(client, auth, "bot")
    assert record["status"] == "held"
    assert "honeypot field filled" in record["decision"]["reasons"]


def test_scoring_twice_leaves_one_decision(client, auth, worker, redis_client):
    client.post("/v1/comments", json={"id": "once", "content": "Hello there"}, headers=auth)
    first = decided(client, auth, "once")["decision"]

    # A second job for the same comment (as a retry or a sweeper would enqueue) changes nothing.
    queue = Queue(SCORING_QUEUE, connection=redis_client)
    job = queue.enqueue_call(SCORE_COMMENT_JOB, args=("news", "once"))
    wait_for(lambda: job.get_status(refresh=True) == "finished", what="the second job")
    assert job.return_value() == {"outcome": "already_decided", "status": "approved"}
    assert client.get("/v1/comments/once", headers=auth).get_json()["decision"] == first


def test_repeated_text_is_counted_as_duplicate(client, auth, worker):
    content = "Visit my page for free followers"
    for number in range(4):
        body = {"id": f"dup-{number}", "content": content + "!" * number}
        client.post("/v1/comments", json=body, headers=auth)
    first, last = decided(client, auth, "dup-0"), decided(client, auth, "dup-3")
    # the fourth copy is counted with the three before it; the first saw none
    assert last["decision"]["scores"]["spam"] > first["decision"]["scores"]["spam"]
    assert last["status"] == "held"
    assert any(r.startswith("spam ") for r in last["decision"]["reasons"])


def test_worker_with_a_detoxify_checkpoint(redis_server, client, auth, tiny_detoxify, tmp_path):
    extra = {
        "MODERATION_TOXICITY_MODEL": f"detoxify:{tiny_detoxify.checkpoint}",
        "MODERATION_DETOXIFY_CONFIG_DIR": str(tiny_detoxify.config_dir),
    }
    with running_worker(redis_server.url, tmp_path / "worker.log", extra):
        client.post("/v1/comments", json={"id": "t", "content": TOXIC_EXAMPLE}, headers=auth)
        client.post("/v1/comments", json={"id": "c", "content": CLEAN_EXAMPLE}, headers=auth)
        toxic = decided(client, auth, "t")
        clean = decided(client, auth, "c")

    assert toxic["decision"]["models"]["toxicity"] == f"detoxify:{tiny_detoxify.checkpoint}"
    assert set(toxic["decision"]["scores"]) == LABELS | {"spam"}
    assert toxic["status"] == "held"
    assert any(r.startswith("toxicity ") for r in toxic["decision"]["reasons"])
    assert clean["status"] == "approved"


def test_served_api_and_worker_processes(redis_server, redis_client, site, tmp_path: Path):
    """`moderation serve` under gunicorn plus `moderation worker`: the quick-start flow."""
    port = free_port()
    env = moderation_env(redis_server.url, {"PORT": str(port), "MODERATION_WEB_CONCURRENCY": "1"})
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {site.api_key}"}

    def ready() -> bool:
        try:
            return requests.get(f"{base}/readyz", timeout=1).status_code == 200
        except requests.RequestException:  # not listening yet, or still booting
            return False

    with (
        moderation_process(["serve"], env, tmp_path / "api.log"),
        running_worker(redis_server.url, tmp_path / "worker.log"),
    ):
        wait_for(ready, timeout=60, interval=0.1, what="/readyz")
        readiness = requests.get(f"{base}/readyz", timeout=5).json()
        assert readiness["workers"] == 1
        assert readiness["toxicity_model"] == "lite"

        response = requests.post(
            f"{base}/v1/comments?wait=5",
            json={"id": "hello-1", "content": "Thanks, this was a great read!"},
            headers=headers,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert response.json()["decision"]["action"] == "approve"
        # 200, not 202: decided within the wait. How fast: bench/wait_latency.py (a sub-second
        # bound is flaky on a busy machine).

        metrics = requests.get(f"{base}/metrics", timeout=5).text
        assert "moderation_live_workers 1.0" in metrics
    with redis.Redis.from_url(redis_server.url) as connection:
        assert CommentStore(connection).pending_count() == 0


def test_worker_logs_are_json_with_the_request_id_and_never_the_text(
    client, auth, worker, tmp_path
):
    secret_text = "My phone is 555-0100 and my email is ann@example.org"
    body = {"id": "private", "content": secret_text, "author": {"email": "ann@example.org"}}
    headers = {**auth, "X-Request-Id": "req-e2e-42"}
    response = client.post("/v1/comments", json=body, headers=headers)
    assert response.headers["X-Request-Id"] == "req-e2e-42"
    decided(client, auth, "private")

    def decided_lines() -> list[dict]:
        lines = (tmp_path / "worker.log").read_text().splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{")]
        return [r for r in records if r["message"].startswith("decided")]

    (line,) = wait_for(decided_lines, what="the worker to log its decision")
    assert line["request_id"] == "req-e2e-42"
    assert line["job_id"]
    assert line["level"] == "INFO"
    log = (tmp_path / "worker.log").read_text()
    assert "555-0100" not in log
    assert "ann@example.org" not in log
