"""Webhook delivery: the job that POSTs a decision to a site, and the worker that runs it.

Deliveries have their own queue and worker process (`moderation worker --deliveries`), so a
receiver that hangs or fails slows down no scoring. Within the deliverer, deliveries run in
threads of their own, and a receiver that timed out is skipped for a while, so it slows down
no other receiver either. A failed attempt raises, and RQ retries it with the configured
backoff; every attempt is logged on the comment.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rq import Queue, SimpleWorker, get_current_job
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.timeouts import TimerDeathPenalty

from moderation.actions.services import Services, build_services
from moderation.core import credentials
from moderation.core.redis_connections import connect
from moderation.core.settings import Settings, from_env
from moderation.core.webhook_requests import DeliveryResult, deliver, webhook_session
from moderation.storage.job_queues import delivery_queue
from moderation.storage.webhook_outbox import UnresponsiveReceivers
from workers.outages import RidesOutOutages, stop_signals_to_the_main_thread

log = logging.getLogger(__name__)

EVENT = "comment.decided"
#: Outbox entries older than this are queued by the delivery worker's maintenance.
OUTBOX_GRACE_SECONDS = 30
MAINTENANCE_INTERVAL = 60
#: Deliveries one deliverer process runs at once.
DELIVERY_THREADS = 8
#: The error logged for an attempt skipped because its receiver timed out moments ago.
NOT_TRIED = "not tried: the receiver timed out recently"


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


@functools.cache
def unresponsive_receivers() -> UnresponsiveReceivers:
    """This process's view of the receivers that timed out (shared through Redis). One that
    timed out is not tried again before the first retry interval has passed."""
    context = delivery_services()
    settings = context.settings
    intervals = settings.webhook_retry_intervals
    return UnresponsiveReceivers(
        context.redis,
        cool_down=intervals[0] if intervals else settings.webhook_timeout,
        attempt_time=2 * settings.webhook_timeout,
    )


def attempt_delivery(url: str, body: bytes, secret: str, settings: Settings) -> DeliveryResult:
    """One attempt, unless the receiver timed out moments ago (UnresponsiveReceivers); the
    outcome updates what is known of the receiver."""
    receivers = unresponsive_receivers()
    if not receivers.may_try(url):
        return DeliveryResult(False, None, NOT_TRIED, retryable=True, duration_ms=0.0)
    with webhook_session() as session:
        result = deliver(
            url,
            body,
            secret,
            event=EVENT,
            timeout=settings.webhook_timeout,
            allow_private=settings.allow_private_callbacks,
            session=session,
        )
    if result.error == "timeout":
        receivers.timed_out(url)
    elif result.status is not None:
        receivers.answered(url)
    return result


def deliver_webhook(site: str, comment_id: str) -> dict[str, Any]:
    """POST the comment's current record to its callback URL, signed with the site's secret.
    The job runs later, in another process: it reads the comment and its site, once each."""
    context = delivery_services()
    comment = context.comments.get(site, comment_id)
    found = context.sites.get(site)
    if comment is None or found is None:
        return {"outcome": "nothing_to_deliver"}
    url = context.outbox.callback_url(site, comment_id, comment, found)
    if url is None:
        return {"outcome": "nothing_to_deliver"}
    if not context.settings.secret_key:
        raise DeliveryFailed("MODERATION_SECRET_KEY is not set: webhooks cannot be signed")
    secret = credentials.webhook_secret(context.settings.secret_key, site, found.webhook_nonce)
    body = webhook_body(site, comment.record(quote_text=False))
    result = attempt_delivery(url, body, secret, context.settings)
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
    """Runs up to `threads` deliveries at once, each in a thread of its own, so a receiver
    that hangs holds one thread (and, once it has timed out, none: see
    UnresponsiveReceivers), never the whole deliverer. Its maintenance also flushes a stale
    webhook outbox."""

    #: RQ's default job timeout works by SIGALRM, which only the main thread receives.
    death_penalty_class = TimerDeathPenalty

    def __init__(self, *args: Any, threads: int = DELIVERY_THREADS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.free_threads = threading.BoundedSemaphore(threads)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="delivery")

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """Take the next job only once a thread is free to run it."""
        self.free_threads.acquire()
        try:
            if self._stop_requested:  # SIGTERM came while every thread was busy
                raise StopRequested()
            found = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        except BaseException:
            self.free_threads.release()
            raise
        if found is None:
            self.free_threads.release()
        return found

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.ride_out(self.prepare_execution, job)
        with stop_signals_to_the_main_thread():  # the pool may start a thread here
            self.pool.submit(self.perform_in_thread, job, queue, execution)

    def perform_in_thread(self, job: Job, queue: Queue, execution: Execution) -> None:
        """Perform the job (again once Redis is back, if an outage interrupts it: delivery
        is at least once), then free the thread for the next job."""
        try:
            self.ride_out(self.perform_job, job, queue, execution)
        except Exception:  # the process is stopping mid-outage: RQ's clean-up retries it
            log.exception("delivery abandoned")
        finally:
            self.free_threads.release()

    def teardown(self) -> None:
        """Finish the deliveries in flight (each bounded by its timeout), then unregister."""
        self.pool.shutdown(wait=True)
        super().teardown()

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        flushed = delivery_services().outbox.sweep(OUTBOX_GRACE_SECONDS)
        if flushed:
            log.info("outbox: queued %d webhooks left behind", flushed)


def run_delivery_worker(settings: Settings, *, burst: bool = False) -> bool:
    """Work the delivery queue until stopped (SIGTERM finishes the deliveries in flight)."""
    from workers.scoring.worker import worker_name

    unresponsive_receivers()  # built before any thread needs it
    connection = connect(settings.redis_url, socket_timeout=None)
    worker = DeliveryWorker(
        [delivery_queue(connection)],
        connection=connection,
        name=worker_name("deliveries"),
        log_job_description=False,
        maintenance_interval=MAINTENANCE_INTERVAL,
    )
    return worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)
