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
from moderation.records import utc_now
from moderation.services import connect
from moderation.settings import Settings
from moderation.store import WorkerModels
from workers.runtime import current_runtime, start_runtime
from workers.sweeper import Liveness, sweep

log = logging.getLogger(__name__)

#: Seconds between maintenance runs (RQ's registry clean-up, the sweeper, retention). RQ's
#: default of 600 s would leave a comment whose worker died pending for many minutes.
MAINTENANCE_INTERVAL = 15
#: Seconds a worker's RQ registration lives without a heartbeat. An idle worker blocks on the
#: queue for this less 15 s, so it bounds how late an idle worker runs its maintenance too.
WORKER_TTL = 30


class ScoringWorker(SimpleWorker):
    """Runs scoring jobs in-process, one queue, with the model loaded before the first job."""

    def run_maintenance_tasks(self) -> None:
        """RQ's periodic clean-up, the sweeper, and erasing comments past their retention."""
        super().run_maintenance_tasks()
        runtime = current_runtime()
        sweep(runtime.store.redis, runtime.store, runtime.enqueue, runtime.settings.sweep_after)
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
    runtime = start_runtime(settings)
    connection = connect(settings.redis_url, socket_timeout=None)
    worker = ScoringWorker(
        [scoring_queue(connection)],
        connection=connection,
        name=worker_name(),
        log_job_description=False,
        maintenance_interval=MAINTENANCE_INTERVAL,
        worker_ttl=WORKER_TTL,
    )
    models = WorkerModels(connection)
    models.register(worker.name, {"toxicity": runtime.toxicity.name})
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
        models.unregister(worker.name)
