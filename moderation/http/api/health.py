"""Operator endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

import redis
from flask import Response

from moderation.http.api import Blueprint
from moderation.http.api.spec import RETRY_AFTER
from moderation.http.app_services import services
from moderation.http.metrics import exposition
from moderation.http.schemas import HealthSchema, ReadinessSchema
from moderation.storage.job_queues import live_scoring_workers
from moderation.storage.worker_languages import languages_read
from moderation.storage.worker_models import WorkerModels

blp = Blueprint("ops", __name__, description="Health, readiness and metrics (operators).")


def live_worker_names() -> list[str]:
    """Names of the scoring workers whose registration has not expired."""
    return live_scoring_workers(services().redis)


@blp.route("/healthz")
@blp.doc(security=[])
@blp.response(200, HealthSchema)
def healthz() -> dict[str, str]:
    """200 while the process runs."""
    return {"status": "ok"}


@blp.route("/readyz")
@blp.doc(security=[])
@blp.response(200, ReadinessSchema)
@blp.alt_response(
    503,
    schema=ReadinessSchema,
    description="Redis or the workers are missing.",
    headers=RETRY_AFTER,
)
def readyz() -> Any:
    """Ready when Redis answers and at least one scoring worker is alive."""
    svc = services()
    try:
        svc.redis.ping()
    except redis.RedisError:
        body: dict[str, Any] = {"status": "unavailable", "redis": "down", "missing": ["redis"]}
        return body, 503, {"Retry-After": "5"}
    workers = live_worker_names()
    models = WorkerModels(svc.redis).of(workers)
    toxicity_models = sorted({m.get("toxicity", "?") for m in models.values()})
    precisions = sorted({m.get("precision", "?") for m in models.values()})
    runtimes = sorted({m.get("runtime", "?") for m in models.values()})
    body = {
        "status": "ok" if workers else "unavailable",
        "redis": "ok",
        "workers": len(workers),
        "queue_depth": svc.enqueue_scoring.depth(),
        "pending": svc.comments.pending_count(),
        "oldest_pending_seconds": svc.comments.oldest_pending_age(),
        "toxicity_model": toxicity_models[0] if len(toxicity_models) == 1 else toxicity_models,
        "precision": precisions[0] if len(precisions) == 1 else precisions,
        "runtime": runtimes[0] if len(runtimes) == 1 else runtimes,
        "languages": sorted(languages_read(models.values())),
        "durability": svc.settings.durability,
        "missing": [] if workers else ["workers"],
    }
    return (body, 200) if workers else (body, 503, {"Retry-After": "5"})


@blp.route("/metrics")
@blp.doc(
    security=[],
    responses={
        "200": {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def metrics() -> Response:
    """Prometheus text format (see moderation/http/metrics.py for what is counted where)."""
    svc = services()
    live = {
        "moderation_queue_depth": ("Scoring jobs waiting", float(svc.enqueue_scoring.depth())),
        "moderation_pending_comments": (
            "Comments accepted and not yet decided",
            float(svc.comments.pending_count()),
        ),
        "moderation_oldest_pending_seconds": (
            "Age of the oldest undecided comment (0 when none)",
            svc.comments.oldest_pending_age() or 0.0,
        ),
        "moderation_live_workers": ("Scoring workers alive", float(len(live_worker_names()))),
        "moderation_webhook_outbox": (
            "Decisions whose webhook is not queued yet",
            float(svc.outbox.waiting()),
        ),
    }
    return exposition(svc.redis, live)
