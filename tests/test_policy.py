"""The policy is a pure function: scores and signals in, an action and its reasons out."""

from __future__ import annotations

from moderation.core.records import Action, Standing
from moderation.core.rules import (
    BANNED_AUTHOR_REASON,
    ReasonKind,
    Signals,
    decide,
    reason_kind,
    reported_reason,
)
from moderation.core.settings import PolicySettings

CLEAN = {"toxicity": 0.02, "insult": 0.01, "spam": 0.05}


def test_clean_comment_is_approved_with_no_reasons():
    verdict = decide(CLEAN, Signals(), PolicySettings())
    assert verdict.action is Action.APPROVE
    assert verdict.reasons == []


def test_score_at_threshold_holds_with_a_readable_reason():
    verdict = decide({**CLEAN, "toxicity": 0.93}, Signals(), PolicySettings())
    assert verdict.action is Action.HOLD
    assert verdict.reasons == ["toxicity 0.93 >= 0.80"]


def test_exactly_at_threshold_counts_and_just_below_does_not():
    policy = PolicySettings(hold={"toxicity": 0.8})
    assert decide({"toxicity": 0.8}, Signals(), policy).action is Action.HOLD
    assert decide({"toxicity": 0.7999}, Signals(), policy).action is Action.APPROVE


def test_several_labels_are_listed_highest_first():
    scores = {"toxicity": 0.85, "insult": 0.95, "spam": 0.75}
    reasons = decide(scores, Signals(), PolicySettings()).reasons
    assert reasons == ["insult 0.95 >= 0.80", "toxicity 0.85 >= 0.80", "spam 0.75 >= 0.70"]


def test_labels_without_a_threshold_are_ignored():
    assert decide({"made_up": 1.0}, Signals(), PolicySettings()).action is Action.APPROVE


def test_too_many_links_hold():
    verdict = decide(CLEAN, Signals(link_count=4), PolicySettings(max_links=2))
    assert verdict.action is Action.HOLD
    assert verdict.reasons == ["4 links > 2 allowed"]
    assert decide(CLEAN, Signals(link_count=2), PolicySettings(max_links=2)).reasons == []


def test_honeypot_holds():
    verdict = decide(CLEAN, Signals(honeypot_filled=True), PolicySettings())
    assert verdict.action is Action.HOLD
    assert verdict.reasons == ["honeypot field filled"]


def test_premoderation_holds_everything():
    verdict = decide(CLEAN, Signals(), PolicySettings(premoderate=True))
    assert verdict.action is Action.HOLD
    assert verdict.reasons == ["site premoderates every comment"]


def test_auto_reject_is_off_by_default():
    verdict = decide(
        {"toxicity": 0.999, "spam": 0.999}, Signals(honeypot_filled=True), PolicySettings()
    )
    assert verdict.action is Action.HOLD


def test_auto_reject_when_turned_on():
    policy = PolicySettings(auto_reject=True)
    verdict = decide({"toxicity": 0.99, "spam": 0.1}, Signals(), policy)
    assert verdict.action is Action.REJECT
    assert verdict.reasons == ["toxicity 0.99 >= 0.97"]
    # Below the reject threshold but above the hold threshold: still a hold.
    assert decide({"toxicity": 0.9}, Signals(), policy).action is Action.HOLD
    assert decide(CLEAN, Signals(honeypot_filled=True), policy).action is Action.REJECT


def test_banned_and_suspect_words_hold_and_banned_rejects_with_auto_reject():
    signals = Signals(banned_words=("idiot",), suspect_words=("buy followers",))
    verdict = decide(CLEAN, signals, PolicySettings())
    assert verdict.action is Action.HOLD
    assert verdict.reasons == ['banned word "idiot"', 'suspect word "buy followers"']

    rejected = decide(CLEAN, signals, PolicySettings(auto_reject=True))
    assert rejected.action is Action.REJECT
    assert rejected.reasons == ['banned word "idiot"']
    suspect_only = decide(CLEAN, Signals(suspect_words=("x",)), PolicySettings(auto_reject=True))
    assert suspect_only.action is Action.HOLD


def test_trusted_authors_skip_the_spam_checks_but_not_toxicity():
    policy = PolicySettings(trusted_after=3)
    spammy = {**CLEAN, "spam": 0.9}
    assert decide(spammy, Signals(link_count=5, author_approved=2), policy).action is Action.HOLD
    trusted = Signals(link_count=5, author_approved=3)
    assert decide(spammy, trusted, policy).action is Action.APPROVE
    toxic = {**spammy, "toxicity": 0.95}
    assert decide(toxic, trusted, policy).reasons == ["toxicity 0.95 >= 0.80"]
    # trusted_after 0 means nobody is trusted
    assert decide(spammy, trusted, PolicySettings()).action is Action.HOLD


def test_a_sites_learned_toxicity_stands_for_every_toxicity_label():
    """With the site's own toxicity model, `toxicity` is its score and the model's other labels
    (its inputs) hold nothing by themselves; spam still applies."""
    scores = {"toxicity": 0.3, "base_toxicity": 0.97, "obscene": 0.99, "insult": 0.95, "spam": 0.1}
    learned = Signals(learned_toxicity=True)
    assert decide(scores, learned, PolicySettings()).action is Action.APPROVE
    assert decide(scores, Signals(), PolicySettings()).action is Action.HOLD
    held = decide({**scores, "toxicity": 0.85}, learned, PolicySettings())
    assert held.reasons == ["toxicity 0.85 >= 0.80"]
    spammy = decide({**scores, "spam": 0.9}, learned, PolicySettings())
    assert spammy.reasons == ["spam 0.90 >= 0.70"]
    auto = PolicySettings(auto_reject=True)
    assert decide({**scores, "toxicity": 0.99}, learned, auto).action is Action.REJECT
    assert decide({**scores, "obscene": 1.0}, learned, auto).action is Action.APPROVE


def test_a_language_no_model_reads_is_held_unless_the_site_approves_it():
    unread = Signals(language="fr", language_unread=True)
    held = decide(CLEAN, unread, PolicySettings())
    assert held.action is Action.HOLD and held.reasons == ["language fr: no model"]
    approved = decide(CLEAN, unread, PolicySettings(unscored_languages="approve"))
    assert approved.action is Action.APPROVE and approved.reasons == []
    # A language some model reads is decided on its scores alone.
    assert decide(CLEAN, Signals(language="fr"), PolicySettings()).action is Action.APPROVE


def test_a_model_that_cannot_read_the_text_may_hold_it_but_never_rejects_it():
    toxic = {**CLEAN, "toxicity": 0.99}
    policy = PolicySettings(auto_reject=True, unscored_languages="approve")
    unread = decide(toxic, Signals(language="de", language_unread=True), policy)
    assert unread.action is Action.HOLD and unread.reasons == ["toxicity 0.99 >= 0.80"]
    assert decide(toxic, Signals(language="en"), policy).action is Action.REJECT
    spam = decide({**CLEAN, "spam": 0.99}, Signals(language="de", language_unread=True), policy)
    assert spam.action is Action.REJECT  # spam is scored in every language


def test_every_reason_the_policy_gives_is_read_back_as_its_kind():
    """Moderators' labels and Coral's flags read reasons with `reason_kind`: a reworded reason
    must still be read (or this fails)."""
    signals = Signals(
        link_count=5,
        honeypot_filled=True,
        banned_words=("zq",),
        suspect_words=("qz",),
        language="fr",
        language_unread=True,
    )
    policy = PolicySettings(premoderate=True)
    scores = {"toxicity": 0.95, "insult": 0.9, "spam": 0.99}
    reasons = decide(scores, signals, policy).reasons
    kinds = [reason_kind(reason) for reason in reasons]
    assert kinds == [
        ReasonKind.SPAM,  # spam 0.99 >= ...
        ReasonKind.TOXICITY,  # toxicity 0.95 >= ...
        ReasonKind.TOXICITY,  # insult 0.90 >= ...
        ReasonKind.SPAM,  # honeypot
        ReasonKind.SPAM,  # 5 links > 2 allowed
        ReasonKind.BANNED,
        ReasonKind.SUSPECT,
        ReasonKind.LANGUAGE,
        ReasonKind.PREMODERATION,
    ], reasons
    explained = 'spam 1.00 >= 0.70: "channel and subscribe", 1 link'
    assert reason_kind(explained) is ReasonKind.SPAM
    assert reason_kind("something a moderator wrote") is None


# --- authors and readers -----------------------------------------------------------------------


def test_a_banned_authors_comment_is_rejected_or_held_as_the_policy_says():
    banned = Signals(author_standing=Standing.BANNED)
    verdict = decide(CLEAN, banned, PolicySettings())
    assert (verdict.action, verdict.reasons) == (Action.REJECT, [BANNED_AUTHOR_REASON])
    held = decide(CLEAN, banned, PolicySettings(banned_authors="hold"))
    assert (held.action, held.reasons) == (Action.HOLD, [BANNED_AUTHOR_REASON])
    assert reason_kind(BANNED_AUTHOR_REASON) is ReasonKind.AUTHOR


def test_a_premoderated_author_is_held_and_a_trusted_one_skips_the_spam_checks():
    premoderated = decide(CLEAN, Signals(author_standing=Standing.PREMODERATED), PolicySettings())
    assert (premoderated.action, premoderated.reasons) == (
        Action.HOLD,
        ["author premoderated by a moderator"],
    )
    spammy = {**CLEAN, "spam": 0.99}
    trusted = Signals(link_count=9, author_standing=Standing.TRUSTED)
    assert decide(spammy, trusted, PolicySettings()).action is Action.APPROVE
    toxic = {**CLEAN, "toxicity": 0.95}
    assert decide(toxic, trusted, PolicySettings()).action is Action.HOLD


def test_new_authors_are_held_until_enough_were_approved():
    policy = PolicySettings(premoderate_new_authors=2)
    first = decide(CLEAN, Signals(author_approved=0), policy)
    assert first.reasons == ["new author: 0 of 2 comments approved"]
    assert reason_kind(first.reasons[0]) is ReasonKind.AUTHOR
    assert decide(CLEAN, Signals(author_approved=1), policy).action is Action.HOLD
    assert decide(CLEAN, Signals(author_approved=2), policy).action is Action.APPROVE
    # A trusted author is not new, whatever their count.
    trusted = Signals(author_approved=0, author_standing=Standing.TRUSTED)
    assert decide(CLEAN, trusted, policy).action is Action.APPROVE


def test_open_reports_at_the_threshold_hold_and_a_zero_threshold_never_does():
    verdict = decide(CLEAN, Signals(open_reports=3), PolicySettings())
    assert verdict.reasons == ["reported by 3 readers"]
    assert reason_kind(verdict.reasons[0]) is ReasonKind.REPORTED
    assert decide(CLEAN, Signals(open_reports=2), PolicySettings()).action is Action.APPROVE
    never = PolicySettings(report_threshold=0)
    assert decide(CLEAN, Signals(open_reports=50), never).action is Action.APPROVE
    assert reported_reason(1, ["off_topic"]) == "reported by 1 reader: off topic"
    assert reason_kind(reported_reason(4, ["abuse", "spam"])) is ReasonKind.REPORTED
