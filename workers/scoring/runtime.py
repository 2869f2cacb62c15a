"""What one worker process holds: its settings, its store, and its lazily loaded model.

The model is the one piece of process-wide state in the service: it is loaded once, when the
worker starts (or on the first job, when jobs run under a plain `rq worker`), and reused by
every job the process runs.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from moderation.core import settings as settings_module
from moderation.core.language_detection import LanguageDetector
from moderation.core.records import ActivityCounts, Comment, Decision
from moderation.core.redis_connections import connect
from moderation.core.settings import PolicySettings, Settings
from moderation.core.wordlists import WordList, compile_words
from moderation.storage.author_store import AuthorRecord, AuthorStore
from moderation.storage.comment_store import CommentStore
from moderation.storage.durability import Durability
from moderation.storage.engine_choices import EngineChoices
from moderation.storage.job_queues import DeliveryEnqueuer, LearningEnqueuer, ScoringEnqueuer
from moderation.storage.label_store import LabelStore
from moderation.storage.metric_counters import RedisCounters
from moderation.storage.model_registry import ModelRegistry
from moderation.storage.policy_store import PolicyStore
from moderation.storage.site_store import Site, SiteStore
from moderation.storage.spam_counters import SpamCounters
from moderation.storage.webhook_outbox import Outbox
from moderation.storage.worker_languages import LiveLanguages
from workers.learning.model_cache import SiteModelCache
from workers.learning.site_models import SiteModels
from workers.scoring.language_routing import LanguageRoute, LanguageRouter
from workers.scoring.pipeline import Scored
from workers.scoring.spam import SpamScorer
from workers.scoring.toxicity import (
    EngineRequest,
    ToxicityScorer,
    default_engine_cache,
    load_toxicity_scorer,
    warm_up,
)

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A comment in a worker's batch, as its job will find it: read and routed when the batch
    starts, with its site's policy, record and own models and its spam counters (each read
    once for the whole batch); scored, with its author's record (read once for the whole
    pass), when its pass is scored."""

    comment: Comment
    route: LanguageRoute
    scored: Scored | None = None
    rules: PolicySettings | None = None
    site: Site | None = None
    author: AuthorRecord | None = None
    activity: ActivityCounts | None = None
    site_models: SiteModels | None = None
    #: Set once its pass stored its decision: what its job reports.
    decision: Decision | None = None
    outcome: dict[str, str] | None = None


@dataclass(frozen=True)
class WorkerRuntime:
    settings: Settings
    store: CommentStore
    policies: PolicyStore
    outbox: Outbox
    enqueue: ScoringEnqueuer
    metrics: RedisCounters
    toxicity: ToxicityScorer
    spam: SpamScorer
    sites: SiteStore
    labels: LabelStore
    registry: ModelRegistry
    site_models: SiteModelCache
    learning: LearningEnqueuer
    languages: LanguageRouter
    authors: AuthorStore
    spam_counters: SpamCounters
    _word_lists: dict[tuple[str, ...], WordList] = field(default_factory=dict)
    #: Each batched comment as read, routed and (once its pass is scored) scored, with what
    #: its decision reads: taken by its job.
    prescored: dict[tuple[str, str], Prepared] = field(default_factory=dict)

    def word_list(self, entries: tuple[str, ...]) -> WordList:
        """A compiled word list, kept while the process runs (policies change rarely)."""
        if entries not in self._word_lists:
            if len(self._word_lists) > 256:
                self._word_lists.clear()
            self._word_lists[entries] = compile_words(entries)
        return self._word_lists[entries]


_runtime: WorkerRuntime | None = None
#: Real comments a worker measuring its engine scores besides the built-in ones, at most.
CALIBRATION_SAMPLE = 64


def configure_torch(threads: int) -> None:
    """Pin torch's thread pools before any torch work (several threads per process on a small
    CPU is far slower, and forked children of a multi-threaded parent can hang in OpenMP)."""
    import torch

    torch.set_num_threads(threads)
    # Interop threads can be set only once per process; a second call raises.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(threads)


def quiet_model_loading() -> None:
    """transformers draws a progress bar on every model load: noise in a worker's log."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    # Its records go through the service's handler (JSON, redaction) instead of its own.
    transformers.utils.logging.disable_default_handler()
    transformers.utils.logging.enable_propagation()


def start_runtime(settings: Settings) -> WorkerRuntime:
    """Load the model and keep it for this process's jobs."""
    global _runtime
    configure_torch(settings.torch_threads)
    quiet_model_loading()
    connection = connect(settings.redis_url)
    store = CommentStore(
        connection,
        track_retention=settings.retention_days > 0,
        durability=Durability.from_settings(settings),
    )
    toxicity = load_toxicity_scorer(
        settings.toxicity_model,
        config_dir=settings.detoxify_config_dir,
        engine=engine_request(settings, store),
        max_tokens=settings.max_tokens,
        load_timeout=settings.model_load_timeout,
        pass_size=settings.pass_size,
        languages=settings.toxicity_languages,
    )
    warm_up(toxicity)
    log.info(
        "toxicity model ready: %s (%s %s)",
        toxicity.name,
        getattr(toxicity, "runtime", "n/a"),
        getattr(toxicity, "precision", "n/a"),
    )
    spam = SpamScorer.from_file(settings.spam_model)
    log.info("spam model ready: %s", spam.name)
    log.info("toxicity model reads: %s", ", ".join(sorted(toxicity.languages)))
    sites = SiteStore(connection, settings.secret_key)
    registry = ModelRegistry(connection)
    _runtime = WorkerRuntime(
        settings=settings,
        store=store,
        policies=PolicyStore(connection, settings.policy),
        outbox=Outbox(connection, store, sites, DeliveryEnqueuer(connection, settings)),
        enqueue=ScoringEnqueuer(connection, settings),
        metrics=RedisCounters(connection),
        toxicity=toxicity,
        spam=spam,
        sites=sites,
        labels=LabelStore(connection),
        registry=registry,
        site_models=SiteModelCache(
            registry,
            spam_base=spam.name,
            toxicity_base=toxicity.name,
            enabled=settings.learning,
        ),
        learning=LearningEnqueuer(connection, settings),
        languages=LanguageRouter(
            detector=LanguageDetector(),
            reads=toxicity.languages,
            live=LiveLanguages(connection),
        ),
        authors=AuthorStore(connection, store.durability),
        spam_counters=SpamCounters(connection),
    )
    return _runtime


def engine_request(settings: Settings, store: CommentStore) -> EngineRequest:
    """What should run a Detoxify model, per the settings; an `auto` measurement is shared
    through Redis and also scores real comments the service holds, when it holds some."""
    return EngineRequest(
        runtime=settings.runtime,
        precision=settings.precision,
        threads=settings.torch_threads,
        cache_dir=settings.engine_cache_dir or default_engine_cache(),
        choices=EngineChoices(store.redis),
        real_comments=lambda: store.sample_texts(CALIBRATION_SAMPLE),
    )


def runtime_started() -> bool:
    return _runtime is not None


def current_runtime() -> WorkerRuntime:
    """This process's runtime, started from the environment on first use."""
    return _runtime or start_runtime(settings_module.from_env())
