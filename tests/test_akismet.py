"""The Akismet-compatible API, driven by the real PyPI `akismet` client (`SyncClient`).

The client posts to https://rest.akismet.com; an httpx client whose transport is the app
(`httpx.WSGITransport`) is the only adaptation. comment-check is scored by a real worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import akismet
import httpx
import pytest
import redis
from flask import Flask

from moderation.app import create_app
from moderation.core.redis_keys import KEYS
from moderation.protocols.akismet import submission_from
from moderation.storage.label_store import LabelStore
from moderation.storage.policy_store import PolicyStore
from moderation.storage.site_store import SiteCredentials
from tests.support.processes import (
    PROJECT_ROOT,
    moderation_env,
    moderation_process,
    running_worker,
    wait_for,
)
from tests.support.redis_server import free_port

BLOG = "https://news.example"
SPAM = (
    "Buy cheap viagra now!!! http://pills.example/buy and http://cheap-meds.example "
    "click here to order"
)
HAM = "Thanks for the thoughtful article; the section on budgets was very clear."
BORDERLINE = "Great read. I wrote about this too: example.com/tips"  # spam 0.61, repeated 0.81
DEBUG = "X-akismet-debug-help"


@pytest.fixture
def http(app: Flask) -> Iterator[httpx.Client]:
    """What a host site passes as `http_client`: requests go to the app, not to Akismet."""
    transport = httpx.WSGITransport(app=app)
    headers = {"User-Agent": akismet.USER_AGENT}
    with httpx.Client(transport=transport, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def connect(http: httpx.Client) -> Callable[[str], akismet.SyncClient]:
    def connect(key: str) -> akismet.SyncClient:
        config = akismet.Config(key=key, url=BLOG)
        return akismet.SyncClient.validated_client(config=config, http_client=http)

    return connect


@pytest.fixture
def checker(connect: Callable[[str], akismet.SyncClient], site: SiteCredentials):
    return connect(site.api_key)


@pytest.fixture
def worker(redis_server, redis_client, tmp_path: Path) -> Iterator[None]:
    with running_worker(redis_server.url, tmp_path / "worker.log"):
        yield


def labels(connection: redis.Redis, site: str = "news") -> list[tuple[str, str, str]]:
    """The site's labels as (kind, text, source), oldest first."""
    return [(x.kind.value, x.text, x.source) for x in LabelStore(connection).recent(site, 100)]


# --- verify-key ------------------------------------------------------------------------------


def test_verify_key_through_the_client(connect, site: SiteCredentials, make_site) -> None:
    client = connect(site.api_key)  # validated_client calls verify-key first
    assert client.verify_key() is True
    assert client.verify_key(key=make_site("blog").api_key, url=BLOG) is True
    assert client.verify_key(key="mk_not-a-key", url=BLOG) is False
    with pytest.raises(akismet.APIKeyError):
        connect("mk_not-a-key")


def test_an_unvalidated_client_with_a_bad_key_gets_api_key_errors(http) -> None:
    client = akismet.SyncClient(config=akismet.Config(key="mk_wrong", url=BLOG), http_client=http)
    with pytest.raises(akismet.APIKeyError):
        client.comment_check(user_ip="203.0.113.5", comment_content=HAM)
    with pytest.raises(akismet.APIKeyError):
        client.submit_spam(user_ip="203.0.113.5", comment_content=SPAM)


# --- comment-check ---------------------------------------------------------------------------


def test_spam_and_ham_through_the_client_and_a_worker(checker, worker, redis_client) -> None:
    blatant = checker.comment_check(
        user_ip="203.0.113.5",
        comment_type="comment",
        comment_author="cheap pills",
        comment_author_url="http://pills.example",
        comment_content=SPAM,
    )
    assert blatant is akismet.CheckResponse.DISCARD
    normal = checker.comment_check(
        user_ip="198.51.100.7",
        user_agent="Mozilla/5.0",
        referrer="https://news.example/",
        permalink="https://news.example/p-1",
        comment_type="comment",
        comment_author="Ann",
        comment_author_email="ann@example.org",
        comment_content=HAM,
        is_test=True,
    )
    assert normal is akismet.CheckResponse.HAM
    # One-off checks: nothing held for moderators, nothing pending, nothing learned.
    assert redis_client.zcard(KEYS.held("news")) == 0
    assert redis_client.zcard(KEYS.pending) == 0
    assert labels(redis_client) == []


def test_the_sites_spam_thresholds_decide(checker, worker, redis_client, settings) -> None:
    policies = PolicyStore(redis_client, settings.policy)
    default = settings.policy
    policies.replace("news", replace(default, hold={**default.hold, "spam": 0.5}))
    spam = checker.comment_check(user_ip="203.0.113.8", comment_content=BORDERLINE)
    assert spam is akismet.CheckResponse.SPAM  # held, but short of blatant (reject 0.97)

    policies.replace("news", replace(default, hold={**default.hold, "spam": 0.9}))
    ham = checker.comment_check(user_ip="203.0.113.9", comment_content=BORDERLINE)
    assert ham is akismet.CheckResponse.HAM


def test_a_filled_honeypot_is_blatant_spam(client, site, worker) -> None:
    # The akismet library refuses parameters it does not know, so it cannot send the
    # honeypot field itself; a plain form post does, as Akismet's documentation shows.
    form = {
        "api_key": site.api_key,
        "blog": BLOG,
        "user_ip": "203.0.113.6",
        "comment_content": HAM,
        "honeypot_field_name": "website2",
        "website2": "http://bot.example",
    }
    response = client.post("/1.1/comment-check", data=form)
    assert response.text == "true"
    assert response.headers["X-akismet-pro-tip"] == "discard"
    response = client.post("/1.1/comment-check", data={**form, "website2": ""})
    assert response.text == "false"
    assert "X-akismet-pro-tip" not in response.headers


def test_an_administrator_is_never_spam_and_not_scored(checker, redis_client) -> None:
    # No worker runs: the answer comes without scoring.
    verdict = checker.comment_check(
        user_ip="203.0.113.5", user_role="administrator", comment_content=SPAM
    )
    assert verdict is akismet.CheckResponse.HAM
    assert redis_client.zcard(KEYS.pending) == 0


def test_no_worker_in_time_is_a_503_the_client_reports(settings, site) -> None:
    app = create_app(settings.with_overrides(max_wait_seconds=0.2))
    try:
        response = app.test_client().post(
            "/1.1/comment-check",
            data={"api_key": site.api_key, "user_ip": "203.0.113.5", "comment_content": HAM},
        )
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert "No scoring worker decided" in response.headers[DEBUG]
        transport = httpx.WSGITransport(app=app)
        with httpx.Client(transport=transport) as http:
            config = akismet.Config(key=site.api_key, url=BLOG)
            client = akismet.SyncClient(config=config, http_client=http)
            with pytest.raises(akismet.RequestError, match="503"):
                client.comment_check(user_ip="203.0.113.5", comment_content=HAM)
    finally:
        app.extensions["moderation"].redis.close()


# --- submit-spam / submit-ham ----------------------------------------------------------------


def test_submissions_become_labels(checker, redis_client) -> None:
    assert checker.submit_spam(user_ip="203.0.113.5", comment_content=SPAM) is True
    assert checker.submit_ham(user_ip="198.51.100.7", comment_content=HAM, comment_author="Ann")
    assert labels(redis_client) == [
        ("spam", SPAM, "akismet:submit-spam"),
        ("ok", HAM, "akismet:submit-ham"),
    ]
    assert LabelStore(redis_client).counts("news") == {"spam": 1, "toxic": 0, "ok": 1, "other": 0}


def test_test_submissions_are_never_learned(checker, redis_client) -> None:
    assert checker.submit_spam(user_ip="203.0.113.5", comment_content=SPAM, is_test=True)
    assert checker.submit_ham(user_ip="203.0.113.5", comment_content=HAM, is_test=True)
    assert labels(redis_client) == []


# --- errors in Akismet's style -----------------------------------------------------------------


def test_the_client_surfaces_the_debug_help_of_a_bad_request(checker) -> None:
    with pytest.raises(akismet.ProtocolError, match='Empty "comment_content" value'):
        checker.comment_check(user_ip="203.0.113.5", comment_author="Ann")
    with pytest.raises(akismet.ProtocolError, match="user_ip: Not a valid IPv4 or IPv6"):
        checker.submit_spam(user_ip="not-an-ip", comment_content=SPAM)


@pytest.mark.parametrize(
    ("path", "form", "body"),
    [
        ("comment-check", {}, "Missing required field: api_key."),
        ("comment-check", {"api_key": "mk_wrong"}, "invalid"),
        ("comment-check", {"api_key": "{key}"}, "Missing required field: user_ip."),
        ("comment-check", {"api_key": "{key}", "user_ip": "1.2.3.4"}, None),
        ("submit-ham", {"api_key": "{key}", "user_ip": "1.2.3.4"}, None),
        # `key` is as good as `api_key` (the issue-14 clients send either)
        ("submit-spam", {"key": "{key}", "user_ip": "1.2.3.4"}, "Missing required field: comm"),
        ("verify-key", {}, "invalid"),
        ("verify-key", {"key": "mk_wrong", "blog": BLOG}, "invalid"),
    ],
)
def test_malformed_requests_get_akismet_errors(client, site, path, form, body) -> None:
    data = {name: value.replace("{key}", site.api_key) for name, value in form.items()}
    response = client.post(f"/1.1/{path}", data=data)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.headers[DEBUG]
    expected = body or "Missing required field: "
    assert response.get_data(as_text=True).startswith(expected)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": b"\xff\xfe\x00garbage", "content_type": "application/x-www-form-urlencoded"},
        {"data": b"api_key=%ZZ%&&==&user_ip", "content_type": "application/x-www-form-urlencoded"},
        {"json": {"api_key": "x", "comment_content": "y"}},
        {"data": b"--x\r\nbroken multipart", "content_type": "multipart/form-data; boundary=x"},
        {"data": {"api_key": "k" * 100_000}},
        {"data": b"a=" + b"b" * 3_000_000, "content_type": "application/x-www-form-urlencoded"},
    ],
)
@pytest.mark.parametrize("path", ["comment-check", "submit-spam", "submit-ham", "verify-key"])
def test_garbage_is_never_a_500(client, path, kwargs) -> None:
    response = client.post(f"/1.1/{path}", **kwargs)
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    assert response.mimetype == "text/plain"
    assert response.headers[DEBUG]


def test_the_sites_rate_limit_applies(settings, site) -> None:
    app = create_app(settings.with_overrides(rate_limit_site="2 per minute"))
    try:
        client = app.test_client()
        for _ in range(2):
            assert client.post("/1.1/verify-key", data={"key": site.api_key}).text == "valid"
        refused = client.post("/1.1/submit-ham", data={"api_key": site.api_key})
        assert refused.status_code == 429
        assert refused.headers["Retry-After"]
        assert refused.headers[DEBUG].startswith("Rate limit exceeded")
        # the same count as the JSON API's, for the same key
        bearer = {"Authorization": f"Bearer {site.api_key}"}
        assert client.get("/v1/policy", headers=bearer).status_code == 429
    finally:
        app.extensions["moderation"].redis.close()


# --- the README's recipe, against `moderation serve` ------------------------------------------


def readme_snippet() -> str:
    """The Python block of the README's "Moving from Akismet" section."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("### Moving from Akismet", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_recipe_against_served_processes(redis_server, site, tmp_path: Path) -> None:
    port = free_port()
    env = moderation_env(redis_server.url, {"PORT": str(port), "MODERATION_WEB_CONCURRENCY": "1"})
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:  # not listening yet, or still booting
            return False

    code = readme_snippet()
    assert code.count('"http://127.0.0.1:8000"') == 1 and code.count('"mk_..."') == 1
    code = code.replace("http://127.0.0.1:8000", base).replace("mk_...", site.api_key)
    with (
        moderation_process(["serve"], env, tmp_path / "api.log"),
        running_worker(redis_server.url, tmp_path / "worker.log"),
    ):
        wait_for(ready, timeout=60, interval=0.1, what="/readyz")
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)
        assert namespace["verdict"] is akismet.CheckResponse.HAM
        with namespace["client"] as client:  # closes its http_client at the end
            assert client.comment_check(user_ip="203.0.113.7", comment_content=SPAM)
            assert client.submit_spam(user_ip="203.0.113.7", comment_content=SPAM) is True


def test_blog_lang_is_a_hint_for_the_comment_language() -> None:
    form = {"user_ip": "203.0.113.9", "comment_content": "Bonjour", "blog_lang": "fr_ca, en"}
    assert submission_from(form).context["language"] == "fr_ca"
    assert "language" not in submission_from({**form, "blog_lang": ""}).context
