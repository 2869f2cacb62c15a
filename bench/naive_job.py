"""The job function of the naive baseline: a straightforward Flask + RQ + Detoxify setup.

The model is loaded lazily at module level on first use, the way such code is usually written.
Under RQ's stock `Worker` each job runs in a freshly forked work horse whose parent never loaded
it, so the model is loaded again for every job: that cost is what the baseline measures.

The checkpoint comes from BENCH_DETOXIFY_CHECKPOINT and BENCH_DETOXIFY_CONFIG_DIR (set by
bench/detoxify_bench.py). Enqueue as "bench.naive_job.score" with the comment text.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detoxify import Detoxify

_model: Detoxify | None = None


def model() -> Detoxify:
    global _model
    if _model is None:
        from detoxify import Detoxify

        _model = Detoxify(
            checkpoint=os.environ["BENCH_DETOXIFY_CHECKPOINT"],
            huggingface_config_path=os.environ["BENCH_DETOXIFY_CONFIG_DIR"],
        )
    return _model


def score(text: str) -> dict[str, float]:
    """Detoxify's scores for one comment (the result RQ stores; it holds no text)."""
    return model().predict(text)
