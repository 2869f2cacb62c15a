"""Where a comment's sentences (and, in a one-sentence comment, its clauses) begin and end.

Perspective's span scores and the review page's toxicity highlights score each piece alone.
"""

from __future__ import annotations

import re

_SENTENCE = re.compile(r"[^.!?…\n]*(?:[.!?…]+|\n|$)")
_CLAUSE = re.compile(r"[^,;:\u2014\u2013]*(?:[,;:\u2014\u2013]+|$)")
#: A clause shorter than this many words joins the next one ("Well, you ..." stays whole).
MIN_CLAUSE_WORDS = 3


def _trimmed(text: str, begin: int, end: int) -> tuple[int, int]:
    while begin < end and text[begin].isspace():
        begin += 1
    while end > begin and text[end - 1].isspace():
        end -= 1
    return begin, end


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(begin, end) character offsets of each sentence, without surrounding whitespace."""
    spans = []
    for match in _SENTENCE.finditer(text):
        begin, end = _trimmed(text, match.start(), match.end())
        if end > begin:
            spans.append((begin, end))
    return spans


def clause_spans(text: str, begin: int, end: int) -> list[tuple[int, int]]:
    """The clauses of text[begin:end] (split at commas, semicolons, colons and dashes), each of
    at least MIN_CLAUSE_WORDS words: a shorter one joins the next (the last, the one before)."""
    raw = []
    for match in _CLAUSE.finditer(text, begin, end):
        piece = _trimmed(text, match.start(), match.end())
        if piece[1] > piece[0]:
            raw.append(piece)
    clauses: list[tuple[int, int]] = []
    joining: int | None = None  # where a short clause waiting to join the next begins
    for piece_begin, piece_end in raw:
        start = piece_begin if joining is None else joining
        if len(text[start:piece_end].split()) >= MIN_CLAUSE_WORDS:
            clauses.append((start, piece_end))
            joining = None
        else:
            joining = start
    if joining is not None:
        if clauses:
            clauses[-1] = (clauses[-1][0], raw[-1][1])
        else:
            clauses.append((joining, raw[-1][1]))
    return clauses


def pieces(text: str) -> list[tuple[int, int]]:
    """The sentences of `text`; a text of one sentence, its clauses instead."""
    sentences = sentence_spans(text)
    if len(sentences) == 1:
        return clause_spans(text, *sentences[0])
    return sentences
