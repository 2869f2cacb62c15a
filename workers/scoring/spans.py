"""Which sentences of a held comment drove its toxicity scores: each sentence (in a comment of
one sentence, each clause) scored alone, as Perspective's span scores do. Computed only for
comments held for a toxicity label, in one extra model pass for all of a pass's such comments.
"""

from __future__ import annotations

from collections.abc import Sequence

from moderation.core.sentences import pieces
from workers.scoring.toxicity import ToxicityScorer

#: label -> [begin, end, score] of each piece of the text
Spans = dict[str, list[list[float]]]
#: Pieces scored per comment at most (the first ones): a long comment costs a pass, not ten.
MAX_PIECES = 24


def toxicity_spans(
    scorer: ToxicityScorer, texts: Sequence[str], labels: Sequence[Sequence[str]]
) -> list[Spans]:
    """For each text, the scores of its pieces for the labels asked for that text (none asked,
    or a text that does not split: {})."""
    wanted = [
        (index, piece)
        for index, text in enumerate(texts)
        if labels[index]
        for piece in _split(text)
    ]
    scores = scorer.score([texts[index][begin:end] for index, (begin, end) in wanted])
    found: list[Spans] = [{} for _ in texts]
    for (index, (begin, end)), score in zip(wanted, scores, strict=True):
        for label in labels[index]:
            if label in score:
                found[index].setdefault(label, []).append([begin, end, round(score[label], 4)])
    return found


def _split(text: str) -> list[tuple[int, int]]:
    """The text's pieces, or none when it is one piece (its own score says it all)."""
    found = pieces(text)
    return found[:MAX_PIECES] if len(found) > 1 else []
