"""Rate limits: per API key, per moderator, per login name and address, and on failed
authentication per address and key prefix (valid credentials never refused by it); 429 with
Retry-After."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from moderation.app import create_app
from moderation.core.credentials import digest
from moderation.core.settings import Settings, SettingsError, from_env
from moderation.storage.moderator_store import ModeratorCredentials, ModeratorStore, Role
from tests.support.coral import SECRET, headers_for, moderation_request, serialised
from tests.support.held import log_in
from tests.support.perspective import google_error

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

STRANGER, NEIGHBOUR = "203.0.113.7", "198.51.100.1"


def from_address(app: Flask, address: str) -> FlaskClient:
    """A client whose every request comes from `address`."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def bad_keys(count: int, prefix: str = "mk_") -> list[str]:
    """Made-up keys, each with a prefix of its own (`prefix` then a number, over 8 characters)
    unless `prefix` itself is 8 characters or more."""
    return [f"{prefix}{number:06d}-{secrets.token_urlsafe(8)}" for number in range(count)]


def test_a_valid_key_is_served_whatever_failed_from_its_address(tight, site):
    for key in bad_keys(5):
        assert submit(tight, key, "c", address=STRANGER).status_code == 401
    # Failures past the limit are refused with 429 instead of 401, and stay refused...
    for key in bad_keys(3, "mk_late"):
        assert_rate_limited(submit(tight, key, "c", address=STRANGER))
    # ...while the site behind the same address is answered as usual, and not counted.
    assert submit(tight, site.api_key, "c-1", address=STRANGER).status_code == 202
    assert tight.get("/v1/policy", headers=bearer(site.api_key)).status_code == 200
    assert_rate_limited(submit(tight, "mk_wrong-again", "c", address=STRANGER))
    # A bad key from another address is its own failure.
    assert submit(tight, "mk_another", "c", address=NEIGHBOUR).status_code == 401


def test_a_missing_key_counts_as_a_failure_of_its_address(make_app, site):
    # (Calls with no key also share their address's site limit: raised out of the way.)
    client = from_address(make_app(rate_limit_site="100 per minute"), STRANGER)
    for _ in range(5):
        assert client.get("/v1/policy").status_code == 401
    assert_rate_limited(client.get("/v1/policy"))
    assert client.get("/v1/policy", headers=bearer(site.api_key)).status_code == 200


def test_failures_count_per_key_prefix_across_addresses(tight, site):
    """A stale key retried from many addresses (pods, NAT) runs out its prefix's count; other
    keys' failures from other addresses do not."""
    stale = bad_keys(6, "mk_stale")  # one prefix: "mk_stale"
    for number, key in enumerate(stale[:5]):
        assert submit(tight, key, "c", address=f"192.0.2.{number}").status_code == 401
    assert_rate_limited(submit(tight, stale[5], "c", address="192.0.2.50"))
    # Another prefix from the same fresh address, and from one more, is answered 401.
    assert submit(tight, "mk_other-key", "c", address="192.0.2.50").status_code == 401
    assert submit(tight, "mk_other-key", "c", address="192.0.2.51").status_code == 401
    # Each address used once for the stale prefix has failures to spare (5 a minute)...
    for key in bad_keys(4):
        assert submit(tight, key, "c", address="192.0.2.0").status_code == 401
    # ...until its own count runs out, whatever the key's prefix.
    assert_rate_limited(submit(tight, "mk_fresh-key", "c", address="192.0.2.0"))
    # And the real key is served from every one of those addresses.
    assert submit(tight, site.api_key, "c-1", address="192.0.2.0").status_code == 202
    assert submit(tight, site.api_key, "c-2", address="192.0.2.50").status_code == 202


def test_failure_counts_keep_neither_keys_nor_their_prefixes(tight, redis_client):
    stale = bad_keys(6, "mk_stale")
    for number, key in enumerate(stale):
        submit(tight, key, "c", address=f"192.0.2.{number}")
    names = [key.decode() for key in redis_client.keys("mod:ratelimit*auth-failures*")]
    assert any("presented:" in name for name in names)
    assert any("address:192.0.2.4/" in name for name in names)
    # The sixth was refused (the prefix's count had run out), so it was not counted.
    assert not any("address:192.0.2.5/" in name for name in names)
    assert not any("stale" in name for name in names)
    for value in redis_client.mget(names):
        assert value is None or b"stale" not in value


def test_a_moderator_token_is_served_whatever_failed_from_its_address(tight, ann):
    for key in bad_keys(5, "mt_"):
        wrong = tight.get("/v1/review/queue", headers=bearer(key))
        assert wrong.status_code == 401
    assert_rate_limited(tight.get("/v1/review/queue", headers=bearer("mt_guess")))
    assert tight.get("/v1/review/queue", headers=bearer(ann.token)).status_code == 200


def akismet_verify(client: FlaskClient, key: str, address: str = STRANGER):
    return client.post(
        "/1.1/verify-key",
        data={"key": key, "blog": "https://news.example"},
        environ_base={"REMOTE_ADDR": address},
    )


def test_akismet_bad_keys_get_akismets_429_and_good_keys_their_answer(tight, site):
    assert site.akismet_key
    for number in range(5):
        assert akismet_verify(tight, f"{number:04x}{secrets.token_hex(4)}").text == "invalid"
    refused = akismet_verify(tight, secrets.token_hex(6))
    assert_rate_limited(refused)
    assert refused.mimetype == "text/plain"
    assert refused.headers["X-akismet-debug-help"].startswith("Rate limit exceeded")
    # The site's Akismet key and its API key, in the form or the host name, still work.
    assert akismet_verify(tight, site.akismet_key).text == "valid"
    in_host = tight.post(
        "/1.1/get-subscription",
        headers={"Host": f"{site.akismet_key}.rest.akismet.com"},
        environ_base={"REMOTE_ADDR": STRANGER},
    )
    assert in_host.status_code == 200 and in_host.is_json
    # A made-up key in the host name is a failure from that address like any other.
    guessed = tight.post(
        "/1.1/get-subscription",
        headers={"Host": f"{secrets.token_hex(6)}.rest.akismet.com"},
        environ_base={"REMOTE_ADDR": STRANGER},
    )
    assert_rate_limited(guessed)


def test_perspective_bad_keys_get_googles_429_and_good_keys_their_answer(tight, site):
    suggestion = {
        "comment": {"text": "hi"},
        "attributeScores": {"TOXICITY": {"summaryScore": {"value": 0}}},
        "languages": ["en"],
    }
    address = {"REMOTE_ADDR": STRANGER}
    suggest = "/v1alpha1/comments:suggestscore"
    for key in bad_keys(4):
        refused = tight.post(f"{suggest}?key={key}", json=suggestion, environ_base=address)
        assert refused.status_code == 400
    assert tight.post(suggest, json=suggestion, environ_base=address).status_code == 403
    limited = tight.post(f"{suggest}?key=mk_guess", json=suggestion, environ_base=address)
    google_error(limited, 429, "RESOURCE_EXHAUSTED")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    served = tight.post(f"{suggest}?key={site.api_key}", json=suggestion, environ_base=address)
    assert served.status_code == 200


def test_coral_unsigned_calls_get_429_and_signed_ones_their_answer(tight, site):
    as_site = bearer(site.api_key)
    assert tight.put("/v1/site/coral", json={"signing_secrets": [SECRET]}, headers=as_site)
    body = serialised(moderation_request("<p></p>"))  # no text: answered without the workers

    def post(secret: str):
        headers = headers_for(body, [secret])
        return tight.post("/coral/news", data=body, headers=headers, environ_base=address)

    address = {"REMOTE_ADDR": STRANGER}
    for _ in range(5):
        assert post("empsec_wrong").status_code == 401
    assert_rate_limited(post("empsec_wrong"))
    assert post(SECRET).status_code == 204


def test_behind_a_trusted_proxy_clients_are_told_apart(make_app, site):
    client = make_app(proxy_hops=1).test_client()
    for key in bad_keys(5):
        headers = {**bearer(key), "X-Forwarded-For": STRANGER}
        assert client.get("/v1/policy", headers=headers).status_code == 401
    stranger = {**bearer("mk_wrong-again"), "X-Forwarded-For": STRANGER}
    assert_rate_limited(client.get("/v1/policy", headers=stranger))
    neighbour = {**bearer("mk_wrong-again"), "X-Forwarded-For": NEIGHBOUR}
    assert client.get("/v1/policy", headers=neighbour).status_code == 401
    valid = {**bearer(site.api_key), "X-Forwarded-For": STRANGER}
    assert client.get("/v1/policy", headers=valid).status_code == 200


def test_off_turns_the_failure_limit_off(make_app, site):
    client = make_app(auth_failure_limit=None, rate_limit_site=None).test_client()
    for key in bad_keys(8, "mk_stale"):
        assert submit(client, key, "c", address=STRANGER).status_code == 401


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


def test_a_stranger_locks_an_account_only_for_its_own_address(make_app, ann, moderators):
    """Guesses at ann from one address refuse ann there, the right password included; ann
    logs in from anywhere else, and others log in from that address."""
    app = make_app()
    stranger, office = from_address(app, STRANGER), from_address(app, NEIGHBOUR)
    bob = moderators.create("bob", Role.ADMIN, [])
    for _ in range(2):
        assert log_in(stranger, "ann", "wrong password").status_code == 401
    assert_rate_limited(log_in(stranger, "ann", ann.password))
    assert log_in(stranger, "bob", bob.password).status_code == 302
    assert log_in(office, "ann", ann.password).status_code == 302


def test_guesses_from_many_addresses_lock_the_account_everywhere(make_app, ann, moderators):
    """Ten times the per-address allowance (2 a minute here), from anywhere, locks the account."""
    app = make_app()
    bob = moderators.create("bob", Role.ADMIN, [])
    for number in range(10):
        guesser = from_address(app, f"192.0.2.{number}")
        for _ in range(2):
            assert log_in(guesser, "ann", "wrong password").status_code == 401
    elsewhere = from_address(app, NEIGHBOUR)
    locked = log_in(elsewhere, "ann", ann.password)
    assert_rate_limited(locked)
    assert "Too many login attempts" in locked.get_data(as_text=True)
    assert log_in(elsewhere, "bob", bob.password).status_code == 302


def test_failed_logins_count_as_failures_of_their_address(make_app, ann):
    """Past the address's failure limit, failed logins get the login page's 429; a correct
    login, and a moderator's session, from that address are unaffected."""
    app = make_app(rate_limit_login="100 per minute", rate_limit_moderator="100 per minute")
    there = from_address(app, STRANGER)
    assert log_in(there, "ann", ann.password).status_code == 302
    for number in range(5):
        assert log_in(from_address(app, STRANGER), f"nobody{number}", "x").status_code == 401
    refused = log_in(from_address(app, STRANGER), "nobody9", "x")
    assert_rate_limited(refused)
    assert "Too many login attempts" in refused.get_data(as_text=True)
    for key in bad_keys(3):
        assert_rate_limited(submit(there, key, "c", address=STRANGER))
    assert there.get("/moderate/queue.json").status_code == 200
    assert log_in(from_address(app, STRANGER), "ann", ann.password).status_code == 302


def test_a_wrong_password_answered_429_still_counts_against_the_account(make_app, ann):
    """Past the address's failure limit a wrong password is answered 429, but it was checked:
    it counts against the account, or a guesser there would get unlimited checked guesses."""
    app = make_app(rate_limit_login="100 per minute")
    for number in range(5):
        assert log_in(from_address(app, STRANGER), f"nobody{number}", "x").status_code == 401
    for _ in range(2):
        assert_rate_limited(log_in(from_address(app, STRANGER), "ann", "wrong password"))
    assert_rate_limited(log_in(from_address(app, STRANGER), "ann", ann.password))
    assert log_in(from_address(app, NEIGHBOUR), "ann", ann.password).status_code == 302


def test_a_page_without_a_session_is_sent_to_log_in_not_throttled(tight):
    """No session presents nothing to guess: its 401 (the page's cue to show the login form)
    is neither counted nor refused."""
    client = from_address(tight.application, STRANGER)
    for key in bad_keys(5):
        assert submit(client, key, "c", address=STRANGER).status_code == 401
    assert client.get("/moderate/queue.json").status_code == 401


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
