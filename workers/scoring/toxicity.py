"""Toxicity scorers: Detoxify when it can be loaded, the embedded profanity model otherwise.

`load_toxicity_scorer(spec)` is the only entry point that loads anything; importing this module
loads no model. Specs:

- `lite`: the small scikit-learn model shipped inside `alt-profanity-check` (profanity only).
- `detoxify:<variant>`: a published Detoxify model (downloaded once, then cached by torch hub).
- `detoxify:<path>`: a Detoxify checkpoint file on disk.
- `auto`: Detoxify `original` if it loads within the timeout, else `lite` with a loud warning.

Precision (Detoxify only): `fp32`, `bf16`, dynamic `int8`, or `auto`, which measures at load
time which is fastest on this CPU without moving scores (see `workers.scoring.calibration`).
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import torch

if TYPE_CHECKING:
    from detoxify import Detoxify
    from transformers import PreTrainedTokenizerBase

    from workers.scoring.calibration import PrecisionChoice

logger = logging.getLogger(__name__)

T = TypeVar("T")

DETOXIFY_VARIANTS = ("original", "unbiased", "multilingual", "original-small", "unbiased-small")
PRECISIONS = ("fp32", "bf16", "int8", "auto")
AUTO_VARIANT = "original"
#: Comments per forward pass. Small passes waste little on padding: measured here with a
#: bert-base model, int8, 2 workers, real comment lengths: passes of 16 gave 27.5 comments/s,
#: passes of 4 gave 50.6 (bench/results, 2026-11-25).
DEFAULT_BATCH_SIZE = 4
# Per-socket timeout during the `auto` attempt, so an abandoned download cannot stall forever.
AUTO_SOCKET_TIMEOUT = 10.0


class ModelLoadError(RuntimeError):
    """A requested toxicity model could not be loaded."""


class ToxicityScorer(Protocol):
    """Scores texts; every returned value is a float in [0, 1], one dict per text."""

    name: str
    labels: tuple[str, ...]

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]: ...


class LiteScorer:
    """The linear model embedded in `alt-profanity-check`: fast, small, profanity only."""

    name = "lite"
    labels = ("toxicity",)

    def __init__(self) -> None:
        # Importing profanity_check loads its model, so it happens here and not at module import.
        from profanity_check import predict_prob

        self._predict_prob = predict_prob

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Probability of profanity for each text, as `toxicity`."""
        if not texts:
            return []
        probabilities = self._predict_prob(list(texts))
        return [{"toxicity": _unit(p)} for p in probabilities]


class DetoxifyScorer:
    """A loaded Detoxify model, run directly so that truncation and batching are ours.

    `precision` is the one in use: with `auto`, the one measured best at load time (and
    `calibration` holds that measurement).
    """

    def __init__(
        self,
        detoxify: Detoxify,
        name: str,
        *,
        precision: str = "fp32",
        max_tokens: int = 256,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.name = name
        self.labels = tuple(detoxify.class_names)
        if "toxicity" not in self.labels:
            raise ModelLoadError(f"{name} has no toxicity label (labels: {', '.join(self.labels)})")
        self.tokenizer = detoxify.tokenizer
        self.max_tokens = _token_limit(detoxify, max_tokens)
        self.batch_size = batch_size
        self.calibration: PrecisionChoice | None = None
        model = detoxify.model.eval()
        if precision == "auto":
            # Imported here: calibration imports this module (and only `auto` needs it).
            from workers.scoring.calibration import choose_precision

            self.model, self.calibration = choose_precision(
                model, self.tokenizer, max_tokens=self.max_tokens, batch_size=batch_size
            )
            self.precision = self.calibration.precision
        else:
            self.model = apply_precision(model, precision)
            self.precision = precision

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Scores for every label, in input order; long texts are truncated to `max_tokens`."""
        rows = predict(
            self.model,
            self.tokenizer,
            texts,
            max_tokens=self.max_tokens,
            batch_size=self.batch_size,
        )
        return [dict(zip(self.labels, map(_unit, row), strict=True)) for row in rows]


def predict(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_tokens: int,
    batch_size: int,
) -> list[list[float]]:
    """Each text's probability per output, in input order, `batch_size` texts per forward pass;
    texts are truncated to `max_tokens` tokens."""
    # Sorting by length keeps texts of similar length together, so each batch pads less.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    results: list[list[float]] = [[] for _ in texts]
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        rows = _forward(model, tokenizer, [texts[i] for i in indices], max_tokens)
        for index, row in zip(indices, rows, strict=True):
            results[index] = row
    return results


def _forward(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, texts: list[str], max_tokens: int
) -> list[list[float]]:
    inputs = tokenizer(
        texts, return_tensors="pt", truncation=True, max_length=max_tokens, padding=True
    )
    with torch.inference_mode():
        logits = model(**inputs).logits
        # Same as Detoxify.predict: an independent sigmoid per label (bf16 goes back to fp32).
        return torch.sigmoid(logits.float()).tolist()


def load_toxicity_scorer(
    spec: str,
    *,
    config_dir: Path | None = None,
    precision: str = "fp32",
    max_tokens: int = 256,
    load_timeout: float = 20.0,
    pass_size: int = DEFAULT_BATCH_SIZE,
) -> ToxicityScorer:
    """Load the scorer named by `spec` (see the module docstring); only `auto` falls back.
    `pass_size` is the number of comments per forward pass."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (expected one of {PRECISIONS})")
    if spec == "lite":
        return LiteScorer()
    if spec == "auto":
        return _load_auto(config_dir, precision, max_tokens, load_timeout, pass_size)
    if spec.startswith("detoxify:"):
        target = spec.removeprefix("detoxify:")
        detoxify = _load_detoxify(target, config_dir)
        return DetoxifyScorer(
            detoxify, spec, precision=precision, max_tokens=max_tokens, batch_size=pass_size
        )
    raise ValueError(
        f"unknown toxicity model {spec!r} "
        "(expected auto, lite, detoxify:<variant> or detoxify:<checkpoint path>)"
    )


def warm_up(scorer: ToxicityScorer) -> None:
    """One tiny forward pass, so the first real comment does not pay for lazy initialisation."""
    started = time.perf_counter()
    scorer.score(["warm up"])
    logger.info("toxicity model %s warmed up in %.2fs", scorer.name, time.perf_counter() - started)


def cached_checkpoint(variant: str) -> Path:
    """Where torch hub keeps the downloaded checkpoint of a Detoxify variant."""
    from detoxify.detoxify import MODEL_URLS

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(MODEL_URLS[variant])


# --- loading -------------------------------------------------------------------------------------


def _load_detoxify(target: str, config_dir: Path | None) -> Detoxify:
    """A Detoxify object for a variant name or checkpoint path, or ModelLoadError saying why."""
    from detoxify import Detoxify

    if target in DETOXIFY_VARIANTS:
        checkpoint = cached_checkpoint(target)
        if not checkpoint.is_file():
            if _hub_offline():
                raise ModelLoadError(
                    f"Detoxify {target!r} is not cached at {checkpoint} and HF_HUB_OFFLINE is set"
                )
            logger.info("downloading Detoxify %r (cached afterwards at %s)", target, checkpoint)
            return _construct(
                Detoxify, target, model_type=target, huggingface_config_path=config_dir
            )
    else:
        checkpoint = Path(target)
        if not checkpoint.is_file():
            raise ModelLoadError(
                f"no Detoxify checkpoint file at {target!r} "
                f"(or unknown variant; variants: {', '.join(DETOXIFY_VARIANTS)})"
            )
    logger.info("loading Detoxify checkpoint %s", checkpoint)
    return _construct(Detoxify, target, checkpoint=checkpoint, huggingface_config_path=config_dir)


def _construct(factory: Callable[..., Detoxify], target: str, **kwargs: Any) -> Detoxify:
    try:
        return factory(**kwargs)
    except Exception as error:
        raise ModelLoadError(f"could not load Detoxify {target!r}: {error}") from error


def _load_auto(
    config_dir: Path | None,
    precision: str,
    max_tokens: int,
    load_timeout: float,
    pass_size: int = DEFAULT_BATCH_SIZE,
) -> ToxicityScorer:
    started = time.perf_counter()
    try:
        with _default_socket_timeout(min(load_timeout, AUTO_SOCKET_TIMEOUT)):
            detoxify = _call_with_timeout(
                lambda: _load_detoxify(AUTO_VARIANT, config_dir), load_timeout
            )
    except Exception as error:  # anything at all: `auto` must end up with a working scorer
        if isinstance(error, TimeoutError):
            error = ModelLoadError(f"Detoxify {AUTO_VARIANT!r} did not load in {load_timeout:g}s")
        logger.warning(
            "TOXICITY MODEL FALLBACK: %s (gave up after %.1fs). Using the 'lite' profanity model "
            "instead, which only recognises profanity. To use the real model, start once with "
            "network access so that it is downloaded to %s (plus its Hugging Face config, or set "
            "MODERATION_DETOXIFY_CONFIG_DIR), or set MODERATION_TOXICITY_MODEL=detoxify:<path>.",
            error,
            time.perf_counter() - started,
            cached_checkpoint(AUTO_VARIANT),
        )
        return LiteScorer()
    return DetoxifyScorer(
        detoxify,
        f"detoxify:{AUTO_VARIANT}",
        precision=precision,
        max_tokens=max_tokens,
        batch_size=pass_size,
    )


def _call_with_timeout(function: Callable[[], T], timeout: float) -> T:
    """Run `function` in a daemon thread; raise TimeoutError if it has not returned in time.

    A thread that times out is abandoned (threads cannot be killed): being a daemon, it does
    not keep the process alive, and whatever it returns later is dropped.
    """
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(function())
        except Exception as error:
            future.set_exception(error)

    threading.Thread(target=run, name="toxicity-model-load", daemon=True).start()
    return future.result(timeout=timeout)


@contextmanager
def _default_socket_timeout(seconds: float) -> Iterator[None]:
    """Give sockets created meanwhile (torch hub sets none) a timeout, unless one is set already.

    The default is process-wide, but it only applies to sockets created during the attempt
    without an explicit timeout; redis-py and Hugging Face set their own.
    """
    if socket.getdefaulttimeout() is not None:
        yield
        return
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(None)


def _hub_offline() -> bool:
    """True when HF_HUB_OFFLINE forbids downloads; torch hub has no such switch, so obey it too."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


# --- precision -----------------------------------------------------------------------------------


def apply_precision(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """`model` converted in place to `fp32` (as it is), `bf16` or dynamic `int8`."""
    if precision == "fp32":
        return model
    if precision == "bf16":
        return model.to(torch.bfloat16)
    if precision == "int8":
        return _quantize_int8(model)
    raise ValueError(f"unknown precision {precision!r} (expected fp32, bf16 or int8)")


def precision_copy(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """A new model at `precision`, leaving `model` as it was (`fp32` gives `model` itself).

    The copy is built over `model`'s tensors rather than from a full duplicate: bf16 gets
    converted tensors, int8 shares those it keeps in fp32 (embeddings, layer norms). Neither
    model writes to its weights, so sharing is safe, and it keeps start-up memory low.
    """
    if precision == "fp32":
        return model
    if precision == "bf16":
        return _copy_module(model, torch.bfloat16)
    if precision == "int8":
        return _quantize_int8(_copy_module(model))
    raise ValueError(f"unknown precision {precision!r} (expected fp32, bf16 or int8)")


def _copy_module(model: torch.nn.Module, dtype: torch.dtype | None = None) -> torch.nn.Module:
    """A copy of `model`'s modules whose float tensors are converted to `dtype`, or shared."""
    memo: dict[int, Any] = {}
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if dtype is None or not tensor.is_floating_point():
            memo[id(tensor)] = tensor
        elif isinstance(tensor, torch.nn.Parameter):
            memo[id(tensor)] = torch.nn.Parameter(tensor.detach().to(dtype), tensor.requires_grad)
        else:
            memo[id(tensor)] = tensor.to(dtype)
    return copy.deepcopy(model, memo)


def _quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantization of `model`'s Linear layers, in place."""
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao (not a dependency); it still
        # works, and its warnings would otherwise reach the log at every worker start.
        warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated")
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor")
        return torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )


def _token_limit(detoxify: Detoxify, max_tokens: int) -> int:
    """`max_tokens`, but never more than the model's positions or the tokenizer's maximum."""
    positions = getattr(detoxify.model.config, "max_position_embeddings", max_tokens)
    return min(max_tokens, positions, detoxify.tokenizer.model_max_length)


def _unit(value: float) -> float:
    """A plain Python float clamped to [0, 1]."""
    return min(1.0, max(0.0, float(value)))
