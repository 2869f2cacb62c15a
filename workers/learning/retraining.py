"""The learning job: retrain a site's models from its labels.

Queued by `moderation.storage.job_queues.LearningEnqueuer` whenever a label arrives (and by the
workers' maintenance for sites whose labels changed since their last training, which covers
labels erased and jobs lost). It runs in a scoring worker, which holds the base models that training
needs: one site at a time (a lock in Redis), over the site's newest labels.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from moderation.storage.job_queues import RETRAIN_TIMEOUT
from moderation.storage.label_store import Label, LabelKind, LabelScores, TrainingLock
from moderation.storage.model_registry import SPAM, TOXICITY
from workers.learning.linear import LinearModel
from workers.learning.site_models import SiteModels
from workers.learning.training import Outcome, SpamTask, ToxicityTask, train
from workers.scoring.runtime import WorkerRuntime, current_runtime

log = logging.getLogger(__name__)

#: Labels without toxicity scores (Akismet, Perspective) scored by one job at most; the rest
#: wait for the next job, so that one job never keeps a worker from comments for long.
SCORING_BUDGET = 2000
#: Texts scored per toxicity model call.
SCORING_CHUNK = 64
#: A site that keeps labeling is retrained again at the earliest this many times as long as
#: the last training took (at most MAX_PAUSE seconds later): a worker of a site with 20,000
#: labels (about 25 s of training) scores comments in between.
PAUSE_FACTOR = 2
MAX_PAUSE = 240


def retrain_site(site: str) -> dict[str, Any]:
    """RQ job: retrain `site`'s models; the outcome of each kind."""
    return SiteTrainer(current_runtime()).retrain(site)


class SiteTrainer:
    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime
        self.labels = runtime.labels

    def retrain(self, site: str) -> dict[str, Any]:
        if not self.runtime.settings.learning:
            return {"outcome": "learning is off"}
        self.runtime.learning.started(site)  # labels from now on queue another job
        holder = f"{socket.gethostname()}:{os.getpid()}"
        lock = TrainingLock(self.labels.redis, site, holder, ttl=RETRAIN_TIMEOUT)
        if not lock.acquire():
            return {"outcome": "busy"}  # its holder looks for newer labels when done
        started = time.monotonic()
        try:
            version = self.labels.version(site)
            outcomes, more_to_score = self._train(site)
            if not more_to_score:
                self.labels.mark_trained(site, version)
        finally:
            lock.release()
        took = time.monotonic() - started
        if more_to_score or self.labels.version(site) != version:
            self.runtime.learning(site, delay=min(MAX_PAUSE, PAUSE_FACTOR * took))
        return {o.kind: {"promoted": o.promoted, "reason": o.reason} for o in outcomes}

    def _train(self, site: str) -> tuple[list[Outcome], bool]:
        settings = self.runtime.settings
        labels = self.labels.recent(site, settings.learning_max_labels)
        if len(labels) < settings.learning_max_labels:
            counts = Counter(label.kind.value for label in labels)
            self.labels.set_counts(site, {kind.value: counts[kind.value] for kind in LabelKind})
        in_use = self._twins(site)
        spam = self.runtime.spam
        outcomes = [
            train(
                SpamTask(spam.base_logits, spam.name),
                site,
                labels,
                in_use=in_use.spam,
                min_labels=settings.learning_min_labels,
                new_version=lambda: self.runtime.registry.next_version(site, SPAM),
            )
        ]
        toxicity_labels, scores, more_to_score = self._with_model_scores(site, labels)
        toxicity = self.runtime.toxicity
        task = ToxicityTask(
            toxicity.name, toxicity.labels, lambda chosen: [scores[label.id] for label in chosen]
        )
        outcomes.append(
            train(
                task,
                site,
                toxicity_labels,
                in_use=in_use.toxicity,
                min_labels=settings.learning_min_labels,
                new_version=lambda: self.runtime.registry.next_version(site, TOXICITY),
            )
        )
        for outcome in outcomes:
            self._record(site, outcome)
        return outcomes, more_to_score

    def _twins(self, site: str) -> SiteModels:
        """The held-out twins of the site's models in use (see `workers.learning.training`),
        each only if the worker would use the model itself (same base model)."""
        registry = self.runtime.registry
        active = registry.active(site)
        in_use = self.runtime.site_models.in_use(site, active)

        def twin(kind: str, model: LinearModel | None) -> LinearModel | None:
            if model is None:
                return None
            data = registry.twin_file(site, kind, active.get(kind, 0))
            return LinearModel.from_bytes(data) if data else model

        return SiteModels(spam=twin(SPAM, in_use.spam), toxicity=twin(TOXICITY, in_use.toxicity))

    def _record(self, site: str, outcome: Outcome) -> None:
        if outcome.candidate is None:
            return
        model, twin = outcome.model, outcome.candidate
        result = "promoted" if outcome.promoted else "not_promoted"
        self.runtime.metrics.increment(f"trainings|{outcome.kind}|{result}")
        self.runtime.registry.record(
            site,
            outcome.kind,
            outcome.entry,
            model.to_bytes() if model else None,
            twin.to_bytes() if model else None,
        )
        log.info(
            "site %s: %s model %s %s (%s)",
            site,
            outcome.kind,
            outcome.candidate.name,
            "in use" if outcome.promoted else "not promoted",
            outcome.reason,
        )

    def _with_model_scores(
        self, site: str, labels: Sequence[Label]
    ) -> tuple[list[Label], dict[str, dict[str, float]], bool]:
        """The labels the toxicity model can learn from, each with the toxicity model's scores:
        kept with a moderator's label when this worker's model gave them, else computed here
        (and kept for later trainings), at most SCORING_BUDGET of them."""
        toxicity = self.runtime.toxicity
        relevant = [label for label in labels if label.kind in (LabelKind.TOXIC, LabelKind.OK)]
        scores = {
            label.id: label.scores
            for label in relevant
            if label.toxicity_model == toxicity.name and "toxicity" in label.scores
        }
        kept = LabelScores(self.labels.redis, site, toxicity.name)
        scores.update(kept.get([label.id for label in relevant if label.id not in scores]))
        missing = [label for label in relevant if label.id not in scores]
        now = missing[:SCORING_BUDGET]
        computed: dict[str, dict[str, float]] = {}
        for start in range(0, len(now), SCORING_CHUNK):
            chunk = now[start : start + SCORING_CHUNK]
            for label, row in zip(
                chunk, toxicity.score([label.text for label in chunk]), strict=True
            ):
                computed[label.id] = row
        kept.put(computed)
        scores.update(computed)
        return [label for label in relevant if label.id in scores], scores, len(missing) > len(now)
