"""Redis down: the API refuses with 503 and accepts nothing, and every process serves again
when Redis returns, without being restarted.

Real processes: a `redis-server` per test, `moderation serve`, a scoring worker and a webhook
deliverer. (The Flask test client's view of the same is in tests/test_api_comments.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import requests
from rq.job import Job

from moderation.storage.comment_store import CommentStore
from moderation.storage.site_store import SiteStore
from tests.conftest import TEST_SECRET_KEY
from tests.support.load import served_api
from tests.support.processes import running_worker, wait_for
from tests.support.receiver import running_receiver
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.e2e

WEBHOOKS = {
    "MODERATION_ALLOW_PRIVATE_CALLBACKS": "true",  # the receiver listens on loopback
    "MODERATION_WEBHOOK_RETRY_INTERVALS": "2",
    "MODERATION_WEBHOOK_TIMEOUT": "2",
}


def logged(path: Path, text: str) -> bool:
    return text in path.read_text()


def ready(base: str) -> dict | None:
    """/readyz's body once it answers 200."""
    response = requests.get(f"{base}/readyz", timeout=5)
    return response.json() if response.status_code == 200 else None


def test_api_and_workers_ride_out_a_redis_outage(tmp_path):
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()
    connection = redis.Redis.from_url(server.url)
    scoring_log, deliveries_log = tmp_path / "scoring.log", tmp_path / "deliveries.log"
    try:
        with running_receiver([500]) as receiver:  # the first webhook fails, its retry succeeds
            api_key = SiteStore(connection, TEST_SECRET_KEY).create("news", receiver.url).api_key
            with (
                running_worker(server.url, scoring_log, WEBHOOKS) as scoring,
                running_worker(server.url, deliveries_log, WEBHOOKS, deliveries=True) as deliverer,
                served_api(server.url, tmp_path) as base,
                requests.Session() as http,
            ):
                http.headers["Authorization"] = f"Bearer {api_key}"
                comments = f"{base}/v1/comments"
                before = http.post(f"{comments}?wait=5", json={"id": "before", "content": "Hi"})
                assert before.status_code == 200, before.text
                receiver.wait_for_requests(1, timeout=10)  # answered 500: a retry is scheduled

                server.stop()
                during = http.post(comments, json={"id": "during", "content": "Hi"})
                assert during.status_code == 503
                assert int(during.headers["Retry-After"]) > 0
                assert during.json()["error"]["code"] == "unavailable"
                batch = {"comments": [{"id": "during-batch", "content": "Hi"}]}
                assert http.post(f"{comments}/batch", json=batch).status_code == 503
                assert http.get(f"{comments}/before").status_code == 503
                readiness = http.get(f"{base}/readyz")
                assert readiness.status_code == 503
                assert readiness.json()["missing"] == ["redis"]
                assert http.get(f"{base}/healthz").status_code == 200
                # Both workers notice; RQ's scheduler processes (they poll every second) die.
                for log in (scoring_log, deliveries_log):
                    wait_for(lambda log=log: logged(log, "Redis is unavailable"), what=str(log))
                    wait_for(lambda log=log: logged(log, "Scheduler [PID"), what=str(log))
                assert scoring.poll() is None and deliverer.poll() is None

                server.start()
                body = wait_for(lambda: ready(base), timeout=15, what="/readyz to answer 200")
                assert body["workers"] == 1
                # the webhook retry scheduled before the outage is sent: schedulers are back
                receiver.wait_for_requests(2, timeout=15)

                # Nothing was accepted while Redis was down.
                assert http.get(f"{comments}/during").status_code == 404
                assert http.get(f"{comments}/during-batch").status_code == 404
                # The same worker processes decide what comes now.
                after = http.post(f"{comments}?wait=5", json={"id": "after", "content": "Hi"})
                assert after.status_code == 200, after.text
                assert after.json()["decision"]["decided_by"] == "auto"
                job = Job.fetch(CommentStore(connection).job_id("news", "after"), connection)
                assert f".{scoring.pid}." in job.worker_name
                receiver.wait_for_requests(3, timeout=15)
                assert scoring.poll() is None and deliverer.poll() is None
    finally:
        server.stop()
        connection.close()


def test_workers_register_again_when_redis_comes_back_empty(tmp_path):
    """A Redis without persistence (or an outage longer than a worker's registration lives)
    loses the workers' registrations: they register again, so /readyz is ready again."""
    server = RedisServer(tmp_path / "redis")  # no append-only file: a restart loses everything
    server.start()
    worker_log = tmp_path / "worker.log"
    try:
        with (
            running_worker(server.url, worker_log) as worker,
            served_api(server.url, tmp_path) as base,
        ):
            wait_for(lambda: ready(base), timeout=15, what="/readyz to answer 200")
            server.stop()
            wait_for(lambda: logged(worker_log, "Redis is unavailable"), what="the worker")
            server.start()

            body = wait_for(lambda: ready(base), timeout=15, what="/readyz to answer 200")
            assert body["workers"] == 1
            assert body["toxicity_model"] == "lite"
            connection = redis.Redis.from_url(server.url)
            api_key = SiteStore(connection, TEST_SECRET_KEY).create("news").api_key
            response = requests.post(
                f"{base}/v1/comments?wait=5",
                json={"id": "after", "content": "Hi"},
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            assert worker.poll() is None
            connection.close()
    finally:
        server.stop()
