"""Enqueueing jobs; the only module that knows RQ queue names and job options."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

import redis
from redis.client import Pipeline
from rq import Callback, Queue, Retry, Worker

from moderation.core.logs import job_meta
from moderation.core.redis_keys import KEYS
from moderation.core.settings import Settings
from moderation.storage.comment_store import Enqueue

SCORING_QUEUE = "moderation-scoring"
SCORE_COMMENT_JOB = "workers.jobs.score_comment"
SCORING_FAILED_CALLBACK = "workers.jobs.scoring_failed"
RETRAIN_SITE_JOB = "workers.learning.retraining.retrain_site"
DELIVERY_QUEUE = "moderation-webhooks"
DELIVER_WEBHOOK_JOB = "workers.deliveries.deliver_webhook"

#: The start of every check's job id: a worker between two forward passes looks at the front of
#: its queues for one (`is_check_job`) and scores it in its next pass, before the rest of its
#: batch.
CHECK_JOB_PREFIX = "check-"
#: Keep a finished job's result briefly (the decision itself lives on the comment).
RESULT_TTL = 600
#: A finished scoring job and its result (an RQ stream of about 4.7 KiB) are kept only a
#: minute: at hundreds of comments a second, ten minutes of them took gigabytes of Redis.
SCORING_RESULT_TTL = 60
#: Keep a failed job a week so operators can look at it.
FAILURE_TTL = 7 * 24 * 3600
#: Seconds a retraining job may run (it trains two models on up to 20,000 labels).
RETRAIN_TIMEOUT = 600
#: Seconds a site stays marked "retraining queued"; if its job is lost, the workers'
#: maintenance asks again once the mark is gone. Longer than any delay of a retraining.
RETRAIN_QUEUED_TTL = 300


def is_check_job(job_id: str | bytes | None) -> bool:
    """Whether a scoring job is a one-off check, whose caller waits on its answer."""
    if isinstance(job_id, bytes):
        job_id = job_id.decode()
    return bool(job_id) and job_id.startswith(CHECK_JOB_PREFIX)  # type: ignore[union-attr]


def retry_schedule(retries: int, intervals: Sequence[int]) -> list[int]:
    """Seconds before each of `retries` retries: `intervals` in order, the last one again for
    retries beyond them (0 when there are none). RQ itself would repeat the first, first."""
    last = intervals[-1] if intervals else 0
    return [intervals[i] if i < len(intervals) else last for i in range(retries)]


def scoring_queue(connection: redis.Redis) -> Queue:
    return Queue(SCORING_QUEUE, connection=connection)


def language_queue_name(language: str) -> str:
    """The queue of comments in `language` handed over by a worker whose model cannot read
    them, to the workers whose model can (they listen on it besides the shared queue)."""
    return f"{SCORING_QUEUE}-{language}"


def language_of_queue(name: str) -> str | None:
    """The language a language queue is for; None for the shared queue (or another)."""
    prefix = f"{SCORING_QUEUE}-"
    return name.removeprefix(prefix) if name.startswith(prefix) else None


def live_scoring_workers(connection: redis.Redis) -> list[str]:
    """Names of the scoring workers whose registration has not expired."""
    queue = scoring_queue(connection)
    return sorted(worker.name for worker in Worker.all(connection=connection, queue=queue))


class ScoringEnqueuer:
    """Puts one scoring job per accepted comment on the scoring queue."""

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self.connection = connection
        self.queue = scoring_queue(connection)
        self.settings = settings

    def __call__(self, pipe: Pipeline, site: str, comment_id: str) -> str:
        """Enqueue on `pipe` (already in MULTI); the job runs once the transaction executes."""
        return self._enqueue(pipe, site, comment_id, at_front=False)

    def to_language(self, language: str, *, at_front: bool = False) -> Enqueue:
        """Enqueues on the queue of the workers that read `language` instead."""
        queue = Queue(language_queue_name(language), connection=self.connection)

        def enqueue(pipe: Pipeline, site: str, comment_id: str) -> str:
            return self._enqueue(pipe, site, comment_id, at_front=at_front, queue=queue)

        return enqueue

    def ahead(self, pipe: Pipeline, site: str, comment_id: str) -> str:
        """Enqueue ahead of every queued job (workers take from the front): for one-off checks,
        whose caller waits on the answer, so that a backlog of comments nobody waits on (a
        backfill, a burst) does not make them time out."""
        return self._enqueue(pipe, site, comment_id, at_front=True)

    def _enqueue(
        self,
        pipe: Pipeline,
        site: str,
        comment_id: str,
        *,
        at_front: bool,
        queue: Queue | None = None,
    ) -> str:
        retries = self.settings.job_retries
        intervals = retry_schedule(retries, self.settings.scoring_retry_intervals)
        job = (queue or self.queue).enqueue_call(
            SCORE_COMMENT_JOB,
            args=(site, comment_id),
            timeout=self.settings.job_timeout,
            result_ttl=SCORING_RESULT_TTL,
            failure_ttl=FAILURE_TTL,
            retry=Retry(max=retries, interval=intervals) if retries else None,
            on_failure=Callback(SCORING_FAILED_CALLBACK),
            description="score comment",
            meta=job_meta(),
            pipeline=pipe,
            at_front=at_front,
            # Only checks go to the front: their ids say so, for workers between passes.
            job_id=f"{CHECK_JOB_PREFIX}{uuid.uuid4().hex}" if at_front else None,
        )
        return job.id

    def depth(self) -> int:
        return self.queue.count


class LearningEnqueuer:
    """Asks for a site's models to be retrained from its labels.

    One job per site is queued at a time (a mark in Redis; newer labels ride on the queued
    job). The job goes on the scoring queue, ahead of waiting comments: scoring workers hold
    the models its training needs, and its few seconds make every later decision better.
    """

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self.redis = connection
        self.queue = scoring_queue(connection)
        self.enabled = settings.learning

    def __call__(self, site: str, delay: float = 0) -> bool:
        """Queue a retraining of `site` (in `delay` seconds) unless one is queued already;
        whether it was."""
        if not self.enabled:
            return False
        if not self.redis.set(KEYS.learning_queued(site), "1", nx=True, ex=RETRAIN_QUEUED_TTL):
            return False
        options = {
            "args": (site,),
            "job_timeout": RETRAIN_TIMEOUT,
            "result_ttl": SCORING_RESULT_TTL,
            "failure_ttl": FAILURE_TTL,
            "description": "retrain site models",
            "meta": job_meta(),
            "at_front": True,
        }
        try:
            if delay > 0:  # moved onto the queue by the workers' RQ scheduler
                self.queue.enqueue_in(timedelta(seconds=delay), RETRAIN_SITE_JOB, **options)
            else:
                self.queue.enqueue(RETRAIN_SITE_JOB, **options)
        except Exception:
            self.redis.delete(KEYS.learning_queued(site))
            raise
        return True

    def started(self, site: str) -> None:
        """The site's job has started: labels from now on need a new one."""
        self.redis.delete(KEYS.learning_queued(site))


def delivery_queue(connection: redis.Redis) -> Queue:
    return Queue(DELIVERY_QUEUE, connection=connection)


class DeliveryEnqueuer:
    """Puts one webhook delivery job per decision on the delivery queue."""

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self.queue = delivery_queue(connection)
        self.settings = settings

    def __call__(self, pipe: Pipeline | None, site: str, comment_id: str) -> str:
        """Enqueue on `pipe` (put in MULTI by RQ) or at once when `pipe` is None."""
        intervals = list(self.settings.webhook_retry_intervals)
        job = self.queue.enqueue_call(
            DELIVER_WEBHOOK_JOB,
            args=(site, comment_id),
            # a delivery may follow redirects, each hop bounded by the webhook timeout
            timeout=int(self.settings.webhook_timeout * 4) + 30,
            result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL,
            retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
            description="deliver webhook",
            meta=job_meta(),
            pipeline=pipe,
        )
        return job.id
