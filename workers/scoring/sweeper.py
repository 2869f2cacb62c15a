"""Finding comments whose scoring job was lost, and giving them a new one.

RQ delivers a job at most once: a worker killed with SIGKILL leaves its job "started" until the
job's heartbeat expires (job timeout + 60 s) and some worker's maintenance notices, minutes
later. So every scoring worker also

* keeps a short-lived "alive" key fresh from a background thread (`Liveness`), so a dead
  process is known within `ALIVE_TTL` seconds, and
* sweeps, from its periodic maintenance, comments pending longer than the sweep deadline: a
  comment whose job is gone, failed, stopped, or started by a process that is no longer alive
  gets a new job, and so does one taken off the queue by a dequeue whose reply was lost (it
  sits in RQ's intermediate list, held by no one: still there `TAKEN_GRACE` after the sweeper
  first saw it, when a live worker would have started it). Jobs that are merely waiting in the queue
  are left alone, so an overload never turns into duplicate work, except on a language's queue
  that no live worker reads any more: those go back to the shared queue. Scoring is idempotent,
  so a late second run is harmless.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.utils import now as rq_now

from moderation.core.records import utc_now
from moderation.core.redis_keys import KEYS
from moderation.storage.comment_store import CommentStore, Enqueue
from moderation.storage.job_queues import language_of_queue
from workers.outages import stop_signals_to_the_main_thread

log = logging.getLogger(__name__)

#: Seconds an "alive" key lives without a refresh; refreshed every third of that.
ALIVE_TTL = 10
WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
#: Seconds the sweeper gives a job found taken off the queue but not started before it counts
#: as lost (a live worker marks a batch started within milliseconds of taking it).
TAKEN_GRACE = 1.0


class Liveness:
    """Refreshes `mod:alive:<worker>` from a daemon thread while the process lives."""

    def __init__(self, connection: redis.Redis, worker_name: str) -> None:
        self.connection = connection
        self.key = KEYS.alive(worker_name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="liveness", daemon=True)

    def start(self) -> None:
        self.connection.set(self.key, "1", ex=ALIVE_TTL)
        with stop_signals_to_the_main_thread():
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(ALIVE_TTL / 3):
            try:
                self.connection.set(self.key, "1", ex=ALIVE_TTL)
            except redis.RedisError:
                log.warning("could not refresh the liveness key; retrying")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=ALIVE_TTL)
        with contextlib.suppress(redis.RedisError):  # it expires by itself anyway
            self.connection.delete(self.key)


def is_alive(connection: redis.Redis, worker_name: str | None) -> bool:
    return bool(worker_name and connection.exists(KEYS.alive(worker_name)))


@dataclass(frozen=True)
class SweepReport:
    checked: int
    requeued: int


def taken_but_not_started(connection: redis.Redis, job: Job) -> bool:
    """Whether the queued job sits in RQ's intermediate list: a worker moved it off the queue
    and has not marked it started yet. A live worker does that within milliseconds; if the
    reply to the move was lost (Redis shut down right after it) no worker holds it, and RQ
    itself would notice only minutes later."""
    if job.get_status(refresh=True) is not JobStatus.QUEUED:
        return False
    intermediate = Queue(job.origin, connection=connection).intermediate_queue_key
    return connection.lpos(intermediate, job.id) is not None


def needs_new_job(
    connection: redis.Redis,
    job_id: str | None,
    covered: Callable[[], frozenset[str]] = frozenset,
) -> bool:
    """Whether a pending comment's job can no longer be expected to decide it. A job taken but
    not started is not counted here: `sweep` looks at it twice (see `TAKEN_GRACE`)."""
    if job_id is None:
        return True
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return True
    status = job.get_status(refresh=False)
    if status in WAITING:
        return orphaned(job, covered)
    if status is JobStatus.STARTED:
        return not is_alive(connection, job.worker_name) or overdue(job)
    # finished without deciding, failed, stopped or canceled
    return True


def overdue(job: Job) -> bool:
    """Whether a started job has been running for longer than any run can: twice its timeout
    (the batch's model pass and the job's own run are each limited by it). Its worker lives,
    but no longer holds it: Redis lost the writes that finished it, as a power cut under
    `appendfsync everysec` or a failover to a replica that lagged can (MODERATION_DURABILITY
    off)."""
    started = job.started_at
    if started is None or job.timeout is None:
        return False
    return (rq_now() - started).total_seconds() > 2 * job.timeout


def orphaned(job: Job, covered: Callable[[], frozenset[str]]) -> bool:
    """Whether a waiting job is on a language's queue that no live worker reads."""
    language = language_of_queue(job.origin)
    return language is not None and language not in covered()


def withdraw_waiting(connection: redis.Redis, job_ids: list[str]) -> None:
    """Take the jobs of comments given a new one off their queue if they still wait there
    (an orphaned language queue's), so that a worker that comes back later finds no stale
    copy."""
    for job in Job.fetch_many(job_ids, connection=connection):
        if job is not None and job.get_status(refresh=False) in WAITING:
            with contextlib.suppress(redis.RedisError):
                job.cancel()


def is_taken(connection: redis.Redis, job_id: str) -> bool:
    try:
        return taken_but_not_started(connection, Job.fetch(job_id, connection=connection))
    except NoSuchJobError:
        return False


def still_taken_after_grace(connection: redis.Redis, job_ids: list[str]) -> set[str]:
    """The jobs of `job_ids` still taken but not started after `TAKEN_GRACE` seconds: their
    worker never got them. (A worker in the middle of taking a batch is done long before.)"""
    if not job_ids:
        return set()
    time.sleep(TAKEN_GRACE)
    jobs = Job.fetch_many(job_ids, connection=connection)
    return {job.id for job in jobs if job and taken_but_not_started(connection, job)}


def sweep(
    connection: redis.Redis,
    store: CommentStore,
    enqueue: Enqueue,
    older_than: float,
    covered: Callable[[], frozenset[str]] = frozenset,
) -> SweepReport:
    """Give a new job to each comment pending longer than `older_than` seconds whose job is
    lost; `covered` gives the languages live workers read. Only one worker sweeps at a time
    (a short Redis lock)."""
    if not connection.set(KEYS.sweep_lock, "1", nx=True, ex=max(5, int(older_than))):
        return SweepReport(0, 0)
    try:
        stale = store.pending_before(utc_now() - older_than)
        lost: list[tuple[str, str]] = []
        replaced: list[str] = []  # the lost comments' old jobs
        taken: dict[str, tuple[str, str]] = {}  # job id -> comment, for a second look
        for site, comment_id in stale:
            job_id = store.job_id(site, comment_id)
            if needs_new_job(connection, job_id, covered):
                lost.append((site, comment_id))
                replaced += [job_id] if job_id else []
            elif job_id and is_taken(connection, job_id):
                taken[job_id] = (site, comment_id)
        lost += [taken[job_id] for job_id in still_taken_after_grace(connection, list(taken))]
        requeued = sum(1 for site, comment_id in lost if store.requeue(site, comment_id, enqueue))
        withdraw_waiting(connection, replaced)
        if requeued:
            log.warning("sweeper: %d pending comments had lost their job; requeued", requeued)
        return SweepReport(len(stale), requeued)
    finally:
        connection.delete(KEYS.sweep_lock)
