"""What one worker process holds: its settings, its store, and its lazily loaded model.

The model is the one piece of process-wide state in the service: it is loaded once, when the
worker starts (or on the first job, when jobs run under a plain `rq worker`), and reused by
every job the process runs.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from moderation import settings as settings_module
from moderation.services import connect
from moderation.settings import Settings
from moderation.store import CommentStore
from workers.scoring.toxicity import ToxicityScorer, load_toxicity_scorer, warm_up

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerRuntime:
    settings: Settings
    store: CommentStore
    toxicity: ToxicityScorer


_runtime: WorkerRuntime | None = None


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


def start_runtime(settings: Settings) -> WorkerRuntime:
    """Load the model and keep it for this process's jobs."""
    global _runtime
    configure_torch(settings.torch_threads)
    quiet_model_loading()
    toxicity = load_toxicity_scorer(
        settings.toxicity_model,
        config_dir=settings.detoxify_config_dir,
        precision=settings.precision,
        max_tokens=settings.max_tokens,
        load_timeout=settings.model_load_timeout,
    )
    warm_up(toxicity)
    log.info("toxicity model ready: %s", toxicity.name)
    _runtime = WorkerRuntime(settings, CommentStore(connect(settings.redis_url)), toxicity)
    return _runtime


def current_runtime() -> WorkerRuntime:
    """This process's runtime, started from the environment on first use."""
    return _runtime or start_runtime(settings_module.from_env())
