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
import sys
import time
import uuid
from typing import cast

from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.timeouts import JobTimeoutException
from rq.utils import now
from rq.worker import WorkerStatus

from moderation.core.records import utc_now
from moderation.core.redis_connections import connect
from moderation.core.settings import Settings
from moderation.storage.job_queues import (
    SCORE_COMMENT_JOB,
    is_check_job,
    language_queue_name,
    scoring_queue,
)
from moderation.storage.worker_languages import languages_field
from moderation.storage.worker_models import WorkerModels
from workers.jobs import decide_scored, prepare, prescore
from workers.outages import REDIS_DOWN, RidesOutOutages
from workers.scoring.runtime import WorkerRuntime, current_runtime, start_runtime
from workers.scoring.sweeper import Liveness, sweep

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

#: Comments per pass of a model that scores any number at once (the embedded one): its own
#: cost is small beside a pass's Redis work, and a check waits for at most one pass.
EMBEDDED_PASS_SIZE = 16

#: A job in hand, with the queue it came from and its RQ execution.
Started = tuple[tuple[Job, Queue], Execution]


class ScoringWorker(RidesOutOutages, SimpleWorker):
    """Runs scoring jobs in-process, one queue, with the model loaded before the first job.

    Batching: RQ hands the worker one job; `execute_job` takes up to `batch_size - 1` more
    from the same queue (the same atomic LMOVE RQ uses), marks them all started and reads
    their comments in one round trip. Then, pass by pass (checks first, then the rest by
    length, `pass_size` comments a pass), it scores a pass's comments in one model pass and
    lets RQ perform each of their jobs as usual. Each comment stays its own job: its status,
    result, retries, failure callback and the sweeper work as for a single job; the job
    function finds its comment's scores already computed.

    Waiting callers first: before each pass the worker looks at the front of its queues, where
    checks are queued (`is_check_job`); checks found there are taken and decided before the
    next pass, so a check waits for one pass, not for a whole batch.
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
        self.work_on(runtime, batch, checks_cut_in=True)
        self.set_state(WorkerStatus.IDLE)

    def work_on(
        self, runtime: WorkerRuntime, batch: list[tuple[Job, Queue]], *, checks_cut_in: bool
    ) -> None:
        """Start the batch, then score and perform it pass by pass; with `checks_cut_in`,
        checks waiting at the front of the queues are done before each pass."""
        # If Redis goes away mid-batch, each step is done again once it is back (ride_out):
        # the batch is finished rather than abandoned as "started".
        executions = self.ride_out(self.start_batch, runtime, batch)
        started = list(zip(batch, executions, strict=True))
        try:
            parts = self.passes(runtime, started)
            for index, part in enumerate(parts):
                if index and self._stop_requested:  # warm shutdown: the pass in hand is done
                    self.ride_out(self.give_back, [item for rest in parts[index:] for item in rest])
                    break
                if checks_cut_in:
                    checks = self.ride_out(self.waiting_checks, runtime.settings.pass_size)
                    if checks:
                        self.work_on(runtime, checks, checks_cut_in=False)
                self.ride_out(self.prescore_pass, runtime, [each for (each, _), _ in part])
                self.ride_out(self.perform_pass, part)
        finally:
            for each, _ in batch:
                key = comment_key(each)
                if key is not None:
                    runtime.prescored.pop(key, None)

    def start_batch(
        self, runtime: WorkerRuntime, batch: list[tuple[Job, Queue]]
    ) -> list[Execution]:
        """Mark the jobs started, register their executions, and read their comments."""
        # Marked started by this worker before RQ registers the executions, so no instant
        # leaves a job in hand that looks merely queued.
        jobs = [each for each, _ in batch]
        executions = self.mark_started(batch)
        prepare(runtime, [key for key in map(comment_key, jobs) if key is not None])
        return executions

    @staticmethod
    def passes(runtime: WorkerRuntime, started: list[Started]) -> list[list[Started]]:
        """The batch in model passes: checks first, then the rest shortest first (a pass pads
        its texts to its longest), `pass_size` a pass (EMBEDDED_PASS_SIZE for a model that
        scores any number at once)."""

        def length(item: Started) -> int:
            entry = runtime.prescored.get(comment_key(item[0][0]))  # type: ignore[arg-type]
            return len(entry.comment.submission.content) if entry else 0

        checks = [item for item in started if is_check_job(item[0][0].id)]
        rest = sorted((item for item in started if not is_check_job(item[0][0].id)), key=length)
        size = getattr(runtime.toxicity, "batch_size", None) or EMBEDDED_PASS_SIZE
        return [group[i : i + size] for group in (checks, rest) for i in range(0, len(group), size)]

    def perform_pass(self, part: list[Started]) -> None:
        """Perform a pass's jobs, writing the bookkeeping of those that succeed together.

        For a scoring job this is what RQ's `perform_job` does, in fewer round trips: the job
        function runs under the job's timeout as RQ runs it (`job.perform`); a job that raises
        goes through RQ's own failure handling (retries, failure callback) at once; those that
        return are finished together, in one transaction (`finish_together`). Any other job is
        performed by RQ itself. If Redis goes away meanwhile, `ride_out` performs the pass
        again once it is back: the job function is idempotent.
        """
        done: list[Started] = []
        for (job, queue), execution in part:
            if comment_key(job) is None:  # not a scoring job: RQ performs it
                self.perform_job(job, queue, execution)
                continue
            job.started_at = now()
            timeout = job.timeout or self.queue_class.DEFAULT_TIMEOUT
            try:
                with self.death_penalty_class(timeout, JobTimeoutException, job_id=job.id):
                    job.perform()
            except Exception:
                self._finalize_failure(job, queue, execution, sys.exc_info())
                continue
            job.ended_at = now()
            done.append(((job, queue), execution))
        if done:
            self.finish_together(done)

    def finish_together(self, done: list[Started]) -> None:
        """RQ's `handle_job_success` for several jobs in one transaction: the worker's counts,
        each job's status, result and finished-registry entry, the end of its execution (off
        the started registry), and one worker heartbeat. Left out: moving dependent jobs and
        success callbacks, which scoring jobs never have (`ScoringEnqueuer` gives them
        neither)."""
        with self.connection.pipeline() as pipe:
            for (job, _), execution in done:
                result_ttl = job.get_result_ttl(self.default_result_ttl)
                self.increment_successful_job_count(pipeline=pipe)
                assert job.started_at is not None and job.ended_at is not None  # perform_pass's
                self.increment_total_working_time(job.ended_at - job.started_at, pipe)
                if result_ttl != 0:
                    job._handle_success(
                        result_ttl,
                        pipeline=pipe,
                        worker_name=self.name,
                        execution_id=execution.id,
                        execution_started_at=execution.created_at,
                        execution_ended_at=job.ended_at,
                    )
                job.cleanup(result_ttl, pipeline=pipe, remove_from_queue=False)
                self.cleanup_execution(job, pipeline=pipe, execution=execution)
            self.heartbeat(self.get_heartbeat_ttl(done[-1][0][0]), pipeline=pipe)
            pipe.execute()
        for (job, _), _ in done:
            job._status = JobStatus.FINISHED

    def give_back(self, remaining: list[Started]) -> None:
        """Return jobs of the batch that were not begun to the front of their queues, in
        their order, as queued as before this worker took them, in one transaction: on a warm
        shutdown (SIGTERM) the worker finishes the pass in hand, not its whole batch."""
        with self.connection.pipeline() as pipe:
            for (job, queue), execution in reversed(remaining):
                self.cleanup_execution(job, pipeline=pipe, execution=execution)
                job.set_status(JobStatus.QUEUED, pipeline=pipe)
                queue.push_job_id(job.id, pipeline=pipe, at_front=True)
            pipe.execute()
        log.info("stopping: gave %d comments of the batch back to the queue", len(remaining))

    def waiting_checks(self, limit: int) -> list[tuple[Job, Queue]]:
        """Up to `limit` checks from the front of this worker's queues (one round trip when
        there are none), each taken with RQ's atomic dequeue."""
        queues = list(self.queues)
        with self.connection.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.lindex(queue.key, 0)
            heads = pipe.execute()
        found: list[tuple[Job, Queue]] = []
        for queue, head in zip(queues, heads, strict=True):
            while is_check_job(head) and len(found) < limit:
                taken = self.take_waiting(queue)
                if taken is None:
                    break
                found.append(taken)  # another worker may have taken the check: no harm
                head = self.connection.lindex(queue.key, 0)
        return found

    def mark_started(self, batch: list[tuple[Job, Queue]]) -> list[Execution]:
        """Mark the whole batch started by this worker now, not only as RQ performs each one,
        so that if this process dies mid-batch the sweeper sees every job in hand as started
        by a dead worker (RQ alone would leave the later ones looking queued, yet in no queue).

        In the same step each job leaves its queue's intermediate list, where the dequeue's
        atomic move put it: RQ does that itself only for a worker of one queue, and a job left
        there makes RQ's maintenance keep a marker per job for a day, then fail the job as
        "stuck in intermediate queue" a minute after it finished or failed.

        The same transaction registers each job's RQ execution (what RQ's `prepare_execution`
        does one job at a time) and returns them.
        """
        executions = []
        with self.connection.pipeline() as pipe:
            for each, queue in batch:
                # RQ's own step (status, worker name, started_at for the sweeper's `overdue`)
                each.prepare_for_execution(self.name, pipe)
                pipe.lrem(queue.intermediate_queue_key, 1, each.id)
            for each, _ in batch:
                ttl = self.get_heartbeat_ttl(each)
                execution = Execution.create(each, ttl, pipeline=pipe, worker_name=self.name)
                self.executions[execution.id] = execution
                executions.append(execution)
            self.set_state(WorkerStatus.BUSY, pipeline=pipe)
            pipe.execute()
        return executions

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
        """Up to `limit` jobs already on `queue`, without blocking: as many as it holds are
        each moved atomically to the queue's intermediate list as RQ's own dequeue does
        (LMOVE), all in one round trip, then fetched in another. A job whose hash is gone is
        skipped, as RQ skips it."""
        if limit <= 0:
            return []
        try:
            waiting = min(limit, cast(int, self.connection.llen(queue.key)))
            if not waiting:
                return []
            with self.connection.pipeline(transaction=False) as pipe:
                for _ in range(waiting):
                    pipe.lmove(queue.key, queue.intermediate_queue_key, "LEFT", "RIGHT")
                ids = [raw.decode() for raw in pipe.execute() if raw is not None]
            jobs = self.job_class.fetch_many(
                ids, connection=self.connection, serializer=self.serializer
            )
        except REDIS_DOWN:  # Redis went away: work on the jobs already in hand
            return []
        return [(job, queue) for job in jobs if job is not None]

    def prescore_pass(self, runtime: WorkerRuntime, jobs: list[Job]) -> None:
        """One model pass for the jobs' comments, then their decisions stored together, each
        under the job timeout (RQ's own timeout guards only each job's function). If a step
        fails, each job does it for its comment alone."""
        keys = [key for key in map(comment_key, jobs) if key is not None]
        if not keys:
            return
        started = time.perf_counter()
        try:
            with self.death_penalty_class(runtime.settings.job_timeout, JobTimeoutException):
                scored = prescore(runtime, keys)
            log.info(
                "scored a batch of %d comments in %.3f s",
                scored,
                time.perf_counter() - started,
                extra={"batch": scored},
            )
        except Exception:
            log.exception("batch scoring failed; scoring its comments one by one")
            for key in keys:
                runtime.prescored.pop(key, None)
            return
        try:
            with self.death_penalty_class(runtime.settings.job_timeout, JobTimeoutException):
                decide_scored(runtime, keys)
        except Exception:
            # Each job decides its comment alone (those stored already say so).
            log.exception("deciding a pass together failed; deciding its comments one by one")
            for key in keys:
                if key in runtime.prescored:
                    runtime.prescored[key].outcome = runtime.prescored[key].decision = None

    def register_birth(self) -> None:
        """Say which models this worker loaded (read by /readyz, Perspective and the hand-over
        of languages), then register with RQ: a worker is never seen alive without its models.
        Also called again when Redis lost the registration (see RidesOutOutages)."""
        runtime = current_runtime()
        toxicity = runtime.toxicity
        models = {
            "toxicity": toxicity.name,
            "precision": getattr(toxicity, "precision", "n/a"),
            "runtime": getattr(toxicity, "runtime", "n/a"),
            "labels": ",".join(toxicity.labels),  # what the Perspective API can offer
            "languages": languages_field(runtime.languages.reads),
            "spam": runtime.spam.name,
        }
        WorkerModels(self.connection).register(self.name, models)
        super().register_birth()  # type: ignore[no-untyped-call]  # RQ's has no annotations

    def register_death(self) -> None:
        WorkerModels(self.connection).unregister(self.name)
        super().register_death()  # type: ignore[no-untyped-call]  # RQ's has no annotations

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


def comment_key(job: Job) -> tuple[str, str] | None:
    """The (site, id) of the comment a scoring job decides; None for any other job."""
    return tuple(job.args) if job.func_name == SCORE_COMMENT_JOB else None


def worker_name(kind: str = "scoring") -> str:
    return f"{kind}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


def run_worker(settings: Settings, *, burst: bool = False) -> bool:
    """Load the model, register, and work the scoring queue until stopped (SIGTERM: finish
    the pass in hand, give the rest of the batch back, then exit). Returns whether any job
    ran."""
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
