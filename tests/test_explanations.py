"""Explanations: a learned score's reasons name what drove it, quote the phrases (which the
review page highlights), and the quotes go with the text when it is erased."""

from __future__ import annotations

from moderation.core.records import Action, Decision, Submission, quoted_reasons, utc_now
from moderation.http.web.cards import content_parts
from moderation.storage.comment_store import CommentStore
from workers.learning.explain import Explanation
from workers.scoring.pipeline import explained_reasons

SPAM = Explanation(("check out my channel", "subscribe"), ("3 links",))


def test_reasons_get_notes_and_the_phrases_go_beside_them() -> None:
    reasons = ["spam 0.94 >= 0.70", "toxicity 0.85 >= 0.80", "4 links > 2 allowed"]
    noted, highlights = explained_reasons(reasons, {"spam": SPAM}.get)
    assert noted == ["spam 0.94 >= 0.70: 3 links", "toxicity 0.85 >= 0.80", "4 links > 2 allowed"]
    assert highlights == {"spam": ["check out my channel", "subscribe"]}


def test_records_quote_the_phrases_in_their_reasons() -> None:
    highlights = {"spam": ["check out my channel", 'say "hi"'], "toxicity": ["idiot"]}
    reasons = ["spam 0.94 >= 0.70: 3 links", "toxicity 0.85 >= 0.80", "moderator: spam run"]
    assert quoted_reasons(reasons, highlights) == [
        'spam 0.94 >= 0.70: "check out my channel", "say \\"hi\\"", 3 links',
        'toxicity 0.85 >= 0.80: "idiot"',
        "moderator: spam run",
    ]


def test_erasure_and_webhooks_keep_no_quoted_text(redis_client) -> None:
    store = CommentStore(redis_client)
    store.accept("news", Submission("c-1", "Check out my channel!"), lambda p, s, c: "job")
    decision = Decision(Action.HOLD, ["spam 0.94 >= 0.70"], {"spam": 0.94}, {}, "auto", utc_now())
    store.decide("news", "c-1", decision, highlights={"spam": ["Check out my channel"]})
    comment = store.get("news", "c-1")
    assert comment.record()["decision"]["reasons"] == ['spam 0.94 >= 0.70: "Check out my channel"']
    assert comment.record(quote_text=False)["decision"]["reasons"] == ["spam 0.94 >= 0.70"]
    store.erase("news", "c-1", "site:news")
    assert store.get("news", "c-1").record()["decision"]["reasons"] == ["spam 0.94 >= 0.70"]


def test_the_page_marks_each_phrase_where_it_stands_in_the_comment() -> None:
    content = "Hey, CHECK OUT my channel and subscribe. Subscribe!"
    parts = content_parts(content, {"spam": ["check out my channel", "subscribe"]})
    assert "".join(part["text"] for part in parts) == content
    assert [(p["text"], p["label"]) for p in parts if p["label"]] == [
        ("CHECK OUT my channel", "spam"),
        ("subscribe", "spam"),
        ("Subscribe", "spam"),
    ]
    overlapping = content_parts("abcdef", {"spam": ["abcd"], "toxicity": ["cdef"]})
    assert [(p["text"], p["label"]) for p in overlapping] == [("abcd", "spam"), ("ef", "toxicity")]
    assert content_parts("", {"spam": ["x"]}) == [{"text": "", "label": ""}]
    # Lower-casing "İ" makes two characters: positions are the comment's own.
    dotted = content_parts("İİ check out my channel", {"spam": ["check out my channel"]})
    assert [(p["text"], p["label"]) for p in dotted] == [
        ("İİ ", ""),
        ("check out my channel", "spam"),
    ]
    assert content_parts("plain", {}) == [{"text": "plain", "label": ""}]


def test_only_the_scores_a_decision_names_are_explained() -> None:
    asked: list[str] = []

    def explain(label: str) -> Explanation | None:
        asked.append(label)
        return SPAM if label == "spam" else None

    explained_reasons(["spam 0.94 >= 0.70", "spam 0.99 >= 0.97", "insult 0.9 >= 0.8"], explain)
    assert asked == ["spam", "insult"]  # once per label, and never "toxicity"
