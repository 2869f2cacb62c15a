"""What drove a learned score: the phrases of the text that added most to it.

A linear model's logit is a sum over features, so each word's share can be read off: its own
word and character n-grams, and half of each word pair it is part of. Neighbouring words that
each push the score up make one phrase ("check out my channel"); the strongest few phrases are
quoted in the decision's reasons and highlighted on the review page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from workers.learning.features import WORD_PATTERN, Featurizer
from workers.scoring.spam_signals import clean_text

#: At most this many phrases are quoted, each at most this many words long.
MAX_PHRASES = 3
MAX_PHRASE_WORDS = 5
#: A phrase must add at least this much (log-odds) to be worth naming.
MIN_PHRASE_WEIGHT = 0.4

_WORD = re.compile(WORD_PATTERN)
_EDGE_PUNCTUATION = "\"'()[]{}<>,.;:!?\u2026\u00ab\u00bb\u201c\u201d\u2018\u2019"


@dataclass(frozen=True)
class Explanation:
    """Why a score is high: phrases quoted from the text, and notes that quote nothing."""

    phrases: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.phrases or self.notes)


def top_phrases(featurizer: Featurizer, text: str, weights: np.ndarray) -> tuple[str, ...]:
    """The phrases of `text` that add most to the logit under `weights` (the model's n-gram
    weights in `featurizer`'s layout), strongest first, as they appear in the cleaned text."""
    cleaned = clean_text(text)
    spans = [(m.start(), m.end()) for m in _WORD.finditer(cleaned)]
    if not spans:
        return ()
    words = [cleaned[start:end].lower() for start, end in spans]
    scores = featurizer.word_scores(cleaned, words, weights)
    candidates = [
        (weight, _whole_words(cleaned, spans[first][0], spans[last][1]))
        for first, last, weight in _best_runs(scores)
        if weight >= MIN_PHRASE_WEIGHT
    ]
    ranked = sorted(candidates, key=lambda candidate: -candidate[0])
    unique: list[str] = []
    for _, phrase in ranked:
        if phrase.lower() not in (seen.lower() for seen in unique):
            unique.append(phrase)
    return tuple(unique[:MAX_PHRASES])


def _whole_words(text: str, start: int, end: int) -> str:
    """text[start:end] widened to whole whitespace-separated words ("bit" -> "bit.ly/x"), less
    the punctuation that ends a sentence."""
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return text[start:end].strip(_EDGE_PUNCTUATION)


def _best_runs(scores: np.ndarray) -> list[tuple[int, int, float]]:
    """(first, last, total) of each run of neighbouring words that push the score up,
    trimmed to its strongest window of at most MAX_PHRASE_WORDS words."""
    runs: list[tuple[int, int, float]] = []
    index = 0
    while index < len(scores):
        if scores[index] <= 0:
            index += 1
            continue
        end = index
        while end + 1 < len(scores) and scores[end + 1] > 0:
            end += 1
        width = min(MAX_PHRASE_WORDS, end - index + 1)
        best = max(range(index, end - width + 2), key=lambda s: scores[s : s + width].sum())
        runs.append((best, best + width - 1, float(scores[best : best + width].sum())))
        index = end + 1
    return runs
