"""What `moderation status` reports and what `moderation requeue` does."""

from __future__ import annotations

from typing import Any

import redis
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from moderation.core.settings import Settings
from moderation.storage.comment_store import CommentStore
from moderation.storage.durability import Durability
from moderation.storage.job_queues import ScoringEnqueuer, delivery_queue, scoring_queue
from moderation.storage.webhook_outbox import waiting_webhooks
from moderation.storage.worker_models import WorkerModels


def queue_status(queue: Queue) -> dict[str, Any]:
    workers = Worker.all(connection=queue.connection, queue=queue)
    return {
        "queued": queue.count,
        "started": StartedJobRegistry(queue=queue).count,
        "scheduled": ScheduledJobRegistry(queue=queue).count,
        "failed": FailedJobRegistry(queue=queue).count,
        "workers": sorted(worker.name for worker in workers),
    }


def status(connection: redis.Redis) -> dict[str, Any]:
    """Queues, workers, pending and failed counts, for operators."""
    comments = CommentStore(connection)
    scoring = queue_status(scoring_queue(connection))
    return {
        "queues": {"scoring": scoring, "webhooks": queue_status(delivery_queue(connection))},
        "models": WorkerModels(connection).of(scoring["workers"]),
        "pending_comments": comments.pending_count(),
        "oldest_pending_seconds": comments.oldest_pending_age(),
        "webhook_outbox": waiting_webhooks(connection),
    }


def requeue_failed(connection: redis.Redis, settings: Settings, *, deliveries: bool = False) -> int:
    """Give failed jobs another go. A scoring job's comment, held because scoring failed, goes
    back to pending with a fresh job; failed webhook deliveries are simply queued again."""
    queue = delivery_queue(connection) if deliveries else scoring_queue(connection)
    registry = FailedJobRegistry(queue=queue)
    # The operator's requeue is confirmed like a moderator's action (MODERATION_DURABILITY).
    comments = CommentStore(connection, durability=Durability.from_settings(settings))
    enqueue = ScoringEnqueuer(connection, settings)
    count = 0
    for job_id in registry.get_job_ids():
        job = queue.fetch_job(job_id)
        if job is None:
            registry.remove(job_id)
            continue
        if deliveries:
            registry.requeue(job_id)
            count += 1
            continue
        site, comment_id = job.args
        comments.reopen_unscored(site, comment_id, actor="operator")
        registry.remove(job_id)
        if comments.requeue(site, comment_id, enqueue):
            count += 1
    return count
