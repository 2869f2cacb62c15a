"""The moderators' tools on the /moderate page, in a real headless Chromium against a real HTTP
server, with every comment decided by a real worker process: the Held, Reported and Approved
views, the context and marks on a card, and actions on authors. (The same tools through the
API: tests/test_moderator_tools.py.)

Waits are on the DOM (Playwright's `expect`) or on conditions with deadlines (`wait_for`).
With MODERATION_SCREENSHOTS=1, the queue's screenshot is written to docs/screenshots/queue.png.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Locator, Page, expect

from moderation.http.web.cards import PolicyWords, content_parts
from moderation.storage.moderator_store import ModeratorCredentials, ModeratorStore, Role
from tests.support.browser import HostSite, ModeratorApi, needs_chromium, served
from tests.support.held import log_in as form_log_in
from tests.support.held import page_token
from tests.support.processes import running_worker
from tests.test_browser import log_in

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "screenshots" / "queue.png"
ABUSIVE = "You are a fucking idiot and everyone here knows it."
HARMLESS = "I read the whole article twice."
SPAM = (
    "Make money from home, click http://bit.ly/cash or www.cash-now.example "
    "or http://free-prizes.example today!!!"
)
FOCUSED = re.compile(r"\bis-focused\b")

expect.set_options(timeout=20_000)


def by(author_id: str, name: str) -> dict[str, str]:
    return {"id": author_id, "name": name}


@dataclass(frozen=True)
class Live:
    """The running server and worker, the `news` site's API and its moderator ann."""

    url: str
    site: HostSite
    moderator: ModeratorCredentials

    @property
    def api(self) -> ModeratorApi:
        return ModeratorApi(self.url, self.moderator.token)

    def submit(self, comment_id: str, content: str, **extra: Any) -> dict[str, Any]:
        """Submit a comment through the API; its record once the worker decided it."""
        self.site.submit({"id": comment_id, "content": content, **extra})
        return self.site.decided(comment_id)

    def record(self, comment_id: str) -> dict[str, Any]:
        return self.site.record(comment_id)

    def report(self, comment_id: str, reporter: str, reason: str, note: str = "") -> dict:
        return self.site.report(comment_id, reporter, reason, note)

    def review(self, path: str) -> dict[str, Any]:
        return self.api.get(path)

    def act_on_author(self, author_id: str, action: str) -> None:
        self.api.post(f"news/authors/{author_id}", {"action": action})


@pytest.fixture
def live(app: Flask, make_site, redis_client, redis_server, tmp_path: Path) -> Iterator[Live]:
    """The app served over HTTP and a real scoring worker, with a `news` site and ann."""
    app.config["MODERATE_POLL_SECONDS"] = 0.5
    api_key = make_site("news").api_key
    ann = ModeratorStore(redis_client).create("ann", Role.MODERATOR, ["news"])
    with served(app) as url, running_worker(redis_server.url, tmp_path / "worker.log"):
        yield Live(url, HostSite(url, api_key), ann)


def card(page: Page, comment_id: str) -> Locator:
    return page.locator(f'.card[data-key="news/{comment_id}"]')


def author_menu(page: Page) -> Locator:
    return page.locator("#author-dialog")


def open_view(page: Page, live: Live, query: str) -> None:
    page.goto(f"{live.url}/moderate?{query}")
    expect(page.locator("html")).to_have_class(re.compile(r"\bjs\b"))


# --- readers' reports ------------------------------------------------------------------------


@needs_chromium
@pytest.mark.e2e
def test_three_readers_reports_bring_a_published_comment_back_to_the_held_queue(
    page: Page, live: Live
) -> None:
    content = "The council meeting sounded long but productive."
    assert live.submit("c-1", content, author=by("u-1", "Uma"))["status"] == "approved"
    log_in(page, live)
    expect(page.locator("#empty")).to_be_visible()
    page.evaluate("window.sameDocument = true")

    live.report("c-1", "r-1", "abuse")
    live.report("c-1", "r-2", "spam", note="Posted the same on five articles")
    assert live.report("c-1", "r-3", "abuse")["status"] == "held"

    held = card(page, "c-1")  # polled in, rendered by the script
    expect(held.locator(".reasons")).to_have_text("reported by 3 readers: abuse, spam")
    expect(held.locator(".reports-title")).to_have_text("Reported by 3 readers")
    expect(held.locator(".report-reasons li")).to_have_text(["2 abuse", "1 spam"])
    expect(held.locator(".report-notes")).to_contain_text("Posted the same on five articles")
    expect(page.locator("#queue-count")).to_have_text("1")
    expect(page.locator("#reported-count")).to_have_text("1")
    assert page.evaluate("window.sameDocument") is True

    page.locator(".view-tab", has_text="Reported").click()
    expect(page).to_have_url(re.compile(r"view=reported"))
    reported = card(page, "c-1")  # rendered by the server
    expect(reported.locator(".report-reasons li")).to_have_text(["2 abuse", "1 spam"])
    expect(reported).to_have_class(FOCUSED)
    page.keyboard.press("a")  # keep it published
    expect(reported).to_have_count(0)
    expect(page.locator("#toast")).to_have_text("Kept published; its reports are settled.")
    expect(page.locator("#reported-count")).to_have_text("0")
    page.reload()  # the server agrees: no report is open
    expect(page.locator("#reported-count")).to_have_text("0")
    expect(page.locator("#empty")).to_contain_text("No open reports")

    record = live.record("c-1")
    assert record["status"] == "approved"
    assert record["decision"]["decided_by"] == "moderator:ann"
    assert live.review("reported")["items"] == []


# --- actions on authors ----------------------------------------------------------------------


@needs_chromium
@pytest.mark.e2e
def test_an_authors_standing_set_from_a_card_decides_their_next_comments(
    page: Page, live: Live
) -> None:
    vic = by("u-9", "Vic")
    assert live.submit("first", "Good to see the bus timetable fixed.", author=vic)["status"] == (
        "approved"
    )
    log_in(page, live)
    open_view(page, live, "view=approved")
    first = card(page, "first")
    expect(first).to_have_class(FOCUSED)

    page.keyboard.press("b")
    menu = author_menu(page)
    expect(menu).to_be_visible()
    expect(menu.locator("#author-name")).to_have_text("Vic")
    expect(menu.get_by_role("button", name="Clear")).to_be_hidden()  # nothing to clear
    menu.locator("#author-note").fill("insults in three threads")
    menu.get_by_role("button", name="Ban", exact=True).click()
    expect(menu.locator("#author-confirm")).to_contain_text("Ban Vic?")
    menu.get_by_role("button", name="Yes, ban").click()
    expect(menu).to_be_hidden()
    expect(page.locator("#toast")).to_have_text("Vic is banned.")
    badge = first.locator(".standing")
    expect(badge).to_have_text("banned")
    expect(badge).to_have_attribute("title", re.compile(r"moderator:ann.*insults in three"))

    banned = live.submit("while-banned", "My grandmother remembers the bridge.", author=vic)
    assert banned["status"] == "rejected", banned
    assert banned["decision"]["reasons"] == ["author banned by a moderator"]

    first.get_by_role("button", name="Author").click()
    expect(menu.get_by_role("button", name="Ban", exact=True)).to_be_hidden()  # banned already
    menu.get_by_role("button", name="Premoderate").click()
    expect(menu).to_be_hidden()
    expect(badge).to_have_text("premoderated")

    held = live.submit("premoderated", "The festival photos are wonderful.", author=vic)
    assert held["status"] == "held", held
    assert "author premoderated by a moderator" in held["decision"]["reasons"]

    page.locator(".view-tab", has_text="Held").click()
    premoderated = card(page, "premoderated")
    expect(premoderated.locator(".standing")).to_have_text("premoderated")
    expect(premoderated).to_have_class(FOCUSED)
    page.keyboard.press("b")
    menu.get_by_role("button", name="Clear").click()  # no confirmation: not a ban
    expect(menu).to_be_hidden()
    expect(premoderated.locator(".standing")).to_be_hidden()

    cleared = live.submit("cleared", "We tried the bakery and it was great.", author=vic)
    assert cleared["status"] == "approved", cleared
    profile = live.review("news/authors/u-9")
    assert [event["action"] for event in profile["events"]] == ["ban", "premoderate", "clear"]
    assert {event["actor"] for event in profile["events"]} == {"moderator:ann"}
    assert profile["events"][0]["note"] == "insults in three threads"


@needs_chromium
@pytest.mark.e2e
def test_a_ban_from_a_held_card_can_reject_the_authors_held_comments(
    page: Page, live: Live
) -> None:
    rex = by("u-5", "Rex")
    for comment_id, content in (
        ("rex-1", ABUSIVE),
        ("rex-2", "Shut up, you stupid fucking moron."),
        ("anon", "What a load of shit, you absolute wanker."),
    ):
        extra = {"author": rex} if comment_id.startswith("rex") else {}
        record = live.submit(comment_id, content, **extra)
        assert record["status"] == "held", record
    log_in(page, live)
    expect(page.locator(".card")).to_have_count(3)
    expect(card(page, "anon").locator(".author-open")).to_be_hidden()  # no author id

    card(page, "rex-1").get_by_role("button", name="Author").click()
    menu = author_menu(page)
    menu.get_by_role("button", name="Ban and reject their held comments").click()
    expect(menu.locator("#author-confirm")).to_contain_text("Their 2 held comments")
    menu.get_by_role("button", name="Cancel").click()  # steps back: nothing happened
    expect(menu.locator("#author-confirm")).to_be_hidden()
    menu.get_by_role("button", name="Ban and reject their held comments").click()
    menu.get_by_role("button", name="Yes, ban and reject").click()

    expect(page.locator("#toast")).to_have_text("Rex is banned. 2 held comments rejected.")
    expect(page.locator(".card")).to_have_count(1)
    expect(card(page, "anon")).to_be_visible()
    expect(page.locator("#queue-count")).to_have_text("1")
    for comment_id in ("rex-1", "rex-2"):
        record = live.record(comment_id)
        assert record["status"] == "rejected"
        assert record["decision"]["decided_by"] == "moderator:ann"

    card(page, "anon").click()
    page.keyboard.press("b")
    expect(page.locator("#toast")).to_contain_text("no author id")
    expect(author_menu(page)).to_be_hidden()


# --- context and marks -----------------------------------------------------------------------


def submit_a_reply_thread(live: Live) -> None:
    """`parent` (approved), `earlier` by u-7 (approved), then u-7's abusive `reply`."""
    context = {"post_id": "p-1", "permalink": "https://news.example/p-1"}
    dana = by("u-7", "Dana")
    parent = live.submit(
        "parent",
        "The new cycle lanes on Harbour Road are a real improvement.",
        author=by("u-2", "Maria"),
        context=context,
    )
    earlier = live.submit("earlier", "Interesting interview about the harbour.", author=dana)
    assert (parent["status"], earlier["status"]) == ("approved", "approved")
    reply = live.submit(
        "reply",
        f"{HARMLESS} {ABUSIVE}",
        author=dana,
        context={**context, "parent_id": "parent"},
    )
    assert reply["status"] == "held", reply


def check_the_reply_card(reply: Locator) -> None:
    parent = reply.locator(".parent")
    expect(parent).to_be_visible()
    expect(parent.locator(".parent-author")).to_have_text("Maria")
    expect(parent.locator(".pill")).to_have_text("approved")
    expect(parent.locator(".parent-text")).to_have_text(
        "The new cycle lanes on Harbour Road are a real improvement."
    )
    recent = reply.locator(".recent")
    expect(recent).to_have_attribute("open", "")
    expect(recent.locator(".glance")).to_have_count(1)
    expect(recent.locator(".glance-text")).to_have_text("Interesting interview about the harbour.")
    expect(recent.locator(".pill")).to_have_text("approved")
    toxic = reply.locator(".content mark.mark-toxicity")
    expect(toxic).to_have_text([ABUSIVE])
    expect(toxic).to_have_attribute(
        "title", re.compile(r"toxicity [01]\.\d\d \(this sentence alone\)")
    )
    expect(reply.locator(".content")).to_have_text(f"{HARMLESS} {ABUSIVE}")
    for text in reply.locator(".content mark").all_text_contents():
        assert HARMLESS not in text
    expect(reply.locator(".legend")).to_contain_text("toxic sentence")
    expect(reply.locator(".reply")).to_have_text("reply to parent")


@needs_chromium
@pytest.mark.e2e
def test_a_replys_card_shows_its_parent_the_authors_other_comment_and_the_toxic_sentence(
    page: Page, live: Live
) -> None:
    log_in(page, live)
    submit_a_reply_thread(live)
    check_the_reply_card(card(page, "reply"))  # polled in, rendered by the script
    page.reload()
    check_the_reply_card(card(page, "reply"))  # rendered by the server


# --- overturning an approval -----------------------------------------------------------------


@needs_chromium
@pytest.mark.e2e
def test_the_approved_view_finds_a_comment_by_a_word_and_rejects_it(page: Page, live: Live) -> None:
    live.submit("quiet", "Well researched piece on local farming, thank you.")
    sly = live.submit("sly", "Nice article. Also, people like you should disappear.")
    assert (live.record("quiet")["status"], sly["status"]) == ("approved", "approved")
    log_in(page, live)
    page.locator(".view-tab", has_text="Approved").click()
    expect(page.locator(".card")).to_have_count(2)

    page.get_by_role("searchbox").fill("DISAPPEAR")
    page.get_by_role("searchbox").press("Enter")
    expect(page).to_have_url(re.compile(r"q=DISAPPEAR"))
    page.get_by_label("Only automatic approvals").check()  # submits the form
    expect(page).to_have_url(re.compile(r"automatic=1"))
    expect(page.locator(".card")).to_have_count(1)
    found = card(page, "sly")
    expect(found.get_by_role("button", name=re.compile("Approve|Keep"))).to_have_count(0)

    expect(found).to_have_class(FOCUSED)
    page.keyboard.press("a")  # nothing to approve here: the key does nothing
    found.locator(".reject-as").select_option("toxic")
    found.get_by_role("button", name="Reject").click()
    expect(found).to_have_count(0)
    expect(page.locator("#toast")).to_have_text("Rejected; its site is told.")

    record = live.record("sly")
    assert record["status"] == "rejected"
    assert record["decision"]["decided_by"] == "moderator:ann"
    events = live.review("news/sly/audit")["events"]
    assert [(e["actor"], e["action"]) for e in events if e["actor"].startswith("moderator:")] == [
        ("moderator:ann", "reject")
    ]
    assert live.review("approved?q=disappear")["items"] == []


# --- a screenshot of the held queue ----------------------------------------------------------


@needs_chromium
@pytest.mark.e2e
def test_the_held_queue_shows_context_and_marks_and_is_photographed(page: Page, live: Live) -> None:
    submit_a_reply_thread(live)
    spam = live.submit(
        "spam",
        SPAM,
        author=by("u-3", "Promo King"),
        context={"post_id": "p-2", "permalink": "https://news.example/p-2"},
    )
    assert spam["status"] == "held", spam
    live.act_on_author("u-4", "premoderate")
    sam = live.submit(
        "sam",
        "Could you follow up on the school funding story?",
        author=by("u-4", "Sam"),
        context={"post_id": "p-3", "permalink": "https://news.example/p-3"},
    )
    assert sam["status"] == "held", sam

    page.set_viewport_size({"width": 1280, "height": 1200})
    log_in(page, live)
    expect(page.locator(".card")).to_have_count(3)
    check_the_reply_card(card(page, "reply"))
    # The learned phrases take in some of the links (a mark never nests): the others show.
    links = card(page, "spam").locator(".content mark.mark-link")
    expect(links.first).to_be_visible()
    for link in links.all_text_contents():
        assert re.fullmatch(r"(https?://|www\.)\S+", link) and link in SPAM
    expect(card(page, "spam").locator(".content mark.driver").first).to_be_visible()
    expect(card(page, "spam").locator(".legend")).to_have_text(re.compile("spam phrase.*link"))
    expect(card(page, "sam").locator(".standing")).to_have_text("premoderated")
    if os.environ.get("MODERATION_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.mouse.move(0, 0)
        page.screenshot(path=str(SCREENSHOT))


# --- the pieces, without a browser -----------------------------------------------------------


def marked(parts: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(part["text"], part["kind"]) for part in parts if part["label"]]


def test_toxic_sentences_are_marked_at_the_threshold_or_else_the_worst() -> None:
    text = f"{HARMLESS} {ABUSIVE} Bye."
    first, second, third = (0, 31), (32, 32 + len(ABUSIVE)), (len(text) - 4, len(text))
    spans = {"toxicity": [[*first, 0.1], [*second, 0.95], [*third, 0.85]]}
    over = content_parts(text, {}, spans=spans, thresholds={"toxicity": 0.8})
    assert marked(over) == [(ABUSIVE, "toxicity"), ("Bye.", "toxicity")]
    assert "".join(part["text"] for part in over) == text
    worst = content_parts(text, {}, spans=spans, thresholds={"toxicity": 0.99})
    assert marked(worst) == [(ABUSIVE, "toxicity")]
    assert worst[1]["title"] == "toxicity 0.95 (this sentence alone)"
    both = {"toxicity": [[*second, 0.95]], "insult": [[*second, 0.9]]}
    titled = content_parts(text, {}, spans=both, thresholds={"toxicity": 0.8, "insult": 0.8})
    assert titled[1]["title"] == "toxicity 0.95, insult 0.90 (this sentence alone)"
    nonsense = {"toxicity": [[5, 999, 0.9], ["x", 1, 0.9], [3]]}
    assert marked(content_parts(text, {}, spans=nonsense, thresholds={})) == []


def test_policy_words_links_and_phrases_are_marked_and_never_nest() -> None:
    text = "Buy CHEAP pills at http://pills.example now, classy idiots. www.x.example."
    words = PolicyWords(banned=("idiot", "ass"), suspect=("cheap pills", "now"))
    parts = content_parts(
        text,
        {"spam": ["buy cheap"]},
        words=words,
        reasons=["3 links > 2 allowed"],
    )
    assert "".join(part["text"] for part in parts) == text
    assert marked(parts) == [
        ("Buy CHEAP", "spam"),  # starts first; the suspect "cheap pills" keeps what runs past
        (" pills", "suspect"),
        ("http://pills.example", "link"),
        ("now", "suspect"),
        ("www.x.example", "link"),  # the sentence's full stop is not the link's
    ]  # "idiot" is in "idiots" and "ass" in "classy": not whole words, not marked
    assert parts[0]["class"] == "mark mark-spam driver"
    no_reason = content_parts(text, {}, reasons=["spam 0.91 >= 0.70"])
    assert marked(no_reason) == []  # links are marked only when there are too many


def test_the_author_endpoint_is_checked(client, make_site, redis_client) -> None:
    make_site("news")
    make_site("blog")
    ann = ModeratorStore(redis_client).create("ann", Role.MODERATOR, ["news"])
    form_log_in(client, "ann", ann.password)
    token = {"X-CSRFToken": page_token(client.get("/moderate").get_data(as_text=True))}
    no_token = client.post("/moderate/authors/news/u-1", json={"action": "ban"})
    assert no_token.status_code == 400 and no_token.get_json()["error"]["code"] == "csrf_failed"
    bad = client.post("/moderate/authors/news/u-1", json={"action": "smite"}, headers=token)
    assert bad.status_code == 422 and "action" in bad.get_json()["error"]["fields"]
    other = client.post("/moderate/authors/blog/u-1", json={"action": "ban"}, headers=token)
    assert other.status_code == 403

    done = client.post(
        "/moderate/authors/news/u-1",
        json={"action": "premoderate", "note": "watch"},
        headers=token,
    )
    assert done.status_code == 200, done.get_json()
    answer = done.get_json()
    assert answer["author"]["key"] == "news/u-1"
    assert answer["author"]["standing"]["standing"] == "premoderated"
    assert "moderator:ann" in answer["author"]["standing"]["title"]
    assert answer["author"]["history"] == {"approved": 0, "held": 0, "rejected": 0}
    assert answer["rejected"] == []
    assert client.get("/moderate?view=reported").status_code == 200
    assert client.get("/moderate?view=approved&q=x&automatic=1").status_code == 200
