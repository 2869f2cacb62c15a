"""Real `moderation` processes for end-to-end tests, and waiting on conditions with deadlines."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from rq import Worker

from moderation.core.redis_connections import connect
from moderation.storage.job_queues import delivery_queue, scoring_queue

T = TypeVar("T")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def wait_for(
    condition: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


def moderation_env(redis_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MODERATION_", "REDIS_URL"))
    }
    env.update(
        {
            "REDIS_URL": redis_url,
            "MODERATION_SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
            "MODERATION_TOXICITY_MODEL": "lite",
            "MODERATION_LOG_LEVEL": "info",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def live_workers(redis_url: str, deliveries: bool = False) -> list[Worker]:
    with connect(redis_url) as connection:
        queue = delivery_queue(connection) if deliveries else scoring_queue(connection)
        return Worker.all(connection=connection, queue=queue)


@contextmanager
def moderation_process(
    args: list[str], env: Mapping[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `moderation ARGS` in the background; SIGTERM it (then kill) when the block ends."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moderation.ops.cli", *args],
            env=dict(env),
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@contextmanager
def running_worker(
    redis_url: str,
    log_path: Path,
    extra_env: Mapping[str, str] | None = None,
    *,
    deliveries: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker process (scoring, or webhook deliveries), returned once RQ knows it."""
    before = {worker.name for worker in live_workers(redis_url, deliveries)}
    env = moderation_env(redis_url, extra_env)
    args = ["worker", "--deliveries"] if deliveries else ["worker"]
    with moderation_process(args, env, log_path) as process:

        def registered() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"worker exited:\n{log_path.read_text()[-3000:]}")
            return bool({w.name for w in live_workers(redis_url, deliveries)} - before)

        wait_for(registered, timeout=120, interval=0.1, what="the worker to register")
        yield process
