"""The processes the benchmark measures: the real service, and the naive RQ baseline.

Both get their own `redis-server` on a free port (tests/support/redis_server.py) and write
their logs under the run's scratch directory. CPU time per process is read from /proc (psutil)
so that a run can say where the time went: Redis, the API, the workers, the load client, and
whatever else the machine was doing meanwhile.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis
import requests
from rq import Queue, Worker
from rq.job import Job, JobStatus

from bench.stats import summary
from moderation.storage.site_store import SiteStore
from tests.support.processes import moderation_env, moderation_process, wait_for
from tests.support.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
NAIVE_QUEUE = "naive-bench"
NAIVE_JOB = "bench.naive_job.score"
BATCH_LINE = re.compile(r"scored a batch of (\d+) comments in ([0-9.]+) s")


# --- CPU accounting -------------------------------------------------------------------------


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User + system CPU seconds of a process (and its live descendants); 0 if it is gone."""
    try:
        process = psutil.Process(pid)
        members = [process, *(process.children(recursive=True) if children else [])]
    except psutil.Error:
        return 0.0
    total = 0.0
    for member in members:
        try:
            times = member.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


class CpuMeter:
    """CPU seconds per role between `start()` and `stop()`. Each role is process trees, except
    `client`: this process alone (the services are its children). `other` is everything else
    the machine did meanwhile (other people's work, the kernel)."""

    def __init__(self, roles: Mapping[str, Sequence[int]]) -> None:
        self.roles = {name: list(pids) for name, pids in roles.items()}

    def _sample(self) -> dict[str, float]:
        sample = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self.roles.items()}
        sample["client"] = cpu_seconds(os.getpid(), children=False)
        sample["machine"] = machine_busy_seconds()
        sample["wall"] = time.perf_counter()
        return sample

    def start(self) -> None:
        self._before = self._sample()

    def stop(self) -> dict[str, float]:
        after = self._sample()
        wall = after["wall"] - self._before["wall"]
        used = {name: after[name] - self._before[name] for name in [*self.roles, "client"]}
        machine = after["machine"] - self._before["machine"]
        used["other"] = max(0.0, machine - sum(used.values()))
        # Average cores busy per role over the phase.
        cores = {name: round(seconds / wall, 2) for name, seconds in used.items()}
        return {"wall_s": round(wall, 2), "cores_busy": cores}


# --- the service ----------------------------------------------------------------------------


@dataclass
class Service:
    url: str
    api_key: str
    redis_url: str
    redis_pid: int
    api_pid: int
    worker_pids: list[int]
    worker_logs: list[Path]

    def cpu_meter(self) -> CpuMeter:
        return CpuMeter(
            {
                "redis": [self.redis_pid],
                "api": [self.api_pid],
                "workers": self.worker_pids,
            }
        )


@contextmanager
def running_service(
    scratch: Path,
    workers: int,
    settings: Mapping[str, str],
    *,
    start_timeout: float = 180,
    appendonly: bool = False,
) -> Iterator[Service]:
    """Redis, `moderation serve` and `workers` x `moderation worker`, ready for comments.
    `appendonly` runs Redis as docker-compose.yml does (append-only file, fsync every second).
    The per-site rate limit is off: a benchmark measures capacity."""
    scratch.mkdir(parents=True, exist_ok=True)
    server = RedisServer(scratch / "redis", appendonly=appendonly)
    server.start()
    try:
        port = free_port()
        env = moderation_env(
            server.url,
            {
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "MODERATION_RATE_LIMIT_SITE": "off",
                **settings,
            },
        )
        with redis.Redis.from_url(server.url) as connection:
            api_key = SiteStore(connection, env["MODERATION_SECRET_KEY"]).create("bench").api_key
        with ExitStack() as stack:
            api = stack.enter_context(moderation_process(["serve"], env, scratch / "api.log"))
            logs = [scratch / f"worker{number}.log" for number in range(workers)]
            started = [
                stack.enter_context(moderation_process(["worker"], env, log)) for log in logs
            ]
            url = f"http://127.0.0.1:{port}"

            def ready() -> bool:
                for process, name in [(api, "api.log"), *zip(started, logs, strict=True)]:
                    if process.poll() is not None:
                        raise RuntimeError(f"a service process exited; see {scratch / name}")
                try:
                    body = requests.get(f"{url}/readyz", timeout=2).json()
                except (requests.RequestException, ValueError):
                    return False
                return body.get("workers") == workers

            wait_for(ready, timeout=start_timeout, interval=0.2, what="the service to be ready")
            yield Service(
                url=url,
                api_key=api_key,
                redis_url=server.url,
                redis_pid=server.process.pid if server.process else 0,
                api_pid=api.pid,
                worker_pids=[process.pid for process in started],
                worker_logs=logs,
            )
    finally:
        server.stop()


def worker_batches(logs: Sequence[Path], since: Sequence[int], comments: int) -> dict:
    """Batch sizes and batch scoring time from the workers' logs, past byte offsets `since`.
    Workers log batches of 2 or more; the rest of the `comments` were scored one per job."""
    sizes: list[int] = []
    seconds = 0.0
    for log, offset in zip(logs, since, strict=True):
        with log.open("rb") as handle:
            handle.seek(offset)
            for match in BATCH_LINE.finditer(handle.read().decode("utf-8", "replace")):
                sizes.append(int(match.group(1)))
                seconds += float(match.group(2))
    return {
        "batches": len(sizes),
        "comments_in_batches": sum(sizes),
        "mean_batch": round(sum(sizes) / len(sizes), 1) if sizes else 0,
        "single_jobs": max(0, comments - sum(sizes)),
        "batch_scoring_s": round(seconds, 2),
    }


def log_sizes(logs: Sequence[Path]) -> list[int]:
    return [log.stat().st_size for log in logs]


# --- the naive baseline -----------------------------------------------------------------------


def run_naive(
    scratch: Path, texts: Sequence[str], workers: int, model_env: Mapping[str, str]
) -> dict:
    """Stock RQ workers (a forked work horse per job) running bench.naive_job.score: every
    comment is enqueued at once; each job's time from enqueue to finished is polled."""
    scratch.mkdir(parents=True, exist_ok=True)
    server = RedisServer(scratch / "redis")
    server.start()
    env = {**os.environ, **model_env, "PYTHONUNBUFFERED": "1"}
    command = [
        str(Path(sys.executable).with_name("rq")),
        "worker",
        "--url",
        server.url,
        "--path",
        str(ROOT),
        "--disable-job-desc-logging",  # the job's argument is the comment text
        NAIVE_QUEUE,
    ]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        connection = redis.Redis.from_url(server.url)
        queue = Queue(NAIVE_QUEUE, connection=connection)
        for number in range(workers):
            with (scratch / f"rq-worker{number}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
                )
        wait_for(
            lambda: len(Worker.all(queue=queue)) == workers,
            timeout=60,
            interval=0.1,
            what="the RQ workers to register",
        )
        enqueued: list[float] = []
        jobs: list[Job] = []
        for text in texts:
            enqueued.append(time.perf_counter())
            jobs.append(queue.enqueue(NAIVE_JOB, text, job_timeout=600, result_ttl=600))
        finished: list[float | None] = [None] * len(jobs)
        failed = 0
        deadline = time.monotonic() + 600
        while any(at is None for at in finished) and time.monotonic() < deadline:
            for index, job in enumerate(jobs):
                if finished[index] is not None:
                    continue
                status = job.get_status(refresh=True)
                if status == JobStatus.FINISHED:
                    finished[index] = time.perf_counter()
                elif status == JobStatus.FAILED:
                    finished[index] = time.perf_counter()
                    failed += 1
            time.sleep(0.02)
        latencies = [f - e for e, f in zip(enqueued, finished, strict=True) if f is not None]
        run_times = []
        for job in jobs:
            job.refresh()
            if job.started_at and job.ended_at:
                run_times.append((job.ended_at - job.started_at).total_seconds())
        done = [f for f in finished if f is not None]
        elapsed = max(done) - enqueued[0] if done else float("nan")
        return {
            "workers": workers,
            "torch_threads": "torch's default (one per core), as a naive setup leaves it",
            "comments": len(texts),
            "failed": failed,
            "seconds": round(elapsed, 3),
            "comments_per_s": round((len(done) - failed) / elapsed, 3) if done else 0.0,
            "latency": summary(latencies),
            "job_run_time": summary(run_times),
        }
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        server.stop()
