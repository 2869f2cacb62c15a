"""Rate limits: per API key, per moderator, per login name and address; 429 with Retry-After."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from moderation.app import create_app
from moderation.keys import digest
from moderation.moderators import ModeratorCredentials, ModeratorStore, Role
from moderation.settings import Settings, SettingsError, from_env
from tests.support.held import log_in

TIGHT = {
    "rate_limit_site": "3 per minute",
    "rate_limit_moderator": "3 per minute",
    "rate_limit_login": "6 per minute",
    "login_failure_limit": "2 per minute; 4 per hour",
    "auth_failure_limit": "5 per minute",
}


@pytest.fixture
def make_app(settings: Settings) -> Iterator[Callable[..., Flask]]:
    """Apps on the test's Redis with tight limits (each change given as a keyword)."""
    apps: list[Flask] = []

    def make(**changes: object) -> Flask:
        app = create_app(settings.with_overrides(**{**TIGHT, **changes}))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["moderation"].redis.close()


@pytest.fixture
def tight(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app().test_client()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def submit(client: FlaskClient, key: str, comment_id: str, address: str = "127.0.0.1"):
    return client.post(
        "/v1/comments",
        json={"id": comment_id, "content": "Hello"},
        headers=bearer(key),
        environ_base={"REMOTE_ADDR": address},
    )


def assert_rate_limited(response) -> None:
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 3600
    if response.is_json:
        error = response.get_json()["error"]
        assert error["code"] == "rate_limited"
        assert "Rate limit exceeded" in error["message"]


# --- host sites ------------------------------------------------------------------------------


def test_a_site_key_past_its_limit_gets_429_and_other_sites_do_not(tight, make_site):
    news, blog = make_site("news").api_key, make_site("blog").api_key
    for number in range(3):
        assert submit(tight, news, f"c-{number}").status_code == 202
    assert_rate_limited(submit(tight, news, "c-3"))
    assert submit(tight, blog, "b-0").status_code == 202
    # Operators still see the service.
    for path in ("/healthz", "/metrics", "/v1/openapi.json"):
        assert tight.get(path).status_code == 200


def test_the_site_limit_counts_every_endpoint_and_every_api_process(make_app, site):
    first, second = make_app().test_client(), make_app().test_client()
    assert submit(first, site.api_key, "c-0").status_code == 202
    assert first.get("/v1/policy", headers=bearer(site.api_key)).status_code == 200
    assert second.get("/v1/site", headers=bearer(site.api_key)).status_code == 200
    assert_rate_limited(second.get("/v1/comments/c-0", headers=bearer(site.api_key)))


def test_a_refused_comment_is_not_stored(tight, site, redis_client):
    for number in range(3):
        submit(tight, site.api_key, f"c-{number}")
    assert_rate_limited(submit(tight, site.api_key, "late"))
    assert not redis_client.keys("*late*")


def test_off_turns_a_limit_off(make_app, site):
    client = make_app(rate_limit_site=None).test_client()
    for number in range(6):
        assert submit(client, site.api_key, f"c-{number}").status_code == 202


def test_the_limiter_keeps_digests_of_keys_not_keys(tight, site, redis_client):
    for number in range(4):
        submit(tight, site.api_key, f"c-{number}")
    names = [key.decode() for key in redis_client.keys("mod:ratelimit*")]
    assert any(digest(site.api_key) in name for name in names)
    assert not any(site.api_key in name for name in names)


# --- failed authentication -------------------------------------------------------------------


def test_repeated_bad_keys_from_one_address_get_429(tight, site):
    for number in range(5):
        wrong = submit(tight, f"mk_wrong{number}", "c", address="203.0.113.7")
        assert wrong.status_code == 401
    assert_rate_limited(submit(tight, "mk_wrong-again", "c", address="203.0.113.7"))
    # That address is cut off, whatever key it sends; others are not.
    assert_rate_limited(submit(tight, site.api_key, "c-1", address="203.0.113.7"))
    assert submit(tight, site.api_key, "c-2", address="198.51.100.1").status_code == 202


def test_behind_a_trusted_proxy_clients_are_told_apart(make_app, site):
    client = make_app(proxy_hops=1).test_client()
    for number in range(5):
        headers = {**bearer(f"mk_wrong{number}"), "X-Forwarded-For": "203.0.113.7"}
        assert client.get("/v1/policy", headers=headers).status_code == 401
    blocked = {**bearer(site.api_key), "X-Forwarded-For": "203.0.113.7"}
    assert_rate_limited(client.get("/v1/policy", headers=blocked))
    other = {**bearer(site.api_key), "X-Forwarded-For": "198.51.100.1"}
    assert client.get("/v1/policy", headers=other).status_code == 200


# --- moderators ------------------------------------------------------------------------------


@pytest.fixture
def moderators(redis_client: redis.Redis) -> ModeratorStore:
    return ModeratorStore(redis_client)


@pytest.fixture
def ann(moderators: ModeratorStore) -> ModeratorCredentials:
    return moderators.create("ann", Role.ADMIN, [])


def test_a_moderator_token_past_its_limit_gets_429(tight, ann, moderators):
    bob = moderators.create("bob", Role.ADMIN, [])
    for _ in range(3):
        assert tight.get("/v1/review/queue", headers=bearer(ann.token)).status_code == 200
    assert_rate_limited(tight.get("/v1/review/queue", headers=bearer(ann.token)))
    assert tight.get("/v1/review/queue", headers=bearer(bob.token)).status_code == 200


def test_the_review_page_data_is_limited_per_moderator(tight, ann):
    assert log_in(tight, "ann", ann.password).status_code == 302
    # The page itself is not limited; the data its script fetches is.
    for _ in range(5):
        assert tight.get("/moderate").status_code == 200
    for _ in range(3):
        assert tight.get("/moderate/queue.json").status_code == 200
    assert_rate_limited(tight.get("/moderate/queue.json"))


# --- logging in ------------------------------------------------------------------------------


def test_failed_logins_slow_down_then_lock_even_the_right_password(tight, ann):
    for _ in range(2):
        assert log_in(tight, "ann", "wrong password").status_code == 401
    locked = log_in(tight, "ann", ann.password)
    assert_rate_limited(locked)
    assert "Too many login attempts" in locked.get_data(as_text=True)
    assert "moderation_session" not in locked.headers.get("Set-Cookie", "")


def test_one_accounts_lock_leaves_others_alone(tight, ann, moderators):
    bob = moderators.create("bob", Role.ADMIN, [])
    for _ in range(2):
        log_in(tight, "ann", "wrong password")
    assert log_in(tight, "bob", bob.password).status_code == 302


def test_successful_logins_do_not_count_as_failures(make_app, ann):
    app = make_app()
    for _ in range(3):  # more than the 2 failures allowed a minute
        assert log_in(app.test_client(), "ann", ann.password).status_code == 302


def test_login_attempts_are_limited_per_address(tight, ann):
    for number in range(6):
        response = log_in(tight, f"nobody{number}", "x")
        assert response.status_code == 401 or response.status_code == 429
    assert_rate_limited(log_in(tight, "ann", ann.password))


# --- settings --------------------------------------------------------------------------------


def test_limits_are_read_from_the_environment():
    settings = from_env(
        {
            "MODERATION_RATE_LIMIT_SITE": "100/second; 6000/minute",
            "MODERATION_RATE_LIMIT_MODERATOR": "off",
            "MODERATION_PROXY_HOPS": "1",
        }
    )
    assert settings.rate_limit_site == "100/second; 6000/minute"
    assert settings.rate_limit_moderator is None
    assert settings.proxy_hops == 1


def test_a_limit_that_does_not_parse_is_refused_by_name():
    with pytest.raises(SettingsError, match="MODERATION_RATE_LIMIT_LOGIN"):
        from_env({"MODERATION_RATE_LIMIT_LOGIN": "lots"})
