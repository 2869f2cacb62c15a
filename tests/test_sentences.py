"""Splitting a comment into the pieces scored alone for the review page's toxicity spans."""

from __future__ import annotations

from moderation.core.sentences import clause_spans, pieces, sentence_spans
from workers.scoring.spans import MAX_PIECES, toxicity_spans
from workers.scoring.toxicity import LiteScorer


def texts_of(text: str, spans: list[tuple[int, int]]) -> list[str]:
    return [text[begin:end] for begin, end in spans]


def test_sentences_then_clauses_of_a_single_sentence() -> None:
    text = "  First one.  Second one!\nThird "
    assert texts_of(text, sentence_spans(text)) == ["First one.", "Second one!", "Third"]
    assert texts_of(text, pieces(text)) == ["First one.", "Second one!", "Third"]
    one = "I read the whole piece twice, and honestly you are a complete idiot"
    assert texts_of(one, pieces(one)) == [
        "I read the whole piece twice,",
        "and honestly you are a complete idiot",
    ]


def test_short_clauses_join_their_neighbours() -> None:
    text = "Well, frankly, this is the worst take I have read: awful"
    assert texts_of(text, clause_spans(text, 0, len(text))) == [
        "Well, frankly, this is the worst take I have read: awful"
    ]
    assert texts_of("ok", clause_spans("ok", 0, 2)) == ["ok"]


def test_each_piece_is_scored_alone_for_the_labels_asked() -> None:
    text = "Thanks for the update on the bridge. You are a fucking idiot."
    [spans, nothing] = toxicity_spans(LiteScorer(), [text, text], [["toxicity"], []])
    assert nothing == {}
    [(b1, e1, harmless), (b2, e2, abusive)] = spans["toxicity"]
    assert text[int(b1) : int(e1)] == "Thanks for the update on the bridge."
    assert text[int(b2) : int(e2)] == "You are a fucking idiot."
    assert abusive > 0.5 > harmless
    # One piece says no more than the comment's own score: nothing to show.
    assert toxicity_spans(LiteScorer(), ["idiot"], [["toxicity"]]) == [{}]
    many = " ".join(f"Sentence {n}." for n in range(100))
    assert len(toxicity_spans(LiteScorer(), [many], [["toxicity"]])[0]["toxicity"]) == MAX_PIECES
