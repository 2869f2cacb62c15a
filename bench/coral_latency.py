"""How long Coral Talk waits on `POST /coral/<site>` from an idle service.

    .venv/bin/python -m bench.coral_latency                      # 200 calls, lite, 1 worker
    .venv/bin/python -m bench.coral_latency --calls 500 --coral-timeout 1
    .venv/bin/python -m bench.coral_latency --model bert --calls 100 --coral-timeout 5

Coral gives an External Moderation Phase 200 ms by default and skips it after that. This
starts the service (bench/stacks.py: its own redis-server, `moderation serve`, one
`moderation worker` with the embedded lite model, or with `--model bert` a bert-base Detoxify
as bench/detoxify_model.py builds it), sets the site's signing secret, then sends
the calls one after another exactly as Coral does (tests/support/coral.py: pretty-printed
JSON, `X-Coral-Signature`), cycling through YouTube comments (with a few toxic ones), each
numbered so that no two are the same. First `--baseline` calls whose body has no text: the
path without the workers (HTTP, signature, secrets' decryption), for comparison. Prints one
JSON document: latency percentiles of each, and the answers (`X-Moderation-Outcome`:
approve, hold, reject, timeout...).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import psutil
import redis
import requests

from bench.comments import jigsaw_comments, shuffled_comments
from bench.soak import model_settings
from bench.stacks import running_service
from bench.stats import summary
from tests.support.coral import SECRET, moderation_request, send

TOXIC = ("You are a worthless idiot.", "Shut up, you stupid moron.")


def timed_calls(
    session: requests.Session, url: str, bodies: Sequence[str]
) -> tuple[list[float], Counter[str]]:
    """Each body as Coral sends it, one after another: latencies (s) and the outcomes."""
    seconds: list[float] = []
    outcomes: Counter[str] = Counter()
    for n, body in enumerate(bodies):
        request = moderation_request(body, author_id=f"reader-{n}")  # many readers, one each
        started = time.perf_counter()
        response = send(session, url, request, [SECRET])
        seconds.append(time.perf_counter() - started)
        if response.status_code not in (200, 204):
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
        outcomes[response.headers.get("X-Moderation-Outcome", "?")] += 1
    return seconds, outcomes


def texts(count: int, source: str = "youtube") -> list[str]:
    """YouTube comments (short; every tenth a toxic one) or Jigsaw's Wikipedia talk-page
    comments (longer, as news comments are), each numbered."""
    if source == "jigsaw":
        jigsaw = jigsaw_comments()
        return [f"{jigsaw[n % len(jigsaw)]} ({n})" for n in range(count)]
    youtube = shuffled_comments()
    return [
        f"{TOXIC[n % 2] if n % 10 == 9 else youtube[n % len(youtube)]} ({n})" for n in range(count)
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--texts", choices=("youtube", "jigsaw"), default="youtube")
    parser.add_argument(
        "--model", choices=("lite", "bert"), default="lite", help="bert: a bert-base Detoxify"
    )
    parser.add_argument("--baseline", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--coral-timeout", default=None, help="MODERATION_CORAL_TIMEOUT (default: the service's)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the service's processes, e.g. MODERATION_BATCH_WAIT=0",
    )
    parser.add_argument(
        "--redis-hz", type=int, default=None, help="CONFIG SET hz on the service's Redis first"
    )
    args = parser.parse_args(argv)
    settings, model = model_settings(args.model)
    settings.update(item.split("=", 1) for item in args.env)
    if args.coral_timeout:
        settings["MODERATION_CORAL_TIMEOUT"] = args.coral_timeout
    with (
        tempfile.TemporaryDirectory() as scratch,
        running_service(Path(scratch), 1, settings) as service,
    ):
        if args.redis_hz:
            with redis.Redis.from_url(service.redis_url) as connection:
                connection.config_set("hz", args.redis_hz)
        session = requests.Session()
        auth = {"Authorization": f"Bearer {service.api_key}"}
        session.put(
            f"{service.url}/v1/site/coral", json={"signing_secrets": [SECRET]}, headers=auth
        ).raise_for_status()
        url = f"{service.url}/coral/bench"
        timed_calls(session, url, [f"warm-up comment number {n}" for n in range(args.warmup)])
        baseline, _ = timed_calls(session, url, ["<p></p>"] * args.baseline)
        scored, outcomes = timed_calls(session, url, texts(args.calls, args.texts))
    report = {
        "machine": {
            "cpus": psutil.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "service": "1 x moderation serve, 1 x moderation worker, idle; calls sequential",
        "model": model,
        "texts": args.texts,
        "coral_timeout": args.coral_timeout or "default (0.18 s)",
        "redis_hz": args.redis_hz or "default (10)",
        "settings": settings,
        "no_text_baseline": summary(baseline),
        "scored": summary(scored),
        "over_200_ms": sum(1 for s in scored if s > 0.2),
        "outcomes": dict(outcomes),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
