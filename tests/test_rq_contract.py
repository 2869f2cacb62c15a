"""The RQ internals the workers rely on, checked against the installed RQ.

The workers subclass RQ's `SimpleWorker` and lean on parts of RQ that are not its documented
API: they override work-loop hooks (`execute_job`, `dequeue_job_and_maintain_ttl`, `heartbeat`,
...), read and write private attributes (`_stop_requested`, `_ordered_queues`,
`scheduler._process`) and call RQ's own steps (`prepare_execution`, `perform_job`,
`Queue.dequeue_any`). RQ may change any of them in a minor release without a word, and an
override whose hook was renamed is silently never called. pyproject.toml pins RQ's major
version; this file fails loudly, naming the worker code to fix, when one of those internals
changes shape or behaviour. After an RQ upgrade: run this file first.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
import os
import signal
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from packaging.requirements import Requirement
from packaging.version import Version
from rq import Callback, Queue, Retry, SimpleWorker, get_current_job
from rq.exceptions import NoSuchJobError, StopRequested
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import (
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.scheduler import RQScheduler
from rq.timeouts import JobTimeoutException, TimerDeathPenalty
from rq.utils import now as rq_now
from rq.worker import BaseWorker, WorkerStatus

from moderation.core.settings import Settings
from moderation.ops.queue_status import queue_status
from moderation.storage.job_queues import (
    RETRAIN_TIMEOUT,
    SCORING_RESULT_TTL,
    DeliveryEnqueuer,
    LearningEnqueuer,
    ScoringEnqueuer,
    delivery_queue,
    language_queue_name,
    live_scoring_workers,
    scoring_queue,
)
from tests.support.processes import wait_for
from workers.deliveries import DeliveryWorker, attempt_number
from workers.outages import RidesOutOutages
from workers.scoring.sweeper import WAITING
from workers.scoring.worker import ScoringWorker

ROOT = Path(__file__).resolve().parents[1]

#: The code that depends on RQ, for the assertion messages.
WORKER = "workers/scoring/worker.py"
DELIVERIES = "workers/deliveries.py"
OUTAGES = "workers/outages.py"
SWEEPER = "workers/scoring/sweeper.py"
QUEUE = "moderation/storage/job_queues.py"
OPERATIONS = "moderation/ops/queue_status.py"

#: Job functions of this file, by dotted path (RQ imports them as it would a worker's).
ADD = f"{__name__}.add"
CURRENT_JOB_ID = f"{__name__}.current_job_id"
FAIL_RECORDING_ATTEMPT = f"{__name__}.fail_recording_attempt"
RECORD_FAILURE = f"{__name__}.record_failure"

attempts_seen: list[int] = []
failures_seen: list[tuple[int | None, type, int]] = []


def add(a: int, b: int) -> int:
    return a + b


def current_job_id() -> str | None:
    job = get_current_job()
    return job.id if job is not None else None


def fail_recording_attempt() -> None:
    attempts_seen.append(attempt_number())
    raise RuntimeError("this attempt fails")


def record_failure(job: Job, connection: redis.Redis, *exc_info: Any) -> None:
    failures_seen.append((job.retries_left, type(connection), len(exc_info)))


def rq_failure(what: str, used_by: str) -> str:
    """An assertion message that says which worker code an RQ change breaks."""
    return f"RQ {importlib.metadata.version('rq')}: {what}. Depended on by {used_by}."


# --- isolation: RQ's work loop and death penalties change process-wide state -----------------


@pytest.fixture(autouse=True)
def restore_process_state() -> Iterator[None]:
    """`work()` and `request_stop` install SIGINT/SIGTERM handlers, `work()` sets up RQ's
    loggers, and TimerDeathPenalty patches `JobTimeoutException.__init__` for the whole
    process: put all of them back so no other test sees them."""
    handlers = {each: signal.getsignal(each) for each in (signal.SIGINT, signal.SIGTERM)}
    loggers = {}
    for name in ("rq.worker", "rq.job", "rq.scheduler"):
        logger = logging.getLogger(name)
        loggers[name] = (logger, list(logger.handlers), logger.level, logger.propagate)
    timeout_init = JobTimeoutException.__dict__.get("__init__")
    attempts_seen.clear()
    failures_seen.clear()
    yield
    for each, handler in handlers.items():
        signal.signal(each, handler)
    for logger, handlers_before, level, propagate in loggers.values():
        logger.handlers[:] = handlers_before
        logger.setLevel(level)
        logger.propagate = propagate
    if timeout_init is None:
        if "__init__" in JobTimeoutException.__dict__:
            del JobTimeoutException.__init__
    else:
        JobTimeoutException.__init__ = timeout_init  # type: ignore[method-assign]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def maintained(worker: BaseWorker) -> BaseWorker:
    """Mark the worker's periodic maintenance as just run: the scoring and delivery workers'
    own maintenance needs a loaded model or settings from the environment."""
    worker.last_cleaned_at = datetime.now(UTC)
    return worker


def parameters(function: Callable[..., Any]) -> list[str]:
    return [p.name for p in inspect.signature(function).parameters.values() if p.name != "self"]


def passed_through(owner: Any, name: str) -> Callable[..., Any]:
    """The method that takes the arguments: a definition that only passes `*args, **kwargs` on
    to its base class's (ScheduledJobRegistry.__init__) is looked through."""
    for cls in inspect.getmro(owner) if inspect.isclass(owner) else [owner]:
        if name not in vars(cls):
            continue
        method = getattr(cls, name)
        kinds = {p.kind for p in inspect.signature(method).parameters.values() if p.name != "self"}
        if not kinds <= {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}:
            return method
    return getattr(owner, name)


def shape(function: Callable[..., Any]) -> list[tuple[str, Any, bool]]:
    """Each parameter's name, kind and whether it has a default: what a caller relies on."""
    return [
        (p.name, p.kind, p.default is not inspect.Parameter.empty)
        for p in inspect.signature(function).parameters.values()
    ]


# --- the pin -----------------------------------------------------------------------------------


def test_installed_rq_is_the_major_version_pinned_in_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(each) for each in project["dependencies"]]
    pins = [each for each in found if each.name == "rq"]
    assert len(pins) == 1, "pyproject.toml must list rq exactly once in [project] dependencies"
    pin = pins[0].specifier
    lower = [Version(each.version) for each in pin if each.operator == ">="]
    upper = [Version(each.version) for each in pin if each.operator == "<"]
    assert len(lower) == 1 and len(upper) == 1, (
        f"pyproject.toml: rq{pin} must pin one major version (rq>=N.m,<N+1): the workers "
        "override RQ internals that RQ changes between majors"
    )
    major = lower[0].major
    assert upper[0] == Version(str(major + 1)), (
        f"pyproject.toml: rq{pin} admits more than one major version (want <{major + 1})"
    )
    installed = Version(importlib.metadata.version("rq"))
    assert installed.major == major and installed in pin, (
        f"rq {installed} is installed but pyproject.toml pins rq{pin}: run "
        "tests/test_rq_contract.py against it, fix the worker code it names, then move the pin"
    )


# --- what the workers import -----------------------------------------------------------------

IMPORTS = [
    ("rq", "Queue", f"{WORKER}, {DELIVERIES}, {SWEEPER}, {QUEUE}"),
    ("rq", "SimpleWorker", f"{WORKER} ScoringWorker, {DELIVERIES} DeliveryWorker"),
    ("rq", "Worker", f"{QUEUE} live_scoring_workers, {OPERATIONS} queue_status"),
    ("rq", "get_current_job", f"{DELIVERIES} attempt_number, moderation/core/logs.py"),
    ("rq", "Callback", f"{QUEUE} ScoringEnqueuer._enqueue (on_failure)"),
    ("rq", "Retry", f"{QUEUE} ScoringEnqueuer._enqueue, DeliveryEnqueuer"),
    ("rq.exceptions", "StopRequested", f"{WORKER}, {DELIVERIES}, {OUTAGES}"),
    ("rq.exceptions", "NoSuchJobError", f"{SWEEPER} needs_new_job, is_taken"),
    ("rq.executions", "Execution", f"{WORKER} start_batch, {DELIVERIES} perform_in_thread"),
    ("rq.job", "Job", f"{WORKER}, {SWEEPER}, workers/jobs.py scoring_failed"),
    ("rq.job", "JobStatus", f"{SWEEPER} WAITING, needs_new_job"),
    ("rq.utils", "now", f"{SWEEPER} overdue"),
    ("rq.timeouts", "JobTimeoutException", f"{WORKER} ScoringWorker.prescore_pass"),
    ("rq.timeouts", "TimerDeathPenalty", f"{DELIVERIES} DeliveryWorker"),
    ("rq.worker", "WorkerStatus", f"{WORKER} ScoringWorker.execute_job"),
    ("rq.worker", "BaseWorker", f"{OUTAGES} RidesOutOutages"),
    ("rq.registry", "FailedJobRegistry", f"{OPERATIONS} queue_status, requeue_failed"),
    ("rq.registry", "ScheduledJobRegistry", f"{OPERATIONS} queue_status"),
    ("rq.registry", "StartedJobRegistry", f"{OPERATIONS} queue_status"),
    ("rq.scheduler", "RQScheduler", f"{OUTAGES} heartbeat_and_mend (worker.scheduler)"),
]


@pytest.mark.parametrize(("module", "name", "used_by"), IMPORTS)
def test_the_names_the_workers_import_are_still_there(module: str, name: str, used_by: str) -> None:
    try:
        found = getattr(importlib.import_module(module), name, None)
    except ImportError:
        found = None
    assert found is not None, rq_failure(f"`from {module} import {name}` fails", used_by)


def test_the_job_and_worker_states_the_workers_name_exist() -> None:
    for status in ("QUEUED", "SCHEDULED", "DEFERRED", "STARTED", "FINISHED", "FAILED"):
        assert hasattr(JobStatus, status), rq_failure(
            f"JobStatus.{status} is gone",
            "workers/scoring/sweeper.py WAITING, needs_new_job",
        )
    for state in ("IDLE", "BUSY"):
        assert hasattr(WorkerStatus, state), rq_failure(
            f"WorkerStatus.{state} is gone",
            "workers/scoring/worker.py ScoringWorker.execute_job (IDLE); "
            "RQ's warm shutdown (BUSY) that "
            "workers/outages.py wait_for_redis relies on",
        )


# --- the overrides -------------------------------------------------------------------------

#: (worker class, RQ method it overrides, the worker code that depends on RQ calling it).
OVERRIDES = [
    (ScoringWorker, "dequeue_job_and_maintain_ttl", f"{WORKER} (language queues, one at a time)"),
    (ScoringWorker, "execute_job", f"{WORKER} ScoringWorker.execute_job (batching)"),
    (ScoringWorker, "register_birth", f"{WORKER} register_birth (models registered first)"),
    (ScoringWorker, "register_death", f"{WORKER} ScoringWorker.register_death"),
    (ScoringWorker, "run_maintenance_tasks", f"{WORKER} (sweeper, retention, retraining)"),
    (DeliveryWorker, "dequeue_job_and_maintain_ttl", f"{DELIVERIES} (a free thread first)"),
    (DeliveryWorker, "execute_job", f"{DELIVERIES} DeliveryWorker.execute_job (thread pool)"),
    (DeliveryWorker, "teardown", f"{DELIVERIES} DeliveryWorker.teardown (finish deliveries)"),
    (DeliveryWorker, "run_maintenance_tasks", f"{DELIVERIES} run_maintenance_tasks (outbox)"),
    (RidesOutOutages, "heartbeat", f"{OUTAGES} heartbeat (mends registration, scheduler)"),
    (RidesOutOutages, "set_state", f"{OUTAGES} RidesOutOutages.set_state"),
    (RidesOutOutages, "check_for_suspension", f"{OUTAGES} check_for_suspension"),
    (RidesOutOutages, "run_maintenance_tasks", f"{OUTAGES} run_maintenance_tasks"),
    (RidesOutOutages, "teardown", f"{OUTAGES} RidesOutOutages.teardown"),
    (RidesOutOutages, "subscribe", f"{OUTAGES} subscribe (stop signals to the main thread)"),
]

#: The workers' own methods: RQ must not have (or grow) methods of these names, which the
#: workers would then override by accident.
OWN_METHODS = {
    ScoringWorker: {
        "take_waiting",
        "start_batch",
        "mark_started",
        "more_jobs",
        "waiting_jobs",
        "work_on",
        "passes",
        "waiting_checks",
        "prescore_pass",
        "perform_pass",
        "finish_together",
        "give_back",
    },
    DeliveryWorker: {"__init__", "perform_in_thread"},
    RidesOutOutages: {"ride_out", "wait_for_redis", "heartbeat_and_mend"},
}

#: Class attributes the workers set to change RQ's behaviour.
CLASS_ATTRIBUTES = [
    (DeliveryWorker, "death_penalty_class", f"{DELIVERIES} DeliveryWorker (timeouts in threads)"),
    (RidesOutOutages, "max_connection_wait_time", f"{OUTAGES} (backoff cap while Redis is down)"),
]


@pytest.mark.parametrize(("worker_class", "name", "used_by"), OVERRIDES)
def test_each_override_still_overrides_an_rq_method_of_the_same_shape(
    worker_class: type, name: str, used_by: str
) -> None:
    rq_method = getattr(SimpleWorker, name, None)
    assert callable(rq_method), rq_failure(
        f"SimpleWorker.{name} is gone: {worker_class.__name__}.{name} is never called", used_by
    )
    ours = vars(worker_class)[name]
    assert shape(ours) == shape(rq_method), rq_failure(
        f"SimpleWorker.{name}{inspect.signature(rq_method)} no longer matches the override "
        f"{worker_class.__name__}.{name}{inspect.signature(ours)}",
        used_by,
    )


@pytest.mark.parametrize(("worker_class", "name", "used_by"), CLASS_ATTRIBUTES)
def test_the_class_attributes_the_workers_set_are_rq_settings(
    worker_class: type, name: str, used_by: str
) -> None:
    assert name in vars(worker_class)
    assert hasattr(BaseWorker, name), rq_failure(
        f"BaseWorker.{name} is gone, so setting it changes nothing", used_by
    )


def test_the_workers_own_methods_do_not_shadow_rq_methods() -> None:
    for worker_class, names in OWN_METHODS.items():
        for name in names - {"__init__"}:
            assert not hasattr(SimpleWorker, name), rq_failure(
                f"SimpleWorker now has its own `{name}`, which {worker_class.__name__}.{name} "
                "overrides by accident",
                f"{worker_class.__module__.replace('.', '/')}.py {worker_class.__name__}.{name}",
            )
    assert "threads" not in parameters(SimpleWorker.__init__), rq_failure(
        "SimpleWorker.__init__ now takes `threads`, which DeliveryWorker.__init__ keeps for itself",
        f"{DELIVERIES} DeliveryWorker.__init__",
    )


def test_every_method_of_the_worker_classes_is_classified_here() -> None:
    """A method added to a worker class is either an RQ override (then listed in OVERRIDES,
    and checked above) or the worker's own (OWN_METHODS, checked not to shadow RQ)."""
    listed = {(cls, name) for cls, name, _ in OVERRIDES + CLASS_ATTRIBUTES}
    listed |= {(cls, name) for cls, names in OWN_METHODS.items() for name in names}
    for worker_class in OWN_METHODS:
        defined = {
            name
            for name in vars(worker_class)
            if name == "__init__" or not (name.startswith("__") and name.endswith("__"))
        }
        unlisted = sorted(name for name in defined if (worker_class, name) not in listed)
        assert not unlisted, (
            f"{worker_class.__name__} defines {unlisted}: add each to OVERRIDES (it replaces an "
            "RQ method) or OWN_METHODS in tests/test_rq_contract.py"
        )


# --- what the workers call, and with which arguments -------------------------------------

#: (owner, attribute, leading positional parameter names, keyword parameters, used by).
RUN = f"{WORKER} run_worker, {DELIVERIES} run_delivery_worker"
CALLS: list[tuple[Any, str, list[str], list[str], str]] = [
    (
        SimpleWorker,
        "__init__",
        ["queues"],
        ["connection", "name", "log_job_description", "maintenance_interval", "worker_ttl"],
        RUN,
    ),
    (SimpleWorker, "work", [], ["burst", "with_scheduler", "logging_level"], RUN),
    (
        SimpleWorker,
        "prepare_execution",
        ["job"],
        [],
        f"{DELIVERIES} DeliveryWorker.execute_job",
    ),
    (
        Execution,
        "create",
        ["job", "ttl"],
        ["pipeline", "worker_name"],
        f"{WORKER} ScoringWorker.mark_started (prepare_execution for a whole batch)",
    ),
    (SimpleWorker, "get_heartbeat_ttl", ["job"], [], f"{WORKER} ScoringWorker.mark_started"),
    (SimpleWorker, "set_state", ["state"], ["pipeline"], f"{WORKER} ScoringWorker.mark_started"),
    (
        SimpleWorker,
        "perform_job",
        ["job", "queue", "execution"],
        [],
        f"{WORKER} ScoringWorker.execute_job, {DELIVERIES} DeliveryWorker.perform_in_thread",
    ),
    (
        SimpleWorker,
        "dequeue_job_and_maintain_ttl",
        ["timeout"],
        ["max_idle_time"],
        f"{WORKER} ScoringWorker.dequeue_job_and_maintain_ttl (its super() call)",
    ),
    (
        SimpleWorker,
        "heartbeat",
        ["timeout", "pipeline"],
        [],
        f"{OUTAGES} heartbeat_and_mend (super().heartbeat(timeout, pipe))",
    ),
    (SimpleWorker, "register_birth", [], [], f"{OUTAGES} heartbeat_and_mend"),
    (Queue, "__init__", ["name"], ["connection"], f"{QUEUE}, {SWEEPER} taken_but_not_started"),
    (
        Queue,
        "dequeue_any",
        ["queues", "timeout"],
        ["connection", "job_class", "serializer", "death_penalty_class"],
        f"{WORKER} ScoringWorker.take_waiting, waiting_jobs",
    ),
    (
        Queue,
        "enqueue_call",
        ["func"],
        [
            "args",
            "timeout",
            "result_ttl",
            "failure_ttl",
            "retry",
            "on_failure",
            "description",
            "meta",
            "pipeline",
            "at_front",
        ],
        f"{QUEUE} ScoringEnqueuer._enqueue, DeliveryEnqueuer.__call__",
    ),
    (Queue, "enqueue", ["f"], [], f"{QUEUE} LearningEnqueuer.__call__"),
    (Queue, "enqueue_in", ["time_delta", "func"], [], f"{QUEUE} LearningEnqueuer.__call__"),
    (Queue, "fetch_job", ["job_id"], [], f"{OPERATIONS} requeue_failed"),
    (Job, "fetch", ["id"], ["connection"], f"{SWEEPER} needs_new_job, is_taken"),
    (
        Job,
        "fetch_many",
        ["job_ids"],
        ["connection", "serializer"],
        f"{SWEEPER} withdraw_waiting, {WORKER} ScoringWorker.waiting_jobs",
    ),
    (Job, "get_status", ["refresh"], [], f"{SWEEPER} taken_but_not_started, needs_new_job"),
    (
        Job,
        "prepare_for_execution",
        ["worker_name", "pipeline"],
        [],
        f"{WORKER} ScoringWorker.mark_started",
    ),
    (Job, "cancel", [], [], f"{SWEEPER} withdraw_waiting"),
    (Retry, "__init__", [], ["max", "interval"], f"{QUEUE} ScoringEnqueuer, DeliveryEnqueuer"),
    (Callback, "__init__", ["func"], [], f"{QUEUE} ScoringEnqueuer._enqueue"),
    (RQScheduler, "acquire_locks", [], ["auto_start"], f"{OUTAGES} heartbeat_and_mend"),
    (BaseWorker, "all", [], ["connection", "queue"], f"{QUEUE} live_scoring_workers"),
    (StartedJobRegistry, "__init__", [], ["queue"], f"{OPERATIONS} queue_status"),
    (ScheduledJobRegistry, "__init__", [], ["queue"], f"{OPERATIONS} queue_status"),
    (FailedJobRegistry, "__init__", [], ["queue"], f"{OPERATIONS} queue_status"),
    (FailedJobRegistry, "get_job_ids", [], [], f"{OPERATIONS} requeue_failed"),
    (FailedJobRegistry, "remove", ["job"], [], f"{OPERATIONS} requeue_failed"),
    (FailedJobRegistry, "requeue", ["job_or_id"], [], f"{OPERATIONS} requeue_failed"),
    (
        TimerDeathPenalty,
        "__init__",
        ["timeout", "exception"],
        [],
        f"{DELIVERIES} DeliveryWorker (RQ builds it with job_id=)",
    ),
    # RQ's perform_job and handle_job_success, step by step, for a pass of scoring jobs.
    (Job, "perform", [], [], f"{WORKER} ScoringWorker.perform_pass"),
    (
        SimpleWorker,
        "_finalize_failure",
        ["job", "queue", "execution", "exc_info"],
        [],
        f"{WORKER} ScoringWorker.perform_pass",
    ),
    (Job, "get_result_ttl", ["default_ttl"], [], f"{WORKER} ScoringWorker.finish_together"),
    (
        SimpleWorker,
        "increment_successful_job_count",
        [],
        ["pipeline"],
        f"{WORKER} ScoringWorker.finish_together",
    ),
    (
        SimpleWorker,
        "increment_total_working_time",
        ["job_execution_time", "pipeline"],
        [],
        f"{WORKER} ScoringWorker.finish_together",
    ),
    (
        Job,
        "_handle_success",
        ["result_ttl", "pipeline"],
        ["worker_name", "execution_id", "execution_started_at", "execution_ended_at"],
        f"{WORKER} ScoringWorker.finish_together",
    ),
    (Job, "cleanup", ["ttl", "pipeline"], ["remove_from_queue"], f"{WORKER} finish_together"),
    (
        SimpleWorker,
        "cleanup_execution",
        ["job", "pipeline"],
        ["execution"],
        f"{WORKER} ScoringWorker.finish_together",
    ),
    (SimpleWorker, "heartbeat", [], ["pipeline"], f"{WORKER} ScoringWorker.finish_together"),
    (Job, "set_status", ["status", "pipeline"], [], f"{WORKER} ScoringWorker.give_back"),
    (
        Queue,
        "push_job_id",
        ["job_id", "pipeline", "at_front"],
        [],
        f"{WORKER} ScoringWorker.give_back",
    ),
]


@pytest.mark.parametrize(
    ("owner", "name", "positional", "keywords", "used_by"),
    CALLS,
    ids=[f"{owner.__name__}.{name}" for owner, name, *_ in CALLS],
)
def test_the_methods_the_workers_call_take_the_arguments_they_pass(
    owner: Any, name: str, positional: list[str], keywords: list[str], used_by: str
) -> None:
    method = getattr(owner, name, None)
    assert callable(method), rq_failure(f"{owner.__name__}.{name} is gone", used_by)
    method = passed_through(owner, name)
    names = parameters(method)
    signature = inspect.signature(method)
    assert names[: len(positional)] == positional, rq_failure(
        f"{owner.__name__}.{name}{signature} no longer starts with {positional}", used_by
    )
    missing = [each for each in keywords if each not in names]
    assert not missing, rq_failure(
        f"{owner.__name__}.{name}{signature} no longer takes {missing}", used_by
    )
    # Arguments the workers leave out must still be optional.
    given = set(positional) | set(keywords)
    required = [
        p.name
        for p in signature.parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in given | {"self", "cls"}
    ]
    assert not required, rq_failure(
        f"{owner.__name__}.{name}{signature} now requires {required}", used_by
    )


def test_the_death_penalty_is_built_with_job_id_as_perform_job_does() -> None:
    """RQ builds `death_penalty_class(timeout, JobTimeoutException, job_id=...)`: the class
    the delivery worker sets must accept it, and so must the default one, which
    workers/scoring/worker.py ScoringWorker.prescore_pass builds as
    `(timeout, JobTimeoutException)`."""
    source = inspect.getsource(BaseWorker.perform_job)
    assert "self.death_penalty_class(" in source, rq_failure(
        "perform_job no longer builds the job timeout from self.death_penalty_class",
        "workers/deliveries.py DeliveryWorker.death_penalty_class = TimerDeathPenalty",
    )
    for penalty in (TimerDeathPenalty, SimpleWorker.death_penalty_class):
        kinds = {p.kind for p in inspect.signature(penalty.__init__).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD in kinds, rq_failure(
            f"{penalty.__name__} no longer takes **kwargs (RQ passes job_id=)",
            "workers/deliveries.py DeliveryWorker, workers/scoring/worker.py prescore_pass",
        )


# --- a real worker's attributes ----------------------------------------------------------


def test_a_real_simple_worker_has_the_attributes_the_workers_use(
    redis_client: redis.Redis,
) -> None:
    queues = [Queue(unique(name), connection=redis_client) for name in ("contract-a", "b")]
    worker = SimpleWorker(queues, connection=redis_client, name=unique("contract"))
    uses = {
        "_stop_requested": f"{WORKER}, {DELIVERIES} dequeue_job_and_maintain_ttl, "
        f"{OUTAGES} wait_for_redis, heartbeat_and_mend",
        "_ordered_queues": f"{WORKER} ScoringWorker.dequeue_job_and_maintain_ttl",
        "scheduler": f"{OUTAGES} RidesOutOutages.heartbeat_and_mend",
        "queue_class": f"{WORKER} ScoringWorker.take_waiting, waiting_jobs",
        "job_class": f"{WORKER} ScoringWorker.take_waiting, waiting_jobs",
        "serializer": f"{WORKER} ScoringWorker.take_waiting, waiting_jobs",
        "death_penalty_class": f"{WORKER} ScoringWorker.take_waiting, prescore_pass",
        "connection": f"{WORKER}, {DELIVERIES}, {OUTAGES}",
        "name": f"{WORKER} mark_started, run_worker (Liveness)",
        "key": f"{OUTAGES} RidesOutOutages.heartbeat_and_mend",
    }
    for name, used_by in uses.items():
        assert hasattr(worker, name), rq_failure(f"a SimpleWorker has no `{name}`", used_by)
    assert worker._stop_requested is False, rq_failure(
        "`_stop_requested` no longer starts False", uses["_stop_requested"]
    )
    assert worker._ordered_queues == queues, rq_failure(
        "`_ordered_queues` is no longer the worker's queues in order", uses["_ordered_queues"]
    )
    assert worker.scheduler is None, rq_failure(
        "`scheduler` no longer starts None", uses["scheduler"]
    )
    assert worker.queue_class is Queue and worker.job_class is Job
    for name in ("free_threads", "pool"):  # set by DeliveryWorker.__init__ after RQ's
        assert not hasattr(worker, name), rq_failure(
            f"a SimpleWorker now has its own `{name}`, which DeliveryWorker overwrites",
            "workers/deliveries.py DeliveryWorker.__init__",
        )


# --- behaviour: enqueueing -----------------------------------------------------------------


def test_enqueue_call_on_a_multi_pipeline_writes_nothing_until_it_executes(
    redis_client: redis.Redis, settings: Settings
) -> None:
    used_by = (
        f"moderation/storage/comment_store.py accept, requeue with {QUEUE} ScoringEnqueuer "
        "(one MULTI/EXEC)"
    )
    enqueue = ScoringEnqueuer(redis_client, settings)
    queue = scoring_queue(redis_client)
    earlier = queue.enqueue_call(ADD, args=(1, 1))
    with redis_client.pipeline() as pipe:
        pipe.watch("contract:comment")
        pipe.multi()
        job_id = enqueue.ahead(pipe, "news", "c-1")
        assert queue.count == 1 and not redis_client.exists(Job.key_for(job_id)), rq_failure(
            "enqueue_call(pipeline=p) wrote to Redis before p executed", used_by
        )
        pipe.execute()
    assert queue.get_job_ids() == [job_id, earlier.id], rq_failure(
        "enqueue_call(pipeline=p, at_front=True) did not put the job first once p executed",
        "moderation/storage/job_queues.py ScoringEnqueuer.ahead, to_language(at_front=...)",
    )
    job = Job.fetch(job_id, connection=redis_client)
    retries = settings.job_retries
    assert (job.func_name, tuple(job.args), job.origin) == (
        "workers.jobs.score_comment",
        ("news", "c-1"),
        queue.name,
    ), rq_failure(
        "the job's func_name, args or origin changed",
        f"{WORKER} prescore_pass, {SWEEPER} orphaned, workers/jobs.py scoring_failed",
    )
    assert job.timeout == settings.job_timeout and job.result_ttl == SCORING_RESULT_TTL
    intervals = list(settings.scoring_retry_intervals[:retries])
    assert (job.retries_left, job.retry_intervals) == (retries, intervals), rq_failure(
        "Retry(max, interval) is kept otherwise", "workers/jobs.py scoring_failed"
    )
    assert job.failure_callback is not None, rq_failure(
        "on_failure=Callback('dotted.path') is lost", "workers/jobs.py scoring_failed"
    )
    assert job.get_status(refresh=True) is JobStatus.QUEUED
    assert job.get_status(refresh=False) in WAITING

    # WATCH saw a change: EXEC fails and RQ must have queued nothing outside the transaction.
    with redis_client.pipeline() as pipe:
        pipe.watch("contract:comment")
        pipe.multi()
        lost = enqueue(pipe, "news", "c-2")
        redis_client.set("contract:comment", "changed meanwhile")
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert queue.count == 2 and not redis_client.exists(Job.key_for(lost)), rq_failure(
        "an aborted MULTI still left the job behind", used_by
    )


def test_enqueue_options_are_rq_options_not_job_arguments(
    redis_client: redis.Redis, settings: Settings
) -> None:
    """`Queue.enqueue(f, **options)` takes RQ's options out of `options`; one RQ no longer
    knows would silently become a keyword argument of the job function."""
    used_by = (
        "moderation/storage/job_queues.py LearningEnqueuer.__call__ "
        "(job_timeout, at_front, meta...)"
    )
    learning = LearningEnqueuer(redis_client, settings)
    queue = scoring_queue(redis_client)
    assert learning("news") and learning("forum", delay=60)
    (now_id,) = queue.get_job_ids()
    (later_id,) = ScheduledJobRegistry(queue=queue).get_job_ids()
    for job_id in (now_id, later_id):
        job = Job.fetch(job_id, connection=redis_client)
        assert job.kwargs == {}, rq_failure(f"enqueue passed {job.kwargs} to the job", used_by)
        assert job.timeout == RETRAIN_TIMEOUT and job.description == "retrain site models"
    assert Job.fetch(later_id, connection=redis_client).get_status() is JobStatus.SCHEDULED, (
        rq_failure("enqueue_in no longer schedules the job", used_by)
    )
    assert queue_status(queue)["scheduled"] == 1 and queue_status(queue)["queued"] == 1

    meta = {"request_id": "req-1"}
    job = queue.enqueue_call(ADD, args=(1, 2), meta=meta)
    assert Job.fetch(job.id, connection=redis_client).meta == meta, rq_failure(
        "enqueue_call(meta=...) is not the fetched job's `meta`",
        "moderation/core/logs.py _job_request_id (request ids in the workers' logs)",
    )
    job_id = DeliveryEnqueuer(redis_client, settings)(None, "news", "c-1")
    assert delivery_queue(redis_client).get_job_ids() == [job_id], rq_failure(
        "enqueue_call(pipeline=None) does not enqueue at once",
        "moderation/storage/job_queues.py DeliveryEnqueuer.__call__",
    )


# --- behaviour: dequeueing -----------------------------------------------------------------


def test_dequeue_any_moves_atomically_only_from_a_single_queue(
    redis_client: redis.Redis,
) -> None:
    used_by = (
        "workers/scoring/worker.py (one queue at a time), "
        "workers/scoring/sweeper.py taken_but_not_started"
    )
    one = Queue(unique("contract-one"), connection=redis_client)
    other = Queue(unique("contract-other"), connection=redis_client)
    job = one.enqueue_call(ADD, args=(1, 2))
    found = Queue.dequeue_any([one], None, connection=redis_client)
    assert found is not None and found[0].id == job.id and found[1].name == one.name
    assert redis_client.lrange(one.intermediate_queue_key, 0, -1) == [job.id.encode()], rq_failure(
        "a one-queue dequeue no longer parks the job in intermediate_queue_key", used_by
    )
    job = one.enqueue_call(ADD, args=(1, 2))
    found = Queue.dequeue_any([other, one], None, connection=redis_client)
    assert found is not None and found[0].id == job.id
    assert Queue.dequeue_any([one], None, connection=redis_client) is None, rq_failure(
        "dequeue_any(queues, None) waits on an empty queue",
        "workers/scoring/worker.py take_waiting",
    )


def test_rq_dequeues_from_the_ordered_queues_the_scoring_worker_narrows(
    redis_client: redis.Redis,
) -> None:
    used_by = "workers/scoring/worker.py ScoringWorker.dequeue_job_and_maintain_ttl"
    french = Queue(language_queue_name("fr"), connection=redis_client)
    shared = scoring_queue(redis_client)
    worker = ScoringWorker([french, shared], connection=redis_client, name=unique("scoring"))
    maintained(worker)
    BaseWorker.register_birth(worker)  # RQ's own: ScoringWorker's would load the models
    try:
        on_shared = shared.enqueue_call(ADD, args=(1, 2))
        on_french = french.enqueue_call(ADD, args=(3, 4))
        found = worker.dequeue_job_and_maintain_ttl(None)
        assert found is not None and found[0].id == on_french.id, used_by
        found = worker.dequeue_job_and_maintain_ttl(None)
        assert found is not None and found[0].id == on_shared.id, rq_failure(
            "RQ's dequeue no longer reads `_ordered_queues`", used_by
        )
        assert redis_client.lrange(shared.intermediate_queue_key, 0, -1) == [
            on_shared.id.encode()
        ], rq_failure("RQ's dequeue on the narrowed `_ordered_queues` is not an LMOVE", used_by)
        assert worker._ordered_queues == [french, shared]
        assert worker.dequeue_job_and_maintain_ttl(None) is None, rq_failure(
            "dequeue_job_and_maintain_ttl(None) (burst) no longer returns None when idle", used_by
        )
    finally:
        BaseWorker.register_death(worker)

    # The shared-queue wait must end after `max_idle_time`, so that the worker goes back to its
    # language queues (LANGUAGE_QUEUE_POLL).
    plain = maintained(SimpleWorker([shared], connection=redis_client, name=unique("plain")))
    started = time.monotonic()
    assert plain.dequeue_job_and_maintain_ttl(1, max_idle_time=1) is None
    assert time.monotonic() - started < 5, rq_failure(
        "dequeue_job_and_maintain_ttl(1, max_idle_time=1) kept waiting on an empty queue", used_by
    )


# --- behaviour: a batch, performed step by step as ScoringWorker.execute_job does -------------


def test_the_scoring_workers_batch_steps(redis_client: redis.Redis) -> None:
    used_by = "workers/scoring/worker.py ScoringWorker.execute_job, start_batch, mark_started"
    french = Queue(language_queue_name("fr"), connection=redis_client)
    shared = scoring_queue(redis_client)
    worker = ScoringWorker([french, shared], connection=redis_client, name=unique("scoring"))
    maintained(worker)
    BaseWorker.register_birth(worker)
    try:
        jobs = [shared.enqueue_call(ADD, args=(n, n)) for n in range(3)]
        first = worker.dequeue_job_and_maintain_ttl(None)
        assert first is not None
        batch = [first, *worker.waiting_jobs(shared, 5)]
        assert [job.id for job, _ in batch] == [job.id for job in jobs]
        assert redis_client.llen(shared.intermediate_queue_key) == 3, rq_failure(
            "a one-queue dequeue no longer parks the job in `intermediate_queue_key`",
            "workers/scoring/worker.py mark_started, workers/scoring/sweeper.py is_taken",
        )
        executions = worker.mark_started(batch)
        # A worker of several queues takes its jobs off the intermediate list itself (RQ's
        # perform_job does it only for one queue), or RQ's maintenance would later fail them.
        assert redis_client.llen(shared.intermediate_queue_key) == 0
        for job, _ in batch:
            fetched = Job.fetch(job.id, connection=redis_client)
            assert fetched.get_status(refresh=False) is JobStatus.STARTED, rq_failure(
                "prepare_for_execution(name, pipeline) did not mark the job started", used_by
            )
            assert fetched.started_at is not None, rq_failure(
                "prepare_for_execution no longer records started_at",
                "workers/scoring/worker.py mark_started, workers/scoring/sweeper.py overdue",
            )
            assert fetched.worker_name == worker.name, rq_failure(
                "the job hash field `worker_name` is no longer Job.worker_name",
                "workers/scoring/worker.py mark_started, workers/scoring/sweeper.py needs_new_job",
            )
        assert all(isinstance(each, Execution) for each in executions), rq_failure(
            "Execution.create no longer returns an rq.executions.Execution", used_by
        )
        assert {each.id for each in executions} <= set(worker.executions), rq_failure(
            "Worker.executions no longer holds the executions in hand (RQ's prepare_execution)",
            used_by,
        )
        registered = StartedJobRegistry(queue=shared).get_job_ids()
        assert {job.id for job, _ in batch} <= set(registered), rq_failure(
            "Execution.create no longer puts the job in the StartedJobRegistry", used_by
        )
        assert worker.get_state() == WorkerStatus.BUSY, rq_failure(
            "set_state(BUSY, pipeline=...) no longer sets the worker BUSY (the state a warm "
            "shutdown reads)",
            used_by,
        )
        for (job, queue), execution in zip(batch, executions, strict=True):
            assert worker.perform_job(job, queue, execution) is True
            assert job.get_status() is JobStatus.FINISHED, rq_failure(
                "perform_job(job, queue, execution) did not finish a prepared job", used_by
            )
        assert [job.return_value() for job, _ in batch] == [0, 2, 4]
    finally:
        BaseWorker.register_death(worker)


def test_a_pass_of_jobs_finished_together(redis_client: redis.Redis) -> None:
    """What `finish_together` writes leaves each job as RQ's own `perform_job` leaves it."""
    used_by = "workers/scoring/worker.py ScoringWorker.perform_pass, finish_together"
    shared = scoring_queue(redis_client)
    worker = ScoringWorker([shared], connection=redis_client, name=unique("scoring"))
    maintained(worker)
    BaseWorker.register_birth(worker)
    try:
        for n in range(3):
            shared.enqueue_call(ADD, args=(n, n), result_ttl=SCORING_RESULT_TTL)
        first = worker.dequeue_job_and_maintain_ttl(None)
        assert first is not None
        batch = [first, *worker.waiting_jobs(shared, 5)]
        executions = worker.mark_started(batch)
        done = []
        for (job, queue), execution in zip(batch, executions, strict=True):
            job.started_at = rq_now()
            job.perform()
            job.ended_at = rq_now()
            done.append(((job, queue), execution))
        worker.finish_together(done)

        started = StartedJobRegistry(queue=shared).get_job_ids()
        finished = FinishedJobRegistry(queue=shared).get_job_ids()
        for (job, _), execution in done:
            fetched = Job.fetch(job.id, connection=redis_client)
            assert fetched.get_status() is JobStatus.FINISHED, rq_failure(
                "_handle_success(result_ttl, pipeline) no longer marks the job finished", used_by
            )
            assert fetched.return_value() == 2 * int(job.args[0]), rq_failure(
                "_handle_success no longer saves the job's result", used_by
            )
            assert job.id in finished and job.id not in started, rq_failure(
                "the job is not moved from the started to the finished registry", used_by
            )
            assert 0 < redis_client.ttl(job.key) <= SCORING_RESULT_TTL, rq_failure(
                "cleanup(result_ttl, pipeline) no longer expires the finished job", used_by
            )
            assert not redis_client.exists(execution.key), rq_failure(
                "cleanup_execution no longer deletes the execution", used_by
            )
        assert not worker.executions
        assert int(redis_client.hget(worker.key, "successful_job_count") or 0) == 3, rq_failure(
            "increment_successful_job_count(pipeline) no longer counts", used_by
        )
    finally:
        BaseWorker.register_death(worker)


# --- behaviour: the delivery worker's threads ------------------------------------------------


def test_a_job_performed_in_a_delivery_thread(redis_client: redis.Redis) -> None:
    used_by = "workers/deliveries.py DeliveryWorker.execute_job, perform_in_thread"
    queue = delivery_queue(redis_client)
    worker = DeliveryWorker([queue], connection=redis_client, name=unique("delivery"), threads=2)
    maintained(worker)
    BaseWorker.register_birth(worker)
    try:
        job = queue.enqueue_call(CURRENT_JOB_ID)
        found = worker.dequeue_job_and_maintain_ttl(None)
        assert found is not None
        worker.execute_job(*found)
        worker.pool.shutdown(wait=True)
        assert job.get_status() is JobStatus.FINISHED, rq_failure(
            "a job performed outside the main thread failed (TimerDeathPenalty?)", used_by
        )
        assert job.return_value() == job.id, rq_failure(
            "get_current_job() is not the job inside a job run in a thread",
            "workers/deliveries.py attempt_number, moderation/core/logs.py ContextFilter",
        )
        assert redis_client.llen(queue.intermediate_queue_key) == 0, rq_failure(
            "perform_job no longer takes a one-queue worker's job off the intermediate list",
            "workers/scoring/sweeper.py taken_but_not_started",
        )
    finally:
        BaseWorker.register_death(worker)


class SlowTimeout(JobTimeoutException):
    """TimerDeathPenalty patches its exception class's __init__: keep that off RQ's own."""


def test_timer_death_penalty_stops_work_in_the_thread_that_set_it() -> None:
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            with TimerDeathPenalty(0.2, SlowTimeout, job_id="contract"):
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    time.sleep(0.01)
        except SlowTimeout as error:
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert len(outcome) == 1, rq_failure(
        "TimerDeathPenalty no longer interrupts the thread that set it",
        "workers/deliveries.py DeliveryWorker.death_penalty_class (delivery timeouts)",
    )


# --- behaviour: retries and the failure callback ------------------------------------------


def test_retries_left_as_the_failure_callback_and_the_job_see_it(
    redis_client: redis.Redis,
) -> None:
    """The failure callback runs on every failed try, before RQ counts the retry down: a
    callback that sees `retries_left == 0` runs after the last try."""
    queue = Queue(unique("contract-retries"), connection=redis_client)
    worker = SimpleWorker([queue], connection=redis_client, name=unique("plain"))
    job = queue.enqueue_call(
        FAIL_RECORDING_ATTEMPT,
        retry=Retry(max=2, interval=[0, 0]),
        on_failure=Callback(RECORD_FAILURE),
    )
    for _ in range(3):
        found = Queue.dequeue_any([queue], None, connection=redis_client)
        assert found is not None, "a retry with no interval was not queued again"
        assert worker.perform_job(*found, worker.prepare_execution(found[0])) is False
    assert Queue.dequeue_any([queue], None, connection=redis_client) is None
    assert attempts_seen == [1, 2, 3], rq_failure(
        "retries_left/retry_intervals inside the job no longer count the attempts",
        "workers/deliveries.py attempt_number",
    )
    assert failures_seen == [(2, redis.Redis, 3), (1, redis.Redis, 3), (0, redis.Redis, 3)], (
        rq_failure(
            "the failure callback no longer gets (job, connection, *exc_info) on every try, "
            "with retries_left not yet counted down",
            "workers/jobs.py scoring_failed (holds the comment after the last try only)",
        )
    )
    assert job.get_status() is JobStatus.FAILED
    registry = FailedJobRegistry(queue=queue)
    assert registry.get_job_ids() == [job.id] and queue_status(queue)["failed"] == 1
    registry.requeue(job.id)
    assert queue.get_job_ids() == [job.id], rq_failure(
        "FailedJobRegistry.requeue no longer puts the job back", "moderation/ops/queue_status.py"
    )


# --- behaviour: looking jobs up, as the sweeper does ----------------------------------------


def test_job_lookups_the_sweeper_makes(redis_client: redis.Redis) -> None:
    used_by = "workers/scoring/sweeper.py needs_new_job, withdraw_waiting, is_taken"
    queue = Queue(unique("contract-sweep"), connection=redis_client)
    with pytest.raises(NoSuchJobError):
        Job.fetch("no-such-job", connection=redis_client)
    job = queue.enqueue_call(ADD, args=(1, 2))
    fetched = Job.fetch_many([job.id, "no-such-job"], connection=redis_client)
    assert [each.id if each else None for each in fetched] == [job.id, None], rq_failure(
        "Job.fetch_many no longer gives None for a missing job", used_by
    )
    status = fetched[0].get_status(refresh=False)
    assert status is JobStatus.QUEUED and status in WAITING, rq_failure(
        "get_status() is no longer a JobStatus member (the sweeper compares with `is`)", used_by
    )
    fetched[0].cancel()
    assert queue.count == 0 and job.get_status() is JobStatus.CANCELED, rq_failure(
        "job.cancel() no longer takes a waiting job off its queue", used_by
    )


# --- behaviour: a warm shutdown ----------------------------------------------------------


class MendingWorker(RidesOutOutages, SimpleWorker):
    """RidesOutOutages on RQ's SimpleWorker, as the scoring and delivery workers have it."""


def test_a_warm_shutdown_sets_stop_requested_while_busy_and_raises_when_idle(
    redis_client: redis.Redis,
) -> None:
    used_by = (
        "workers/outages.py wait_for_redis, heartbeat_and_mend; workers/scoring/worker.py and "
        "workers/deliveries.py dequeue_job_and_maintain_ttl"
    )
    queue = Queue(unique("contract-stop"), connection=redis_client)
    worker = MendingWorker([queue], connection=redis_client, name=unique("stopping"))
    worker.set_state(WorkerStatus.BUSY)
    worker.request_stop(signal.SIGTERM, None)
    assert worker._stop_requested is True, rq_failure(
        "a SIGTERM while busy no longer sets `_stop_requested`", used_by
    )
    with pytest.raises(StopRequested):  # what RidesOutOutages.wait_for_redis then does
        worker.wait_for_redis(redis.ConnectionError("down"))

    idle = MendingWorker([queue], connection=redis_client, name=unique("idle"))
    idle.set_state(WorkerStatus.IDLE)
    with pytest.raises(StopRequested):
        idle.request_stop(signal.SIGTERM, None)

    delivery = DeliveryWorker([queue], connection=redis_client, name=unique("d"), threads=1)
    delivery._stop_requested = True
    with pytest.raises(StopRequested):
        delivery.dequeue_job_and_maintain_ttl(None)
    assert delivery.free_threads.acquire(blocking=False)  # the thread was given back
    delivery.pool.shutdown()


# --- behaviour: the work loop calls the overridden hooks ----------------------------------


class RecordingWorker(MendingWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[Any] = []

    def check_for_suspension(self, burst: bool) -> None:
        self.calls.append("check_for_suspension")
        super().check_for_suspension(burst)

    def run_maintenance_tasks(self) -> None:
        self.calls.append("run_maintenance_tasks")
        super().run_maintenance_tasks()

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        self.calls.append(("dequeue_job_and_maintain_ttl", timeout, max_idle_time))
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    def execute_job(self, job: Job, queue: Queue) -> None:
        self.calls.append("execute_job")
        super().execute_job(job, queue)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        self.calls.append(("heartbeat", pipeline is not None))
        super().heartbeat(timeout, pipeline)

    def set_state(self, state: str, pipeline: Any = None) -> None:
        self.calls.append(("set_state", state, pipeline is not None))
        super().set_state(state, pipeline)

    def register_birth(self) -> None:
        self.calls.append("register_birth")
        super().register_birth()

    def register_death(self) -> None:
        self.calls.append("register_death")
        super().register_death()

    def teardown(self) -> None:
        self.calls.append("teardown")
        super().teardown()


def test_rqs_work_loop_calls_the_hooks_the_workers_override(redis_client: redis.Redis) -> None:
    queue = Queue(unique("contract-loop"), connection=redis_client)
    job = queue.enqueue_call(ADD, args=(2, 3))
    worker = RecordingWorker([queue], connection=redis_client, name=unique("loop"))
    assert worker.work(burst=True, with_scheduler=True) is True
    assert job.get_status() is JobStatus.FINISHED
    expected = {
        "check_for_suspension": f"{OUTAGES} RidesOutOutages.check_for_suspension",
        "run_maintenance_tasks": f"{WORKER}, {DELIVERIES} run_maintenance_tasks (sweeper, outbox)",
        ("dequeue_job_and_maintain_ttl", None, None): f"{WORKER} (timeout None: burst, no wait)",
        "execute_job": f"{WORKER} ScoringWorker.execute_job, {DELIVERIES} execute_job",
        ("heartbeat", False): f"{OUTAGES} heartbeat (mends registration and scheduler)",
        ("heartbeat", True): f"{OUTAGES} heartbeat (with a pipeline: left to the caller)",
        ("set_state", WorkerStatus.BUSY, True): f"{OUTAGES} set_state (from prepare_execution)",
        "register_birth": f"{WORKER} ScoringWorker.register_birth (models registered first)",
        "register_death": f"{WORKER} ScoringWorker.register_death",
        "teardown": f"{DELIVERIES} DeliveryWorker.teardown, {OUTAGES} teardown",
    }
    for call, used_by in expected.items():
        assert call in worker.calls, rq_failure(
            f"work(burst=True) no longer calls {call} (calls: {worker.calls})", used_by
        )
    assert worker.calls.index("register_birth") < worker.calls.index("execute_job")
    assert isinstance(worker.scheduler, RQScheduler), rq_failure(
        "work(with_scheduler=True) no longer sets `worker.scheduler` to an RQScheduler",
        "workers/outages.py RidesOutOutages.heartbeat_and_mend",
    )


def test_stop_requested_raised_from_a_dequeue_ends_the_work_loop(
    redis_client: redis.Redis,
) -> None:
    class Stopping(MendingWorker):
        def dequeue_job_and_maintain_ttl(
            self, timeout: int | None, max_idle_time: int | None = None
        ) -> tuple[Job, Queue] | None:
            raise StopRequested()

    queue = Queue(unique("contract-stopping"), connection=redis_client)
    worker = Stopping([queue], connection=redis_client, name=unique("stopping"))
    assert worker.work(burst=True) is False
    assert redis_client.hexists(worker.key, "death"), rq_failure(
        "StopRequested from dequeue_job_and_maintain_ttl no longer ends work() cleanly",
        "workers/scoring/worker.py and workers/deliveries.py dequeue_job_and_maintain_ttl",
    )


# --- behaviour: what RidesOutOutages mends after an outage -----------------------------------


def scheduler_registered(connection: redis.Redis, scheduler: RQScheduler) -> bool:
    """Whether the scheduler's current process has registered (its loop, and its own SIGTERM
    handler, are in place); it must not have died meanwhile."""
    process = scheduler._process
    assert process is not None and process.is_alive(), "the scheduler process died"
    return connection.hget(scheduler.key, "pid") == str(process.pid).encode()


def test_heartbeat_restarts_a_dead_scheduler_and_registers_a_lost_worker(
    redis_client: redis.Redis,
) -> None:
    used_by = "workers/outages.py RidesOutOutages.heartbeat_and_mend"
    queue = Queue(unique("contract-scheduler"), connection=redis_client)
    worker = MendingWorker([queue], connection=redis_client, name=unique("mending"))
    sigterm = signal.getsignal(signal.SIGTERM)
    worker.work(burst=True, with_scheduler=True)
    # work() left its SIGTERM handler in place; a scheduler process forked now would inherit it.
    signal.signal(signal.SIGTERM, sigterm)
    scheduler = worker.scheduler
    assert scheduler is not None and hasattr(scheduler, "_process"), rq_failure(
        "the worker's scheduler has no `_process`", used_by
    )
    assert not scheduler._process, "a burst worker's scheduler runs no process"
    try:
        scheduler.acquire_locks(auto_start=True)
        process = scheduler._process
        assert process is not None and process.is_alive(), rq_failure(
            "acquire_locks(auto_start=True) did not start the scheduler process in `_process`",
            used_by,
        )
        lock = redis_client.get(RQScheduler.get_locking_key(queue.name))
        assert lock is not None and lock.decode() == scheduler.name, rq_failure(
            "the scheduler's lock no longer holds its name (so it could not take it straight "
            "back after its process died)",
            used_by,
        )
        os.kill(process.pid, signal.SIGKILL)  # its lock stays, as after an outage
        process.join(5)
        redis_client.delete(worker.key)  # Redis lost the registration
        worker.heartbeat()
        assert redis_client.hexists(worker.key, "birth"), rq_failure(
            "register_birth no longer writes the `birth` field heartbeat_and_mend looks for",
            used_by,
        )
        assert scheduler._process is not process and scheduler._process.is_alive(), rq_failure(
            "the scheduler was not started again (lock held by its own name not refreshed?)",
            used_by,
        )
        wait_for(
            lambda: scheduler_registered(redis_client, scheduler),
            timeout=10,
            what=rq_failure("the restarted scheduler process to register", used_by),
        )
        registered = SimpleWorker.all(connection=redis_client, queue=queue)
        assert worker.name in {each.name for each in registered}
        worker.stop_scheduler()  # SIGTERM and join, as RQ's teardown does
        assert not scheduler._process.is_alive()
    finally:
        leftover = scheduler._process
        if leftover is not None and leftover.is_alive():
            leftover.kill()
            leftover.join(5)
        worker.register_death()


def test_live_scoring_workers_lists_registered_workers(redis_client: redis.Redis) -> None:
    queue = scoring_queue(redis_client)
    worker = SimpleWorker([queue], connection=redis_client, name="contract-live")
    worker.register_birth()
    try:
        assert live_scoring_workers(redis_client) == ["contract-live"], rq_failure(
            "Worker.all(connection=..., queue=...) no longer lists a registered worker",
            "moderation/storage/job_queues.py live_scoring_workers (/readyz, languages)",
        )
        assert isinstance(StartedJobRegistry(queue=scoring_queue(redis_client)).count, int)
    finally:
        worker.register_death()
