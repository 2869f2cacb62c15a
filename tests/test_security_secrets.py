"""Secrets are stored only as digests or hashes, compared in constant time, and never logged.

One test runs everything that touches a secret (sites and moderators made by the stores and
by the CLI, key rotation, password resets, logins on the page and the API that succeed, fail
and get rate limited, comments, scoring, moderator decisions, signed webhooks), then reads
every key and value Redis holds and every log line written (caplog at DEBUG, where email and
IP redaction is off, the JSON formatter, and real worker processes), and looks for each secret.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from moderation.app import create_app
from moderation.core import credentials
from moderation.core.logs import ContextFilter, JsonFormatter
from moderation.core.redis_keys import KEYS
from moderation.core.settings import Settings
from moderation.core.webhook_requests import SIGNATURE_HEADER, verify
from moderation.ops.cli import main
from moderation.storage import moderator_store as moderators_module
from moderation.storage.moderator_store import ModeratorStore, Role
from moderation.storage.site_store import SiteStore
from tests.support.held import log_in, page_token
from tests.support.processes import PROJECT_ROOT, moderation_env
from tests.support.receiver import running_receiver
from tests.support.redis_dump import dump_everything, find_in_dump

#: Comment data that belongs in Redis but never in a log line.
PERSONAL = {
    "content": "zq-secret-text of a comment nobody may log",
    "email": "zoe.private@example.org",
    "ip": "203.0.113.99",
    "user_agent": "PrivateAgent/7.7",
}


def comment(comment_id: str) -> dict[str, Any]:
    return {
        "id": comment_id,
        "content": f"{PERSONAL['content']} ({comment_id})",
        "author": {
            "id": "u-zoe",
            "name": "Zoe",
            "email": PERSONAL["email"],
            "ip": PERSONAL["ip"],
            "user_agent": PERSONAL["user_agent"],
        },
    }


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


class Secrets:
    """Every secret the scenario creates or presents, with the forms it could leak in."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def add(self, label: str, value: str) -> str:
        self.values[label] = value
        for prefix in (credentials.API_KEY_PREFIX, moderators_module.TOKEN_PREFIX, "whsec_"):
            if value.startswith(prefix):  # the random part alone, too
                self.values[label + " (without prefix)"] = value.removeprefix(prefix)
        return value

    def add_credentials(self, label: str, data: dict[str, str]) -> dict[str, str]:
        for field in ("api_key", "webhook_secret", "akismet_key", "token", "password"):
            if field in data:
                self.add(f"{label} {field}", data[field])
        return data


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Every record at DEBUG: in caplog, and as the JSON lines moderation.core.logs writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    caplog.set_level(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def cli(env: dict[str, str], *args: str) -> dict[str, str]:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def run_worker(env: dict[str, str], *extra: str) -> str:
    """`moderation worker --burst` until its queue is empty; its stderr (JSON log lines)."""
    done = subprocess.run(
        [sys.executable, "-m", "moderation.ops.cli", "worker", "--burst", *extra],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def expect(response: Any, status: int) -> None:
    assert response.status_code == status, response.get_data(as_text=True)[:300]


def session_contents(app: Flask, client: FlaskClient) -> str:
    """The decoded session cookie: readable by its holder, so no secret may be in it."""
    cookie = client.get_cookie("moderation_session")
    assert cookie is not None
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return json.dumps(serializer.loads(cookie.value))


@pytest.mark.e2e
def test_secrets_are_never_stored_in_clear_nor_logged(
    settings: Settings,
    redis_server: Any,
    redis_client: redis.Redis,
    logs: io.StringIO,
    caplog: pytest.LogCaptureFixture,
) -> None:
    found = Secrets()
    found.add("MODERATION_SECRET_KEY", settings.secret_key or "")
    worker_env = moderation_env(
        redis_server.url,
        {"MODERATION_LOG_LEVEL": "debug", "MODERATION_ALLOW_PRIVATE_CALLBACKS": "true"},
    )
    settings = settings.with_overrides(log_level="DEBUG", allow_private_callbacks=True)
    app = create_app(settings)
    # The same service with tight limits, to leave rate-limit counters behind in Redis.
    tight = create_app(
        settings.with_overrides(rate_limit_site="2 per minute", rate_limit_moderator="2 per minute")
    )
    client, page = app.test_client(), app.test_client()
    sites, moderators = SiteStore(redis_client, settings.secret_key), ModeratorStore(redis_client)

    with running_receiver(default=200) as receiver:
        # Sites: by the store and by the CLI, each with its key rotated once.
        news = sites.create("news", callback_url=receiver.url + "/news")
        found.add("news api_key", news.api_key)
        found.add("news webhook_secret", news.webhook_secret)
        news_key = found.add("news rotated api_key", sites.rotate_api_key("news").api_key)
        blog = found.add_credentials(
            "blog",
            cli(worker_env, "sites", "create", "blog", "--callback-url", receiver.url, "--json"),
        )
        blog_key = found.add_credentials(
            "blog rotated", cli(worker_env, "sites", "rotate-key", "blog", "--json")
        )["api_key"]
        found.add("news akismet_key", news.akismet_key or "")
        blog_akismet = found.add_credentials(
            "blog rotated", cli(worker_env, "sites", "rotate-akismet-key", "blog", "--json")
        )["akismet_key"]

        # Moderators: by the store and by the CLI, passwords reset both ways.
        ann_old = moderators.create("ann", Role.MODERATOR, ["news"])
        found.add("ann token", ann_old.token)
        found.add("ann password", ann_old.password)
        ann = found.add_credentials(
            "ann reset", cli(worker_env, "moderators", "reset-password", "ann", "--json")
        )
        create_bob = ["moderators", "create", "bob", "--role", "moderator", "--sites", "blog"]
        found.add_credentials("bob", cli(worker_env, *create_bob, "--json"))
        bob = moderators.reset_password("bob")
        found.add("bob reset token", bob.token)
        found.add("bob reset password", bob.password)
        root = found.add_credentials(
            "root", cli(worker_env, "moderators", "create", "root", "--role", "admin", "--json")
        )

        # Wrong credentials people might type: someone's near miss must not be logged either.
        wrong_key = found.add("a made-up API key", "mk_" + secrets.token_urlsafe(32))
        wrong_token = found.add("a made-up token", "mt_" + secrets.token_urlsafe(32))
        wrong_password = found.add("a wrong password", "hunter2-" + secrets.token_hex(8))

        # Host sites: comments one by one and in a batch; bad and rotated-out credentials.
        as_news, as_blog = bearer(news_key), bearer(blog_key)
        for comment_id in ("c-1", "c-2", "c-3"):
            expect(client.post("/v1/comments", json=comment(comment_id), headers=as_news), 202)
        batch = {"comments": [comment("b-1"), comment("b-2")]}
        expect(client.post("/v1/comments/batch", json=batch, headers=as_blog), 200)
        for key in (wrong_key, news.api_key, blog["api_key"], ann["token"]):
            expect(client.get("/v1/comments/c-1", headers=bearer(key)), 401)
        expect(client.put("/v1/policy", json={"suspect_words": ["zq"]}, headers=as_news), 200)
        # Akismet's clients: keys in the form and in the host name, good, old and made up.
        wrong_akismet = found.add("a made-up Akismet key", secrets.token_hex(6))
        for key in (news.akismet_key, blog_akismet, blog["akismet_key"], wrong_akismet):
            client.post("/1.1/verify-key", data={"key": key, "blog": "https://news.example"})
            client.post("/1.1/get-subscription", headers={"Host": f"{key}.rest.akismet.com"})

        # Moderators: the API with good, old and made-up tokens; the page with good and bad
        # passwords, then enough failures for one name to be rate limited.
        for token, status in ((ann["token"], 200), (ann_old.token, 401), (wrong_token, 401)):
            assert client.get("/v1/review/queue", headers=bearer(token)).status_code == status
        decided = client.post(
            "/v1/review/news/c-1",
            json={"action": "reject", "note": "no"},
            headers=bearer(ann["token"]),
        )
        assert decided.status_code == 200, decided.get_json()
        assert client.get("/v1/review/queue", headers=bearer(root["token"])).status_code == 200
        assert log_in(page, "ann", ann_old.password).status_code == 401
        assert log_in(page, "ann", wrong_password).status_code == 401
        assert log_in(page, "ann", ann["password"]).status_code == 302
        token = page_token(page.get("/moderate").get_data(as_text=True))
        on_page = page.post(
            "/moderate/decide/news/c-2", json={"action": "approve"}, headers={"X-CSRFToken": token}
        )
        assert on_page.status_code == 200, on_page.get_json()
        assert page.get("/moderate/queue.json").status_code == 200
        cookie = session_contents(app, page)
        statuses = [
            log_in(app.test_client(), "mallory", wrong_password).status_code for _ in range(5)
        ]
        assert statuses[0] == 401 and statuses[-1] == 429, statuses

        # Per-credential limits, counted in Redis by digest.
        tight_client = tight.test_client()
        for _ in range(3):
            last_site = tight_client.get("/v1/policy", headers=bearer(news_key))
            last_review = tight_client.get("/v1/review/queue", headers=bearer(ann["token"]))
        assert (last_site.status_code, last_review.status_code) == (429, 429)
        assert tight_client.get("/v1/policy", headers=bearer(wrong_key)).status_code == 401

        # Scoring and webhooks in real worker processes, logging at DEBUG.
        worker_logs = run_worker(worker_env) + run_worker(worker_env, "--deliveries")
        delivered = receiver.wait_for_requests(5, timeout=30)

    # Webhook secrets are derived (HMAC of the site's nonce under MODERATION_SECRET_KEY), never
    # stored: the stored nonce re-derives exactly the secret shown once, which signed every
    # webhook, and rotating the API key left it unchanged.
    for site, shown in (("news", news.webhook_secret), ("blog", blog["webhook_secret"])):
        nonce = redis_client.hget(KEYS.site(site), "webhook_nonce").decode()
        assert credentials.webhook_secret(settings.secret_key or "", site, nonce) == shown
    by_path = {request.path: request for request in delivered}
    assert verify(
        news.webhook_secret, by_path["/news"].header(SIGNATURE_HEADER), by_path["/news"].body
    )

    # Redis: every key name and every value of every type.
    dump = dump_everything(redis_client)
    assert find_in_dump(dump, PERSONAL["content"]), "the dump should see comment text"
    assert find_in_dump(dump, credentials.digest(news_key)), "keys are stored as digests"
    assert any(b"ratelimit" in key for key in dump), "the rate limiter keeps its counters here"
    leaks = {
        label: where
        for label, value in found.values.items()
        if (where := find_in_dump(dump, value))
    }
    assert leaks == {}, f"secrets stored in clear: {leaks}"

    # Logs: the API's records (caplog, and the JSON formatter's lines) and the workers'.
    json_lines = logs.getvalue()
    for line in json_lines.splitlines():
        json.loads(line)
    assert "logged in to /moderate" in caplog.text and "decided" in worker_logs  # logs were seen
    everything_logged = "\n".join(
        [caplog.text, json_lines, worker_logs, *map(repr, caplog.records)]
    )
    never_logged = {**found.values, **PERSONAL}
    leaks = {label: value for label, value in never_logged.items() if value in everything_logged}
    assert leaks == {}, f"logged: {leaks}"

    # The session cookie (signed, not encrypted: its holder can read it).
    assert not [label for label, value in found.values.items() if value in cookie], cookie

    for application in (app, tight):
        application.extensions["moderation"].redis.close()


# --- constant-time comparisons ---------------------------------------------------------------


def test_keys_and_tokens_are_checked_with_compare_digest(
    monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis, settings: Settings
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    site = SiteStore(redis_client, settings.secret_key).create("news")
    assert SiteStore(redis_client, settings.secret_key).authenticate(site.api_key) == "news"
    assert compared == [(credentials.digest(site.api_key).encode(),) * 2]

    compared.clear()
    assert site.akismet_key and settings.secret_key
    store = SiteStore(redis_client, settings.secret_key)
    assert store.authenticate_akismet(site.akismet_key.upper()) == "news"
    assert compared == [
        (credentials.akismet_digest(settings.secret_key, site.akismet_key).encode(),) * 2
    ]

    compared.clear()
    moderator = ModeratorStore(redis_client).create("ann", Role.MODERATOR, ["news"])
    assert ModeratorStore(redis_client).by_token(moderator.token) is not None
    assert compared == [(credentials.digest(moderator.token).encode(),) * 2]


def test_passwords_are_checked_with_check_password_hash_even_for_unknown_names(
    monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    """check_password_hash compares in constant time; an unknown name is checked against a
    dummy hash, so it takes as long as a wrong password."""
    store = ModeratorStore(redis_client)
    ann = store.create("ann", Role.MODERATOR, ["news"])
    checked: list[str] = []
    real = moderators_module.check_password_hash

    def spy(stored: str, password: str) -> bool:
        checked.append(stored)
        return real(stored, password)

    monkeypatch.setattr(moderators_module, "check_password_hash", spy)
    assert store.by_password("ann", ann.password) is not None
    assert store.by_password("nobody", ann.password) is None
    assert store.by_password("", ann.password) is None
    assert len(checked) == 3 and checked[0].startswith("scrypt:")
    assert checked[1] == checked[2] == moderators_module._DUMMY_HASH


#: Names that hold or derive from a secret; `==` on them would leak timing.
SECRETISH = re.compile(r"token|digest|password|secret|signature|api_?key|mac|hash", re.I)
#: (file, source of the comparison): why it is not a secret.
NOT_SECRET = {
    ("comment_store.py", "comment.content_hash != digest"): "a hash of the site's own comment text",
}


def names_in(node: ast.AST) -> list[str]:
    """The variable and attribute names an expression reads (string literals do not count)."""
    found = []
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            found.append(child.id)
        elif isinstance(child, ast.Attribute):
            found.append(child.attr)
    return found


def source_files() -> list[Path]:
    return sorted(
        [
            *PROJECT_ROOT.joinpath("moderation").rglob("*.py"),
            *PROJECT_ROOT.joinpath("workers").rglob("*.py"),
        ]
    )


def test_no_secret_is_compared_with_eq_in_the_source() -> None:
    """A grep with a parser: every ==, !=, `in` or `not in` in moderation/ and workers/ on a
    name that says token, digest, password, secret, signature, MAC or hash is listed in
    NOT_SECRET with a reason; secrets are compared with hmac.compare_digest (credentials.py,
    webhooks.verify) or werkzeug's check_password_hash (moderators.py)."""
    suspicious = []
    for path in source_files():
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Compare) or not any(
                isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops
            ):
                continue
            text = ast.get_source_segment(source, node) or ""
            secretish = any(SECRETISH.search(name) for name in names_in(node))
            if secretish and (path.name, text) not in NOT_SECRET:
                suspicious.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}: {text}")
    assert suspicious == []


def test_the_digest_is_sha256_of_the_whole_key() -> None:
    key = credentials.new_api_key()
    assert credentials.digest(key) == hashlib.sha256(key.encode()).hexdigest()
    assert credentials.digests_match(credentials.digest(key), key)
    assert not credentials.digests_match(credentials.digest(key), key[:-1])
