"""Webhook receivers that hang or fail: deliveries are retried, and nothing else slows down.

Real scoring and delivery worker processes, real HTTP receivers on loopback.
"""

from __future__ import annotations

import time

import pytest

from moderation.core.webhook_requests import SIGNATURE_HEADER, verify
from moderation.storage.webhook_outbox import UnresponsiveReceivers, origin, waiting_webhooks
from tests.support.processes import running_worker, wait_for
from tests.support.receiver import Hang, running_receiver

#: Seconds each attempt may take: a receiver that never answers holds an attempt this long.
TIMEOUT = 2.0
WEBHOOKS = {
    "MODERATION_ALLOW_PRIVATE_CALLBACKS": "true",  # the receivers listen on loopback
    "MODERATION_WEBHOOK_TIMEOUT": str(TIMEOUT),
    "MODERATION_WEBHOOK_RETRY_INTERVALS": "1,1,1,1,1,1",
}
NEVER = Hang(3600)  # accepts the request, never answers (until the receiver stops)


def test_a_receiver_that_timed_out_is_skipped_then_probed_by_one_delivery(redis_client):
    receivers = UnresponsiveReceivers(redis_client, cool_down=0.2, attempt_time=30)
    url = "https://Hooks.example:443/a"
    assert origin(url) == origin("https://hooks.example/b") == "https://hooks.example:443"
    assert receivers.may_try(url)
    receivers.timed_out(url)
    assert not receivers.may_try("https://hooks.example/b")  # the same receiver
    assert receivers.may_try("https://other.example/a")
    wait_for(lambda: receivers.may_try(url), timeout=5, what="the cool-down to end")
    assert not receivers.may_try(url)  # one delivery probes; the others keep skipping
    receivers.answered(url)
    assert receivers.may_try(url) and receivers.may_try(url)


@pytest.fixture
def workers(redis_server, tmp_path):
    """A scoring worker and a webhook deliverer."""
    with (
        running_worker(redis_server.url, tmp_path / "scoring.log", WEBHOOKS),
        running_worker(redis_server.url, tmp_path / "deliveries.log", WEBHOOKS, deliveries=True),
    ):
        yield


def submit_and_wait(client, site, comment_id: str) -> float:
    """Submit a comment, wait for its decision; the seconds that took."""
    started = time.monotonic()
    response = client.post(
        "/v1/comments?wait=5",
        json={"id": comment_id, "content": "Thanks, a good read."},
        headers={"Authorization": f"Bearer {site.api_key}"},
    )
    assert response.status_code == 200, response.get_json()
    return time.monotonic() - started


def attempts(client, site, comment_id: str) -> list[dict]:
    headers = {"Authorization": f"Bearer {site.api_key}"}
    return client.get(f"/v1/comments/{comment_id}/deliveries", headers=headers).get_json()[
        "deliveries"
    ]


@pytest.mark.e2e
def test_a_hanging_receiver_delays_neither_scoring_nor_other_sites_webhooks(
    client, make_site, redis_client, workers
):
    with running_receiver(default=NEVER) as hanging, running_receiver() as healthy:
        slow = make_site("slow", hanging.url)
        fine = make_site("fine", healthy.url)
        scoring = [submit_and_wait(client, slow, f"s-{n}") for n in range(3)]
        wait_for(
            lambda: any(a["error"] == "timeout" for a in attempts(client, slow, "s-0")),
            timeout=10,
            what="the first attempt to time out",
        )
        # Decisions for the hanging site keep coming, more than the deliverer has threads,
        # and the other site's webhooks keep arriving before one hanging attempt could end.
        # (The bounds are the hang's own length, TIMEOUT: what waiting behind a hanging
        # attempt would cost. How fast they are is bench/'s to measure, not a test's.)
        for round_ in range(4):
            scoring += [submit_and_wait(client, slow, f"s-{round_}-{n}") for n in range(6)]
            started = time.monotonic()
            scoring.append(submit_and_wait(client, fine, f"f-{round_}"))
            (*_, request) = healthy.wait_for_requests(round_ + 1, timeout=TIMEOUT)
            assert time.monotonic() - started < TIMEOUT
            assert verify(fine.webhook_secret, request.header(SIGNATURE_HEADER), request.body)
        assert max(scoring) < TIMEOUT, scoring  # no decision waited for a hanging delivery

        # The hanging site's webhooks are retried, each attempt logged.
        logged = wait_for(
            lambda: len(found := attempts(client, slow, "s-0")) >= 2 and found,
            timeout=20,
            what="a retried delivery",
        )
        assert logged[0]["error"] == "timeout"
        assert [a["attempt"] for a in logged] == list(range(1, len(logged) + 1))
        assert not any(a["ok"] for a in logged)
    assert waiting_webhooks(redis_client) == 0  # every decision's webhook was queued


@pytest.mark.e2e
def test_a_receiver_that_hangs_then_fails_gets_the_webhook_once_it_answers(
    client, make_site, workers
):
    with running_receiver([NEVER, 500]) as receiver:  # then 200
        site = make_site("news", receiver.url)
        submit_and_wait(client, site, "c-1")
        requests = receiver.wait_for_requests(3, timeout=30)

        def delivered() -> list[dict]:
            found = attempts(client, site, "c-1")
            return found if found and found[-1]["ok"] else []

        logged = wait_for(delivered, timeout=10, what="the delivered attempt")
    assert logged[0]["error"] == "timeout"
    assert [a["status"] for a in logged if a["status"]] == [500, 200]
    assert [a["attempt"] for a in logged] == list(range(1, len(logged) + 1))
    assert len(requests) == 3  # no attempt after the delivery
    assert all(verify(site.webhook_secret, r.header(SIGNATURE_HEADER), r.body) for r in requests)
