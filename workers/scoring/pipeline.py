"""Scores a batch of comments with every scorer, the sites' own models included, and names the
exact models that did it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from scipy.special import expit as sigmoid

from moderation.core.records import BASE_TOXICITY, ActivityCounts, Comment
from moderation.core.rules import Signals
from workers.learning.explain import Explanation, top_phrases
from workers.learning.linear import LinearModel
from workers.learning.site_models import SiteModels, toxicity_inputs
from workers.scoring.spam import SpamResult, SpamScorer
from workers.scoring.spam_signals import SpamContext
from workers.scoring.toxicity import ToxicityScorer

#: What drove a learned score ("spam", "toxicity"), asked only for the labels a decision's
#: reasons name; None for a score no learned model of this comment gave.
Explainer = Callable[[str], Explanation | None]


def _nothing_to_explain(label: str) -> None:
    return None


@dataclass(frozen=True)
class Scored:
    scores: dict[str, float]
    signals: Signals
    models: dict[str, str]
    explain: Explainer = _nothing_to_explain


@dataclass(frozen=True)
class Scorers:
    toxicity: ToxicityScorer
    spam: SpamScorer


def spam_context(comment: Comment, activity: ActivityCounts) -> SpamContext:
    author = comment.submission.author
    return SpamContext(
        honeypot_filled=bool(comment.submission.honeypot.strip()),
        author_name=author.get("name"),
        author_email=author.get("email"),
        author_url=author.get("url"),
        duplicate_count=activity.duplicate_count,
        author_burst=activity.author_burst,
        ip_burst=activity.ip_burst,
    )


def score_comments(
    scorers: Scorers,
    comments: Sequence[Comment],
    activity: Sequence[ActivityCounts],
    site_models: Mapping[str, SiteModels],
) -> list[Scored]:
    """Score a batch: one toxicity model pass, the spam model, then each site's own models."""
    texts = [c.submission.content for c in comments]
    models = [site_models.get(c.site, SiteModels()) for c in comments]
    toxicity = scorers.toxicity.score(texts)
    contexts = [spam_context(c, a) for c, a in zip(comments, activity, strict=True)]
    spam = scorers.spam.score(texts, contexts, [m.spam for m in models])
    learned = _site_toxicity(texts, toxicity, [m.toxicity for m in models], scorers.toxicity)
    scored = []
    for i, text in enumerate(texts):
        result = _combine(toxicity[i], spam[i], scorers.toxicity.name)
        site_toxicity = models[i].toxicity if learned[i] is not None else None
        if site_toxicity is not None:
            result = _with_site_toxicity(result, float(learned[i]), site_toxicity.name)  # type: ignore[arg-type]
        explain = _explainer(scorers.spam, text, spam[i], models[i].spam, site_toxicity)
        scored.append(replace(result, explain=explain))
    return scored


def _explainer(
    spam_scorer: SpamScorer,
    text: str,
    spam: SpamResult,
    site_spam: LinearModel | None,
    site_toxicity: LinearModel | None,
) -> Explainer:
    """Explains a comment's learned scores when asked (most decisions name none of them)."""

    def explain(label: str) -> Explanation | None:
        if label == "spam":
            return spam_scorer.explain(text, spam, site_spam)
        if label == "toxicity" and site_toxicity is not None:
            phrases = top_phrases(site_toxicity.text_featurizer, text, site_toxicity.text_weights())
            return Explanation(phrases)
        return None

    return explain


def _combine(toxicity: dict[str, float], spam: SpamResult, toxicity_model: str) -> Scored:
    """One comment's scores: every toxicity label, plus `spam`, each clamped to [0, 1]."""
    scores = {label: min(1.0, max(0.0, float(value))) for label, value in toxicity.items()}
    scores["spam"] = min(1.0, max(0.0, spam.score))
    signals = Signals(
        link_count=spam.link_count,
        honeypot_filled=any(signal.name == "honeypot" for signal in spam.signals),
        spam_signals=tuple(signal.detail for signal in spam.signals),
    )
    return Scored(scores, signals, {"toxicity": toxicity_model, "spam": spam.model})


def _site_toxicity(
    texts: Sequence[str],
    toxicity: Sequence[Mapping[str, float]],
    models: Sequence[LinearModel | None],
    scorer: ToxicityScorer,
) -> list[float | None]:
    """Each text's score from its site's toxicity model (None where the site has none)."""
    learned: list[float | None] = [None] * len(texts)
    for model in {id(m): m for m in models if m is not None}.values():
        rows = [i for i, m in enumerate(models) if m is model]
        inputs = toxicity_inputs([toxicity[i] for i in rows], scorer.labels)
        scores = sigmoid(model.logits_of([texts[i] for i in rows], inputs))
        for row, score in zip(rows, scores, strict=True):
            learned[row] = float(score)
    return learned


def _with_site_toxicity(scored: Scored, score: float, model: str) -> Scored:
    """The site's learned toxicity in place of the model's own (kept as `base_toxicity`)."""
    scores = dict(scored.scores)
    scores[BASE_TOXICITY] = scores["toxicity"]
    scores["toxicity"] = min(1.0, max(0.0, score))
    signals = replace(scored.signals, learned_toxicity=True)
    return Scored(scores, signals, {**scored.models, "toxicity": model})


def explained_reasons(
    reasons: list[str], explain: Explainer
) -> tuple[list[str], dict[str, list[str]]]:
    """The policy's reasons with each learned score's notes (`spam 0.94 >= 0.70: 3 links`),
    and the phrases to quote and highlight for those labels."""
    noted: list[str] = []
    highlights: dict[str, list[str]] = {}
    explained: set[str] = set()
    for reason in reasons:
        label = reason.split(" ", 1)[0]
        explanation = explain(label) if label not in explained else None
        explained.add(label)
        if explanation:
            if explanation.notes:
                reason = f"{reason}: {', '.join(explanation.notes)}"
            if explanation.phrases:
                highlights[label] = list(explanation.phrases)
        noted.append(reason)
    return noted, highlights
