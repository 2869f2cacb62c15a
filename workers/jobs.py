"""Job functions, importable by dotted path. They let exceptions propagate so that RQ's own
failure handling and retries see them."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import redis
from rq.job import Job

from moderation.core import rules
from moderation.core.records import Action, Comment, Decision, Status, utc_now
from moderation.core.rules import Signals
from moderation.core.settings import PolicySettings
from moderation.storage.author_store import AuthorRecord
from moderation.storage.comment_store import SCORING_FAILED, CommentStore, DecideRequest
from workers.scoring.language_routing import LanguageRoute, Placement
from workers.scoring.pipeline import Scored, Scorers, explained_reasons, score_comments
from workers.scoring.runtime import Prepared, WorkerRuntime, current_runtime, runtime_started
from workers.scoring.spam_signals import text_fingerprint
from workers.scoring.spans import Spans, toxicity_spans

log = logging.getLogger(__name__)


def policy_signals(
    runtime: WorkerRuntime,
    comment: Comment,
    rules: PolicySettings,
    scored: Signals,
    route: LanguageRoute,
    author: AuthorRecord | None = None,
) -> Signals:
    """The signals scoring found, plus what the site's policy looks at besides scores: its word
    lists, the author's record (approved comments and standing, read now unless given), the
    readers' open reports and whether a model read the comment's language."""
    content = comment.submission.content
    if author is None:
        key = (comment.site, comment.submission.author.get("id", ""))
        author = runtime.authors.records([key])[key]
    return replace(
        scored,
        banned_words=tuple(runtime.word_list(rules.banned_words).find(content)),
        suspect_words=tuple(runtime.word_list(rules.suspect_words).find(content)),
        author_approved=author.approved,
        author_standing=author.standing,
        open_reports=comment.open_reports,
        language=route.language,
        language_unread=route.placement is Placement.UNREAD,
    )


def score_batch(runtime: WorkerRuntime, comments: list[Comment]) -> list[Scored]:
    """Score several comments with one model pass (their spam counters are recorded too)."""
    settings = runtime.settings
    activity = runtime.store.count_activity_many(
        [(comment, text_fingerprint(comment.submission.content)) for comment in comments],
        duplicate_window=settings.duplicate_window,
        burst_window=settings.burst_window,
    )
    site_models = runtime.site_models.for_sites(comment.site for comment in comments)
    started = time.perf_counter()
    scorers = Scorers(runtime.toxicity, runtime.spam)
    scored = score_comments(scorers, comments, activity, site_models)
    elapsed = time.perf_counter() - started
    runtime.metrics.observe_scoring(runtime.toxicity.name, elapsed, comments=len(comments))
    return scored


def prepare(runtime: WorkerRuntime, keys: list[tuple[str, str]]) -> None:
    """Read the comments of `keys` (site, id) in one round trip and route the pending ones;
    keep both for their jobs (`score_comment` uses them instead of reading again)."""
    for comment in runtime.store.get_many(keys):
        if comment and comment.status is Status.PENDING and comment.erased_at is None:
            route = runtime.languages.route(comment)
            runtime.prescored[(comment.site, comment.id)] = Prepared(comment, route)


def prescore(runtime: WorkerRuntime, keys: list[tuple[str, str]]) -> int:
    """Score in one model pass the prepared comments among `keys` that are read here (those
    another worker will read are handed over unscored), and read what their decisions need,
    once for the pass; keep both for their jobs. Returns how many were scored."""
    prepared = [runtime.prescored[key] for key in keys if key in runtime.prescored]
    kept = [each for each in prepared if each.route.placement is not Placement.HAND_OVER]
    if not kept:
        return 0
    comments = [each.comment for each in kept]
    sites = [comment.site for comment in comments]
    authors = [(c.site, c.submission.author.get("id", "")) for c in comments]
    scored = score_batch(runtime, comments)
    rules, records = runtime.policies.get_many(sites), runtime.sites.get_many(sites)
    author_records = runtime.authors.records(authors)
    for each, result, author in zip(kept, scored, authors, strict=True):
        each.scored, each.rules, each.site = result, rules[author[0]], records[author[0]]
        each.author = author_records[author]
    return len(scored)


def decide_scored(runtime: WorkerRuntime, keys: list[tuple[str, str]]) -> int:
    """Decide the scored comments among `keys` together: their decisions stored in one round
    trip (each atomic on its own), their webhooks queued in one transaction, their counters in
    one more; each job then only reports its outcome. Returns how many were stored."""
    ready = [runtime.prescored[key] for key in keys if key in runtime.prescored]
    ready = [each for each in ready if each.scored is not None]
    if not ready:
        return 0
    decided = [auto_decision(runtime, each) for each in ready]
    spans = held_spans(runtime, [each.comment for each in ready], [d for d, _ in decided])
    requests = [
        DecideRequest(
            each.comment.site,
            each.comment.id,
            decision,
            each.comment.submission.author.get("id", ""),
            highlights=highlights,
            spans=comment_spans,
        )
        for each, (decision, highlights), comment_spans in zip(ready, decided, spans, strict=True)
    ]
    outcomes = runtime.store.decide_many(requests)
    stored = [each for each, outcome in zip(ready, outcomes, strict=True) if outcome.stored]
    runtime.outbox.flush_many([(each.comment, each.site) for each in stored])
    runtime.metrics.add(Counter(language_counter(each.route) for each in stored))
    for each, (decision, _), outcome in zip(ready, decided, outcomes, strict=True):
        each.decision = decision
        each.outcome = (
            {"outcome": "decided", "action": decision.action.value}
            if outcome.stored
            else {"outcome": "already_decided"}
        )
    return len(stored)


def toxicity_labels_held_for(decision: Decision) -> list[str]:
    """The toxicity labels a hold or rejection names (`insult 0.91 >= 0.80`: insult)."""
    if decision.action is Action.APPROVE:
        return []
    return [
        reason.split(" ", 1)[0]
        for reason in decision.reasons
        if rules.reason_kind(reason) is rules.ReasonKind.TOXICITY
    ]


def held_spans(
    runtime: WorkerRuntime, comments: list[Comment], decisions: list[Decision]
) -> list[Spans]:
    """The sentence scores of the comments held for toxicity (one model pass for them all),
    for moderators to see which sentences did it; {} for the rest."""
    labels = [toxicity_labels_held_for(decision) for decision in decisions]
    if not any(labels):
        return [{} for _ in comments]
    texts = [comment.submission.content for comment in comments]
    return toxicity_spans(runtime.toxicity, texts, labels)


def language_counter(route: LanguageRoute) -> str:
    """The counter of comments decided in the route's language, read by a model or not."""
    read = "no" if route.placement is Placement.UNREAD else "yes"
    return f"languages|{route.language}|{read}"


def auto_decision(
    runtime: WorkerRuntime, prepared: Prepared
) -> tuple[Decision, dict[str, list[str]]]:
    """Apply the site's policy to the comment's scores (scoring it now unless its pass did);
    also the phrases of the text that drove the learned scores named in its reasons."""
    comment, route = prepared.comment, prepared.route
    rules = prepared.rules or runtime.policies.get(comment.site)
    scored = prepared.scored or score_batch(runtime, [comment])[0]
    signals = policy_signals(runtime, comment, rules, scored.signals, route, prepared.author)
    verdict = rules.decide(scored.scores, signals, rules)
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
    prepared = runtime.prescored.pop((site, comment_id), None)
    if prepared and prepared.outcome and prepared.decision:  # decided with its pass
        if prepared.outcome["outcome"] == "decided":
            log.info("decided %s by %s", *_described(prepared.decision))
        return prepared.outcome
    comment = prepared.comment if prepared else runtime.store.get(site, comment_id)
    if comment is None:
        log.info("comment no longer exists; nothing to score")
        return {"outcome": "missing"}
    if comment.erased_at is not None:
        return {"outcome": "erased"}
    if comment.status is not Status.PENDING:
        # A retry after Redis did not confirm the decision (NotDurable): confirm it now.
        runtime.store.confirm()
        return {"outcome": "already_decided", "status": comment.status.value}
    prepared = prepared or Prepared(comment, runtime.languages.route(comment))
    route = prepared.route
    if route.placement is Placement.HAND_OVER:
        return hand_over(runtime, comment, route.language)
    decision, highlights = auto_decision(runtime, prepared)
    [spans] = held_spans(runtime, [comment], [decision])
    author_id = comment.submission.author.get("id", "")
    outcome = runtime.store.decide(
        site, comment_id, decision, author_id=author_id, highlights=highlights, spans=spans
    )
    if not outcome.stored:
        return {"outcome": "already_decided"}
    runtime.outbox.flush(site, comment_id, comment, prepared.site)
    runtime.metrics.increment(language_counter(route))
    log.info("decided %s by %s", *_described(decision))
    return {"outcome": "decided", "action": decision.action.value}


def _described(decision: Decision) -> tuple[str, str]:
    return decision.action.value, decision.models["toxicity"]


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
