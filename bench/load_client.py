"""HTTP load for the running service: every comment its own POST, decisions read back.

Two shapes, both timed on the client (the records' timestamps are whole seconds):

- `full_load`: a few submitter threads POST as fast as the API accepts (no `?wait=`), while
  reader threads wait on each comment in submission order with `GET ...?wait=`. Throughput is
  comments / (last decision seen - first POST started).
- `paced_load`: one POST `?wait=` per comment, started at evenly spaced times (a fixed rate),
  each from its own client thread; the response carries the decision.

A comment's latency runs from the start of its POST to the moment the client holds a response
showing its decision.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from bench.stats import summary

#: Seconds a request asks the API to wait for a decision (the API's default maximum is 10).
WAIT = 10
#: Give up on a comment not decided this long after its POST.
GIVE_UP_AFTER = 120.0


class ServiceClient:
    """A site's view of the API; one `requests.Session` per thread."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def submit(self, comment_id: str, text: str, author: str, wait: float = 0) -> dict:
        """POST one comment; with `wait`, the API answers once it is decided (or wait ends)."""
        response = self.session.post(
            f"{self.base_url}/v1/comments",
            params={"wait": wait} if wait else None,
            json={"id": comment_id, "content": text, "author": {"id": author}},
            headers=self.headers,
            timeout=WAIT + 30,
        )
        response.raise_for_status()
        return response.json()

    def read(self, comment_id: str, wait: float = WAIT) -> dict:
        response = self.session.get(
            f"{self.base_url}/v1/comments/{comment_id}",
            params={"wait": wait},
            headers=self.headers,
            timeout=WAIT + 30,
        )
        response.raise_for_status()
        return response.json()

    def wait_decided(self, comment_id: str, record: dict, posted: float) -> float | None:
        """The time the client first saw `comment_id` decided, reading again while pending."""
        while not decided(record):
            if time.perf_counter() - posted > GIVE_UP_AFTER:
                return None
            record = self.read(comment_id)
        return time.perf_counter()


def decided(record: dict) -> bool:
    return record.get("status") != "pending" and record.get("decision") is not None


@dataclass
class LoadResult:
    """Client-side times (time.perf_counter) per comment; None where it never happened."""

    shape: str
    posted: list[float | None]
    seen: list[float | None]
    errors: list[str] = field(default_factory=list)
    target_rate: float | None = None
    #: paced_load only: how late each POST started after its scheduled time.
    start_slip: list[float] = field(default_factory=list)

    def latencies(self) -> list[float]:
        return [s - p for p, s in zip(self.posted, self.seen, strict=True) if p and s]

    def report(self) -> dict:
        done = [s for s in self.seen if s is not None]
        starts = [p for p in self.posted if p is not None]
        elapsed = max(done) - min(starts) if done and starts else float("nan")
        result: dict = {
            "shape": self.shape,
            "comments": len(self.posted),
            "decided": len(done),
            "errors": len(self.errors),
            "error_kinds": sorted(set(self.errors))[:5],
            "seconds": round(elapsed, 3),
            "comments_per_s": round(len(done) / elapsed, 2) if done else 0.0,
            "steady_comments_per_s": steady_rate(done),
            "latency": summary(self.latencies()),
        }
        if self.target_rate is not None:
            result["target_rate"] = round(self.target_rate, 2)
            result["post_start_slip"] = summary(self.start_slip)
        return result


def steady_rate(seen: list[float]) -> float | None:
    """Decisions per second between the 10th and the 90th percentile decision: the rate
    without the ramp-up (first batches forming) and the tail (the last batch finishing while
    other workers idle)."""
    if len(seen) < 20:
        return None
    ordered = sorted(seen)
    low, high = len(ordered) // 10, len(ordered) * 9 // 10 - 1
    span = ordered[high] - ordered[low]
    return round((high - low) / span, 2) if span > 0 else None


def comment_id(prefix: str, index: int) -> str:
    return f"{prefix}-{index}"


def full_load(
    client: ServiceClient,
    texts: Sequence[str],
    prefix: str,
    *,
    submitters: int = 4,
    readers: int = 8,
) -> LoadResult:
    """Submit every comment as fast as possible; read each decision back as it lands."""
    count = len(texts)
    result = LoadResult("full", [None] * count, [None] * count)
    posted = [threading.Event() for _ in range(count)]
    to_submit: queue.SimpleQueue[int] = queue.SimpleQueue()
    to_read: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(count):
        to_submit.put(index)
        to_read.put(index)

    def submit() -> None:
        while True:
            try:
                index = to_submit.get_nowait()
            except queue.Empty:
                return
            result.posted[index] = time.perf_counter()
            try:
                client.submit(comment_id(prefix, index), texts[index], f"u{index}")
            except requests.RequestException as error:
                result.errors.append(f"POST: {type(error).__name__}")
            finally:
                posted[index].set()

    def read() -> None:
        while True:
            try:
                index = to_read.get_nowait()
            except queue.Empty:
                return
            posted[index].wait()
            started = result.posted[index]
            if started is None:
                continue
            try:
                record = client.read(comment_id(prefix, index))
                result.seen[index] = client.wait_decided(comment_id(prefix, index), record, started)
            except requests.RequestException as error:
                result.errors.append(f"GET: {type(error).__name__}")

    _run_threads([submit] * submitters + [read] * readers)
    return result


def paced_load(
    client: ServiceClient, texts: Sequence[str], prefix: str, rate: float, *, threads: int = 32
) -> LoadResult:
    """One POST ?wait= per comment at `rate` per second, evenly spaced."""
    count = len(texts)
    result = LoadResult("paced", [None] * count, [None] * count, target_rate=rate)
    start = time.perf_counter() + 0.05

    def one(index: int) -> None:
        result.posted[index] = posted = time.perf_counter()
        result.start_slip.append(posted - (start + index / rate))
        try:
            record = client.submit(comment_id(prefix, index), texts[index], f"u{index}", WAIT)
            result.seen[index] = client.wait_decided(comment_id(prefix, index), record, posted)
        except requests.RequestException as error:
            result.errors.append(f"POST: {type(error).__name__}")

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="paced") as pool:
        for index in range(count):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, index)
    return result


def _run_threads(targets: list) -> None:
    threads = [threading.Thread(target=target, daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
