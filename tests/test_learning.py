"""Per-site learning end to end: real `moderation serve` and `moderation worker` processes, labels
given through each source (Akismet's client, Perspective's client, moderators' decisions), the
next decision naming the new model; a poisoned batch that is not promoted; rollback; erasure."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import akismet
import httpx
import pytest
import redis
import requests
from perspective import PerspectiveAPI

from moderation.storage.label_store import LabelStore
from moderation.storage.moderator_store import ModeratorStore, Role
from moderation.storage.site_store import SiteCredentials
from tests.support.load import served_api
from tests.support.processes import PROJECT_ROOT, moderation_env, running_worker, wait_for
from tests.support.prometheus import sample
from tests.support.site_labels import SITE_ABUSE, SITE_BANTER, SITE_HAM, SITE_SPAM
from workers.learning.training import AUC_TOLERANCE

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(redis_server, redis_client, tmp_path: Path) -> Iterator[str]:
    with served_api(redis_server.url, tmp_path) as base:
        yield base


@pytest.fixture
def served(api: str, redis_server, tmp_path: Path) -> Iterator[str]:
    with running_worker(redis_server.url, tmp_path / "worker.log"):
        yield api


class Site:
    """The site's backend, calling the served API with its key."""

    def __init__(self, base: str, credentials: SiteCredentials, redis_url: str) -> None:
        self.base = base
        self.redis_url = redis_url
        self.headers = {"Authorization": f"Bearer {credentials.api_key}"}
        self.key = credentials.api_key

    def submit(self, comment_id: str, content: str) -> dict[str, Any]:
        body = {"id": comment_id, "content": content}
        response = requests.post(
            f"{self.base}/v1/comments?wait=10", json=body, headers=self.headers, timeout=30
        )
        assert response.status_code in (200, 202), response.text
        return self.decided(comment_id)

    def decided(self, comment_id: str) -> dict[str, Any]:
        def record() -> dict[str, Any] | None:
            url = f"{self.base}/v1/comments/{comment_id}?wait=5"
            body = requests.get(url, headers=self.headers, timeout=30).json()
            return body if body["decision"] else None

        return wait_for(record, timeout=60, what=f"a decision on {comment_id}")

    def models(self) -> dict[str, Any]:
        response = requests.get(f"{self.base}/v1/models", headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        return {model["kind"]: model for model in response.json()["models"]} | {
            "report": response.json()
        }

    def wait_for_training(self, timeout: float = 60) -> dict[str, Any]:
        """Wait until the site's models have learned from all its labels (the contract allows
        60 s after new labels; erasures wait for the workers' maintenance, 30 s at most)."""

        def trained() -> dict[str, Any] | None:
            models = self.models()
            return None if models["report"]["labels_since_training"] else models

        return wait_for(trained, timeout=timeout, interval=0.5, what="training on the labels")

    def version_in_use(self, kind: str) -> int:
        version = self.wait_for_training()[kind]["version"]
        assert version > 0, self.models()[kind]
        return version


@pytest.fixture
def news(served: str, make_site, redis_server) -> Site:
    return Site(served, make_site("news"), redis_server.url)


@pytest.fixture
def news_api(api: str, make_site, redis_server) -> Site:
    """The site, with no worker running until the test starts one."""
    return Site(api, make_site("news"), redis_server.url)


def akismet_client(site: Site) -> akismet.SyncClient:
    """Akismet's published client, its requests sent to the served API."""
    target = httpx.URL(site.base)

    class ToModeration(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            request.url = request.url.copy_with(
                scheme=target.scheme, host=target.host, port=target.port
            )
            return super().handle_request(request)

    http = httpx.Client(
        transport=ToModeration(), headers={"User-Agent": akismet.USER_AGENT}, timeout=30
    )
    config = akismet.Config(key=site.key, url="https://news.example")
    return akismet.SyncClient.validated_client(config=config, http_client=http)


def teach_spam_through_akismet(site: Site, spam: list[str], ham: list[str]) -> None:
    client = akismet_client(site)
    for text in spam:
        assert client.submit_spam(user_ip="203.0.113.5", comment_content=text)
    for text in ham:
        assert client.submit_ham(user_ip="203.0.113.6", comment_content=text)


# --- each source of labels changes the next decision's model ----------------------------------


def test_akismet_submissions_train_the_sites_spam_model(news: Site) -> None:
    before = news.submit("before", "Zorblax tonic cured my elbow, ask for zorblax")
    assert before["decision"]["models"]["spam"] == "spam-base-1"

    teach_spam_through_akismet(news, SITE_SPAM, SITE_HAM)
    version = news.version_in_use("spam")

    after = news.submit("after", "Zorblax tonic cured my elbow in a week, ask for zorblax")
    assert after["decision"]["models"]["spam"] == f"spam-base-1+news.v{version}"
    assert after["decision"]["scores"]["spam"] > before["decision"]["scores"]["spam"]
    report = news.models()["spam"]
    # The last training saw every label (an earlier one, on the first 10 of each, may be the
    # model in use: a later candidate that does no better is not promoted).
    assert report["history"][0]["labels"] == {"spam": 12, "ok": 12, "held_out": 6}
    assert report["held_out"]["auc"] >= report["held_out"]["in_use_auc"] - AUC_TOLERANCE
    assert news.models()["report"]["labels"] == {"spam": 12, "toxic": 0, "ok": 12, "other": 0}
    metrics = requests.get(f"{news.base}/metrics", timeout=30).text
    assert sample(metrics, "moderation_labels_total", kind="spam") == 12
    assert sample(metrics, "moderation_site_model_trainings_total", kind="spam", outcome="promoted")


def test_perspective_suggestions_train_the_sites_toxicity_model(news: Site) -> None:
    banter = "Fucking great match, the ref was shit but we were damn good"
    before = news.submit("before", banter)
    assert before["status"] == "held" and before["decision"]["models"]["toxicity"] == "lite"

    client = PerspectiveAPI(news.key)
    client.api_client.url = news.base + "/v1alpha1/{endpoint}"
    for text in SITE_ABUSE:
        client.suggest_score(text, {"TOXICITY": {"summaryScore": {"value": 1.0}}})
    for text in SITE_BANTER:
        client.suggest_score(text, {"TOXICITY": {"summaryScore": {"value": 0.0}}})
    version = news.version_in_use("toxicity")

    after = news.submit("after", banter)
    decision = after["decision"]
    assert decision["models"]["toxicity"] == f"lite+news.v{version}"
    assert decision["scores"]["base_toxicity"] == before["decision"]["scores"]["toxicity"]
    assert after["status"] == "approved", decision  # this site's moderators allow banter
    abuse = news.submit("abuse", "People from the river valley are vermin, drive them out")
    assert abuse["status"] == "held", abuse["decision"]
    assert any(r.startswith("toxicity ") for r in abuse["decision"]["reasons"])


def test_moderator_decisions_and_overturns_train_the_sites_spam_model(
    news: Site, redis_client: redis.Redis
) -> None:
    ann = ModeratorStore(redis_client).create("ann", Role.MODERATOR, ["news"])
    moderator = {"Authorization": f"Bearer {ann.token}"}
    for n, text in enumerate(SITE_SPAM):
        news.submit(f"spam-{n}", text)
    for n, text in enumerate(SITE_HAM):
        news.submit(f"ham-{n}", text)
    assert news.decided("spam-0")["status"] == "approved"  # the base model misses this spam

    def decide(comment_id: str, body: dict[str, Any]) -> requests.Response:
        url = f"{news.base}/v1/review/news/{comment_id}"
        return requests.post(url, json=body, headers=moderator, timeout=30)

    refused = decide("spam-0", {"action": "reject"})
    assert refused.status_code == 409  # approved: only an overturn decides it again
    for n in range(len(SITE_SPAM)):
        response = decide(f"spam-{n}", {"action": "reject", "overturn": True, "label": "spam"})
        assert response.status_code == 200 and response.json()["status"] == "rejected"
    for n in range(len(SITE_HAM)):
        assert decide(f"ham-{n}", {"action": "approve", "overturn": True}).status_code == 200
    version = news.version_in_use("spam")

    after = news.submit("after", "Zorblax tonic cured my elbow in a week, ask for zorblax")
    assert after["decision"]["models"]["spam"] == f"spam-base-1+news.v{version}"
    audit = requests.get(f"{news.base}/v1/review/news/spam-0/audit", headers=moderator).json()
    assert [(e["from"], e["to"]) for e in audit["events"]][-1] == ("approved", "rejected")

    # Erasing a labeled comment removes its label; the next training is without it.
    deleted = requests.delete(f"{news.base}/v1/comments/spam-1", headers=news.headers)
    assert deleted.status_code == 204
    assert news.models()["report"]["labels"]["spam"] == 11
    assert all(label.comment != "spam-1" for label in LabelStore(redis_client).recent("news", 99))
    latest = news.wait_for_training(timeout=90)["spam"]["history"][0]
    assert latest["event"] == "trained" and latest["labels"]["spam"] == 11


# --- learning that cannot be poisoned or run away -----------------------------------------------


def test_a_poisoned_batch_is_not_promoted_and_rollback_restores(
    news_api: Site, redis_server, tmp_path: Path
) -> None:
    news = news_api
    # With no worker running, each batch of labels is learned in one training.
    teach_spam_through_akismet(news, SITE_SPAM, SITE_HAM)
    with running_worker(redis_server.url, tmp_path / "worker-1.log"):
        good = news.version_in_use("spam")
    assert good == 1

    # Someone calls the site's spam ham, twice over, and its ham spam.
    teach_spam_through_akismet(news, SITE_HAM, SITE_SPAM + SITE_SPAM)
    with running_worker(redis_server.url, tmp_path / "worker-2.log"):
        models = news.wait_for_training()
        latest = models["spam"]["history"][0]
        assert latest["event"] == "trained" and not latest["promoted"], latest
        assert latest["older"]["labels"] > 0 and latest["reason"].startswith("worse on older")
        assert models["spam"]["version"] == good
        still = news.submit("still", "Zorblax tonic cured my elbow in a week, ask for zorblax")
        assert still["decision"]["models"]["spam"] == f"spam-base-1+news.v{good}"
        assert still["status"] == "held"

    command = ["models", "rollback", "--site", "news", "--kind", "spam"]
    rollback = subprocess.run(
        [sys.executable, "-m", "moderation.ops.cli", *command],
        env=moderation_env(news.redis_url),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "version 0 in use (the base model)" in rollback.stdout
    assert news.models()["spam"]["version"] == 0
    with running_worker(redis_server.url, tmp_path / "worker-3.log"):
        base = news.submit("base", "Zorblax tonic cured my elbow in a week, ask for zorblax!")
    assert base["decision"]["models"]["spam"] == "spam-base-1"
