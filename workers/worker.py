"""The scoring worker process: an RQ SimpleWorker that keeps its model loaded.

Why SimpleWorker: RQ's default Worker forks a child per job, which would load the model for
every job (or inherit torch thread pools that can hang in a forked child). A SimpleWorker runs
each job in this process, so the model loaded at start serves every job.

Why one queue: RQ dequeues atomically (BLMOVE into an intermediate list) only when a worker
listens on a single queue; with several it falls back to BLPOP and a crash between pop and
start can lose the job.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

from rq import SimpleWorker, get_current_job

from moderation.queue import scoring_queue
from moderation.records import utc_now
from moderation.services import connect
from moderation.settings import Settings
from moderation.store import WorkerModels
from workers.runtime import current_runtime, start_runtime

log = logging.getLogger(__name__)

#: Seconds between RQ's registry clean-ups. A job whose worker died stays "started" until its
#: heartbeat expires (job timeout + 60 s); the next clean-up then retries it. RQ's default of
#: 600 s would leave such a comment pending for up to 12 minutes.
MAINTENANCE_INTERVAL = 60


class JobIdFilter(logging.Filter):
    """Stamps the id of the job being run (or "-") on every log record as `job_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = get_current_job()
        record.job_id = job.id if job is not None else "-"
        return True


def stamp_job_ids_on_logs() -> None:
    """Every handler of the root logger shows which job a line belongs to."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(JobIdFilter())
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [job %(job_id)s]: %(message)s")
        )


class ScoringWorker(SimpleWorker):
    """Runs scoring jobs in-process, one queue, with the model loaded before the first job."""

    def run_maintenance_tasks(self) -> None:
        """RQ's periodic clean-up, plus erasing approved comments past their retention."""
        super().run_maintenance_tasks()
        runtime = current_runtime()
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
    stamp_job_ids_on_logs()
    runtime = start_runtime(settings)
    connection = connect(settings.redis_url, socket_timeout=None)
    worker = ScoringWorker(
        [scoring_queue(connection)],
        connection=connection,
        name=worker_name(),
        log_job_description=False,
        maintenance_interval=MAINTENANCE_INTERVAL,
    )
    models = WorkerModels(connection)
    models.register(worker.name, {"toxicity": runtime.toxicity.name})
    try:
        return worker.work(
            burst=burst,
            with_scheduler=True,
            logging_level=settings.log_level,
        )
    finally:
        models.unregister(worker.name)
