"""`make demo`'s loop, timed: `moderation up --demo` on its own Redis, from its start to the
banner, then N rounds in Chromium of a reader posting an abusive comment, the moderator
approving it with `a` on /moderate, and the seconds until it shows on the reader's open article.

    .venv/bin/python -m bench.demo_loop [--rounds 10]

Prints a table; writes bench/results/demo-loop-<date>.json. Needs redis-server and Debian's
Chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from bench.detoxify_bench import machine
from bench.reports import write_report
from bench.stats import summary
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.processes import moderation_env, wait_for
from tests.support.redis_server import RedisServer, free_port

RESULTS = Path(__file__).resolve().parent / "results"
BANNER_END = "Enter shows this again"


def printed(log: str, label: str) -> str:
    match = re.search(rf"^{label}: (.+)$", log, re.MULTILINE)
    if match is None:
        raise SystemExit(f"`{label}:` was not printed")
    return match.group(1)


def approve_and_watch(reader: Page, moderator: Page, text: str) -> float:
    """Post `text` as a reader, approve it as the moderator: seconds from `a` to the article."""
    reader.get_by_label("Comment").fill(text)
    reader.get_by_role("button", name="Post Comment").click()
    expect(reader.locator("[data-pending-id]", has_text=text)).to_have_count(1)
    moderator.reload()
    card = moderator.locator(".card", has_text=text)
    expect(card).to_have_count(1)
    expect(moderator.locator("html")).to_have_class(re.compile(r"\bjs\b"))
    card.click()  # focus it
    started = time.monotonic()
    moderator.keyboard.press("a")
    expect(reader.locator("[data-comment-id]", has_text=text)).to_have_count(1, timeout=30_000)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    rounds = parser.parse_args().rounds
    directory = Path(tempfile.mkdtemp(prefix="demo-loop-"))
    redis_server = RedisServer(directory / "redis")
    redis_server.start()
    env = moderation_env(redis_server.url, {"PORT": str(free_port())})
    env["NEWSROOM_PORT"] = str(free_port())
    log_path = directory / "up.log"
    started = time.monotonic()
    with log_path.open("wb") as output:
        up = subprocess.Popen(
            [sys.executable, "-m", "moderation.ops.cli", "up", "--demo"],
            env=env,
            cwd=directory,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for(lambda: BANNER_END in log_path.read_text(), timeout=180, interval=0.1)
        to_banner = time.monotonic() - started
        log = log_path.read_text()
        name, password = printed(log, "demo moderator").split()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            reader = browser.new_page()
            reader.goto(printed(log, "demo article"))
            moderator = browser.new_page()
            moderator.goto(printed(log, "demo moderation page"))
            moderator.get_by_label("Name").fill(name)
            moderator.get_by_label("Password").fill(password)
            moderator.get_by_role("button", name="Log in").click()
            seconds = [
                approve_and_watch(reader, moderator, f"Round {n}: you are a fucking idiot")
                for n in range(rounds)
            ]
            browser.close()
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
        redis_server.stop()
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "seconds_to_banner": round(to_banner, 2),
        "approve_to_article": summary(seconds),
        "rounds": [round(value, 3) for value in seconds],
    }
    path = write_report(RESULTS / f"demo-loop-{report['date'][:10]}.json", report)
    stats = report["approve_to_article"]
    print(f"| `moderation up --demo` to its banner | {to_banner:.1f} s |")
    print(
        f"| moderator's `a` -> on the open article ({rounds} rounds) | "
        f"p50 {stats['p50_ms'] / 1000:.2f} s, max {stats['max_ms'] / 1000:.2f} s |"
    )
    print(f"CPU: {report['machine']['cpu']}; written to {path}")


if __name__ == "__main__":
    main()
