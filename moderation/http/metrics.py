"""Prometheus metrics: HTTP figures per API process, everything else kept in Redis.

* HTTP requests and latencies are counted by each API process with prometheus-client. Under
  gunicorn, `moderation serve` points PROMETHEUS_MULTIPROC_DIR at a directory the processes
  share, and `/metrics` adds them up (prometheus-client's multiprocess mode), so a scrape gives
  the same totals whichever process answers it.
* Figures that workers produce (decisions, scoring latency, webhook deliveries) and comments
  accepted are counted in Redis, in the same step as the thing counted where possible (the
  decision's Lua script counts it). Workers run on many hosts, come and go with scaling, and
  serve no HTTP; counting in Redis gives one scrape target whose totals survive restarts,
  with no service discovery of workers.
* Queue depth, pending comments, the oldest one's age and live workers are read at scrape time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import redis
from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from moderation.storage.metric_counters import SCORING_BUCKETS, RedisCounters

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "moderation_http_requests",
    "HTTP requests answered, by route, method and status",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "moderation_http_request_duration_seconds",
    "Time to answer an HTTP request, by route and method",
    ["route", "method"],
)


# --- the scrape ------------------------------------------------------------------------------


class RedisCollector(Collector):
    """Reads the Redis-kept and live figures at scrape time."""

    def __init__(self, connection: redis.Redis, live_figures: dict[str, tuple[str, float]]) -> None:
        self.counters = RedisCounters(connection)
        self.live = live_figures

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        counts = self.counters.counters()
        yield _counter("moderation_comments_accepted", "Comments accepted", counts.get("accepted"))
        yield _counter(
            "moderation_durable_confirmations",
            "Waits for Redis to confirm writes on disk or at replicas (MODERATION_DURABILITY)",
            counts.get("durable_confirmations"),
        )
        decisions = CounterMetricFamily(
            "moderation_decisions",
            "Decisions stored, by action and decider",
            labels=["action", "decider"],
        )
        deliveries = CounterMetricFamily(
            "moderation_webhook_deliveries",
            "Webhook delivery attempts by outcome",
            labels=["outcome"],
        )
        labels = CounterMetricFamily(
            "moderation_labels", "Labels given for the sites' learning, by kind", labels=["kind"]
        )
        languages = CounterMetricFamily(
            "moderation_comment_languages",
            "Automatic decisions by the comment's detected language and whether a live "
            "toxicity model read it (read: yes or no)",
            labels=["language", "read"],
        )
        trainings = CounterMetricFamily(
            "moderation_site_model_trainings",
            "Site models trained, by kind and whether they were put in use",
            labels=["kind", "outcome"],
        )
        for name, value in sorted(counts.items()):
            kind, _, rest = name.partition("|")
            if kind == "decisions":
                action, _, decider = rest.partition("|")
                decisions.add_metric([action, decider], value)
            elif kind == "deliveries":
                deliveries.add_metric([rest], value)
            elif kind == "labels":
                labels.add_metric([rest], value)
            elif kind == "languages":
                language, _, read = rest.partition("|")
                languages.add_metric([language, read], value)
            elif kind == "trainings":
                model_kind, _, outcome = rest.partition("|")
                trainings.add_metric([model_kind, outcome], value)
        yield decisions
        yield deliveries
        yield labels
        yield languages
        yield trainings

        scoring = HistogramMetricFamily(
            "moderation_scoring_duration_seconds",
            "Model time per comment, by toxicity model",
            labels=["model"],
        )
        for model, fields in self.counters.scoring_histograms().items():
            buckets = [(str(bound), fields.get(f"le:{bound}", 0.0)) for bound in SCORING_BUCKETS]
            buckets.append(("+Inf", fields.get("count", 0.0)))
            scoring.add_metric([model], buckets, sum_value=fields.get("sum", 0.0))
        yield scoring

        for name, (documentation, reading) in self.live.items():
            yield GaugeMetricFamily(name, documentation, value=reading)


def _counter(name: str, documentation: str, value: int | None) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value or 0)


def exposition(connection: redis.Redis, live_figures: dict[str, tuple[str, float]]) -> Response:
    """The /metrics body: this service's processes' HTTP figures plus the Redis-kept ones."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    extra = CollectorRegistry()
    extra.register(RedisCollector(connection, live_figures))
    return Response(body + generate_latest(extra), content_type=CONTENT_TYPE_LATEST)


# --- HTTP instrumentation --------------------------------------------------------------------


def init_app(app: Flask) -> None:
    """Count every request by its route pattern (never the raw path: ids are not labels)."""

    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def count(response: Response) -> Response:
        started = g.pop("request_started", None)
        route = request.url_rule.rule if request.url_rule else "unmatched"
        HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        if started is not None:
            HTTP_LATENCY.labels(route, request.method).observe(time.perf_counter() - started)
        return response


def mark_process_dead(pid: int) -> None:
    """gunicorn's child_exit hook: drop a dead process's live gauges (multiprocess mode)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
