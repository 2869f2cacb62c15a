"""Unit tests for the explainable spam scorer, plus one check against real labeled data."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from workers.scoring.spam import (
    SpamContext,
    SpamResult,
    count_links,
    score_spam,
    text_fingerprint,
)

CLEAN = "I disagree with the author about the budget, but the article was well researched."
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HELD_OUT_AUC_FLOOR = 0.92  # measured 0.944 on video 03 (partly held out); see bench/spam_eval.py
TUNING_AUC_FLOOR = 0.95  # measured 0.982 on videos 01+02 (tuning set)


def names(result: SpamResult) -> set[str]:
    """Names of the signals that fired."""
    return {s.name for s in result.signals}


def test_clean_comment_scores_low_with_no_signals() -> None:
    result = score_spam(CLEAN)
    assert result.score < 0.3
    assert result.signals == ()
    assert result.link_count == 0


@pytest.mark.parametrize(
    ("signal", "text", "context"),
    [
        ("links", "Sources: https://a.example.com/x and www.b.org and see c.net/path", None),
        ("link_density", "http://spam.example.com/offer", None),
        ("link_shortener", "full story here bit.ly/3xYz and t.co/abc", None),
        ("obfuscated_link", "come to mysite . com for the rest of it", None),
        ("self_promotion", "Check out my channel and subscribe!", None),
        ("call_to_action", "Click here to read the rest", None),
        ("money_offer", "Earn $500 per day working from home", None),
        ("pharma", "Buy cheap viagra and cialis, no prescription", None),
        ("crypto_finance", "Double your bitcoin with this forex strategy", None),
        ("gambling", "Best online casino with a huge jackpot", None),
        ("loans", "Fast payday loans even with bad credit", None),
        ("adult", "Hot singles near you on our dating site", None),
        ("phone_number", "Questions? Call +1 555 123 4567 anytime", None),
        ("email_in_text", "Write to deals@example.org for details", None),
        ("shouting", "THIS IS THE BEST THING I HAVE EVER SEEN", None),
        ("excessive_punctuation", "Amazing offer!!!!! $$$", None),
        ("honeypot", CLEAN, SpamContext(honeypot_filled=True)),
        ("duplicate", CLEAN, SpamContext(duplicate_count=4)),
        ("author_burst", CLEAN, SpamContext(author_burst=6)),
        ("ip_burst", CLEAN, SpamContext(ip_burst=6)),
        (
            "author_url_praise",
            "Great post, thanks for sharing!",
            SpamContext(author_url="http://x.io"),
        ),
        ("author_name_spam", CLEAN, SpamContext(author_name="Cheap Viagra Online")),
        ("author_name_spam", CLEAN, SpamContext(author_name="best-loans.example.com")),
    ],
)
def test_signal_fires(signal: str, text: str, context: SpamContext | None) -> None:
    result = score_spam(text, context or SpamContext())
    fired = {s.name: s for s in result.signals}
    assert signal in fired
    assert fired[signal].weight > 0
    assert fired[signal].detail


def test_quiet_context_fires_nothing_on_clean_comment() -> None:
    context = SpamContext(
        author_name="Jane Doe",
        author_email="jane@example.org",
        author_url="https://jane.example.org",
        duplicate_count=1,
        author_burst=2,
        ip_burst=2,
    )
    assert score_spam(CLEAN, context).signals == ()


def test_praise_without_author_url_does_not_fire() -> None:
    assert "author_url_praise" not in names(score_spam("Great post, thanks for sharing!"))


def test_honeypot_alone_scores_above_09() -> None:
    assert score_spam(CLEAN, SpamContext(honeypot_filled=True)).score >= 0.9


def test_duplicates_and_bursts_are_strong_from_thresholds() -> None:
    assert score_spam(CLEAN, SpamContext(duplicate_count=3)).score >= 0.7
    assert score_spam(CLEAN, SpamContext(author_burst=5)).score >= 0.7
    assert score_spam(CLEAN, SpamContext(duplicate_count=2)).score < 0.7
    assert names(score_spam(CLEAN, SpamContext(author_burst=2, ip_burst=2))) == set()


def test_details_do_not_echo_contact_details() -> None:
    result = score_spam("mail deals@example.org or call +1 555 123 4567")
    for signal in result.signals:
        assert "example.org" not in signal.detail
        assert "555" not in signal.detail


def test_html_entities_and_bom_are_handled() -> None:
    result = score_spam("Check out my channel&#39;s new video&#x21;\ufeff")
    assert "self_promotion" in names(result)
    assert score_spam("I don&#39;t agree with this at all.\ufeff").signals == ()


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
def test_score_within_unit_interval(text: str, context: SpamContext) -> None:
    assert 0.0 <= score_spam(text, context).score <= 1.0


def test_signals_sorted_strongest_first() -> None:
    result = score_spam(
        "Check out my channel http://example.com and click here!!!",
        SpamContext(honeypot_filled=True, ip_burst=3),
    )
    weights = [s.weight for s in result.signals]
    assert len(weights) >= 4
    assert weights == sorted(weights, reverse=True)
    assert {"honeypot", "ip_burst", "links", "self_promotion"} <= names(result)
    assert result.signals[-1].name == "excessive_punctuation"  # 0.3, the weakest here


def _youtube_auc(videos: tuple[str, ...]) -> float:
    """ROC AUC of ``score_spam`` on the given YouTube Spam Collection videos."""
    from sklearn.metrics import roc_auc_score

    labels, scores = [], []
    for path in sorted((DATA / "youtube-spam").glob("Youtube0*.csv")):
        if path.stem.removeprefix("Youtube")[:2] not in videos:
            continue
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                labels.append(int(row["CLASS"]))
                scores.append(score_spam(row["CONTENT"]).score)
    if not labels:
        pytest.skip(f"no YouTube videos {videos} under {DATA}")
    return float(roc_auc_score(labels, scores))


def test_real_youtube_auc_held_out_and_tuning() -> None:
    if not (DATA / "youtube-spam").is_dir():
        pytest.skip(f"labeled data not found at {DATA}")
    assert _youtube_auc(("03",)) > HELD_OUT_AUC_FLOOR
    assert _youtube_auc(("01", "02")) > TUNING_AUC_FLOOR
