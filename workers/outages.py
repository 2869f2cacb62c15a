"""Worker processes that ride out a Redis outage instead of exiting.

RQ's work loop retries only its blocking dequeue when Redis is unreachable. A Redis error
anywhere else (a heartbeat, periodic maintenance, the bookkeeping around a job) ends the loop
and the process exits, leaving the jobs it held marked as started. `RidesOutOutages` waits for
Redis at those points instead and carries on where it stopped (a worker class performs the
jobs in hand again with `ride_out`; scoring and delivery are idempotent). Its heartbeat also
mends what an outage may have cost: the worker's registration (gone if Redis came back
without its data, or expired during a long outage) and its scheduler process (which exits on
the first Redis error, so scheduled retries would wait for the next maintenance run).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import redis
from redis.client import Pipeline
from rq.exceptions import StopRequested
from rq.worker import BaseWorker

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The errors that mean "Redis is unreachable right now".
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
#: Longest pause between two checks whether Redis is back.
MAX_RECONNECT_DELAY = 1.0


#: The signals that stop a worker; its handlers for them must run in the main thread.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


@contextlib.contextmanager
def stop_signals_to_the_main_thread() -> Iterator[None]:
    """Threads started meanwhile block SIGINT and SIGTERM (a thread inherits its creator's
    signal mask), so the kernel gives those signals to the main thread. Python runs signal
    handlers only there: a signal taken by another thread left the main thread in RQ's
    blocking dequeue (minutes) with the stop request unseen, until something killed it."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class RidesOutOutages(BaseWorker):
    """Put before an RQ worker class in the bases: `class W(RidesOutOutages, SimpleWorker)`."""

    #: Caps RQ's own backoff between dequeue attempts while Redis is down (RQ: 60 s).
    max_connection_wait_time = MAX_RECONNECT_DELAY

    def ride_out(self, step: Callable[..., T], *args: Any) -> T:
        """Run `step(*args)`, again and again while Redis is unreachable, until it completes."""
        while True:
            try:
                return step(*args)
            except REDIS_DOWN as error:
                self.wait_for_redis(error)

    def wait_for_redis(self, error: Exception) -> None:
        """Block until Redis answers again. A warm shutdown requested meanwhile ends the wait
        with StopRequested (the jobs in hand are then left to the sweeper)."""
        log.warning("Redis is unavailable (%s); waiting for it to return", type(error).__name__)
        delay = 0.05
        while True:
            if self._stop_requested:
                raise StopRequested()
            try:
                self.connection.ping()
            except REDIS_DOWN:
                time.sleep(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY)
                continue
            log.warning("Redis is back; carrying on")
            return

    def heartbeat_and_mend(self, timeout: int | None) -> None:
        """RQ's heartbeat, plus: register again if Redis lost this worker (restarted without
        its data, or the registration expired during a long outage: `birth` is written only
        at registration), and restart this worker's scheduler process if an outage killed it
        (its lock carries the scheduler's name, so it takes the lock straight back)."""
        with self.connection.pipeline() as pipe:
            super().heartbeat(timeout, pipe)
            pipe.hexists(self.key, "birth")
            registered = pipe.execute()[-1]
        if not registered:
            log.warning("Redis lost this worker's registration; registering again")
            self.connection.delete(self.key)
            self.register_birth()
        scheduler = self.scheduler
        died = scheduler is not None and scheduler._process and not scheduler._process.is_alive()
        if died and not self._stop_requested:
            scheduler.acquire_locks(auto_start=True)

    # --- the work loop's Redis calls, each waiting out an outage -----------------------------

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        if pipeline is not None:  # part of the caller's transaction: the caller rides it out
            super().heartbeat(timeout, pipeline)
        else:
            self.ride_out(self.heartbeat_and_mend, timeout)

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        if pipeline is not None:
            super().set_state(state, pipeline)
        else:
            self.ride_out(super().set_state, state)

    def subscribe(self) -> None:
        """RQ's command channel, whose reading thread leaves the stop signals to the main
        thread."""
        with stop_signals_to_the_main_thread():
            super().subscribe()

    def check_for_suspension(self, burst: bool) -> None:
        self.ride_out(super().check_for_suspension, burst)

    def run_maintenance_tasks(self) -> None:
        self.ride_out(super().run_maintenance_tasks)

    def teardown(self) -> None:
        with contextlib.suppress(*REDIS_DOWN):  # exiting anyway; the registration expires
            super().teardown()
