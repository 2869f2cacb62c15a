"""/metrics: correct totals across several gunicorn processes and several workers; /readyz."""

from __future__ import annotations

import pytest
import redis
import requests

from moderation.storage.moderator_store import ModeratorStore, Role
from tests.support.processes import (
    live_workers,
    moderation_env,
    moderation_process,
    running_worker,
    wait_for,
)
from tests.support.prometheus import sample
from tests.support.redis_server import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(redis_server, tmp_path):
    """`moderation serve` with three gunicorn processes."""
    port = free_port()
    env = moderation_env(
        redis_server.url,
        {
            "PORT": str(port),
            "MODERATION_WEB_CONCURRENCY": "3",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        },
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{base}/healthz", timeout=2).status_code == 200
        except requests.RequestException:  # not listening yet, or still booting
            return False

    with moderation_process(["serve"], env, tmp_path / "api.log"):
        wait_for(up, timeout=60, interval=0.1, what="the API")
        yield base


def test_http_totals_add_up_across_gunicorn_processes(served):
    before = sample(requests.get(f"{served}/metrics").text, "moderation_http_requests_total",
                    method="GET", route="/healthz", status="200")  # fmt: skip
    with requests.Session() as session:
        for _ in range(30):
            # a new connection each time lets different processes answer
            assert requests.get(f"{served}/healthz", timeout=5).status_code == 200
        assert session.get(f"{served}/v1/comments/x", timeout=5).status_code == 401
    for _ in range(5):  # whichever process answers the scrape, the totals are the same
        text = requests.get(f"{served}/metrics", timeout=5).text
        healthz = sample(text, "moderation_http_requests_total",
                         method="GET", route="/healthz", status="200")  # fmt: skip
        assert healthz - before == 30
        route = "/v1/comments/<path:comment_id>"
        unauthorized = sample(text, "moderation_http_requests_total",
                              method="GET", route=route, status="401")  # fmt: skip
        assert unauthorized == 1
        count = sample(text, "moderation_http_request_duration_seconds_count",
                       method="GET", route="/healthz")  # fmt: skip
        assert count - before == 30


def waiting_on_the_queue(connection: redis.Redis) -> int:
    """Clients blocked in the dequeue a scoring worker waits in (RQ's BLMOVE)."""
    return sum(1 for c in connection.client_list() if c["cmd"] == "blmove" and "b" in c["flags"])


def scored_by(redis_url: str) -> dict[str, int]:
    """Each live scoring worker's successful jobs (one a comment), from RQ's registration."""
    return {worker.name: worker.successful_job_count for worker in live_workers(redis_url)}


def test_worker_figures_add_up_across_workers(served, site, redis_server, redis_client, tmp_path):
    """Two workers each decide some of the comments, and the figures add up over both.

    Each comment is submitted once both workers wait on the queue (`?wait=`: the next once
    this one is decided). Redis hands a pushed job to the client that has waited longest, so
    the worker that did not take the last comment takes the next: both work, whatever the
    machine's speed. More comments follow (up to 60) only if one worker has not worked yet."""
    headers = {"Authorization": f"Bearer {site.api_key}"}

    def submit(comment_id: str, content: str) -> dict:
        wait_for(lambda: waiting_on_the_queue(redis_client) == 2, what="both workers waiting")
        response = requests.post(
            f"{served}/v1/comments?wait=10",
            json={"id": comment_id, "content": content},
            headers=headers,
            timeout=30,
        )
        assert response.status_code == 200, response.text  # decided within the wait
        return response.json()

    with (
        running_worker(redis_server.url, tmp_path / "w1.log"),
        running_worker(redis_server.url, tmp_path / "w2.log"),
    ):
        submitted = 0
        while submitted < 20 or (
            min(scored_by(redis_server.url).values(), default=0) == 0 and submitted < 60
        ):
            submit(f"c-{submitted}", "Thanks for writing this.")
            submitted += 1
        per_worker = scored_by(redis_server.url)
        # A held comment, rejected by a moderator below: abuse the worker holds for toxicity.
        held = submit("h", "You are a fucking idiot and everyone here knows it.")
        text = requests.get(f"{served}/metrics", timeout=5).text
        assert sample(text, "moderation_live_workers") == 2

    assert len(per_worker) == 2 and all(count > 0 for count in per_worker.values()), per_worker
    assert sum(per_worker.values()) == submitted  # one job a comment, none run twice
    assert sample(text, "moderation_comments_accepted_total") == submitted + 1
    # the same text again and again: the later copies are held as repeated spam
    automatic = [
        sample(text, "moderation_decisions_total", action=action, decider="auto")
        for action in ("approve", "hold")
    ]
    assert sum(automatic) == submitted + 1
    assert all(count > 0 for count in automatic)
    scored = submitted + 1
    assert sample(text, "moderation_scoring_duration_seconds_count", model="lite") == scored
    assert (
        sample(text, "moderation_scoring_duration_seconds_bucket", le="+Inf", model="lite")
        == scored
    )
    assert sample(text, "moderation_queue_depth") == 0

    assert held["status"] == "held"
    assert sample(text, "moderation_pending_comments") == 0
    token = ModeratorStore(redis_client).create("ann", Role.ADMIN, []).token
    review = requests.post(
        f"{served}/v1/review/news/h",
        json={"action": "reject"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert review.status_code == 200, review.text
    text = requests.get(f"{served}/metrics", timeout=5).text
    assert sample(text, "moderation_decisions_total", action="reject", decider="moderator") == 1
    assert sample(text, "moderation_pending_comments") == 0


def test_readiness_says_what_is_missing(redis_client, served, redis_server, tmp_path):
    """redis_client first: it empties Redis, so no job of an earlier test is left queued. A
    worker of an earlier test that is still stopping registers again when it finds Redis
    emptied (as after a Redis restart); it is gone once it stops."""

    def no_worker() -> list[requests.Response]:
        answer = requests.get(f"{served}/readyz", timeout=5)
        return [answer] if answer.status_code == 503 else []  # a Response of 503 is falsy

    [not_ready] = wait_for(no_worker, timeout=60, interval=0.2, what="no live worker")
    assert not_ready.json()["missing"] == ["workers"]
    assert not_ready.json()["redis"] == "ok"
    with running_worker(redis_server.url, tmp_path / "worker.log"):
        ready = requests.get(f"{served}/readyz", timeout=5)
        assert ready.status_code == 200
        assert ready.json()["workers"] == 1
        assert ready.json()["toxicity_model"] == "lite"
        assert ready.json()["queue_depth"] == 0
    # after a graceful stop the worker deregisters at once
    assert requests.get(f"{served}/readyz", timeout=5).status_code == 503
