"""The /moderate page in a real headless Chromium (Debian's), against a real HTTP server.

Runs the app under werkzeug's threaded server on a free port, drives the page with
Playwright's sync API, and checks what landed through the HTTP API. Waits are on the DOM
(Playwright's `expect`), never sleeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from flask import Flask
from playwright.sync_api import Page, expect

from moderation.storage.moderator_store import ModeratorCredentials, ModeratorStore, Role
from tests.support.browser import needs_chromium, served
from tests.support.held import abusive, comment_body, held_text
from tests.support.processes import wait_for

EVIL = abusive("<script>window.pwned=1</script><b>bold</b>")

pytestmark = needs_chromium
expect.set_options(timeout=15_000)


@dataclass(frozen=True)
class Live:
    """The running server, a site's API key and a moderator."""

    url: str
    api_key: str
    moderator: ModeratorCredentials

    def hold(self, comment_id: str, content: str | None = None) -> dict:
        """Submit a comment through the HTTP API (by default `held_text`: abuse) and wait
        until the real worker holds it; returns its record."""
        text = content if content is not None else held_text(comment_id)
        response = requests.post(
            f"{self.url}/v1/comments?wait=10",
            json=comment_body(comment_id, text),
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=30,
        )
        assert response.status_code in (200, 202), response.text
        record = wait_for(
            lambda: (found := self.record(comment_id))["status"] != "pending" and found,
            timeout=60,
            what=f"a decision on {comment_id}",
        )
        assert record["status"] == "held", record
        return record

    def record(self, comment_id: str) -> dict:
        response = requests.get(
            f"{self.url}/v1/comments/{comment_id}",
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def audit(self, comment_id: str) -> list[dict]:
        response = requests.get(
            f"{self.url}/v1/review/news/{comment_id}/audit",
            headers={"Authorization": f"Bearer {self.moderator.token}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()["events"]


@pytest.fixture
def live(app: Flask, make_site, redis_client, scoring_worker) -> Iterator[Live]:
    """The app served for real over HTTP, with a `news` site and its moderator ann, and a
    real worker deciding the comments."""
    app.config["MODERATE_POLL_SECONDS"] = 0.5
    api_key = make_site("news").api_key
    ann = ModeratorStore(redis_client).create("ann", Role.MODERATOR, ["news"])
    with served(app) as url:
        yield Live(url, api_key, ann)


def log_in(page: Page, live: Live) -> None:
    page.goto(f"{live.url}/moderate")
    expect(page).to_have_url(re.compile(r"/moderate/login$"))
    page.get_by_label("Name").fill(live.moderator.name)
    page.get_by_label("Password").fill(live.moderator.password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/moderate$"))
    # The script marks <html> in the same task that wires the keys: after this, keys work.
    expect(page.locator("html")).to_have_class(re.compile(r"\bjs\b"))


def card(page: Page, comment_id: str):
    return page.locator(f'.card[data-key="news/{comment_id}"]')


def test_a_moderator_works_the_queue_with_keys_and_clicks(page: Page, live: Live) -> None:
    live.hold("c-1", abusive("the first held comment"))
    live.hold("c-2", abusive("the second held comment"))
    log_in(page, live)

    expect(page.locator(".card")).to_have_count(2)
    expect(card(page, "c-1")).to_contain_text("the first held comment")
    expect(card(page, "c-1")).to_have_class(re.compile(r"\bis-focused\b"))
    expect(page.locator("#queue-count")).to_have_text("2")

    page.keyboard.press("a")  # approve the focused (first) comment
    expect(card(page, "c-1")).to_have_count(0)
    expect(card(page, "c-2")).to_have_class(re.compile(r"\bis-focused\b"))
    expect(page.locator("#toast")).to_have_text("Approved.")

    card(page, "c-2").get_by_role("button", name="Reject").click()
    expect(card(page, "c-2")).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()

    for comment_id, action, status in (
        ("c-1", "approve", "approved"),
        ("c-2", "reject", "rejected"),
    ):
        record = live.record(comment_id)
        assert record["status"] == status
        assert record["decision"]["decided_by"] == "moderator:ann"
        events = live.audit(comment_id)
        assert [event["to"] for event in events] == ["pending", "held", status]
        last = events[-1]
        assert (last["actor"], last["action"], last["from"]) == ("moderator:ann", action, "held")


def test_new_held_comments_appear_without_a_reload(page: Page, live: Live) -> None:
    live.hold("c-1", abusive("already waiting"))
    log_in(page, live)
    expect(page.locator(".card")).to_have_count(1)
    page.evaluate("window.sameDocument = true")

    live.hold("c-3", abusive("arrived while the page was open"))
    expect(card(page, "c-3")).to_contain_text("arrived while the page was open")
    expect(page.locator("#queue-count")).to_have_text("2")
    expect(card(page, "c-1")).to_have_class(re.compile(r"\bis-focused\b"))  # focus undisturbed
    assert page.evaluate("window.sameDocument") is True  # no reload happened
    expect(card(page, "c-3").locator(".score.over")).to_contain_text("toxicity")


def test_question_mark_toggles_the_help_overlay(page: Page, live: Live) -> None:
    log_in(page, live)
    help_overlay = page.locator("#help")
    expect(help_overlay).to_be_hidden()
    page.keyboard.press("?")
    expect(help_overlay).to_be_visible()
    expect(help_overlay).to_contain_text("Approve the highlighted comment")
    page.keyboard.press("Escape")
    expect(help_overlay).to_be_hidden()


def test_keys_do_nothing_while_typing_a_note(page: Page, live: Live) -> None:
    live.hold("c-1")
    log_in(page, live)
    note = card(page, "c-1").locator(".note")
    note.click()
    note.press_sequentially("a rejoinder")  # holds both 'a' and 'r'
    expect(card(page, "c-1")).to_have_count(1)
    expect(note).to_have_value("a rejoinder")
    note.press("Escape")
    page.keyboard.press("a")
    expect(card(page, "c-1")).to_have_count(0)
    assert live.audit("c-1")[-1]["note"] == "a rejoinder"


def test_a_comment_decided_elsewhere_leaves_the_page(page: Page, live: Live) -> None:
    live.hold("c-1")
    log_in(page, live)
    requests.post(
        f"{live.url}/v1/review/news/c-1",
        json={"action": "reject"},
        headers={"Authorization": f"Bearer {live.moderator.token}"},
        timeout=10,
    ).raise_for_status()
    page.keyboard.press("a")
    expect(page.locator("#toast")).to_have_text("Already decided by someone else.")
    expect(card(page, "c-1")).to_have_count(0)
    assert live.record("c-1")["status"] == "rejected"


def test_markup_in_comments_is_shown_as_text(page: Page, live: Live) -> None:
    live.hold("c-1", EVIL)  # rendered by the server
    log_in(page, live)
    live.hold("c-2", EVIL)  # rendered by the script, after a poll
    for comment_id in ("c-1", "c-2"):
        content = card(page, comment_id).locator(".content")
        expect(content).to_have_text(EVIL)
        expect(content.locator("b")).to_have_count(0)
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("typeof window.pwned") == "undefined"


def test_the_words_that_drove_a_learned_score_are_highlighted(page: Page, live: Live) -> None:
    spam = "Hey guys check out my channel and subscribe <b>now</b> http://bit.ly/x www.y.example"
    log_in(page, live)
    record = live.hold("c-1", spam)  # held by the real worker, shown by the script
    marks = card(page, "c-1").locator(".content mark.driver")
    expect(marks.first).to_be_visible()
    page.reload()  # rendered by the server
    expect(marks.first).to_be_visible()
    quoted = [r for r in record["decision"]["reasons"] if r.startswith("spam ")]
    assert quoted and '"' in quoted[0], record["decision"]["reasons"]
    for text in marks.all_text_contents():
        assert text.lower() in spam.lower() and text in quoted[0]
    expect(card(page, "c-1").locator(".content")).to_have_text(spam)  # markup stays text
    expect(card(page, "c-1").locator(".content b")).to_have_count(0)
