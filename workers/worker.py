"""The scoring worker process: an RQ SimpleWorker that keeps its model loaded.

Why SimpleWorker: RQ's default Worker forks a child per job, which would load the model for
every job (or inherit torch thread pools that can hang in a forked child). A SimpleWorker runs
each job in this process, so the model loaded at start serves every job.

Why one queue at a time: RQ dequeues atomically (BLMOVE into an intermediate list) only when
a worker listens on a single queue; with several it falls back to BLPOP and a crash between pop
and start can lose the job. Every worker takes comments from the shared scoring queue; it also
serves the queues of the languages its model reads (comments handed over by workers whose model
cannot read them), looking at each of those alone, without waiting, before each wait on the
shared queue (`dequeue_job_and_maintain_ttl`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.timeouts import JobTimeoutException
from rq.worker import WorkerStatus

from moderation.connections import connect
from moderation.queue import SCORE_COMMENT_JOB, language_queue_name, scoring_queue
from moderation.records import utc_now
from moderation.settings import Settings
from moderation.store import WorkerModels
from moderation.worker_languages import languages_field
from workers.jobs import prescore
from workers.outages import REDIS_DOWN, RidesOutOutages
from workers.runtime import WorkerRuntime, current_runtime, start_runtime
from workers.sweeper import Liveness, sweep

log = logging.getLogger(__name__)

#: Seconds between maintenance runs (RQ's registry clean-up, the sweeper, retention). RQ's
#: default of 600 s would leave a comment whose worker died pending for many minutes.
MAINTENANCE_INTERVAL = 15
#: Seconds a worker's RQ registration lives without a heartbeat. An idle worker blocks on the
#: queue for this less 15 s, so it bounds how late an idle worker runs its maintenance too.
WORKER_TTL = 30
#: Seconds an idle worker waits on the shared queue before it looks at its language queues
#: again: the longest an idle worker leaves a comment handed over to it waiting.
LANGUAGE_QUEUE_POLL = 1


class ScoringWorker(RidesOutOutages, SimpleWorker):
    """Runs scoring jobs in-process, one queue, with the model loaded before the first job.

    Batching: RQ hands the worker one job; `execute_job` takes up to `batch_size - 1` more
    from the same queue (the same atomic LMOVE RQ uses), marks them all started, scores all
    their comments in one model pass, then lets RQ perform each job as usual. Each comment
    stays its own job: its status, result, retries, failure callback and the sweeper work as
    for a single job; the job function finds its comment's scores already computed.
    """

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """The next job: from a language queue if one has any (each looked at alone, without
        waiting), else from the shared queue, waiting up to `LANGUAGE_QUEUE_POLL` seconds at a
        time (`timeout` None: without waiting, as in burst mode). Each dequeue is RQ's atomic
        one-queue move."""
        queues = list(self._ordered_queues)
        if len(queues) == 1:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        *languages, shared = queues
        wait = None if timeout is None else LANGUAGE_QUEUE_POLL
        self._ordered_queues = [shared]  # RQ's own dequeue then waits on the shared queue alone
        try:
            while True:
                if self._stop_requested:
                    raise StopRequested()
                for queue in languages:
                    found = self.ride_out(self.take_waiting, queue)
                    if found is not None:
                        return found
                found = super().dequeue_job_and_maintain_ttl(wait, max_idle_time=wait)
                if found is not None or wait is None:
                    return found
        finally:
            self._ordered_queues = queues

    def take_waiting(self, queue: Queue) -> tuple[Job, Queue] | None:
        """The first job of `queue` if it has one, without waiting (atomic, as RQ's own)."""
        return self.queue_class.dequeue_any(
            [queue],
            None,
            connection=self.connection,
            job_class=self.job_class,
            serializer=self.serializer,
            death_penalty_class=self.death_penalty_class,
        )

    def execute_job(self, job: Job, queue: Queue) -> None:
        runtime = current_runtime()
        batch = [(job, queue), *self.more_jobs(queue, runtime.settings)]
        # If Redis goes away mid-batch, each step is done again once it is back (ride_out):
        # the batch is finished rather than abandoned as "started".
        executions = self.ride_out(self.start_batch, runtime, batch)
        try:
            for (each, each_queue), execution in zip(batch, executions, strict=True):
                self.ride_out(self.perform_job, each, each_queue, execution)
        finally:
            runtime.prescored.clear()
        self.set_state(WorkerStatus.IDLE)

    def start_batch(
        self, runtime: WorkerRuntime, batch: list[tuple[Job, Queue]]
    ) -> list[Execution]:
        """Mark the jobs started, register their executions, and score them in one pass."""
        # Marked started by this worker before RQ registers the executions, so no instant
        # leaves a job in hand that looks merely queued.
        self.mark_started(batch)
        jobs = [each for each, _ in batch]
        executions = [self.prepare_execution(each) for each in jobs]
        self.prescore_batch(runtime, jobs)
        return executions

    def mark_started(self, batch: list[tuple[Job, Queue]]) -> None:
        """Mark the whole batch started by this worker now, not only as RQ performs each one,
        so that if this process dies mid-batch the sweeper sees every job in hand as started
        by a dead worker (RQ alone would leave the later ones looking queued, yet in no queue).

        In the same step each job leaves its queue's intermediate list, where the dequeue's
        atomic move put it: RQ does that itself only for a worker of one queue, and a job left
        there makes RQ's maintenance keep a marker per job for a day, then fail the job as
        "stuck in intermediate queue" a minute after it finished or failed.
        """
        with self.connection.pipeline() as pipe:
            for each, queue in batch:
                # RQ's own step (status, worker name, started_at for the sweeper's `overdue`)
                each.prepare_for_execution(self.name, pipe)
                pipe.lrem(queue.intermediate_queue_key, 1, each.id)
            pipe.execute()

    def more_jobs(self, queue: Queue, settings: Settings) -> list[tuple[Job, Queue]]:
        """Up to batch_size - 1 further jobs: those already waiting, else those that arrive
        within batch_wait seconds.

        The wait is a pause here, not a blocking pop: Redis ends a blocking pop's timeout only
        on its next tick (every 100 ms at its default `hz 10`), which made a 10 ms wait cost
        about 90 ms on every job that came alone (a Coral phase has 200 ms in all).
        """
        wanted = settings.batch_size - 1
        extra = self.waiting_jobs(queue, wanted)
        if not extra and wanted > 0 and settings.batch_wait > 0:
            time.sleep(settings.batch_wait)
            extra = self.waiting_jobs(queue, wanted)
        return extra

    def waiting_jobs(self, queue: Queue, limit: int) -> list[tuple[Job, Queue]]:
        """Up to `limit` jobs already on `queue`, without blocking."""
        found: list[tuple[Job, Queue]] = []
        while len(found) < limit:
            try:
                taken = self.queue_class.dequeue_any(
                    [queue],
                    None,
                    connection=self.connection,
                    job_class=self.job_class,
                    serializer=self.serializer,
                )
            except REDIS_DOWN:  # Redis went away: work on the jobs already in hand
                break
            if taken is None:
                break
            found.append(taken)
        return found

    def prescore_batch(self, runtime: WorkerRuntime, jobs: list[Job]) -> None:
        """One model pass for the batch, under the job timeout (RQ's own timeout guards only
        each job's function). If it fails, each job scores its comment alone."""
        keys = [tuple(each.args) for each in jobs if each.func_name == SCORE_COMMENT_JOB]
        if len(keys) < 2:
            return
        started = time.perf_counter()
        try:
            with self.death_penalty_class(runtime.settings.job_timeout, JobTimeoutException):
                scored = prescore(runtime, keys)  # type: ignore[arg-type]
            log.info(
                "scored a batch of %d comments in %.3f s",
                scored,
                time.perf_counter() - started,
                extra={"batch": scored},
            )
        except Exception:
            log.exception("batch scoring failed; scoring its comments one by one")
            runtime.prescored.clear()

    def register_birth(self) -> None:
        """Say which models this worker loaded (read by /readyz, Perspective and the hand-over
        of languages), then register with RQ: a worker is never seen alive without its models.
        Also called again when Redis lost the registration (see RidesOutOutages)."""
        runtime = current_runtime()
        toxicity = runtime.toxicity
        models = {
            "toxicity": toxicity.name,
            "precision": getattr(toxicity, "precision", "n/a"),
            "labels": ",".join(toxicity.labels),  # what the Perspective API can offer
            "languages": languages_field(runtime.languages.reads),
            "spam": runtime.spam.name,
        }
        WorkerModels(self.connection).register(self.name, models)
        super().register_birth()

    def register_death(self) -> None:
        WorkerModels(self.connection).unregister(self.name)
        super().register_death()

    def run_maintenance_tasks(self) -> None:
        """RQ's periodic clean-up, the sweeper, erasing comments past their retention, and
        retraining sites whose labels changed without a job for it (erasures, lost jobs)."""
        super().run_maintenance_tasks()
        runtime = current_runtime()
        sweep(
            runtime.store.redis,
            runtime.store,
            runtime.enqueue,
            runtime.settings.sweep_after,
            covered=runtime.languages.live.covered,
        )
        if runtime.settings.learning:
            for site in runtime.labels.untrained_sites(runtime.sites.names()):
                runtime.learning(site)
        days = runtime.settings.retention_days
        if days > 0:
            erased = runtime.store.erase_approved_before(utc_now() - days * 86400)
            if erased:
                log.info("retention: erased %d approved comments", erased)


def worker_name(kind: str = "scoring") -> str:
    return f"{kind}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


def run_worker(settings: Settings, *, burst: bool = False) -> bool:
    """Load the model, register, and work the scoring queue until stopped (SIGTERM: finish
    the current job, then exit). Returns whether any job ran."""
    start_runtime(settings)
    connection = connect(settings.redis_url, socket_timeout=None)
    runtime = current_runtime()
    languages = [
        Queue(language_queue_name(language), connection=connection)
        for language in sorted(runtime.languages.reads)
    ]
    worker = ScoringWorker(
        [*languages, scoring_queue(connection)],
        connection=connection,
        name=worker_name(),
        log_job_description=False,
        maintenance_interval=MAINTENANCE_INTERVAL,
        worker_ttl=WORKER_TTL,
    )
    liveness = Liveness(connection, worker.name)
    liveness.start()
    try:
        return worker.work(
            burst=burst,
            with_scheduler=True,
            logging_level=settings.log_level,
        )
    finally:
        liveness.stop()
