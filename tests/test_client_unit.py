"""The Python client against the real Flask app served on 127.0.0.1 (no worker runs).

Retry behaviour (429/503) is exercised against the loopback receiver, since the app cannot be
made to answer those on demand.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from rq import Queue
from werkzeug.serving import make_server

from moderation.client import ModerationClient, ModerationError
from moderation.core.webhook_requests import SIGNATURE_HEADER, deliver
from moderation.storage.job_queues import SCORING_QUEUE
from moderation.storage.site_store import SiteCredentials
from tests.support.receiver import Reply, running_receiver


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    """The app on a free loopback port, in a background thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def api(base_url: str, site: SiteCredentials) -> Iterator[ModerationClient]:
    with ModerationClient(base_url, site.api_key, timeout=5) as client:
        yield client


def test_submit_returns_the_pending_record(api: ModerationClient):
    record = api.submit(
        "c-1",
        "A thoughtful comment.",
        author={"id": "u-9", "name": "Ann", "ip": "203.0.113.7"},
        context={"post_id": "p-1", "language": "en"},
        honeypot="",
    )
    assert record["id"] == "c-1"
    assert record["status"] == "pending"
    assert record["decision"] is None
    assert record["submitted_at"].endswith("Z")


def test_resubmitting_is_idempotent(api: ModerationClient, redis_client: redis.Redis):
    first = api.submit("c-1", "Same text.")
    again = api.submit("c-1", "Same text.")
    assert again == first
    assert len(Queue(SCORING_QUEUE, connection=redis_client).get_jobs()) == 1


def test_conflicting_resubmission_raises_409_with_the_current_record(api: ModerationClient):
    api.submit("c-1", "Original text.")
    with pytest.raises(ModerationError) as caught:
        api.submit("c-1", "Edited text.")
    error = caught.value
    assert (error.status, error.code) == (409, "conflict")
    assert "c-1" in error.message
    assert error.current is not None and error.current["id"] == "c-1"
    assert error.retry_after is None


def test_invalid_fields_raise_422_with_fields(api: ModerationClient):
    with pytest.raises(ModerationError) as caught:
        api.submit("c-1", "", author={"shoe": 1})
    error = caught.value
    assert (error.status, error.code) == (422, "validation_failed")
    assert {"content", "author.shoe"} <= set(error.fields)
    assert "422 validation_failed" in str(error)


def test_get_round_trips_awkward_ids(api: ModerationClient):
    api.submit("thread/7 reply?#%", "hi")
    record = api.get("thread/7 reply?#%")
    assert record["id"] == "thread/7 reply?#%"
    assert record["status"] == "pending"


def test_get_unknown_comment_is_404(api: ModerationClient):
    with pytest.raises(ModerationError) as caught:
        api.get("missing")
    assert (caught.value.status, caught.value.code) == (404, "not_found")


def test_bad_api_key_is_401(base_url: str):
    with (
        ModerationClient(base_url, "mk_wrong") as client,
        pytest.raises(ModerationError) as caught,
    ):
        client.get("c-1")
    assert caught.value.status == 401
    assert "mk_wrong" not in repr(client)


def test_submit_with_wait_returns_pending_when_nothing_decides(api: ModerationClient):
    started = time.monotonic()
    record = api.submit("c-1", "Nobody is scoring this.", wait=0.3)
    assert record["status"] == "pending"
    assert time.monotonic() - started < 5


def test_wait_for_decision_times_out_without_a_worker(api: ModerationClient):
    api.submit("c-1", "Nobody is scoring this.")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="c-1"):
        api.wait_for_decision("c-1", timeout=0.5)
    assert 0.4 <= time.monotonic() - started < 5


def test_unreachable_service_is_a_connection_error():
    with (
        ModerationClient("http://127.0.0.1:9", "mk_x", timeout=2) as client,
        pytest.raises(ModerationError) as caught,
    ):
        client.get("c-1")
    assert (caught.value.status, caught.value.code) == (None, "connection_error")


# --- retries (against the loopback receiver) -------------------------------------------------

RECORD = {"id": "c-1", "status": "pending", "decision": None}


def answer(status: int, body: object, headers: dict[str, str] | None = None) -> Reply:
    """A JSON reply from the receiver."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return Reply(status, json.dumps(body).encode(), all_headers)


def error(status: int, code: str, retry_after: str) -> Reply:
    body = {"error": {"code": code, "message": "try later"}}
    return answer(status, body, {"Retry-After": retry_after})


def test_503_and_429_are_retried_with_the_same_request():
    replies = [error(503, "unavailable", "0"), error(429, "rate_limited", "0"), answer(202, RECORD)]
    with running_receiver(replies) as rx:
        with ModerationClient(rx.url + "/", "mk_key") as client:
            record = client.submit("c-1", "text", wait=1)
        received = rx.wait_for_requests(3)
    assert record == RECORD
    assert {r.path for r in received} == {"/v1/comments?wait=1.000"}
    assert len({r.body for r in received}) == 1
    assert all(r.header("Authorization") == "Bearer mk_key" for r in received)


def test_retries_stop_after_three_tries_and_sleeps_are_capped():
    with running_receiver(default=error(503, "unavailable", "3600")) as rx:
        with ModerationClient(rx.url, "mk_key", max_retry_sleep=0.05) as client:
            started = time.monotonic()
            with pytest.raises(ModerationError) as caught:
                client.get("c-1")
        assert time.monotonic() - started < 2
        assert len(rx.wait_for_requests(3)) == 3
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (
        503,
        "unavailable",
        3600.0,
    )


def test_non_json_errors_are_still_moderation_errors():
    with (
        running_receiver([Reply(502, b"<html>bad gateway</html>")]) as rx,
        ModerationClient(rx.url, "mk_key") as client,
        pytest.raises(ModerationError) as caught,
    ):
        client.get("c-1")
    assert (caught.value.status, caught.value.code) == (502, "http_error")


# --- webhooks --------------------------------------------------------------------------------


def test_verify_webhook_on_a_real_delivery():
    body = json.dumps({"event": "comment.decided", "site": "news", "comment": RECORD}).encode()
    with running_receiver() as rx:
        assert deliver(rx.url, body, "whsec_site", allow_private=True).ok
        [received] = rx.wait_for_requests(1)
    assert ModerationClient.verify_webhook("whsec_site", received.headers, received.body)
    lowered = {k.lower(): v for k, v in received.headers.items()}
    assert ModerationClient.verify_webhook("whsec_site", lowered, received.body)
    assert not ModerationClient.verify_webhook("whsec_other", received.headers, received.body)
    assert not ModerationClient.verify_webhook("whsec_site", received.headers, body + b" ")
    without = {k: v for k, v in received.headers.items() if k != SIGNATURE_HEADER}
    assert not ModerationClient.verify_webhook("whsec_site", without, received.body)


def test_batch_returns_per_item_results(api: ModerationClient):
    results = api.batch([{"id": "b-1", "content": "fine"}, {"id": "b-2", "content": ""}])
    assert [(r["id"], r["status"]) for r in results] == [("b-1", "accepted"), ("b-2", "invalid")]


def test_policy_round_trip(api: ModerationClient):
    assert api.get_policy()["version"] == 0
    stored = api.put_policy({"banned_words": ["idiot"], "trusted_after": 3})
    assert stored["version"] == 1
    assert api.get_policy()["banned_words"] == ["idiot"]
    with pytest.raises(ModerationError) as caught:
        api.put_policy({"hold": {"made_up": 0.5}})
    assert caught.value.status == 422


def test_delete_erases_the_comment(api: ModerationClient):
    api.submit("gone", "some text", author={"name": "Ann"})
    api.delete("gone")
    assert api.get("gone")["erased_at"]
    with pytest.raises(ModerationError) as caught:
        api.delete("never-was")
    assert caught.value.status == 404


@pytest.mark.e2e
def test_client_against_the_service_with_a_worker(api: ModerationClient, redis_server, tmp_path):
    from tests.support.processes import running_worker

    with running_worker(redis_server.url, tmp_path / "worker.log"):
        record = api.submit("c-live", "Thanks for the thoughtful article.", wait=5)
        if record["decision"] is None:
            record = api.wait_for_decision("c-live", timeout=30)
    assert record["decision"]["action"] == "approve"
