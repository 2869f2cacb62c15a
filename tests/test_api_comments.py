"""The host-site API against a real Redis: validation, auth, isolation, idempotency, waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis
from flask.testing import FlaskClient
from rq import Queue

from moderation.core.records import Action, Decision, utc_now
from moderation.core.redis_keys import KEYS
from moderation.storage.comment_store import CommentStore
from moderation.storage.job_queues import SCORE_COMMENT_JOB, SCORING_QUEUE
from moderation.storage.site_store import SiteCredentials


def submit(client: FlaskClient, auth: dict[str, str], body: object, query: str = ""):
    return client.post(f"/v1/comments{query}", json=body, headers=auth)


def error_of(response) -> dict:
    assert response.is_json, response.data
    return response.get_json()["error"]


# --- accepting -------------------------------------------------------------------------------


def test_accepted_comment_is_stored_and_queued(client, auth, redis_client):
    response = submit(client, auth, {"id": "c-1", "content": "A thoughtful comment."})

    assert response.status_code == 202
    assert response.headers["Location"] == "/v1/comments/c-1"
    body = response.get_json()
    assert body["id"] == "c-1"
    assert body["status"] == "pending"
    assert body["decision"] is None
    assert body["submitted_at"].endswith("Z")
    # 202 means: in Redis, and its scoring job is on the queue.
    comment = CommentStore(redis_client).get("news", "c-1")
    assert comment is not None and comment.submission.content == "A thoughtful comment."
    queue = Queue(SCORING_QUEUE, connection=redis_client)
    jobs = queue.get_jobs()
    assert [job.func_name for job in jobs] == [SCORE_COMMENT_JOB]
    assert jobs[0].args == ("news", "c-1")
    assert jobs[0].retries_left == 3
    assert jobs[0].timeout == 60


def test_all_optional_fields_are_accepted(client, auth, redis_client):
    body = {
        "id": "c-full",
        "content": "the comment text",
        "author": {
            "id": "u-9",
            "name": "Ann",
            "email": "ann@example.org",
            "url": "https://ann.example",
            "ip": "203.0.113.7",
            "user_agent": "Mozilla/5.0",
        },
        "context": {
            "post_id": "p-1",
            "permalink": "https://site.example/p-1",
            "parent_id": "c-100",
            "language": "en",
        },
        "honeypot": "",
    }
    assert submit(client, auth, body).status_code == 202
    stored = CommentStore(redis_client).get("news", "c-full")
    assert stored.submission.author["ip"] == "203.0.113.7"
    assert stored.submission.context["post_id"] == "p-1"


def test_ids_with_slashes_and_spaces_round_trip(client, auth):
    response = submit(client, auth, {"id": "thread/7 reply", "content": "hi"})
    assert response.status_code == 202
    assert response.headers["Location"] == "/v1/comments/thread%2F7%20reply"
    fetched = client.get(response.headers["Location"], headers=auth)
    assert fetched.status_code == 200
    assert fetched.get_json()["id"] == "thread/7 reply"


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "no id"}, "id"),
        ({"id": "c-1"}, "content"),
        ({"id": "", "content": "x"}, "id"),
        ({"id": "x" * 129, "content": "x"}, "id"),
        ({"id": "c-1", "content": ""}, "content"),
        ({"id": "c-1", "content": "x" * 20_001}, "content"),
        ({"id": "c-1", "content": 42}, "content"),
        ({"id": "c-1", "content": "x", "colour": "red"}, "colour"),
        ({"id": "c-1", "content": "x", "author": {"ip": "999.1.1.1"}}, "author.ip"),
        ({"id": "c-1", "content": "x", "author": {"shoe": 1}}, "author.shoe"),
        ({"id": "c-1", "content": "x", "author": "Ann"}, "author"),
        ({"id": "c-1", "content": "x", "context": {"post_id": "p" * 129}}, "context.post_id"),
        ({"id": "c-1", "content": "x", "honeypot": "y" * 1025}, "honeypot"),
        ({"id": "c-1", "content": "lone \ud800 surrogate"}, "content"),
        ({"id": "c\x00-1", "content": "x"}, "id"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(client, auth, body, field, redis_client):
    response = submit(client, auth, body)

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_failed"
    assert field in error["fields"]
    assert field in error["message"]
    assert redis_client.keys(KEYS.comment("news", "*")) == []


def test_body_that_is_not_an_object_is_422(client, auth):
    response = submit(client, auth, ["a", "list"])
    assert response.status_code == 422
    assert "body" in error_of(response)["fields"]


def test_exactly_20000_characters_is_accepted(client, auth):
    assert submit(client, auth, {"id": "long", "content": "é" * 20_000}).status_code == 202


def test_malformed_json_is_400(client, auth):
    response = client.post(
        "/v1/comments", data='{"id": "c-1",', content_type="application/json", headers=auth
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_json"


def test_deeply_nested_json_is_400_not_500(client, auth):
    response = client.post(
        "/v1/comments", data="[" * 100_000, content_type="application/json", headers=auth
    )
    assert response.status_code == 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_body_that_is_not_json_is_415(client, auth, content_type):
    response = client.post("/v1/comments", data="id=1", content_type=content_type, headers=auth)
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_body_over_the_size_limit_is_413(client, auth, redis_client):
    response = submit(client, auth, {"id": "big", "content": "x" * 2_000_000})
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
    assert redis_client.keys(KEYS.comment("news", "*")) == []


@pytest.mark.parametrize("wait", ["-1", "10.5", "soon"])
def test_wait_out_of_range_is_422(client, auth, wait):
    response = submit(client, auth, {"id": "c-1", "content": "x"}, query=f"?wait={wait}")
    assert response.status_code == 422
    assert "wait" in error_of(response)["fields"]


def test_wait_above_10_is_accepted_up_to_a_higher_max_wait(settings, auth, redis_client):
    """MODERATION_MAX_WAIT above the contract's 10 raises `?wait=`'s bound to it, read at
    request time; past it, the contract's 422 names `wait`."""
    from moderation.app import create_app

    app = create_app(settings.with_overrides(max_wait_seconds=30.0))
    client = app.test_client()
    try:
        decider = threading.Thread(
            target=decide_when_someone_waits, args=(redis_client, "news", "w-1")
        )
        decider.start()
        response = submit(client, auth, {"id": "w-1", "content": "hello"}, query="?wait=25")
        decider.join()
        assert response.status_code == 200, response.data
        assert response.get_json()["status"] == "approved"
        assert client.get("/v1/comments/w-1?wait=30", headers=auth).status_code == 200

        for refused in (
            client.get("/v1/comments/w-1?wait=30.5", headers=auth),
            submit(client, auth, {"id": "w-2", "content": "x"}, query="?wait=31"),
        ):
            assert refused.status_code == 422
            error = error_of(refused)
            assert error["code"] == "validation_failed"
            assert error["message"] == "Invalid fields: wait."
            assert list(error["fields"]) == ["wait"]
            assert "30.0" in error["fields"]["wait"][0]
        assert CommentStore(redis_client).get("news", "w-2") is None
    finally:
        app.extensions["moderation"].redis.close()


def test_a_max_wait_below_10_shortens_the_hold_instead_of_refusing(settings, auth):
    """The contract accepts 0 <= wait <= 10 whatever MODERATION_MAX_WAIT says."""
    from moderation.app import create_app

    app = create_app(settings.with_overrides(max_wait_seconds=0.2))
    client = app.test_client()
    try:
        started = time.monotonic()
        response = submit(client, auth, {"id": "c-1", "content": "hello"}, query="?wait=10")
        assert response.status_code == 202 and response.get_json()["status"] == "pending"
        assert time.monotonic() - started < 5
        refused = submit(client, auth, {"id": "c-2", "content": "x"}, query="?wait=10.5")
        assert refused.status_code == 422
    finally:
        app.extensions["moderation"].redis.close()


def test_unknown_route_and_wrong_method_answer_in_the_error_format(client, auth):
    assert error_of(client.get("/v1/nothing-here", headers=auth))["code"] == "not_found"
    response = client.delete("/healthz")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


# --- auth and isolation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer mk_not-a-real-key"},
    ],
)
def test_missing_or_wrong_key_is_401(client, site, headers, redis_client):
    response = client.post("/v1/comments", json={"id": "c-1", "content": "x"}, headers=headers)
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"
    assert "Bearer" in response.headers["WWW-Authenticate"]
    assert client.get("/v1/comments/c-1", headers=headers).status_code == 401
    assert redis_client.keys(KEYS.comment("*", "*")) == []


def test_auth_comes_before_validation(client, site):
    response = client.post("/v1/comments", data="{bad", content_type="application/json")
    assert response.status_code == 401


def test_sites_cannot_see_each_others_comments(
    client, auth, make_site: Callable[[str], SiteCredentials]
):
    other = {"Authorization": f"Bearer {make_site('blog').api_key}"}
    assert submit(client, auth, {"id": "shared-id", "content": "from news"}).status_code == 202

    assert client.get("/v1/comments/shared-id", headers=other).status_code == 404
    # The same id is free on the other site, and the two stay apart.
    assert submit(client, other, {"id": "shared-id", "content": "from blog"}).status_code == 202
    news = client.get("/v1/comments/shared-id", headers=auth).get_json()
    blog = client.get("/v1/comments/shared-id", headers=other).get_json()
    assert news["submitted_at"] and blog["submitted_at"]
    assert client.get("/v1/comments/unknown", headers=auth).status_code == 404


def test_rotated_key_stops_working(client, settings, redis_client, site, auth):
    from moderation.storage.site_store import SiteStore

    new = SiteStore(redis_client, settings.secret_key).rotate_api_key("news")
    assert client.get("/v1/comments/x", headers=auth).status_code == 401
    new_auth = {"Authorization": f"Bearer {new.api_key}"}
    assert client.get("/v1/comments/x", headers=new_auth).status_code == 404


def test_keys_are_stored_only_as_digests(site, redis_client):
    dump = b"".join(
        value
        for key in redis_client.keys("mod:*")
        if redis_client.type(key) == b"hash"
        for value in redis_client.hvals(key)
    ) + b"".join(redis_client.keys("*"))
    assert site.api_key.encode() not in dump
    assert site.webhook_secret.encode() not in dump


# --- idempotency -----------------------------------------------------------------------------


def test_same_id_and_content_returns_the_existing_record_without_a_second_job(
    client, auth, redis_client
):
    first = submit(client, auth, {"id": "c-1", "content": "same"})
    again = submit(client, auth, {"id": "c-1", "content": "same"})

    assert again.status_code == 202
    assert again.get_json() == first.get_json()
    assert Queue(SCORING_QUEUE, connection=redis_client).count == 1


def test_same_id_with_other_content_is_409_with_current_state(client, auth, redis_client):
    submit(client, auth, {"id": "c-1", "content": "original"})
    response = submit(client, auth, {"id": "c-1", "content": "edited"})

    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "conflict"
    assert error["current"]["id"] == "c-1"
    stored = CommentStore(redis_client).get("news", "c-1")
    assert stored.submission.content == "original"
    assert Queue(SCORING_QUEUE, connection=redis_client).count == 1


def test_concurrent_duplicates_create_one_comment_and_one_job(app, auth, redis_client):
    statuses: list[int] = []

    def post() -> None:
        with app.test_client() as client:
            statuses.append(submit(client, auth, {"id": "race", "content": "same"}).status_code)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [202] * 8
    assert Queue(SCORING_QUEUE, connection=redis_client).count == 1


# --- reading and waiting ---------------------------------------------------------------------


def decide_when_someone_waits(redis_client: redis.Redis, site: str, comment_id: str) -> None:
    """Store an approval as soon as a request subscribes to the comment's channel."""
    channel = KEYS.decided_channel(site, comment_id)
    deadline = time.monotonic() + 5
    while redis_client.pubsub_numsub(channel)[0][1] == 0:
        assert time.monotonic() < deadline, "nobody subscribed"
        time.sleep(0.005)
    decision = Decision(Action.APPROVE, [], {"toxicity": 0.1, "spam": 0.0}, {}, "auto", utc_now())
    assert CommentStore(redis_client).decide(site, comment_id, decision).stored


def test_wait_returns_the_decision_as_soon_as_it_is_stored(client, auth, redis_client):
    submit(client, auth, {"id": "c-1", "content": "hello"})
    decider = threading.Thread(target=decide_when_someone_waits, args=(redis_client, "news", "c-1"))
    decider.start()

    started = time.monotonic()
    response = client.get("/v1/comments/c-1?wait=10", headers=auth)
    elapsed = time.monotonic() - started
    decider.join()

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "approved"
    assert body["decision"]["action"] == "approve"
    assert body["decision"]["decided_by"] == "auto"
    assert elapsed < 5  # woken by the decision, not by the 10 s deadline


def test_post_with_wait_returns_200_with_the_decision(client, auth, redis_client):
    decider = threading.Thread(target=decide_when_someone_waits, args=(redis_client, "news", "w-1"))
    decider.start()
    response = submit(client, auth, {"id": "w-1", "content": "hello"}, query="?wait=10")
    decider.join()
    assert response.status_code == 200
    assert response.get_json()["status"] == "approved"


def test_wait_gives_up_after_its_deadline_with_the_pending_record(client, auth):
    submit(client, auth, {"id": "c-1", "content": "hello"})
    started = time.monotonic()
    response = client.get("/v1/comments/c-1?wait=0.3", headers=auth)
    assert response.status_code == 200
    assert response.get_json()["status"] == "pending"
    assert time.monotonic() - started >= 0.3


# --- Redis unavailable -----------------------------------------------------------------------


def test_redis_down_is_503_with_retry_after_and_nothing_is_left_behind(tmp_path, settings):
    """A submission while Redis is down gets a 503 with Retry-After and leaves neither a
    record nor a job. Redis keeps its data across the restart (append-only file, fsync on
    every write), so whatever the API had stored would still be there afterwards: the
    comment accepted before the outage is."""
    from moderation.app import create_app
    from moderation.storage.site_store import SiteStore
    from tests.support.redis_server import RedisServer

    server = RedisServer(tmp_path / "redis", appendonly=True, appendfsync="always")
    server.start()
    try:
        own = settings.with_overrides(redis_url=server.url)
        with redis.Redis.from_url(server.url) as connection:
            key = SiteStore(connection, own.secret_key).create("news").api_key
        headers = {"Authorization": f"Bearer {key}"}
        app = create_app(own)
        client = app.test_client()
        assert submit(client, headers, {"id": "before", "content": "x"}).status_code == 202

        server.stop()
        response = submit(client, headers, {"id": "during", "content": "x"})
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        assert error_of(response)["code"] == "unavailable"
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200

        server.start()  # the same port and the same data
        with redis.Redis.from_url(server.url) as connection:
            store = CommentStore(connection)
            assert store.get("news", "before") is not None, "Redis lost its data: proves nothing"
            assert store.get("news", "during") is None
            assert connection.keys(KEYS.comment("news", "during")) == []
            assert store.pending_count() == 1
            queue = Queue(SCORING_QUEUE, connection=connection)
            assert [job.args for job in queue.get_jobs()] == [("news", "before")]

            # The same client and key carry on; the refused comment can simply be sent again.
            again = submit(client, headers, {"id": "during", "content": "x"})
            assert again.status_code == 202 and again.get_json()["status"] == "pending"
            assert [job.args for job in queue.get_jobs()] == [
                ("news", "before"),
                ("news", "during"),
            ]
        app.extensions["moderation"].redis.close()
    finally:
        server.stop()
