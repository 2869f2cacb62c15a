"""How long a Perspective or Akismet call waits while the scoring queue holds a backlog.

    .venv/bin/python -m bench.check_latency                    # 8,000 queued, lite, 1 worker
    .venv/bin/python -m bench.check_latency --backlog 2000 --model bert

Those calls are answered synchronously (the caller waits on the workers, up to
MODERATION_MAX_WAIT, 10 s), while `/v1/comments` and backfills only queue. This starts the
service (bench/stacks.py: redis-server, `moderation serve`, N workers), queues `--backlog`
comments through the batch endpoint as fast as the API takes them, then, while the workers
work through them, makes `--checks` calls one after another, alternating
`POST /v1alpha1/comments:analyze` and `POST /1.1/comment-check`. For each it records the
latency, the scoring queue's depth when it was sent, and whether it was answered (200) or
timed out (503); checks sent with 1,000 or more comments queued are also summarised on their
own. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import redis
import requests

from bench.comments import shuffled_comments
from bench.soak import model_settings
from bench.stacks import running_service
from bench.stats import summary
from moderation.storage.comment_store import CommentStore
from moderation.storage.job_queues import scoring_queue
from tests.support.processes import wait_for

BATCH = 100
#: Checks sent with at least this many comments queued are reported on their own.
BEHIND = 1000


def queue_backlog(url: str, api_key: str, texts: list[str], count: int) -> None:
    """`count` comments through the batch endpoint, 100 a request."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {api_key}"}
    for first in range(0, count, BATCH):
        comments = [
            {"id": f"b{n}", "content": texts[n % len(texts)], "author": {"id": f"u{n % 500}"}}
            for n in range(first, min(count, first + BATCH))
        ]
        response = session.post(
            f"{url}/v1/comments/batch", json={"comments": comments}, headers=headers, timeout=60
        )
        response.raise_for_status()


def one_check(session: requests.Session, url: str, api_key: str, n: int, text: str) -> int:
    """One Perspective analyze (even n) or Akismet comment-check (odd n); its status code."""
    if n % 2 == 0:
        body = {"comment": {"text": text}, "requestedAttributes": {"TOXICITY": {}}}
        body |= {"languages": ["en"], "doNotStore": True}
        response = session.post(
            f"{url}/v1alpha1/comments:analyze", params={"key": api_key}, json=body, timeout=60
        )
    else:
        form = {"api_key": api_key, "user_ip": "203.0.113.9", "comment_content": text}
        response = session.post(f"{url}/1.1/comment-check", data=form, timeout=60)
    return response.status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=8000)
    parser.add_argument("--checks", type=int, default=40)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model", choices=("lite", "bert"), default="lite")
    args = parser.parse_args()

    texts = shuffled_comments()
    settings, model_info = model_settings(args.model)
    with (
        tempfile.TemporaryDirectory() as scratch,
        running_service(Path(scratch), args.workers, settings) as service,
    ):
        connection = redis.Redis.from_url(service.redis_url)
        queue = scoring_queue(connection)
        store = CommentStore(connection)
        feeder = threading.Thread(
            target=queue_backlog,
            args=(service.url, service.api_key, texts, args.backlog),
        )
        started = time.perf_counter()
        feeder.start()
        wait_for(lambda: queue.count >= min(1000, args.backlog // 4), timeout=120)

        session = requests.Session()
        latencies, depths, statuses = [], [], []
        for n in range(args.checks):
            depths.append(queue.count)
            sent = time.perf_counter()
            statuses.append(one_check(session, service.url, service.api_key, n, texts[-1 - n]))
            latencies.append(time.perf_counter() - sent)
        feeder.join()
        wait_for(lambda: store.pending_count() == 0, timeout=3600, interval=0.1)
        drained = time.perf_counter() - started
    calls = list(zip(latencies, depths, statuses, strict=True))
    behind = [(latency, status) for latency, depth, status in calls if depth >= BEHIND]
    report = {
        "model": model_info["toxicity"],
        "workers": args.workers,
        "backlog": args.backlog,
        "backlog_decided_s": round(drained, 1),
        "queue_depth_at_checks": {"min": min(depths), "max": max(depths)},
        "checks": args.checks,
        "answered": statuses.count(200),
        "timed_out_503": statuses.count(503),
        "latency_all": summary(latencies),
        f"checks_sent_with_{BEHIND}_or_more_queued": {
            "answered": sum(status == 200 for _, status in behind),
            "timed_out_503": sum(status == 503 for _, status in behind),
            "latency": summary([latency for latency, _ in behind]),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
