"""Job functions, importable by dotted path. They let exceptions propagate so that RQ's own
failure handling and retries see them."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import redis
from rq.job import Job

from moderation.core.records import Action, ActivityCounts, Comment, Decision, Status, utc_now
from moderation.core.rules import ReasonKind, Signals, decide, reason_kind
from moderation.core.settings import PolicySettings
from moderation.storage.author_store import AuthorRecord
from moderation.storage.comment_store import SCORING_FAILED, CommentStore, DecideRequest
from workers.learning.site_models import SiteModels
from workers.outages import REDIS_DOWN
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


def count_activity(runtime: WorkerRuntime, comments: Sequence[Comment]) -> list[ActivityCounts]:
    """Record the comments in their spam counters and count their neighbours, in one round
    trip, in the order they were submitted (each counts those before it); in `comments`'
    order."""
    settings = runtime.settings
    order = sorted(range(len(comments)), key=lambda i: comments[i].submitted_at)
    counted = runtime.spam_counters.count_activity_many(
        [(comments[i], text_fingerprint(comments[i].submission.content)) for i in order],
        duplicate_window=settings.duplicate_window,
        burst_window=settings.burst_window,
    )
    activity = dict(zip(order, counted, strict=True))
    return [activity[i] for i in range(len(comments))]


def score_batch(
    runtime: WorkerRuntime,
    comments: list[Comment],
    activity: Sequence[ActivityCounts] | None = None,
    site_models: Mapping[str, SiteModels] | None = None,
) -> list[Scored]:
    """Score several comments with one model pass. Their spam counters (`activity`) and their
    sites' own models are read (and the counters recorded) now unless given."""
    if activity is None:
        activity = count_activity(runtime, comments)
    if site_models is None:
        site_models = runtime.site_models.for_sites(comment.site for comment in comments)
    started = time.perf_counter()
    scorers = Scorers(runtime.toxicity, runtime.spam)
    scored = score_comments(scorers, comments, activity, site_models)
    elapsed = time.perf_counter() - started
    runtime.metrics.observe_scoring(runtime.toxicity.name, elapsed, comments=len(comments))
    return scored


def read_for_batch(runtime: WorkerRuntime, prepared: list[Prepared]) -> None:
    """Read what the decisions of `prepared` need besides their comments, once for them all:
    their sites' policies (one MGET), records (one pipeline) and own models, and their spam
    counters (recorded and counted in one pipeline); keep each with its comment."""
    if not prepared:
        return
    comments = [each.comment for each in prepared]
    sites = [comment.site for comment in comments]
    policies, records = runtime.policies.get_many(sites), runtime.sites.get_many(sites)
    models = runtime.site_models.for_sites(sites)
    activity = count_activity(runtime, comments)
    for each, counts in zip(prepared, activity, strict=True):
        site = each.comment.site
        each.rules, each.site, each.site_models = policies[site], records[site], models[site]
        each.activity = counts


def prepare(runtime: WorkerRuntime, keys: list[tuple[str, str]]) -> None:
    """Read the comments of `keys` (site, id) in one round trip and route the pending ones,
    then what the decisions of those read here need, once for the batch (`read_for_batch`);
    keep it all for their jobs (`score_comment` uses it instead of reading again)."""
    batch = [
        Prepared(comment, runtime.languages.route(comment))
        for comment in runtime.store.get_many(keys)
        if comment and comment.status is Status.PENDING and comment.erased_at is None
    ]
    for each in batch:
        runtime.prescored[(each.comment.site, each.comment.id)] = each
    kept = [each for each in batch if each.route.placement is not Placement.HAND_OVER]
    try:
        read_for_batch(runtime, kept)
    except REDIS_DOWN:
        raise  # the worker starts the batch again once Redis is back
    except Exception:
        log.exception("reading the batch's policies, sites and counters failed; each pass will")
        for each in kept:
            each.activity = None


def prescore(runtime: WorkerRuntime, keys: list[tuple[str, str]]) -> int:
    """Score in one model pass the prepared comments among `keys` that are read here (those
    another worker will read are handed over unscored), with what their batch read for them,
    and read their authors' records, once for the pass; keep both for their jobs. Returns how
    many were scored."""
    prepared = [runtime.prescored[key] for key in keys if key in runtime.prescored]
    kept = [each for each in prepared if each.route.placement is not Placement.HAND_OVER]
    if not kept:
        return 0
    # Read with the batch (`prepare`), unless that failed.
    read_for_batch(runtime, [each for each in kept if each.activity is None])
    comments = [each.comment for each in kept]
    authors = [(c.site, c.submission.author.get("id", "")) for c in comments]
    activity = [each.activity for each in kept if each.activity is not None]
    models = {e.comment.site: e.site_models for e in kept if e.site_models is not None}
    scored = score_batch(runtime, comments, activity, models)
    author_records = runtime.authors.records(authors)
    for each, result, author in zip(kept, scored, authors, strict=True):
        each.scored, each.author = result, author_records[author]
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
    # Whether each is announced, from the site records the batch read: only those go through
    # the outbox.
    webhooks = [runtime.outbox.announces(each.comment, each.site) for each in ready]
    requests = [
        DecideRequest(
            each.comment.site,
            each.comment.id,
            decision,
            each.comment.submission.author.get("id", ""),
            highlights=highlights,
            spans=comment_spans,
            webhook=webhook,
        )
        for each, (decision, highlights), comment_spans, webhook in zip(
            ready, decided, spans, webhooks, strict=True
        )
    ]
    outcomes = runtime.store.decide_many(requests)
    stored = [each for each, outcome in zip(ready, outcomes, strict=True) if outcome.stored]
    runtime.outbox.queue_many(
        [
            (each.comment.site, each.comment.id)
            for each, outcome, webhook in zip(ready, outcomes, webhooks, strict=True)
            if outcome.stored and webhook
        ]
    )
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
        if reason_kind(reason) is ReasonKind.TOXICITY
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
    policy = prepared.rules or runtime.policies.get(comment.site)
    scored = prepared.scored or score_batch(runtime, [comment])[0]
    signals = policy_signals(runtime, comment, policy, scored.signals, route, prepared.author)
    verdict = decide(scored.scores, signals, policy)
    reasons, highlights = explained_reasons(verdict.reasons, scored.explain)
    decision = Decision(
        action=verdict.action,
        reasons=reasons,
        scores=scored.scores,
        models=scored.models,
        decided_by="auto",
        decided_at=utc_now(),
        policy_version=policy.version,
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
    webhook = runtime.outbox.announces(comment, prepared.site)
    outcome = runtime.store.decide(
        site,
        comment_id,
        decision,
        author_id=author_id,
        highlights=highlights,
        spans=spans,
        webhook=webhook,
    )
    if not outcome.stored:
        return {"outcome": "already_decided"}
    if webhook:
        runtime.outbox.queue(site, comment_id)
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
    comment = store.get(site, comment_id)  # read once: its author for the decision, its webhook
    decision = Decision(
        action=Action.HOLD,
        reasons=[SCORING_FAILED],
        scores=None,
        models={"toxicity": "none", "spam": "none"},
        decided_by="auto",
        decided_at=utc_now(),
    )
    author_id = comment.submission.author.get("id", "") if comment else ""
    outbox = current_runtime().outbox if runtime_started() else None
    # Without a runtime nothing here queues the webhook: the outbox keeps the hold, and the
    # deliverer's sweep announces it if anyone listens.
    webhook = outbox is None or (comment is not None and outbox.announces(comment))
    if store.decide(site, comment_id, decision, author_id=author_id, webhook=webhook).stored:
        log.error("scoring failed after every retry; comment held for a moderator")
        if outbox is not None and webhook:
            outbox.queue(site, comment_id)
