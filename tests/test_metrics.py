"""/metrics: correct totals across several gunicorn processes and several workers; /readyz."""

from __future__ import annotations

import pytest
import requests

from moderation.core.records import Action, Decision, utc_now
from moderation.storage.comment_store import CommentStore
from moderation.storage.moderator_store import ModeratorStore, Role
from tests.support.processes import moderation_env, moderation_process, running_worker, wait_for
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


def test_worker_figures_add_up_across_workers(served, site, redis_server, redis_client, tmp_path):
    headers = {"Authorization": f"Bearer {site.api_key}"}
    with (
        running_worker(redis_server.url, tmp_path / "w1.log"),
        running_worker(redis_server.url, tmp_path / "w2.log"),
    ):
        for number in range(20):
            body = {"id": f"c-{number}", "content": "Thanks for writing this."}
            requests.post(f"{served}/v1/comments", json=body, headers=headers, timeout=5)
        wait_for(lambda: CommentStore(redis_client).pending_count() == 0, what="decisions")
        text = requests.get(f"{served}/metrics", timeout=5).text
        assert sample(text, "moderation_live_workers") == 2

    assert sample(text, "moderation_comments_accepted_total") == 20
    # the same text twenty times: the later copies are held as repeated spam
    automatic = [
        sample(text, "moderation_decisions_total", action=action, decider="auto")
        for action in ("approve", "hold")
    ]
    assert sum(automatic) == 20
    assert all(count > 0 for count in automatic)
    assert sample(text, "moderation_scoring_duration_seconds_count", model="lite") == 20
    assert sample(text, "moderation_scoring_duration_seconds_bucket", le="+Inf", model="lite") == 20
    assert sample(text, "moderation_queue_depth") == 0
    assert sample(text, "moderation_pending_comments") == 0

    token = ModeratorStore(redis_client).create("ann", Role.ADMIN, []).token
    held = Decision(Action.HOLD, ["x"], {"toxicity": 0.9, "spam": 0.0}, {}, "auto", utc_now())
    requests.post(f"{served}/v1/comments", json={"id": "h", "content": "x"}, headers=headers)
    CommentStore(redis_client).decide("news", "h", held)
    requests.post(
        f"{served}/v1/review/news/h",
        json={"action": "reject"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
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
