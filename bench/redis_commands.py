"""The embedded model end to end through the batch endpoint: decided comments per second and
the Redis commands each one costs.

    .venv/bin/python -m bench.redis_commands [--comments 6000] [--workers 2]

Starts the service (bench/stacks.py: redis-server, `moderation serve`, N workers with the
`lite` model), then posts the YouTube comments (numbered, so none is a duplicate) through
`POST /v1/comments/batch`, 100 a request from two client threads, as fast as the API takes
them, and times until every one is decided. Redis's `INFO commandstats` before and after gives
the commands per decided comment, in all and by command (the API's and the workers' together;
one MULTI/EXEC transaction counts its commands, not one). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import redis
import requests

from bench.comments import shuffled_comments
from bench.stacks import running_service
from moderation.store import CommentStore
from tests.support.processes import wait_for

BATCH = 100
CLIENTS = 2


def command_counts(connection: redis.Redis) -> dict[str, int]:
    """Calls per command so far (`INFO commandstats`), e.g. {"hset": 1200, ...}."""
    stats = connection.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}


def post_batches(url: str, api_key: str, texts: Sequence[str], ids: range) -> None:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {api_key}"}
    for first in range(ids.start, ids.stop, BATCH):
        comments = [
            {
                "id": f"c{n}",
                "content": f"{texts[n % len(texts)]} ({n})",
                "author": {"id": f"u{n % 500}"},
            }
            for n in range(first, min(ids.stop, first + BATCH))
        ]
        response = session.post(
            f"{url}/v1/comments/batch", json={"comments": comments}, headers=headers, timeout=120
        )
        response.raise_for_status()


def measure(comments: int, workers: int, settings: dict[str, str] | None = None) -> dict:
    """Start the service, decide `comments`, and report the rate and commands per comment."""
    texts = shuffled_comments()
    env = {"MODERATION_TOXICITY_MODEL": "lite", **(settings or {})}
    with (
        tempfile.TemporaryDirectory() as scratch,
        running_service(Path(scratch), workers, env) as service,
    ):
        connection = redis.Redis.from_url(service.redis_url)
        store = CommentStore(connection)
        # Warm up (first requests, first jobs), then measure from a quiet start.
        post_batches(service.url, service.api_key, texts, range(10_000_000, 10_000_200))
        wait_for(lambda: store.pending_count() == 0, timeout=120, interval=0.05)
        before = command_counts(connection)
        meter = service.cpu_meter()
        meter.start()
        started = time.perf_counter()
        share = -(-comments // CLIENTS)
        clients = [
            threading.Thread(
                target=post_batches,
                args=(
                    service.url,
                    service.api_key,
                    texts,
                    range(n * share, min(comments, (n + 1) * share)),
                ),
            )
            for n in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        accepted = time.perf_counter() - started
        wait_for(lambda: store.pending_count() == 0, timeout=1800, interval=0.05)
        decided = time.perf_counter() - started
        cpu = meter.stop()
        after = command_counts(connection)
    calls = {name: after[name] - before.get(name, 0) for name in after}
    calls = {name: count for name, count in calls.items() if count > 0 and name != "info"}
    per_comment = {
        name: round(count / comments, 2)
        for name, count in sorted(calls.items(), key=lambda item: -item[1])
    }
    return {
        "comments": comments,
        "workers": workers,
        "accepted_per_s": round(comments / accepted, 1),
        "decided_per_s": round(comments / decided, 1),
        "redis_commands_per_comment": round(sum(calls.values()) / comments, 1),
        "cpu_ms_per_comment": {
            role: round(1000 * cores * cpu["wall_s"] / comments, 2)
            for role, cores in cpu["cores_busy"].items()
        },
        "by_command": per_comment,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=6000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.comments, args.workers), indent=2))


if __name__ == "__main__":
    main()
