"""Signed webhooks end to end: real scoring and delivery workers, a real HTTP receiver."""

from __future__ import annotations

import json

import pytest

from moderation.app import create_app
from moderation.core.rules import PREMODERATE_REASON
from moderation.core.webhook_requests import SIGNATURE_HEADER, verify
from moderation.storage.moderator_store import ModeratorStore, Role
from moderation.storage.webhook_outbox import waiting_webhooks
from tests.support.processes import running_worker, wait_for
from tests.support.receiver import Hang, running_receiver
from workers.deliveries import NOT_TRIED

pytestmark = pytest.mark.e2e

FAST_RETRIES = {
    "MODERATION_ALLOW_PRIVATE_CALLBACKS": "true",  # the receiver listens on loopback
    "MODERATION_WEBHOOK_RETRY_INTERVALS": "1,1,1",
    "MODERATION_WEBHOOK_TIMEOUT": "1",
}


@pytest.fixture
def settings(settings):
    return settings.with_overrides(allow_private_callbacks=True)


@pytest.fixture
def workers(redis_server, tmp_path):
    """A scoring worker and a delivery worker."""
    with (
        running_worker(redis_server.url, tmp_path / "scoring.log", FAST_RETRIES),
        running_worker(
            redis_server.url, tmp_path / "deliveries.log", FAST_RETRIES, deliveries=True
        ),
    ):
        yield


def set_callback(client, auth, url: str | None) -> None:
    response = client.put("/v1/site", json={"callback_url": url}, headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)


def test_every_decision_is_posted_signed(client, auth, site, workers):
    with running_receiver() as receiver:
        set_callback(client, auth, receiver.url + "/hooks")
        client.post("/v1/comments", json={"id": "c-1", "content": "Nice read."}, headers=auth)

        (request,) = receiver.wait_for_requests(1, timeout=30)
    assert request.path == "/hooks"
    assert request.header("X-Moderation-Event") == "comment.decided"
    assert request.header("Content-Type") == "application/json"
    assert verify(site.webhook_secret, request.header(SIGNATURE_HEADER), request.body)
    assert not verify("whsec_wrong", request.header(SIGNATURE_HEADER), request.body)
    body = json.loads(request.body)
    assert body["event"] == "comment.decided"
    assert body["site"] == "news"
    assert body["comment"]["id"] == "c-1"
    assert body["comment"]["decision"]["action"] == "approve"
    assert "content" not in body["comment"]  # the record, not the text


def test_failed_deliveries_are_retried_and_logged(client, auth, workers):
    with running_receiver([500, Hang(3), 200]) as receiver:
        set_callback(client, auth, receiver.url)
        client.post("/v1/comments", json={"id": "c-1", "content": "Hello"}, headers=auth)
        receiver.wait_for_requests(3, timeout=60)

        def until_delivered() -> list:
            found = client.get("/v1/comments/c-1/deliveries", headers=auth).get_json()
            attempts = found["deliveries"]
            return attempts if attempts and attempts[-1]["ok"] else []

        attempts = wait_for(until_delivered, timeout=30, what="a logged successful attempt")
    assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
    # A retry due while the receiver's time-out cool-down lasts is logged as not tried.
    tried = [a for a in attempts if a.get("error") != NOT_TRIED]
    assert [a["ok"] for a in tried] == [False, False, True]
    assert tried[0]["status"] == 500
    assert tried[1]["error"] == "timeout"
    assert tried[2]["status"] == 200


def test_a_slow_receiver_does_not_slow_scoring(client, auth, workers):
    with running_receiver(default=Hang(5)) as receiver:
        set_callback(client, auth, receiver.url)
        for number in range(5):
            client.post("/v1/comments", json={"id": f"c-{number}", "content": "hi"}, headers=auth)
        for number in range(5):
            record = client.get(f"/v1/comments/c-{number}?wait=5", headers=auth).get_json()
            assert record["decision"] is not None, record


def test_moderator_decisions_are_posted_and_can_be_redelivered(client, auth, redis_client, workers):
    token = ModeratorStore(redis_client).create("ann", Role.MODERATOR, ["news"]).token
    # The site premoderates: the scoring worker holds every comment, whatever its scores.
    policy = client.put("/v1/policy", json={"premoderate": True}, headers=auth)
    assert policy.status_code == 200, policy.get_json()
    with running_receiver() as receiver:
        response = client.post(
            "/v1/comments?wait=10", json={"id": "c-1", "content": "Nice read."}, headers=auth
        )
        held = response.get_json()
        assert (response.status_code, held["status"]) == (200, "held"), held
        assert held["decision"]["reasons"] == [PREMODERATE_REASON]
        # The hold was announced to no one (no callback yet): its webhook is off the outbox.
        wait_for(lambda: waiting_webhooks(redis_client) == 0, what="the hold's outbox entry")
        set_callback(client, auth, receiver.url)
        review = client.post(
            "/v1/review/news/c-1",
            json={"action": "approve"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert review.status_code == 200
        (first,) = receiver.wait_for_requests(1, timeout=30)
        assert json.loads(first.body)["comment"]["decision"]["decided_by"] == "moderator:ann"

        response = client.post("/v1/comments/c-1/redeliver", headers=auth)
        assert response.status_code == 202
        _, again = receiver.wait_for_requests(2, timeout=30)
        assert json.loads(again.body)["comment"]["status"] == "approved"


def test_a_comment_may_name_its_own_callback(client, auth, workers):
    with running_receiver() as site_receiver, running_receiver() as own_receiver:
        set_callback(client, auth, site_receiver.url)
        body = {"id": "c-1", "content": "x", "callback_url": own_receiver.url + "/mine"}
        client.post("/v1/comments", json=body, headers=auth)
        (request,) = own_receiver.wait_for_requests(1, timeout=30)
    assert request.path == "/mine"
    assert site_receiver.requests == []


def test_unsafe_destinations_are_refused_without_retries(client, auth, workers):
    # link-local (cloud metadata) stays refused even with private callbacks allowed
    body = {"id": "c-1", "content": "x", "callback_url": "http://169.254.169.254/latest"}
    client.post("/v1/comments", json=body, headers=auth)

    def logged() -> list:
        return client.get("/v1/comments/c-1/deliveries", headers=auth).get_json()["deliveries"]

    (attempt,) = wait_for(logged, timeout=30, what="the refused attempt")
    assert attempt["ok"] is False
    assert attempt["error"].startswith("unsafe destination")


def test_redeliver_without_a_callback_is_409(client, auth):
    client.post("/v1/comments", json={"id": "c-1", "content": "x"}, headers=auth)
    assert client.post("/v1/comments/c-1/redeliver", headers=auth).status_code == 409
    assert client.post("/v1/comments/nope/redeliver", headers=auth).status_code == 404


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/x", "http://10.0.0.1/x", "ftp://example.org/", "not a url"]
)
def test_site_callbacks_to_private_addresses_are_refused_by_default(settings, auth, url):
    client = create_app(settings.with_overrides(allow_private_callbacks=False)).test_client()
    response = client.put("/v1/site", json={"callback_url": url}, headers=auth)
    assert response.status_code == 422
    assert "callback_url" in response.get_json()["error"]["fields"]
    assert client.get("/v1/site", headers=auth).get_json()["callback_url"] is None
