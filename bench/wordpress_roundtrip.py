"""What checking comments here costs a WordPress site: a visitor's comment posted through
`wp-comments-post.php`, with WordPress's Akismet plugin pointed at this service (the must-use
plugin in integrations/wordpress/) and without a key (no check), side by side in one run.

    .venv/bin/python -m bench.wordpress_roundtrip              # 40 comments each way
    .venv/bin/python -m bench.wordpress_roundtrip --comments 100

Starts the service (bench/stacks.py: its own redis-server, `moderation serve`, one worker with
the embedded lite model), a MariaDB and Debian's WordPress under `php -S` as
tests/test_wordpress.py does (tests/support/wordpress.py; needs Debian's `wordpress`,
`php-cli`, `php-mysql` and `mariadb-server`), then posts comments from distinct visitors
(WordPress refuses a second comment from one address within 15 s), alternating blocks of ten
without and with the key so that both see the same machine. Each time is a visitor opening the
post and sending the form (two requests). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import redis

from bench.detoxify_bench import machine
from bench.stacks import running_service
from bench.stats import summary
from moderation.storage.site_store import SiteStore
from tests.support.mariadb import MariaDB
from tests.support.processes import moderation_env
from tests.support.wordpress import post_comment, wordpress_site

TOPICS = (
    "the budget",
    "the new library",
    "bike lanes",
    "school lunches",
    "the river clean-up",
    "bus timetables",
    "the football club",
    "park benches",
    "recycling",
    "the election debate",
)
BLOCK = 10
HELLO_WORLD = 1  # the post WordPress's installation creates, open for comments


def comment_text(number: int) -> str:
    topic = TOPICS[number % len(TOPICS)]
    return f"I read about {topic} (part {number}); my neighbours and I talked it over at dinner."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comments", type=int, default=40, help="each way (multiple of 10)")
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="wordpress-roundtrip-"))
    times: dict[str, list[float]] = {"without": [], "with": []}
    results: dict[str, int] = {}
    with running_service(scratch / "service", 1, {"MODERATION_TOXICITY_MODEL": "lite"}) as service:
        secret_key = moderation_env(service.redis_url)["MODERATION_SECRET_KEY"]
        with redis.Redis.from_url(service.redis_url) as connection:
            akismet_key = SiteStore(connection, secret_key).rotate_akismet_key("bench")
        with (
            MariaDB(scratch / "mariadb") as database,
            wordpress_site(scratch, database, service.url) as site,
        ):
            visitor = 0
            for block in range(2 * options.comments // BLOCK):
                way = "without" if block % 2 == 0 else "with"
                if way == "with":
                    site.php(f"update_option('wordpress_api_key', '{akismet_key}');")
                else:
                    site.php("delete_option('wordpress_api_key');")
                for _ in range(BLOCK):
                    visitor += 1
                    address = f"127.0.{1 + visitor // 250}.{1 + visitor % 250}"
                    started = time.perf_counter()
                    answer = post_comment(
                        site,
                        HELLO_WORLD,
                        author=f"Reader {visitor}",
                        email=f"reader{visitor}@example.org",
                        text=comment_text(visitor),
                        source_ip=address,
                    )
                    times[way].append(time.perf_counter() - started)
                    if answer.status_code != 302:
                        raise RuntimeError(f"WordPress answered {answer.status_code}")
            sql = "SELECT meta_value, COUNT(*) FROM wp_commentmeta "
            sql += "WHERE meta_key = 'akismet_result' GROUP BY meta_value"
            results = {value: int(count) for value, count in site.query(sql)}
    report = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": machine(),
        "comments_each_way": options.comments,
        "without_key": summary(times["without"]),
        "with_key_checked_here": summary(times["with"]),
        "akismet_results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
