"""A real WordPress with its own Akismet plugin, pointed at this service by the must-use plugin
integrations/wordpress/moderation-akismet.php (issue 14: "a WordPress site can save its key
and have comments checked").

Debian's WordPress files, unmodified, run under PHP's built-in server with a MariaDB of their
own; `moderation serve` and `moderation worker` are real processes. The administrator saves the
site's Akismet-shaped key on the Akismet settings page in Chromium; visitors post comments
through wp-comments-post.php; what the Akismet plugin decided is read from WordPress's database.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Browser, Page, expect, sync_playwright

from moderation.storage.label_store import LabelStore
from tests.support.load import served_api
from tests.support.mariadb import MariaDB
from tests.support.processes import PROJECT_ROOT, moderation_env, running_worker, wait_for
from tests.support.redis_server import RedisServer
from tests.support.wordpress import ADMIN, WordPressSite, post_comment, wordpress_site

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
HELLO_WORLD = 1  # the post wp_install creates, open for comments
SPAM = (
    "Buy cheap viagra now!!! http://pills.example/buy and http://cheap-meds.example "
    "click here to order"
)
HAM = "Thanks for the thoughtful article; the section on budgets was very clear."

expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def moderation(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A served API and a scoring worker for this file's tests; yields the API's URL."""
    logs = tmp_path_factory.mktemp("wordpress-moderation")
    with (
        running_worker(redis_server.url, logs / "worker.log"),
        served_api(redis_server.url, logs) as base,
    ):
        yield base


@pytest.fixture(scope="module")
def wordpress(moderation: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WordPressSite]:
    """WordPress with the must-use plugin and Akismet active, its database in its own MariaDB."""
    directory = tmp_path_factory.mktemp("wordpress")
    with (
        MariaDB(directory / "mariadb") as database,
        wordpress_site(directory, database, service_url=moderation) as site,
    ):
        yield site


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def admin(browser: Browser, wordpress: WordPressSite) -> Iterator[Page]:
    """A browser tab logged in to wp-admin as the administrator."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{wordpress.url}/wp-login.php")
    page.fill("#user_login", ADMIN)
    page.fill("#user_pass", wordpress.admin_password)
    page.click("#wp-submit")
    expect(page.locator("#wpadminbar")).to_be_visible()
    yield page
    context.close()


def create_site(redis_server: RedisServer, name: str) -> dict[str, str]:
    """`moderation sites create NAME --json`, as the integration's README tells operators."""
    done = subprocess.run(
        [sys.executable, "-m", "moderation.ops.cli", "sites", "create", name, "--json"],
        env=moderation_env(redis_server.url),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def checked_comment(site: WordPressSite, author: str) -> tuple[str, str]:
    """The comment's status (comment_approved) and the Akismet plugin's akismet_result meta."""
    rows = site.query(
        "SELECT c.comment_approved, m.meta_value FROM wp_comments c "
        "LEFT JOIN wp_commentmeta m ON m.comment_id = c.comment_ID "
        "AND m.meta_key = 'akismet_result' "
        f"WHERE c.comment_author = '{author}'"
    )
    assert len(rows) == 1, f"expected one comment by {author}, found {rows}"
    status, result = rows[0]
    return status, result


def plugin_problems(site: WordPressSite) -> list[str]:
    """Warnings and errors PHP logged from the must-use plugin."""
    return [line for line in site.debug_log.splitlines() if "moderation-akismet.php" in line]


def test_a_site_saves_its_key_and_has_comments_checked(
    admin: Page, wordpress: WordPressSite, redis_server: RedisServer
) -> None:
    created = create_site(redis_server, "wordpress-blog")
    key = created["akismet_key"]
    assert len(key) == 12 and all(c in "0123456789abcdef" for c in key)

    wordpress.php("delete_option('wordpress_api_key');")  # whatever ran before: no key yet

    # Settings > Akismet Anti-spam: "Manually enter an API key", then "Connect with API key".
    # The plugin checks the key's length, verify-key, get-subscription (status "active"), then
    # shows its configuration page (get-stats), with the connectivity check (test) behind it.
    admin.goto(f"{wordpress.url}/wp-admin/options-general.php?page=akismet-key-config")
    admin.get_by_text("Manually enter an API key").click()
    admin.fill("#key", key)
    admin.get_by_role("button", name="Connect with API key").click()
    expect(admin.locator(".akismet-alert.akismet-active")).to_contain_text(
        "Akismet is now protecting your site from spam"
    )
    expect(admin.locator("#key")).to_have_value(key)
    expect(admin.locator("#key")).to_have_class("regular-text code active")
    expect(admin.locator(".akismet-critical")).to_have_count(0)  # e.g. servers-be-down
    assert wordpress.php("echo get_option('wordpress_api_key');") == key

    # Keep the blatant spam in the Spam folder for review, instead of discarding it unseen.
    admin.check("#akismet_strictness_0")
    admin.get_by_role("button", name="Save Changes").click()
    expect(admin.locator("#akismet_strictness_0")).to_be_checked()

    # Two visitors, each from an address of its own.
    spam = post_comment(
        wordpress,
        HELLO_WORLD,
        author="cheap pills",
        email="pills@spam.example",
        text=SPAM,
        source_ip="127.0.0.2",
    )
    assert spam.status_code == 302, spam.text[-2000:]
    ham = post_comment(
        wordpress,
        HELLO_WORLD,
        author="Ann",
        email="ann@example.org",
        text=HAM,
        source_ip="127.0.0.3",
    )
    assert ham.status_code == 302, ham.text[-2000:]

    assert checked_comment(wordpress, "cheap pills") == ("spam", "true")
    status, result = checked_comment(wordpress, "Ann")
    assert result == "false"
    assert status == "0"  # a first-time commenter waits for approval, as WordPress does
    # The administrator's Spam folder shows the spam Akismet caught.
    admin.goto(f"{wordpress.url}/wp-admin/edit-comments.php?comment_status=spam")
    expect(admin.locator("#the-comment-list")).to_contain_text("cheap viagra")
    expect(admin.locator("#the-comment-list")).not_to_contain_text("budgets")
    # "Not Spam" there is a correction the plugin sends (submit-ham): a label to learn from.
    row = admin.locator("#the-comment-list tr", has_text="cheap viagra")
    row.hover()
    row.locator(".row-actions .unspam a").click()
    expect(row).to_be_hidden()
    with redis.Redis.from_url(redis_server.url) as connection:
        labels = LabelStore(connection)
        learned = wait_for(
            lambda: [(x.kind.value, x.source) for x in labels.recent("wordpress-blog", 10)],
            timeout=30,
            what="the submit-ham label",
        )
    assert learned == [("ok", "akismet:submit-ham")]
    # The settings page's statistics come from get-stats: the one spam of two checks, all time.
    admin.goto(f"{wordpress.url}/wp-admin/options-general.php?page=akismet-key-config")
    all_time = admin.locator(".akismet-new-snapshot li").nth(1)
    expect(all_time).to_contain_text("All time")
    expect(all_time.locator("span")).to_have_text("1")
    assert plugin_problems(wordpress) == []


def test_blatant_spam_is_discarded_when_the_site_says_so(
    wordpress: WordPressSite, redis_server: RedisServer
) -> None:
    key = create_site(redis_server, "wordpress-strict")["akismet_key"]
    wordpress.php(
        f"update_option('wordpress_api_key', '{key}'); update_option('akismet_strictness', '1');"
    )
    before = int(wordpress.php("echo (int) get_option('akismet_spam_count');"))
    discarded = post_comment(
        wordpress,
        HELLO_WORLD,
        author="pills again",
        email="again@spam.example",
        text=SPAM,
        source_ip="127.0.0.4",
    )
    # X-akismet-pro-tip: discard. The plugin sends the visitor back and stores nothing.
    assert discarded.status_code == 302, discarded.text[-2000:]
    assert wordpress.query(
        "SELECT COUNT(*) FROM wp_comments WHERE comment_author = 'pills again'"
    ) == [["0"]]
    assert int(wordpress.php("echo (int) get_option('akismet_spam_count');")) == before + 1


ROUTING = """
$service = MODERATION_AKISMET_URL;
$args = array('method' => 'POST', 'headers' => array(), 'body' => '');
$left_alone = array();
foreach (array(
    'https://example.org/1.1/comment-check',
    'https://rest.akismet.com.evil.example/1.1/comment-check',
    'https://akismet.com/1.1/comment-check',
    'https://rest.akismet.com/wp-admin/',
    'ftp://rest.akismet.com/1.1/comment-check',
    $service . '/1.1/verify-key',
) as $url) {
    $left_alone[$url] = apply_filters('pre_http_request', false, $args, $url) === false;
}
$answers = array();
foreach (array(
    'https://rest.akismet.com/1.1/verify-key' => array(),
    'http://rest.akismet.com/1.1/verify-key' => array(),
    'https://%s.rest.akismet.com/1.1/verify-key' => array(),
    'http://192.0.2.1/1.1/verify-key' => array('Host' => 'rest.akismet.com'),
) as $url => $headers) {
    $key = strpos($url, '%s') === false ? '&key=' . KEY : '';
    $response = wp_remote_post(sprintf($url, KEY), array(
        'body' => 'blog=' . rawurlencode(home_url()) . $key,
        'headers' => $headers,
        'timeout' => 15,
    ));
    $answers[$url] = is_wp_error($response)
        ? $response->get_error_message()
        : wp_remote_retrieve_body($response);
}
$test = wp_remote_get('https://rest.akismet.com/1.1/test');
echo json_encode(array(
    'left_alone' => $left_alone,
    'answers' => $answers,
    'test' => wp_remote_retrieve_body($test),
));
"""


def test_only_akismet_requests_go_to_the_service(
    wordpress: WordPressSite, redis_server: RedisServer
) -> None:
    key = create_site(redis_server, "wordpress-routing")["akismet_key"]
    answer = json.loads(wordpress.php(f"define('KEY', '{key}');\n{ROUTING}"))
    assert all(answer["left_alone"].values()), answer["left_alone"]
    # https and http, the key in the form or in the host name, a server address with Akismet's
    # Host header (the plugin's connectivity check): all answered by the service.
    assert set(answer["answers"].values()) == {"valid"}, answer["answers"]
    assert answer["test"] == "connected"
    assert plugin_problems(wordpress) == []
