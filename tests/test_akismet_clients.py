"""Akismet's published clients, unmodified, against a real `moderation serve` and worker.

- npm `akismet-api` 6.0.0 (the client Coral Talk uses): verify-key with `key`, then the key in
  the host name (`http://KEY.localhost:PORT/1.1/comment-check`), lowercased by Node: with the
  Akismet-shaped key and with the API key.
- Debian's `libnet-akismet-perl` (Net::Akismet): the same calls through Perl's LWP.

Both scripts live in tests/clients/ (the npm package installed by `make test` from its lock
file); they resolve `*.localhost` to 127.0.0.1 themselves, as RFC 6761 resolvers do. Also, with
the app in-process: the account calls WordPress's plugin makes, the host-name key's edge
cases, the form WordPress really sends, and rate limits counted per key whatever its spelling.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from flask.testing import FlaskClient

from moderation.app import create_app
from moderation.core.redis_keys import KEYS
from moderation.protocols.akismet import Counts
from moderation.protocols.akismet_usage import MAX_BLOGS, AkismetUsage
from moderation.storage.label_store import LabelStore
from moderation.storage.site_store import API_KEY_FOLDED, SiteCredentials, SiteStore
from tests.support.load import served_api
from tests.support.processes import PROJECT_ROOT, running_worker
from tests.support.redis_server import RedisServer

CLIENTS = PROJECT_ROOT / "tests" / "clients"
BLOG = "https://news.example"
SPAM = (
    "Buy cheap viagra now!!! http://pills.example/buy and http://cheap-meds.example "
    "click here to order"
)
HAM = "Thanks for the thoughtful article; the section on budgets was very clear."


@pytest.fixture
def served(redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> Iterator[str]:
    with (
        running_worker(redis_server.url, tmp_path / "worker.log"),
        served_api(redis_server.url, tmp_path) as base,
    ):
        yield base


def run_client(command: list[str]) -> dict:
    """One client script's answers (it prints a JSON object)."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.strip(), f"{command[0]} printed nothing; stderr: {done.stderr[-2000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def node_client(base: str, key: str) -> dict:
    node = shutil.which("node")
    assert node, "Node.js is needed (.ci/run installs it)"
    assert (CLIENTS / "node_modules" / "akismet-api").is_dir(), (
        "npm's akismet-api is missing: `make test` runs `npm ci --prefix tests/clients`"
    )
    return run_client([node, str(CLIENTS / "akismet-api.js"), localhost(base), key, BLOG])


def perl_client(base: str, key: str) -> dict:
    return run_client(["perl", str(CLIENTS / "net-akismet.pl"), localhost(base), key, BLOG])


def localhost(base: str) -> str:
    """`localhost:PORT`: the clients put the key in front (`KEY.localhost:PORT`)."""
    return f"localhost:{urlsplit(base).port}"


def labels(connection: redis.Redis) -> list[tuple[str, str]]:
    return [(x.kind.value, x.source) for x in LabelStore(connection).recent("news", 100)]


def test_npm_akismet_api_with_the_key_in_the_host_name(served, site, redis_client) -> None:
    answers = node_client(served, site.akismet_key)

    assert answers == {"verified": True, "spam": True, "ham": False, "submitted": True}
    assert ("spam", "akismet:submit-spam") in labels(redis_client)
    assert ("ok", "akismet:submit-ham") in labels(redis_client)


def test_npm_akismet_api_with_the_api_key_node_lowercases(served, site) -> None:
    # The long API key has capitals that Node's URL parser folds: the Akismet endpoints match
    # keys in any case
    answers = node_client(served, site.api_key)

    assert answers == {"verified": True, "spam": True, "ham": False, "submitted": True}


def test_perl_net_akismet_with_the_key_in_the_host_name(served, site, redis_client) -> None:
    answers = perl_client(served, site.akismet_key)

    assert answers == {
        "verified": True,
        "spam": "true",
        "ham": "false",
        "submitted_spam": True,
        "submitted_ham": True,
    }
    assert ("spam", "akismet:submit-spam") in labels(redis_client)


def test_perl_net_akismet_with_a_wrong_key_is_refused(served, site) -> None:
    assert perl_client(served, "0123456789ab") == {"verified": False}


# --- the key, wherever it comes --------------------------------------------------------------


def post(client: FlaskClient, path: str, data: dict, host: str = "localhost") -> tuple[str, int]:
    response = client.post(f"/1.1/{path}", data=data, headers={"Host": host})
    return response.get_data(as_text=True), response.status_code


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("form api_key", "valid"),
        ("form key", "valid"),
        ("host", "valid"),
        ("host upper", "valid"),  # Akismet-shaped keys are matched in any case
        ("host with port", "valid"),
        ("bare host", "invalid"),  # "KEY" alone is a host, not a key in front of one
        ("nowhere", "invalid"),
    ],
)
def test_verify_key_finds_the_key(client, site: SiteCredentials, where, expected) -> None:
    key = site.akismet_key
    assert key
    data, host = {"blog": BLOG}, "rest.akismet.com"
    if where == "form api_key":
        data["api_key"] = key
    elif where == "form key":
        data["key"] = key
    elif where == "host":
        host = f"{key}.rest.akismet.com"
    elif where == "host upper":
        host = f"{key.upper()}.REST.AKISMET.COM"
    elif where == "host with port":
        host = f"{key}.localhost:8000"
    elif where == "bare host":
        host = key
    assert post(client, "verify-key", data, host)[0] == expected


def test_the_api_key_works_in_the_host_name_in_any_case(
    client, site: SiteCredentials, settings, redis_client
) -> None:
    key = site.api_key
    assert post(client, "verify-key", {}, f"{key}.rest.akismet.com")[0] == "valid"
    assert post(client, "verify-key", {}, f"{key.lower()}.rest.akismet.com")[0] == "valid"
    assert post(client, "verify-key", {"key": key.upper()})[0] == "valid"
    # Only on the Akismet endpoints: the API itself compares the key exactly
    assert (
        client.get("/v1/policy", headers={"Authorization": f"Bearer {key.lower()}"}).status_code
        == 401
    )
    # A rotated-out key is refused in every case
    SiteStore(redis_client, settings.secret_key).rotate_api_key("news")
    assert post(client, "verify-key", {}, f"{key.lower()}.rest.akismet.com")[0] == "invalid"
    assert post(client, "verify-key", {"key": key})[0] == "invalid"


def test_a_key_stored_before_its_folded_form_matches_exactly_until_rotated(
    client, site: SiteCredentials, settings, redis_client
) -> None:
    """Sites created before the Akismet endpoints matched keys in any case have no folded
    digest: their key still works as sent, and in any case once rotated."""
    folded = redis_client.hget(KEYS.site("news"), API_KEY_FOLDED.field)
    assert folded
    redis_client.hdel(KEYS.site("news"), API_KEY_FOLDED.field)
    redis_client.delete(API_KEY_FOLDED.index(folded.decode()))
    assert post(client, "verify-key", {"key": site.api_key})[0] == "valid"
    assert post(client, "verify-key", {"key": site.api_key.lower()})[0] == "invalid"
    rotated = SiteStore(redis_client, settings.secret_key).rotate_api_key("news").api_key
    assert post(client, "verify-key", {"key": rotated.lower()})[0] == "valid"


def test_account_calls_prefer_key_to_an_older_api_key(client, site, make_site) -> None:
    """WordPress verifies a new key with `key` while `api_key` still holds the saved one."""
    other = make_site("other")
    data = {"key": other.akismet_key, "api_key": "0123456789ab", "blog": BLOG}
    assert post(client, "verify-key", data)[0] == "valid"
    assert json.loads(post(client, "get-subscription", data)[0])["account_name"] == "other"


def test_an_unknown_key_in_the_host_is_akismets_invalid(client, site) -> None:
    body, status = post(client, "comment-check", {"user_ip": "1.2.3.4"}, "abcdefabcdef.rest.x")
    assert (body, status) == ("invalid", 200)
    body, _ = post(client, "comment-check", {"user_ip": "1.2.3.4"}, "rest.akismet.com")
    assert body == "Missing required field: api_key."


def test_the_akismet_key_opens_nothing_but_akismet(client, site) -> None:
    headers = {"Authorization": f"Bearer {site.akismet_key}"}
    assert client.get("/v1/policy", headers=headers).status_code == 401
    assert client.post(
        f"/v1alpha1/comments:analyze?key={site.akismet_key}", json={}
    ).status_code in (
        400,
        403,
    )


# --- the account calls WordPress's plugin makes ----------------------------------------------


def test_get_subscription_is_active_for_a_valid_key(client, site) -> None:
    response = client.post("/1.1/get-subscription", data={"key": site.akismet_key, "blog": BLOG})
    subscription = response.get_json()
    assert subscription["status"] == "active"
    assert subscription["account_name"] == "news"
    assert subscription["limit_reached"] is False
    assert post(client, "get-subscription", {"key": "0123456789ab"})[0] == "invalid"


def test_deactivate_and_the_connectivity_test(client, site) -> None:
    assert post(client, "deactivate", {"key": site.akismet_key, "blog": BLOG})[0] == "deactivated"
    assert client.get("/1.1/test").get_data(as_text=True) == "connected"
    # and the key still works: deactivating the plugin does not revoke it
    assert post(client, "verify-key", {"key": site.akismet_key})[0] == "valid"


def test_stats_key_sites_and_usage_count_the_calls(served, site, redis_client) -> None:
    import requests

    def call(path: str, **data: str) -> requests.Response:
        data = {"api_key": site.akismet_key, "blog": BLOG, **data}
        return requests.post(f"{served}/1.1/{path}", data=data, timeout=30)

    visitor = {"user_ip": "203.0.113.7", "user_agent": "Mozilla/5.0"}
    assert call("comment-check", comment_content=SPAM, **visitor).text == "true"
    assert call("comment-check", comment_content=HAM, **visitor).text == "false"
    assert call("comment-check", comment_content=HAM, is_test="1", **visitor).text == "false"
    assert call("submit-ham", comment_content=SPAM, **visitor).ok

    stats = call("get-stats", key=site.akismet_key, **{"from": "6-months"}).json()
    assert (stats["spam"], stats["ham"], stats["false_positives"]) == (1, 1, 1)
    assert stats["accuracy"] == 50.0
    assert len(stats["breakdown"]) == 1

    sites = requests.get(
        f"{served}/1.2/key-sites", params={"api_key": site.akismet_key}, timeout=30
    ).json()
    (month,) = [name for name in sites if name[:2] == "20"]
    assert sites[month] == [
        {
            "site": BLOG,
            "api_calls": "2",
            "spam": "1",
            "ham": "1",
            "missed_spam": "0",
            "false_positives": "1",
            "is_revoked": False,
        }
    ]
    assert sites["total"] == 1
    csv = call("key-sites", format="csv").text.splitlines()
    assert csv[1].startswith("Site,Total API Calls") and csv[2].startswith(f'"{BLOG}",2,1,1')

    usage = call("usage-limit").json()
    assert usage == {"limit": -1, "usage": 2, "percentage": "0.00", "throttled": False}
    assert redis_client.exists(KEYS.akismet_months("news"))


@pytest.mark.parametrize(
    ("data", "field"),
    [({"month": "2026-13x"}, "month"), ({"order": "x"}, "order"), ({"limit": "-1"}, "limit")],
)
def test_key_sites_names_a_bad_parameter(client, site, data, field) -> None:
    response = client.post("/1.2/key-sites", data={"api_key": site.akismet_key, **data})
    assert response.get_data(as_text=True) == f"Invalid field: {field}."
    assert response.headers["X-akismet-debug-help"]


def test_the_form_wordpress_sends_is_accepted(client, site, redis_client) -> None:
    """WordPress adds its server variables, `POST_*` fields and `comment_context[]`; Akismet
    ignores what it does not know, and so does this service (checked without a worker: the
    administrator's role answers before any scoring)."""
    data = {
        "api_key": site.akismet_key,
        "blog": BLOG,
        "blog_lang": "en_US",
        "blog_charset": "UTF-8",
        "user_ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0",
        "referrer": "",
        "permalink": f"{BLOG}/?p=1",
        "comment_type": "comment",
        "comment_author": "Ann",
        "comment_content": HAM,
        "comment_date_gmt": "2026-12-07 05:00:00",
        "comment_post_modified_gmt": "2026-12-01 10:00:00",
        "comment_context[]": ["news", "budgets"],
        "POST_comment_post_ID": "1",
        "POST_ak_js": "1733547600000",
        "SERVER_SOFTWARE": "PHP 8.2 Development Server",
        "HTTP_ACCEPT_LANGUAGE": "en-GB",
        "user_role": "administrator",
        "recheck_reason": "",
    }
    response = client.post("/1.1/comment-check", data=data, headers={"Host": "rest.akismet.com"})
    assert (response.status_code, response.get_data(as_text=True)) == (200, "false")


def test_rate_limits_count_a_site_however_its_key_is_spelled(settings, site) -> None:
    """The Akismet-shaped key in any case, and the API key in the form or lowercased in the
    host name, all spend the site's one count, the one its `/v1` calls spend."""
    app = create_app(replace(settings, rate_limit_site="2/minute"))
    client = app.test_client()
    key = site.akismet_key
    assert key
    answers = [
        post(client, "verify-key", {"key": key})[1],
        post(client, "verify-key", {}, f"{key.upper()}.rest.akismet.com")[1],
        post(client, "verify-key", {}, f"{site.api_key.lower()}.rest.akismet.com")[1],
        post(client, "verify-key", {"api_key": site.api_key})[1],
    ]
    assert answers == [200, 200, 429, 429]
    bearer = {"Authorization": f"Bearer {site.api_key}"}
    assert client.get("/v1/policy", headers=bearer).status_code == 429
    app.extensions["moderation"].redis.close()


def test_usage_counts_every_call_but_at_most_max_blogs_blogs(redis_client) -> None:
    """A client sending a new `blog` with every call cannot grow a month without bound: its
    calls count in the totals, blogs past the cap are not listed, known ones still count."""
    usage = AkismetUsage(redis_client)
    for number in range(MAX_BLOGS):
        usage.record("news", f"https://blog-{number}.example", "ham")
    usage.record("news", "https://one-too-many.example", "spam")
    usage.record("news", "https://blog-0.example", "spam")
    usage.record("news", "", "ham")  # no blog: the totals only

    (month,) = usage.months("news")
    assert usage.months("news")[month] == Counts(spam=2, ham=MAX_BLOGS + 1)
    blogs = usage.blogs("news", month)
    assert len(blogs) == MAX_BLOGS and "https://one-too-many.example" not in blogs
    assert blogs["https://blog-0.example"] == Counts(spam=1, ham=1)
    assert usage.calls("news", month) == MAX_BLOGS + 3
