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

from rq import SimpleWorker

from moderation.queue import scoring_queue
from moderation.services import connect
from moderation.settings import Settings
from moderation.store import WorkerModels
from workers.runtime import start_runtime

log = logging.getLogger(__name__)


class ScoringWorker(SimpleWorker):
    """Runs scoring jobs in-process, one queue, with the model loaded before the first job."""


def worker_name() -> str:
    return f"scoring.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


def run_worker(settings: Settings, *, burst: bool = False) -> bool:
    """Load the model, register, and work the scoring queue until stopped (SIGTERM: finish
    the current job, then exit). Returns whether any job ran."""
    runtime = start_runtime(settings)
    connection = connect(settings.redis_url, socket_timeout=None)
    worker = ScoringWorker(
        [scoring_queue(connection)],
        connection=connection,
        name=worker_name(),
        log_job_description=False,
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
