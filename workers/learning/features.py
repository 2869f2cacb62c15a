"""Texts as feature vectors for the learned models, in one fixed layout:

    [ inputs | signals | word n-grams | character n-grams ]

- inputs: numbers the caller gives for each text, named in the spec (the base spam model's
  logit, the toxicity model's label scores as logits);
- signals: the strengths of the spam signals (`workers.scoring.spam_signals`), when asked for;
- word and character n-grams, hashed with scikit-learn's HashingVectorizer: the model has a
  fixed size and needs no vocabulary file, and a word it never saw costs nothing.

Each block of n-gram counts is scaled to unit length, so that long and short texts weigh alike.
The same code turns texts into features for training and for scoring.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

from workers.scoring.spam_signals import TEXT_SIGNALS, clean_text, signals_in_cleaned

#: Words as the n-gram features see them (one-letter words count: "sub 4 sub", "u").
WORD_PATTERN = r"(?u)\b\w+\b"


@dataclass(frozen=True)
class FeatureSpec:
    """What a model's features are; stored with the model, so a model always reads texts the
    way it was trained to."""

    hash_bits: int = 18
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    signals: bool = False
    inputs: tuple[str, ...] = field(default=())

    def without_inputs(self) -> FeatureSpec:
        """The same features of the text alone (the layout of `LinearModel.text_weights`)."""
        return replace(self, inputs=())

    def to_json(self) -> dict[str, Any]:
        return {
            "hash_bits": self.hash_bits,
            "word_ngrams": list(self.word_ngrams),
            "char_ngrams": list(self.char_ngrams),
            "signals": self.signals,
            "inputs": list(self.inputs),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(
            hash_bits=int(data["hash_bits"]),
            word_ngrams=(int(data["word_ngrams"][0]), int(data["word_ngrams"][1])),
            char_ngrams=(int(data["char_ngrams"][0]), int(data["char_ngrams"][1])),
            signals=bool(data["signals"]),
            inputs=tuple(str(name) for name in data["inputs"]),
        )


#: Texts whose block lengths a featurizer keeps for explaining their scores (a few batches').
LENGTHS_KEPT = 1024


def _whole(document: str) -> list[str]:
    """The document itself as its one feature (to hash a single n-gram exactly)."""
    return [document]


class Featurizer:
    """Turns texts into rows of a spec's layout."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.hash_size = 2**spec.hash_bits
        self.signal_names = TEXT_SIGNALS if spec.signals else ()
        self.words_at = len(spec.inputs) + len(self.signal_names)
        self.chars_at = self.words_at + self.hash_size
        self.width = self.chars_at + self.hash_size
        common = {"n_features": self.hash_size, "alternate_sign": False, "norm": None}
        self._words = HashingVectorizer(
            ngram_range=spec.word_ngrams, token_pattern=WORD_PATTERN, **common
        )
        self._chars = HashingVectorizer(analyzer="char_wb", ngram_range=spec.char_ngrams, **common)
        # Hashes one word n-gram exactly as `_words` does (it joins a bigram's words with " ").
        self._ngram = HashingVectorizer(analyzer=_whole, **common)
        #: The word and character blocks' lengths of the texts seen last by `matrix_of_cleaned`:
        #: explaining a score (`word_scores`) divides by them, and would otherwise hash the
        #: whole text twice more.
        self._lengths: dict[str, tuple[float, float]] = {}

    def matrix(
        self,
        texts: Sequence[str],
        inputs: np.ndarray | None = None,
        signals: Sequence[Mapping[str, tuple[float, str]]] | None = None,
    ) -> csr_matrix:
        """One row per text; `inputs` has one row per text and one column per spec input;
        `signals` are the texts' `text_signals` when the caller has them already."""
        return self.matrix_of_cleaned([clean_text(text) for text in texts], inputs, signals)

    def matrix_of_cleaned(
        self,
        cleaned: Sequence[str],
        inputs: np.ndarray | None = None,
        signals: Sequence[Mapping[str, tuple[float, str]]] | None = None,
    ) -> csr_matrix:
        """`matrix` of texts already through `clean_text` (the spam scorer cleans each once)."""
        blocks = []
        if self.spec.inputs:
            values = np.asarray(inputs, dtype=np.float64).reshape(len(cleaned), -1)
            if values.shape[1] != len(self.spec.inputs):
                raise ValueError(f"expected inputs {self.spec.inputs}, got {values.shape[1]}")
            blocks.append(csr_matrix(values))
        if self.signal_names:
            found = signals if signals is not None else [signals_in_cleaned(t) for t in cleaned]
            blocks.append(csr_matrix(self._signal_strengths(found)))
        words, chars = self._words.transform(cleaned), self._chars.transform(cleaned)
        self._remember_lengths(cleaned, _row_lengths(words), _row_lengths(chars))
        blocks.append(normalize(words))
        blocks.append(normalize(chars))
        return hstack(blocks, format="csr")

    def _remember_lengths(
        self, cleaned: Sequence[str], words: np.ndarray, chars: np.ndarray
    ) -> None:
        if len(self._lengths) + len(cleaned) > LENGTHS_KEPT:
            self._lengths.clear()
        for text, word_length, char_length in zip(cleaned, words, chars, strict=True):
            self._lengths[text] = (float(word_length) or 1.0, float(char_length) or 1.0)

    def _signal_strengths(self, found: Sequence[Mapping[str, tuple[float, str]]]) -> np.ndarray:
        strengths = np.zeros((len(found), len(self.signal_names)))
        column = {name: i for i, name in enumerate(self.signal_names)}
        for row, signals in enumerate(found):
            for name, (strength, _) in signals.items():
                strengths[row, column[name]] = strength
        return strengths

    def word_scores(self, cleaned: str, words: Sequence[str], weights: np.ndarray) -> np.ndarray:
        """How much each of `words` (the text's words, in order) adds to the logit through the
        n-gram blocks of `weights`: its own word and character n-grams, and half of each word
        pair it belongs to. `cleaned` is the whole text, for the blocks' lengths."""
        word_weights = weights[self.words_at : self.chars_at]
        char_weights = weights[self.chars_at : self.width]
        if cleaned in self._lengths:
            word_norm, char_norm = self._lengths[cleaned]
        else:
            word_norm = _length(self._words.transform([cleaned]))
            char_norm = _length(self._chars.transform([cleaned]))
        scores = self._ngram.transform(words) @ word_weights / word_norm
        scores += self._chars.transform(words) @ char_weights / char_norm
        if self.spec.word_ngrams[1] >= 2 and len(words) > 1:
            pairs = [f"{a} {b}" for a, b in itertools.pairwise(words)]
            pair_scores = self._ngram.transform(pairs) @ word_weights / word_norm
            scores[:-1] += pair_scores / 2
            scores[1:] += pair_scores / 2
        return np.asarray(scores).ravel()


def _row_lengths(matrix: csr_matrix) -> np.ndarray:
    """The L2 length of each row."""
    return np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())


def _length(row: csr_matrix) -> float:
    """The L2 length of a one-row sparse matrix (1 for an empty one, to divide by)."""
    length = float(np.sqrt(row.multiply(row).sum()))
    return length or 1.0
