"""Webhook delivery: the job that POSTs a decision to a site, and the worker that runs it.

Deliveries have their own queue and worker process (`moderation worker --deliveries`), so a
receiver that hangs or fails slows down nothing else. A failed attempt raises, and RQ retries
it with the configured backoff; every attempt is logged on the comment.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from rq import Queue, SimpleWorker, get_current_job
from rq.job import Job
from rq.worker import WorkerStatus

from moderation import keys
from moderation.queue import delivery_queue
from moderation.services import Services, build_services, connect
from moderation.settings import Settings, from_env
from moderation.webhooks import deliver, webhook_session
from workers.outages import RidesOutOutages

log = logging.getLogger(__name__)

EVENT = "comment.decided"
#: Outbox entries older than this are queued by the delivery worker's maintenance.
OUTBOX_GRACE_SECONDS = 30
MAINTENANCE_INTERVAL = 60


class DeliveryFailed(Exception):
    """An attempt failed in a way worth retrying; RQ's Retry schedules the next one."""


_services: Services | None = None


def delivery_services() -> Services:
    """This process's stores and settings, built once (the same wiring as the API's)."""
    global _services
    if _services is None:
        _services = build_services(from_env())
    return _services


def webhook_body(site: str, record: dict[str, Any]) -> bytes:
    return json.dumps({"event": EVENT, "site": site, "comment": record}).encode()


def attempt_number() -> int:
    job = get_current_job()
    if job is None or job.retries_left is None:
        return 1
    configured = len(job.retry_intervals or []) or job.retries_left
    return configured - job.retries_left + 1


def deliver_webhook(site: str, comment_id: str) -> dict[str, Any]:
    """POST the comment's current record to its callback URL, signed with the site's secret."""
    context = delivery_services()
    comment = context.comments.get(site, comment_id)
    found = context.sites.get(site)
    url = context.outbox.callback_url(site, comment_id)
    if comment is None or found is None or url is None:
        return {"outcome": "nothing_to_deliver"}
    if not context.settings.secret_key:
        raise DeliveryFailed("MODERATION_SECRET_KEY is not set: webhooks cannot be signed")
    secret = keys.webhook_secret(context.settings.secret_key, site, found.webhook_nonce)
    with webhook_session() as session:
        result = deliver(
            url,
            webhook_body(site, comment.record()),
            secret,
            event=EVENT,
            timeout=context.settings.webhook_timeout,
            allow_private=context.settings.allow_private_callbacks,
            session=session,
        )
    unsafe = result.error is not None and result.error.startswith("unsafe destination")
    attempt = {
        "attempt": attempt_number(),
        "outcome": "delivered" if result.ok else ("refused" if unsafe else "failed"),
        "event": EVENT,
        "url": url,
        "ok": result.ok,
        "status": result.status,
        "error": result.error,
        "duration_ms": round(result.duration_ms, 1),
    }
    context.deliveries.record(site, comment_id, attempt)
    if result.ok:
        return {"outcome": "delivered", "status": result.status}
    if unsafe:
        log.warning("webhook refused: unsafe destination")
        return {"outcome": "refused", "error": result.error}
    # The contract: anything but a 2xx is retried with backoff.
    raise DeliveryFailed(result.error or f"HTTP {result.status}")


class DeliveryWorker(RidesOutOutages, SimpleWorker):
    """Runs delivery jobs in-process; its maintenance also flushes a stale webhook outbox."""

    def execute_job(self, job: Job, queue: Queue) -> None:
        """SimpleWorker's, except that a Redis outage mid-job means performing it again once
        Redis is back (at least once: a receiver may get the same event twice)."""
        execution = self.ride_out(self.prepare_execution, job)
        self.ride_out(self.perform_job, job, queue, execution)
        self.set_state(WorkerStatus.IDLE)

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        flushed = delivery_services().outbox.sweep(OUTBOX_GRACE_SECONDS)
        if flushed:
            log.info("outbox: queued %d webhooks left behind", flushed)


def run_delivery_worker(settings: Settings, *, burst: bool = False) -> bool:
    """Work the delivery queue until stopped (SIGTERM finishes the current delivery)."""
    from workers.worker import worker_name

    connection = connect(settings.redis_url, socket_timeout=None)
    worker = DeliveryWorker(
        [delivery_queue(connection)],
        connection=connection,
        name=worker_name("deliveries"),
        log_job_description=False,
        maintenance_interval=MAINTENANCE_INTERVAL,
    )
    return worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)
