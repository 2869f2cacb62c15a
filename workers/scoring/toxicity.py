"""Toxicity scorers: Detoxify when it can be loaded, the embedded profanity model otherwise.

`load_toxicity_scorer(spec)` is the only entry point that loads anything; importing this module
loads no model. Specs:

- `lite`: the small scikit-learn model shipped inside `alt-profanity-check` (profanity only).
- `detoxify:<variant>`: a published Detoxify model (downloaded once, then cached by torch hub).
- `detoxify:<path>`: a Detoxify checkpoint file on disk.
- `auto`: Detoxify `original` if it loads within the timeout, else `lite` with a loud warning.

Runtime and precision (Detoxify only): torch, ONNX Runtime or OpenVINO, at fp32, bf16 or int8
(see `workers.scoring.engines`); `auto` for either measures which is fastest on this CPU without
moving scores, once per model and machine (see `workers.scoring.calibration`).

Long texts are scored whole: cut into overlapping windows of at most `max_tokens` tokens, each
label's score is its highest over the windows (see `predict`). Every scorer says which
languages it reads (`languages`, ISO 639-1 codes): `VARIANTS` holds each published variant's.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import torch

from workers.scoring import torch_engine
from workers.scoring.engines import Engine

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

T = TypeVar("T")

ENGLISH = frozenset({"en"})
#: Detoxify's README: "trained on 7 different languages so it should only be tested on: english,
#: french, spanish, italian, portuguese, turkish or russian".
MULTILINGUAL = frozenset({"en", "fr", "es", "it", "pt", "tr", "ru"})
ORIGINAL_LABELS = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack")
#: The Unintended Bias challenge's labels; its checkpoints have 9 more outputs after them
#: (identity mentions: male, female, ..., psychiatric_or_mental_illness) that Detoxify ignores.
BIAS_LABELS = (
    "toxicity",
    "severe_toxicity",
    "obscene",
    "identity_attack",
    "insult",
    "threat",
    "sexual_explicit",
)


@dataclass(frozen=True)
class Variant:
    """A model Detoxify publishes, from its `configs/*.json` and README."""

    architecture: str  # transformers model class (the checkpoint's `model_name`)
    tokenizer: str  # transformers tokenizer class (`tokenizer_name`)
    base: str  # the pretrained model it was fine-tuned from (`model_type`)
    labels: tuple[str, ...]  # what Detoxify reports, in output order
    outputs: int  # the checkpoint's outputs (`num_classes`); Detoxify reads the first `labels`
    languages: frozenset[str]
    trained_on: str
    max_length: int = 512  # tokens per window at most: the base model's positions


VARIANTS: dict[str, Variant] = {
    "original": Variant(
        "BertForSequenceClassification",
        "BertTokenizer",
        "bert-base-uncased",
        ORIGINAL_LABELS,
        6,
        ENGLISH,
        "Toxic Comment Classification Challenge (Wikipedia talk pages)",
    ),
    "unbiased": Variant(
        "RobertaForSequenceClassification",
        "RobertaTokenizer",
        "roberta-base",
        BIAS_LABELS,
        16,
        ENGLISH,
        "Unintended Bias in Toxicity Classification (Civil Comments), trained to depend less "
        "on mentions of identities",
    ),
    "multilingual": Variant(
        "XLMRobertaForSequenceClassification",
        "XLMRobertaTokenizer",
        "xlm-roberta-base",
        BIAS_LABELS,
        16,
        MULTILINGUAL,
        "Multilingual Toxic Comment Classification (Wikipedia and Civil Comments, some "
        "machine-translated)",
    ),
    "original-small": Variant(
        "AlbertForSequenceClassification",
        "AlbertTokenizer",
        "albert-base-v2",
        ORIGINAL_LABELS,
        6,
        ENGLISH,
        "as original, in a model a tenth of its size",
    ),
    "unbiased-small": Variant(
        "AlbertForSequenceClassification",
        "AlbertTokenizer",
        "albert-base-v2",
        BIAS_LABELS,
        16,
        ENGLISH,
        "as unbiased, in a model a tenth of its size",
    ),
}
DETOXIFY_VARIANTS = tuple(VARIANTS)
#: Class names older checkpoints store, and what Detoxify reports instead.
DETOXIFY_RENAMED = {
    "toxic": "toxicity",
    "identity_hate": "identity_attack",
    "severe_toxic": "severe_toxicity",
}
PRECISIONS = ("fp32", "bf16", "int8", "auto")
RUNTIME_CHOICES = ("torch", "onnxruntime", "openvino", "auto")
AUTO_VARIANT = "original"
#: Comments per forward pass. Small passes waste little on padding: measured here with a
#: bert-base model, int8, 2 workers, real comment lengths: passes of 16 gave 27.5 comments/s,
#: passes of 4 gave 50.6 (bench/results, 2026-11-25).
DEFAULT_BATCH_SIZE = 4
# Per-socket timeout during the `auto` attempt, so an abandoned download cannot stall forever.
AUTO_SOCKET_TIMEOUT = 10.0
#: Tokens shared by consecutive windows of a long text. Any span of up to WINDOW_OVERLAP + 1
#: tokens lies whole inside some window, so a sentence (commonly 15-30 tokens) is never judged
#: only in halves; at the default 256-token windows it is 1/8 of a window, so a long text
#: takes about 14% more windows than it would with windows that do not overlap.
WINDOW_OVERLAP = 32
_LANGUAGE_CODE = re.compile(r"[a-z]{2}")


class ModelLoadError(RuntimeError):
    """A requested toxicity model could not be loaded."""


class ChoiceKeeper(Protocol):
    """Keeps the engine measured best for a signature, measured by one process at a time
    (`moderation.storage.engine_choices.EngineChoices` keeps it in Redis for every worker)."""

    def once(
        self, signature: Mapping[str, Any], measure: Callable[[], Mapping[str, Any]]
    ) -> tuple[dict[str, Any], bool]: ...


def default_engine_cache() -> Path:
    """Where exported models are kept: `$XDG_CACHE_HOME/moderation/engines`."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "moderation" / "engines"


@dataclass(frozen=True)
class EngineRequest:
    """What should run a Detoxify model: a runtime and a precision, each named or `auto`
    (measured; see `workers.scoring.calibration`), the threads it may use, where exported
    models are cached, who keeps the measurement for other workers, and where to find real
    comments to measure on besides the built-in ones (read whenever `auto` is in the request:
    they also calibrate int8 quantization when a kept choice is built)."""

    runtime: str = "torch"
    precision: str = "fp32"
    threads: int = 1
    cache_dir: Path = field(default_factory=default_engine_cache)
    choices: ChoiceKeeper | None = None
    real_comments: Callable[[], Sequence[str]] | None = None

    def check(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r} (expected one of {PRECISIONS})")
        if self.runtime not in RUNTIME_CHOICES:
            raise ValueError(
                f"unknown runtime {self.runtime!r} (expected one of {RUNTIME_CHOICES})"
            )


#: Torch at fp32: what runs a model when nothing else is asked for.
TORCH_FP32 = EngineRequest()


class LoadedDetoxify(Protocol):
    """What the scorer uses of a loaded Detoxify model (a `Detoxify` object is one)."""

    # Read-only, so that a frozen dataclass (OfflineDetoxify) is one too.
    @property
    def model(self) -> torch.nn.Module: ...
    @property
    def tokenizer(self) -> PreTrainedTokenizerBase: ...
    @property
    def class_names(self) -> list[str]: ...


@dataclass(frozen=True)
class OfflineDetoxify:
    """A Detoxify checkpoint loaded with its transformers files from a directory."""

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    class_names: list[str]


class ToxicityScorer(Protocol):
    """Scores texts; every returned value is a float in [0, 1], one dict per text."""

    name: str
    labels: tuple[str, ...]
    languages: frozenset[str]  # ISO 639-1 codes of the languages it was trained to read

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]: ...


class LiteScorer:
    """The linear model embedded in `alt-profanity-check`: fast, small, profanity only."""

    name = "lite"
    labels: tuple[str, ...] = ("toxicity",)

    def __init__(self, *, languages: frozenset[str] | None = None) -> None:
        # Importing profanity_check loads its model, so it happens here and not at module import.
        from profanity_check import predict_prob

        self._predict_prob = predict_prob
        self.languages = ENGLISH if languages is None else languages

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Probability of profanity for each text, as `toxicity`."""
        if not texts:
            return []
        probabilities = self._predict_prob(list(texts))
        return [{"toxicity": _unit(p)} for p in probabilities]


class DetoxifyScorer:
    """A loaded Detoxify model, run directly so that windows and batching are ours.

    `engine` runs it (`runtime` and `precision` say which: with `auto`, the one measured best,
    and `calibration` holds that measurement). `languages` defaults to what the model's
    architecture reads (see `inferred_languages`).
    """

    def __init__(
        self,
        detoxify: LoadedDetoxify,
        name: str,
        *,
        engine: EngineRequest = TORCH_FP32,
        max_tokens: int = 256,
        batch_size: int = DEFAULT_BATCH_SIZE,
        languages: frozenset[str] | None = None,
    ) -> None:
        engine.check()
        self.name = name
        self.labels = tuple(detoxify.class_names)
        if "toxicity" not in self.labels:
            raise ModelLoadError(f"{name} has no toxicity label (labels: {', '.join(self.labels)})")
        # A transformers config (torch types model attributes as Tensor | Module).
        config: Any = detoxify.model.config
        outputs = config.num_labels
        if outputs < len(self.labels):
            raise ModelLoadError(f"{name} has {outputs} outputs for {len(self.labels)} labels")
        self.languages = inferred_languages(detoxify) if languages is None else languages
        self.tokenizer = detoxify.tokenizer
        self.max_tokens = _token_limit(detoxify, max_tokens)
        self.batch_size = batch_size
        self.config = config
        # Imported here: calibration imports this module.
        from workers.scoring.calibration import select_engine

        self.engine, self.calibration = select_engine(
            detoxify.model.eval(),
            self.tokenizer,
            engine,
            max_tokens=self.max_tokens,
            batch_size=batch_size,
        )
        self.runtime, self.precision = self.engine.runtime, self.engine.precision

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Scores for every label, in input order; a long text gets each label's highest score
        over its windows of `max_tokens` tokens."""
        rows = predict(
            self.engine,
            self.tokenizer,
            texts,
            max_tokens=self.max_tokens,
            batch_size=self.batch_size,
        )
        # As Detoxify.predict: the labels are the first outputs; the unbiased and multilingual
        # checkpoints have 9 more (identity mentions), which no label names.
        width = len(self.labels)
        return [dict(zip(self.labels, map(_unit, row[:width]), strict=True)) for row in rows]


def predict(
    model: torch.nn.Module | Engine,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_tokens: int,
    batch_size: int,
    max_windows: int | None = None,
) -> list[list[float]]:
    """Each text's probability per output, in input order.

    A text longer than `max_tokens` tokens (special tokens included) is cut into windows that
    long, overlapping by WINDOW_OVERLAP tokens, and each output's value is its highest over the
    windows. `max_windows` keeps only each text's first ones (1: truncation to `max_tokens`).
    Windows go `batch_size` per forward pass, sorted by length so that each pass pads little.
    """
    if max_windows is not None and max_windows < 1:
        raise ValueError(f"max_windows must be at least 1 (got {max_windows})")
    if not texts:
        return []
    windows, owners = _windows(tokenizer, texts, max_tokens, max_windows)
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    results: list[list[float]] = [[] for _ in texts]
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        rows = _forward(model, tokenizer, [windows[i] for i in indices])
        for index, row in zip(indices, rows, strict=True):
            best = results[owners[index]]
            results[owners[index]] = list(map(max, best, row)) if best else row
    return results


def _windows(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_tokens: int,
    max_windows: int | None,
) -> tuple[list[list[int]], list[int]]:
    """Every text's windows of token ids (specials included), and the text each belongs to.

    Texts are tokenized once, whole (as truncation did before cutting them); a text that fits
    is one window, exactly the ids truncation gave it.
    """
    # verbose=False: texts longer than the model's limit are expected, not worth a warning.
    encoded = tokenizer(list(texts), verbose=False)["input_ids"]
    windows: list[list[int]] = []
    owners: list[int] = []
    specials: tuple[int, int] | None = None
    for owner, ids in enumerate(encoded):
        if len(ids) <= max_tokens:
            pieces = [ids]
        else:
            specials = specials or _special_token_counts(tokenizer)
            pieces = _cut(ids, max_tokens, specials, max_windows)
        windows += pieces
        owners += [owner] * len(pieces)
    return windows, owners


def _cut(
    ids: list[int], max_tokens: int, specials: tuple[int, int], max_windows: int | None
) -> list[list[int]]:
    """`ids` (with its special tokens around it) as overlapping windows of `max_tokens` ids,
    each with the same special tokens; the last window ends at the text's end, so no window
    is a short tail with little context."""
    head, tail = specials
    prefix, body, suffix = ids[:head], ids[head : len(ids) - tail], ids[len(ids) - tail :]
    size = max(1, max_tokens - head - tail)
    starts = window_starts(len(body), size)
    return [prefix + body[start : start + size] + suffix for start in starts[:max_windows]]


def window_starts(length: int, size: int) -> list[int]:
    """Where the windows of `size` tokens over `length` tokens start: every `size - overlap`
    tokens, the last one `size` before the end (overlap: WINDOW_OVERLAP, at most a quarter of
    a window)."""
    if length <= size:
        return [0]
    step = size - min(WINDOW_OVERLAP, size // 4)
    return [*range(0, length - size, step), length - size]


def _special_token_counts(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """How many special tokens the tokenizer puts before and after a single text."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for head in range(len(full) - len(bare) + 1):
        if full[head : head + len(bare)] == bare:
            return head, len(full) - len(bare) - head
    raise ValueError(f"cannot find a text's tokens among its special tokens: {full}")


def _forward(
    model: torch.nn.Module | Engine, tokenizer: PreTrainedTokenizerBase, windows: list[list[int]]
) -> list[list[float]]:
    """One forward pass of a torch module (the tokenizer pads) or of an engine (its own)."""
    if isinstance(model, torch.nn.Module):
        return torch_engine.forward(model, tokenizer, windows)
    return model.forward(windows)


def inferred_languages(detoxify: LoadedDetoxify) -> frozenset[str]:
    """The languages of the published variant with the same model or tokenizer class (XLM-R:
    the multilingual ones); English for any other."""
    classes = {type(detoxify.model).__name__, type(detoxify.tokenizer).__name__}
    known = [v.languages for v in VARIANTS.values() if classes & {v.architecture, v.tokenizer}]
    return frozenset().union(*known) or ENGLISH


def load_toxicity_scorer(
    spec: str,
    *,
    config_dir: Path | None = None,
    engine: EngineRequest = TORCH_FP32,
    max_tokens: int = 256,
    load_timeout: float = 20.0,
    pass_size: int = DEFAULT_BATCH_SIZE,
    languages: frozenset[str] | None = None,
) -> ToxicityScorer:
    """Load the scorer named by `spec` (see the module docstring); only `auto` falls back.
    `engine` says what runs a Detoxify model; `pass_size` is the number of comments per
    forward pass; `languages` (ISO 639-1 codes) replaces the languages the model is known or
    inferred to read."""
    engine.check()
    if languages is not None:
        _check_languages(languages)
    if spec == "lite":
        return LiteScorer(languages=languages)
    if spec == "auto":
        return _load_auto(config_dir, engine, max_tokens, load_timeout, pass_size, languages)
    if spec.startswith("detoxify:"):
        target = spec.removeprefix("detoxify:")
        detoxify = _load_detoxify(target, config_dir)
        if languages is None and target in VARIANTS:
            languages = VARIANTS[target].languages
        return DetoxifyScorer(
            detoxify,
            spec,
            engine=engine,
            max_tokens=max_tokens,
            batch_size=pass_size,
            languages=languages,
        )
    raise ValueError(
        f"unknown toxicity model {spec!r} "
        "(expected auto, lite, detoxify:<variant> or detoxify:<checkpoint path>)"
    )


def _check_languages(languages: frozenset[str]) -> None:
    """Raise ValueError unless `languages` is a non-empty set of lower-case ISO 639-1 codes."""
    wrong = sorted(code for code in languages if not _LANGUAGE_CODE.fullmatch(code))
    if not languages or wrong:
        raise ValueError(
            f"languages must be ISO 639-1 codes such as 'en' or 'fr' (got {sorted(languages)})"
        )


def warm_up(scorer: ToxicityScorer) -> None:
    """One tiny forward pass, so the first real comment does not pay for lazy initialisation."""
    started = time.perf_counter()
    scorer.score(["warm up"])
    logger.info("toxicity model %s warmed up in %.2fs", scorer.name, time.perf_counter() - started)


def cached_checkpoint(variant: str) -> Path:
    """Where torch hub keeps the downloaded checkpoint of a Detoxify variant."""
    from detoxify.detoxify import MODEL_URLS

    url: str = MODEL_URLS[variant]
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


# --- loading -------------------------------------------------------------------------------------


def _load_detoxify(target: str, config_dir: Path | None) -> LoadedDetoxify:
    """The Detoxify model of a variant name or checkpoint path, or ModelLoadError saying why.
    With `config_dir`, nothing is read from the hub (see `_load_offline`)."""
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
    if config_dir is None:
        return _construct(Detoxify, target, checkpoint=checkpoint)
    return _construct(_load_offline, target, checkpoint=checkpoint, config_dir=config_dir)


def _load_offline(checkpoint: Path, config_dir: Path) -> OfflineDetoxify:
    """A checkpoint loaded as `Detoxify(checkpoint=...)` loads it, with Detoxify's own model
    and tokenizer loader, but every transformers file read from `config_dir`.

    `Detoxify(..., huggingface_config_path=config_dir)` would still read the model's config
    from the hub name the checkpoint gives (`bert-base-uncased`, ...), and take the number of
    outputs from config_dir's config.json, which the published base models' leave at 2.
    """
    from detoxify.detoxify import get_model_and_tokenizer

    loaded = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if not isinstance(loaded, dict) or "config" not in loaded or "state_dict" not in loaded:
        raise ValueError("the checkpoint needs its training config and its state dict")
    args = {**loaded["config"]["arch"]["args"], "model_type": str(config_dir)}
    model, tokenizer = get_model_and_tokenizer(**args, state_dict=loaded["state_dict"])
    classes = loaded["config"]["dataset"]["args"]["classes"]
    return OfflineDetoxify(model, tokenizer, [DETOXIFY_RENAMED.get(c, c) for c in classes])


def _construct(
    factory: Callable[..., LoadedDetoxify], target: str, **kwargs: Any
) -> LoadedDetoxify:
    try:
        return factory(**kwargs)
    except Exception as error:
        raise ModelLoadError(f"could not load Detoxify {target!r}: {error}") from error


def _load_auto(
    config_dir: Path | None,
    engine: EngineRequest,
    max_tokens: int,
    load_timeout: float,
    pass_size: int = DEFAULT_BATCH_SIZE,
    languages: frozenset[str] | None = None,
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
        return LiteScorer(languages=languages)
    return DetoxifyScorer(
        detoxify,
        f"detoxify:{AUTO_VARIANT}",
        engine=engine,
        max_tokens=max_tokens,
        batch_size=pass_size,
        languages=VARIANTS[AUTO_VARIANT].languages if languages is None else languages,
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


def _token_limit(detoxify: LoadedDetoxify, max_tokens: int) -> int:
    """`max_tokens`, but never more than the model's positions or the tokenizer's maximum."""
    config: Any = detoxify.model.config  # a transformers config, as in DetoxifyScorer
    positions: int = getattr(config, "max_position_embeddings", max_tokens)
    if config.model_type in ("roberta", "xlm-roberta"):
        # RoBERTa numbers positions from pad_token_id + 1: 514 positions hold 512 tokens.
        positions -= config.pad_token_id + 1
    tokenizer_limit: int = detoxify.tokenizer.model_max_length  # untyped in transformers
    return min(max_tokens, positions, tokenizer_limit)


def _unit(value: float) -> float:
    """A plain Python float clamped to [0, 1]."""
    return min(1.0, max(0.0, float(value)))
