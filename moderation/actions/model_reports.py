"""What a site's models are: the report behind `GET /v1/models` and `moderation models`."""

from __future__ import annotations

from typing import Any

import redis

from moderation.core.records import isoformat
from moderation.storage.job_queues import live_scoring_workers
from moderation.storage.label_store import LabelStore
from moderation.storage.model_registry import KINDS, ModelRegistry, training_entry
from moderation.storage.worker_models import WorkerModels


def live_base_models(connection: redis.Redis) -> dict[str, list[str]]:
    """kind -> the base models the live scoring workers run (usually one each)."""
    models = WorkerModels(connection).of(live_scoring_workers(connection)).values()
    return {kind: sorted({m[kind] for m in models if m.get(kind)}) for kind in KINDS}


def site_models_report(
    connection: redis.Redis, site: str, *, learning: bool, history: int = 10
) -> dict[str, Any]:
    """The site's labels, and per kind the model in use, its quality, and recent trainings."""
    labels = LabelStore(connection)
    # Read before the versions: a training records its model before marking the labels
    # trained, so "no labels since training" read first means the versions read next are new.
    since_training = labels.version(site) > labels.trained_version(site)
    registry = ModelRegistry(connection)
    active = registry.active(site)
    bases = live_base_models(connection)
    report_models = []
    for kind in KINDS:
        version = active.get(kind, 0)
        log = registry.log(site, kind)
        entry = training_entry(log, version) if version else None
        base = bases[kind]
        report_models.append(
            {
                "kind": kind,
                "version": version,
                "in_use": entry["name"] if entry else (base[0] if len(base) == 1 else "base"),
                "base": base,
                "trained_at": isoformat(entry["at"]) if entry else None,
                "labels": entry["labels"] if entry else None,
                "held_out": entry["held_out"] if entry else None,
                "history": [_readable(e) for e in log[:history]],
            }
        )
    return {
        "site": site,
        "learning": learning,
        "labels": labels.counts(site),
        "labels_since_training": since_training,
        "models": report_models,
    }


def _readable(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "at": isoformat(float(entry["at"]))}
