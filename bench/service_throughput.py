"""Comments per second the service decides end to end with N scoring workers.

Starts its own redis-server, submits real YouTube comments (from ../shared/data) through the
batch endpoint, starts the workers, and times until every comment is decided:

    .venv/bin/python bench/service_throughput.py --comments 2000 --workers 1
    .venv/bin/python bench/service_throughput.py --comments 2000 --workers 2 --model lite

Prints one JSON line. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moderation.app import create_app  # noqa: E402
from moderation.core.settings import Settings  # noqa: E402
from moderation.storage.comment_store import CommentStore  # noqa: E402
from moderation.storage.site_store import SiteStore  # noqa: E402
from tests.support.processes import running_worker, wait_for  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402


def youtube_comments(data: Path) -> list[str]:
    texts = []
    for path in sorted((data / "youtube-spam").glob("*.csv")):
        with path.open(encoding="utf-8") as handle:
            texts += [row["CONTENT"] for row in csv.DictReader(handle)]
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model", default="lite", help="MODERATION_TOXICITY_MODEL")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()

    texts = youtube_comments(args.data)
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        server = RedisServer(Path(scratch) / "redis")
        server.start()
        stack.callback(server.stop)
        settings = Settings(redis_url=server.url, secret_key="b" * 40, toxicity_model=args.model)
        connection = redis.Redis.from_url(server.url)
        key = SiteStore(connection, settings.secret_key).create("bench").api_key
        client = create_app(settings).test_client()
        headers = {"Authorization": f"Bearer {key}"}

        started = time.perf_counter()
        for first in range(0, args.comments, 100):
            batch = [
                {
                    "id": f"c{n}",
                    "content": f"{texts[n % len(texts)]} #{n}",
                    "author": {"id": f"u{n}"},
                }
                for n in range(first, min(args.comments, first + 100))
            ]
            client.post("/v1/comments/batch", json={"comments": batch}, headers=headers)
        submitted = time.perf_counter() - started

        env = {"MODERATION_TOXICITY_MODEL": args.model}
        for number in range(args.workers):
            stack.enter_context(running_worker(server.url, Path(scratch) / f"w{number}.log", env))
        started = time.perf_counter()
        store = CommentStore(connection)
        wait_for(lambda: store.pending_count() == 0, timeout=3600, interval=0.05)
        decided = time.perf_counter() - started
    report = {
        "comments": args.comments,
        "workers": args.workers,
        "model": args.model,
        "accepted_per_s": round(args.comments / submitted),
        "decided_per_s": round(args.comments / decided, 1),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
