"""Job functions, importable by dotted path. They let exceptions propagate so that RQ's own
failure handling and retries see them."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import redis
from rq.job import Job

from moderation import policy
from moderation.policy import Signals
from moderation.records import Action, Comment, Decision, Status, utc_now
from moderation.settings import PolicySettings
from moderation.store import SCORING_FAILED, CommentStore
from workers.languages import LanguageRoute, Placement
from workers.runtime import WorkerRuntime, current_runtime, runtime_started
from workers.scoring.pipeline import Scored, Scorers, explained_reasons, score_comments
from workers.scoring.spam_signals import text_fingerprint

log = logging.getLogger(__name__)


def policy_signals(
    runtime: WorkerRuntime,
    comment: Comment,
    rules: PolicySettings,
    scored: Signals,
    route: LanguageRoute,
) -> Signals:
    """The signals scoring found, plus what the site's policy looks at besides scores: its word
    lists, the author's record and whether a model read the comment's language."""
    content = comment.submission.content
    author_id = comment.submission.author.get("id", "")
    approved = runtime.store.author_counts(comment.site, author_id)["approved"] if author_id else 0
    return replace(
        scored,
        banned_words=tuple(runtime.word_list(rules.banned_words).find(content)),
        suspect_words=tuple(runtime.word_list(rules.suspect_words).find(content)),
        author_approved=approved,
        language=route.language,
        language_unread=route.placement is Placement.UNREAD,
    )


def score_batch(runtime: WorkerRuntime, comments: list[Comment]) -> list[Scored]:
    """Score several comments with one model pass (their spam counters are recorded too)."""
    settings = runtime.settings
    activity = [
        runtime.store.count_activity(
            comment,
            text_fingerprint(comment.submission.content),
            duplicate_window=settings.duplicate_window,
            burst_window=settings.burst_window,
        )
        for comment in comments
    ]
    site_models = runtime.site_models.for_sites(comment.site for comment in comments)
    started = time.perf_counter()
    scorers = Scorers(runtime.toxicity, runtime.spam)
    scored = score_comments(scorers, comments, activity, site_models)
    elapsed = time.perf_counter() - started
    runtime.metrics.observe_scoring(runtime.toxicity.name, elapsed, comments=len(comments))
    return scored


def prescore(runtime: WorkerRuntime, keys: list[tuple[str, str]]) -> int:
    """Route the pending comments among `keys` (site, id) and score those read here in one
    pass; keep both for their jobs (`score_comment` uses them instead of doing it again).
    Returns how many were scored."""
    comments = [runtime.store.get(site, comment_id) for site, comment_id in keys]
    todo = [c for c in comments if c and c.status is Status.PENDING and c.erased_at is None]
    routed = [(comment, runtime.languages.route(comment)) for comment in todo]
    # Comments another worker will read are not scored here; their route is kept all the same.
    kept = [(c, route) for c, route in routed if route.placement is not Placement.HAND_OVER]
    scored = score_batch(runtime, [comment for comment, _ in kept]) if kept else []
    results = dict(zip(((c.site, c.id) for c, _ in kept), scored, strict=True))
    for comment, route in routed:
        key = (comment.site, comment.id)
        runtime.prescored[key] = (comment, results.get(key), route)
    return len(scored)


def auto_decision(
    runtime: WorkerRuntime,
    comment: Comment,
    route: LanguageRoute,
    scored: Scored | None = None,
) -> tuple[Decision, dict[str, list[str]]]:
    """Apply the site's policy to the comment's scores (scoring it now unless `scored`); also
    the phrases of the text that drove the learned scores named in its reasons."""
    rules = runtime.policies.get(comment.site)
    if scored is None:
        scored = score_batch(runtime, [comment])[0]
    signals = policy_signals(runtime, comment, rules, scored.signals, route)
    verdict = policy.decide(scored.scores, signals, rules)
    reasons, highlights = explained_reasons(verdict.reasons, scored.explain)
    decision = Decision(
        action=verdict.action,
        reasons=reasons,
        scores=scored.scores,
        models=scored.models,
        decided_by="auto",
        decided_at=utc_now(),
        policy_version=rules.version,
        language=route.language,
    )
    return decision, highlights


def hand_over(runtime: WorkerRuntime, comment: Comment, language: str) -> dict[str, Any]:
    """Give the comment a new job on the queue of the workers whose model reads `language`."""
    enqueue = runtime.enqueue.to_language(language, at_front=comment.is_check)
    if runtime.store.requeue(comment.site, comment.id, enqueue) is None:
        return {"outcome": "already_decided"}
    log.info("handed over to the workers that read %s", language)
    return {"outcome": "handed_over", "language": language}


def score_comment(site: str, comment_id: str) -> dict[str, Any]:
    """Decide one comment automatically. Idempotent: a comment already decided is left alone,
    and the decision is stored only if the comment is still pending at that moment."""
    runtime = current_runtime()
    comment, scored, route = runtime.prescored.pop((site, comment_id), (None, None, None))
    comment = comment or runtime.store.get(site, comment_id)
    if comment is None:
        log.info("comment no longer exists; nothing to score")
        return {"outcome": "missing"}
    if comment.erased_at is not None:
        return {"outcome": "erased"}
    if comment.status is not Status.PENDING:
        # A retry after Redis did not confirm the decision (NotDurable): confirm it now.
        runtime.store.confirm()
        return {"outcome": "already_decided", "status": comment.status.value}
    route = route or runtime.languages.route(comment)
    if route.placement is Placement.HAND_OVER:
        return hand_over(runtime, comment, route.language)
    decision, highlights = auto_decision(runtime, comment, route, scored)
    author_id = comment.submission.author.get("id", "")
    outcome = runtime.store.decide(
        site, comment_id, decision, author_id=author_id, highlights=highlights
    )
    if not outcome.stored:
        return {"outcome": "already_decided"}
    runtime.outbox.flush(site, comment_id, comment)
    read = "no" if route.placement is Placement.UNREAD else "yes"
    runtime.metrics.increment(f"languages|{route.language}|{read}")
    log.info("decided %s by %s", decision.action.value, decision.models["toxicity"])
    return {"outcome": "decided", "action": decision.action.value}


def scoring_failed(job: Job, connection: redis.Redis, *exc_info: Any) -> None:
    """RQ failure callback: after the last try, hold the comment with reason "scoring failed"
    rather than leave it pending forever (earlier failures are retried by RQ)."""
    if job.retries_left:
        return
    site, comment_id = job.args
    store = current_runtime().store if runtime_started() else CommentStore(connection)
    decision = Decision(
        action=Action.HOLD,
        reasons=[SCORING_FAILED],
        scores=None,
        models={"toxicity": "none", "spam": "none"},
        decided_by="auto",
        decided_at=utc_now(),
    )
    if store.decide(site, comment_id, decision).stored:
        log.error("scoring failed after every retry; comment held for a moderator")
        outbox = current_runtime().outbox if runtime_started() else None
        if outbox is not None:
            outbox.flush(site, comment_id)
