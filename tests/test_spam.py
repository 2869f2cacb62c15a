"""The spam score: signals (named evidence), the learned base model, the hand-set context
signals, and the explanations a learned score comes with."""

from __future__ import annotations

import pytest

from workers.scoring.spam import SpamResult, SpamScorer
from workers.scoring.spam_signals import (
    SpamContext,
    clean_text,
    context_signals,
    count_links,
    text_fingerprint,
    text_signals,
)

CLEAN = "I disagree with the author about the budget, but the article was well researched."
SPAMMY = "Hey guys check out my channel and subscribe!!! http://bit.ly/x and www.y.example.com"


@pytest.fixture(scope="module")
def scorer() -> SpamScorer:
    return SpamScorer.from_file()


def score(scorer: SpamScorer, text: str, context: SpamContext | None = None) -> SpamResult:
    (result,) = scorer.score([text], [context or SpamContext()], [None])
    return result


def names(result: SpamResult) -> set[str]:
    return {s.name for s in result.signals}


# --- signals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signal", "text"),
    [
        ("links", "Sources: https://a.example.com/x and www.b.org and see c.net/path"),
        ("link_density", "http://spam.example.com/offer"),
        ("link_shortener", "full story here bit.ly/3xYz and t.co/abc"),
        ("obfuscated_link", "come to mysite . com for the rest of it"),
        ("self_promotion", "Check out my channel and subscribe!"),
        ("call_to_action", "Click here to read the rest"),
        ("money_offer", "Earn $500 per day working from home"),
        ("pharma", "Buy cheap viagra and cialis, no prescription"),
        ("crypto_finance", "Double your bitcoin with this forex strategy"),
        ("gambling", "Best online casino with a huge jackpot"),
        ("loans", "Fast payday loans even with bad credit"),
        ("adult", "Hot singles near you on our dating site"),
        ("phone_number", "Questions? Call +1 555 123 4567 anytime"),
        ("email_in_text", "Write to deals@example.org for details"),
        ("shouting", "THIS IS THE BEST THING I HAVE EVER SEEN"),
        ("excessive_punctuation", "Amazing offer!!!!! $$$"),
    ],
)
def test_text_signal_fires(signal: str, text: str) -> None:
    strength, detail = text_signals(text)[signal]
    assert strength > 0 and detail


@pytest.mark.parametrize(
    ("signal", "text", "context"),
    [
        ("honeypot", CLEAN, SpamContext(honeypot_filled=True)),
        ("duplicate", CLEAN, SpamContext(duplicate_count=4)),
        ("author_burst", CLEAN, SpamContext(author_burst=6)),
        ("ip_burst", CLEAN, SpamContext(ip_burst=6)),
        ("author_url_praise", "Great post, thanks for sharing!", SpamContext(author_url="x.io")),
        ("author_name_spam", CLEAN, SpamContext(author_name="Cheap Viagra Online")),
        ("author_name_spam", CLEAN, SpamContext(author_name="best-loans.example.com")),
    ],
)
def test_context_signal_fires(signal: str, text: str, context: SpamContext) -> None:
    fired = {s.name: s for s in context_signals(clean_text(text), context)}
    assert fired[signal].weight > 0 and fired[signal].detail


def test_quiet_context_and_clean_text_fire_nothing() -> None:
    context = SpamContext(
        author_name="Jane Doe",
        author_email="jane@example.org",
        author_url="https://jane.example.org",
        author_burst=2,
        ip_burst=2,
    )
    assert list(context_signals(clean_text(CLEAN), context)) == []
    assert text_signals(CLEAN) == {}
    assert text_signals("I don&#39;t agree with this at all.\ufeff") == {}
    assert "self_promotion" in text_signals("Check out my channel&#39;s new video&#x21;\ufeff")


def test_details_do_not_echo_contact_details() -> None:
    for _, detail in text_signals("mail deals@example.org or call +1 555 123 4567").values():
        assert "example.org" not in detail and "555" not in detail


def test_fingerprint_equal_for_near_duplicates() -> None:
    assert text_fingerprint("Check out MY channel!!!") == text_fingerprint(
        "check out my   channel!"
    )
    assert text_fingerprint("Caf\u00e9 na\u00efve 123") == text_fingerprint("cafe naive 456")
    assert text_fingerprint("sooooo good&#33;") == text_fingerprint("\ufeffso good\u200b")


def test_fingerprint_differs_for_unrelated_text() -> None:
    assert text_fingerprint("Check out my channel") != text_fingerprint(CLEAN)
    assert text_fingerprint("\U0001f600\U0001f600") != text_fingerprint("\U0001f621")
    fingerprint = text_fingerprint(CLEAN)
    assert len(fingerprint) == 32
    int(fingerprint, 16)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see https://example.com and http://foo.org/x?y=1", 2),
        ("go to www.example.com now", 1),
        ("read example.com/path and news.example.co.uk", 2),
        ('<a href="http://example.com/">here</a>', 1),
        ("e.g. this one, i.e. that one", 0),
        ("works on Python 3.11 and 2.7.18", 0),
        ("write to me@example.com", 0),
        ("It was great.This is a song", 0),
        (CLEAN, 0),
    ],
)
def test_count_links(text: str, expected: int) -> None:
    assert count_links(text) == expected


# --- the learned score --------------------------------------------------------------------------


def test_the_base_model_tells_spam_from_discussion(scorer: SpamScorer) -> None:
    clean, spammy = score(scorer, CLEAN), score(scorer, SPAMMY)
    assert clean.score < 0.1 < 0.9 < spammy.score
    assert clean.signals == () and clean.link_count == 0
    assert spammy.link_count == 2
    assert {"links", "self_promotion"} <= names(spammy)
    assert clean.model == spammy.model == "spam-base-1"


def test_context_signals_add_their_hand_set_weight(scorer: SpamScorer) -> None:
    """Against a plain comment, however harmless the text: a filled honeypot, a burst."""
    alone = score(scorer, CLEAN).score
    assert score(scorer, CLEAN, SpamContext(honeypot_filled=True)).score >= 0.9
    assert score(scorer, CLEAN, SpamContext(author_burst=5)).score > 0.7
    assert names(score(scorer, CLEAN, SpamContext(author_burst=2, ip_burst=2))) == set()
    assert alone < score(scorer, CLEAN, SpamContext(duplicate_count=2)).score


def test_repeats_add_to_what_the_text_is(scorer: SpamScorer) -> None:
    """The same reaction from many readers stays approved; a copied promotion is held."""
    reaction, promotion = "Awesome", "Check out this video on YouTube:"
    assert score(scorer, reaction, SpamContext(duplicate_count=5)).score < 0.7
    assert (
        score(scorer, promotion).score
        < score(scorer, promotion, SpamContext(duplicate_count=3)).score
    )
    assert score(scorer, promotion, SpamContext(duplicate_count=3)).score >= 0.7


@pytest.mark.parametrize(
    ("text", "context"),
    [
        ("", SpamContext()),
        (CLEAN, SpamContext()),
        (
            "FREE MONEY!!! Click here http://bit.ly/x www.casino.example.com viagra bitcoin "
            "loans subscribe to my channel call +1 555 123 4567 spam@example.com $$$",
            SpamContext(
                honeypot_filled=True,
                author_name="cheap loans",
                author_url="http://x.example.com",
                duplicate_count=10**6,
                author_burst=10**6,
                ip_burst=10**6,
            ),
        ),
    ],
)
def test_score_within_unit_interval(scorer: SpamScorer, text: str, context: SpamContext) -> None:
    assert 0.0 <= score(scorer, text, context).score <= 1.0


def test_signals_pushing_the_score_up_come_strongest_first(scorer: SpamScorer) -> None:
    result = score(scorer, SPAMMY, SpamContext(honeypot_filled=True, ip_burst=3))
    weights = [s.weight for s in result.signals]
    assert len(weights) >= 4 and all(w > 0 for w in weights)
    assert weights == sorted(weights, reverse=True)
    assert {"honeypot", "ip_burst", "links", "self_promotion"} <= names(result)


def test_explanations_quote_the_words_that_drove_the_score(scorer: SpamScorer) -> None:
    result = score(scorer, SPAMMY, SpamContext(duplicate_count=4))
    explanation = scorer.explain(SPAMMY, result, None)
    assert 1 <= len(explanation.phrases) <= 3
    assert all(phrase in SPAMMY for phrase in explanation.phrases)
    assert any("subscribe" in phrase or "channel" in phrase for phrase in explanation.phrases)
    assert "2 links" in explanation.notes
    assert "same or nearly the same text posted 4 times" in explanation.notes
    # A comment's own words are no note: notes never quote the text.
    assert not any("channel" in note for note in explanation.notes)
