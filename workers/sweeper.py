"""Finding comments whose scoring job was lost, and giving them a new one.

RQ delivers a job at most once: a worker killed with SIGKILL leaves its job "started" until the
job's heartbeat expires (job timeout + 60 s) and some worker's maintenance notices, minutes
later. So every scoring worker also

* keeps a short-lived "alive" key fresh from a background thread (`Liveness`), so a dead
  process is known within `ALIVE_TTL` seconds, and
* sweeps, from its periodic maintenance, comments pending longer than the sweep deadline: a
  comment whose job is gone, failed, stopped, or started by a process that is no longer alive
  gets a new job, and so does one taken off the queue by a dequeue whose reply was lost (it
  sits in RQ's intermediate list, held by no one). Jobs that are merely waiting in the queue
  are left alone, so an overload never turns into duplicate work. Scoring is idempotent, so a
  late second run is harmless.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from moderation.keyspace import KEYS
from moderation.records import utc_now
from moderation.store import CommentStore, Enqueue

log = logging.getLogger(__name__)

#: Seconds an "alive" key lives without a refresh; refreshed every third of that.
ALIVE_TTL = 10
WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


class Liveness:
    """Refreshes `mod:alive:<worker>` from a daemon thread while the process lives."""

    def __init__(self, connection: redis.Redis, worker_name: str) -> None:
        self.connection = connection
        self.key = KEYS.alive(worker_name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="liveness", daemon=True)

    def start(self) -> None:
        self.connection.set(self.key, "1", ex=ALIVE_TTL)
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
    return bool(worker_name) and bool(connection.exists(KEYS.alive(worker_name)))


@dataclass(frozen=True)
class SweepReport:
    checked: int
    requeued: int


def taken_but_not_started(connection: redis.Redis, job: Job, older_than: float) -> bool:
    """Whether a worker took the job off its queue (RQ moves it to the queue's intermediate
    list) but never started it: the reply to that move was lost, e.g. because Redis shut down
    right after it, so no worker holds it (RQ itself would notice only minutes later). A job
    enqueued less than `older_than` seconds ago may just be on its way to a worker."""
    intermediate = Queue(job.origin, connection=connection).intermediate_queue_key
    enqueued = job.enqueued_at.timestamp() if job.enqueued_at else 0.0
    if enqueued > utc_now() - older_than:
        return False
    return connection.lpos(intermediate, job.id) is not None


def needs_new_job(connection: redis.Redis, job_id: str | None, older_than: float = 0.0) -> bool:
    """Whether a pending comment's job can no longer be expected to decide it (`older_than`:
    the sweep deadline, see taken_but_not_started)."""
    if job_id is None:
        return True
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return True
    status = job.get_status(refresh=False)
    if status in WAITING:
        return status is JobStatus.QUEUED and taken_but_not_started(connection, job, older_than)
    if status is JobStatus.STARTED:
        return not is_alive(connection, job.worker_name)
    # finished without deciding, failed, stopped or canceled
    return True


def sweep(
    connection: redis.Redis, store: CommentStore, enqueue: Enqueue, older_than: float
) -> SweepReport:
    """Give a new job to each comment pending longer than `older_than` seconds whose job is
    lost. Only one worker sweeps at a time (a short Redis lock)."""
    if not connection.set(KEYS.sweep_lock, "1", nx=True, ex=max(5, int(older_than))):
        return SweepReport(0, 0)
    try:
        stale = store.pending_before(utc_now() - older_than)
        requeued = 0
        for site, comment_id in stale:
            lost = needs_new_job(connection, store.job_id(site, comment_id), older_than)
            if lost and store.requeue(site, comment_id, enqueue):
                requeued += 1
        if requeued:
            log.warning("sweeper: %d pending comments had lost their job; requeued", requeued)
        return SweepReport(len(stale), requeued)
    finally:
        connection.delete(KEYS.sweep_lock)
