"""The spam score: a learned model of the text, refined by the site's own model when it has one,
plus the hand-set context signals.

    logit = learned(text) + repeats                 (repeats: the weight of "duplicate", if any)
    logit = max(logit, plain comment) + others     if honeypot, bursts or author fields fired
    score = sigmoid(logit)

`learned` is the base model (`workers/learning/models/spam-base.npz`, trained on public comment
spam by `workers.learning.build_spam_base`) or, once the site's labels have trained one, the
site's model over the base model's logit and the text. Context signals (honeypot, repeated
text, bursts, author fields) have no public labeled data, so their weights are set by hand in
`workers.scoring.spam_signals`, against a plain comment (`PLAIN_COMMENT_LOGIT`). A repeated
text adds to what the model thinks of the text itself (`ON_THE_TEXT`): the same short reaction
is posted by many people, and only repeats of text with some promotion in it get held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit as sigmoid

from workers.learning.explain import Explanation, top_phrases
from workers.learning.linear import LinearModel
from workers.learning.site_models import BASE_SPAM_LOGIT
from workers.scoring.spam_signals import (
    PLAIN_COMMENT_LOGIT,
    SpamContext,
    SpamSignal,
    clean_text,
    context_signals,
    links_in_cleaned,
    signals_in_cleaned,
)

#: The base model the service ships (built by `python -m workers.learning.build_spam_base`).
SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "learning" / "models" / "spam-base.npz"

#: Context signals added to what the model thinks of the text itself: the same short reaction
#: ("awesome", "I love this song") is posted by many people, a copied campaign is not
#: harmless text. The others (honeypot, bursts, author fields) count against a plain comment.
ON_THE_TEXT = frozenset({"duplicate"})

#: Text signals worth naming in a reason when they pushed the score up (the others are
#: phrases, which the quoted words show better).
NOTED_TEXT_SIGNALS = frozenset(
    {"links", "link_shortener", "obfuscated_link", "phone_number", "email_in_text", "shouting"}
)


@dataclass(frozen=True)
class SpamResult:
    """The score in [0, 1], the link count, the signals that pushed it up (strongest first), and
    the exact model that scored it."""

    score: float
    link_count: int
    signals: tuple[SpamSignal, ...]
    model: str


class SpamScorer:
    """Scores texts with the base model and, per text, the site's model (if any)."""

    def __init__(self, base: LinearModel) -> None:
        self.base = base
        self.name = base.name
        self._text_featurizer = base.text_featurizer

    @classmethod
    def from_file(cls, path: Path | None = None) -> SpamScorer:
        """The base model in `path`, or the shipped one."""
        return cls(LinearModel.load(path or SHIPPED_MODEL))

    def base_logits(self, texts: Sequence[str]) -> np.ndarray:
        return self.base.logits_of(texts)

    def score(
        self,
        texts: Sequence[str],
        contexts: Sequence[SpamContext],
        site_models: Sequence[LinearModel | None],
    ) -> list[SpamResult]:
        """One result per text; `site_models[i]` is the model of text i's site, or None."""
        cleaned = [clean_text(text) for text in texts]
        found = [signals_in_cleaned(text) for text in cleaned]
        base = self.base.logits(self.base.featurizer.matrix_of_cleaned(cleaned, signals=found))
        learned = base.copy()
        for model in {id(m): m for m in site_models if m is not None}.values():
            rows = [i for i, m in enumerate(site_models) if m is model]
            features = model.featurizer.matrix_of_cleaned(
                [cleaned[i] for i in rows], base[rows].reshape(-1, 1), [found[i] for i in rows]
            )
            learned[rows] = model.logits(features)
        signal_weights = {id(m): self._signal_weights(m) for m in [None, *site_models]}
        results = []
        for i in range(len(texts)):
            site_model = site_models[i]
            fired = self._evidence(found[i], signal_weights[id(site_model)])
            context = list(context_signals(cleaned[i], contexts[i]))
            fired += context
            logit = learned[i] + sum(s.weight for s in context if s.name in ON_THE_TEXT)
            floored = [s for s in context if s.name not in ON_THE_TEXT]
            if floored:
                logit = max(logit, PLAIN_COMMENT_LOGIT) + sum(s.weight for s in floored)
            fired.sort(key=lambda s: (-s.weight, s.name))
            results.append(
                SpamResult(
                    score=float(sigmoid(np.array(logit))),
                    link_count=links_in_cleaned(cleaned[i]),
                    signals=tuple(s for s in fired if s.weight > 0),
                    model=site_model.name if site_model else self.name,
                )
            )
        return results

    @property
    def _text_names(self) -> tuple[str, ...]:
        return self._text_featurizer.signal_names

    def text_weights(self, site_model: LinearModel | None) -> np.ndarray:
        """The weights the text's features end up with: the base model's, or the site model's
        own plus its weight on the base logit times the base model's."""
        weights = self.base.text_weights()
        if site_model is None:
            return weights
        return site_model.text_weights() + site_model.input_weight(BASE_SPAM_LOGIT) * weights

    def _signal_weights(self, site_model: LinearModel | None) -> dict[str, float]:
        """Each text signal's weight under the model in use (as `text_weights`, for the signals
        alone: they come first in the text's layout)."""
        count = len(self._text_names)
        weights = self.base.text_weights()[:count]
        if site_model is not None:
            own = site_model.text_weights()[:count]
            weights = own + site_model.input_weight(BASE_SPAM_LOGIT) * weights
        return dict(zip(self._text_names, weights.tolist(), strict=True))

    def _evidence(
        self, found: dict[str, tuple[float, str]], weights: dict[str, float]
    ) -> list[SpamSignal]:
        """The text signals found, each with the log-odds it adds under the model in use."""
        return [
            SpamSignal(name, round(weights[name] * strength, 3), detail)
            for name, (strength, detail) in found.items()
        ]

    def explain(self, text: str, result: SpamResult, site_model: LinearModel | None) -> Explanation:
        """The phrases that drove the score, and the signals worth naming ("3 links")."""
        phrases = top_phrases(self._text_featurizer, text, self.text_weights(site_model))
        notes = tuple(
            s.detail
            for s in result.signals
            if s.name in NOTED_TEXT_SIGNALS or s.name not in self._text_names
        )
        return Explanation(phrases, notes)
