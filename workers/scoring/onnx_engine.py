"""The model run by ONNX Runtime, at fp32 or int8 (an optional extra: `moderation[onnx]`).

ONNX Runtime's CPU kernels, the operators its default session optimizations fuse (GELU with its
bias, attention's scaling into its matrix product) and its int8 kernels (VNNI) can beat torch
on CPU. Its transformer optimizer, which fuses whole attention blocks, measured slower on
AVX-512 CPUs, so it is not used. The torch module is exported once with torch's TorchScript
exporter (input_ids and attention_mask in, logits out, any batch and length) and cached on disk
under the model's checksum; int8 is ONNX Runtime's dynamic quantization of that file (int8
weights, activations quantized at run time: no calibration data needed), cached beside it.
Every file is ONNX protobuf, written under a temporary name and renamed into place, so workers
starting together never read half a file.

`export_onnx`, `atomic_file`, `model_dir` and other helpers here serve `openvino_engine` too.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.special import expit

from workers.scoring.int8_kernels import int8_saturates, int8_variant

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

RUNTIME = "onnxruntime"
PRECISIONS: tuple[str, ...] = ("fp32", "int8")
#: ONNX opset of the export: the first with LayerNormalization as one operator.
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "logits"
_CHECKSUM = re.compile(r"[0-9a-fA-F]+")


def available() -> bool:
    """True when onnxruntime and onnx (its exporter's and quantizer's format) both import."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def supported_precisions() -> tuple[str, ...]:
    """fp32 and int8 on any x86-64 CPU (int8 is fastest with VNNI, but runs without it)."""
    return PRECISIONS if available() else ()


class OnnxEngine:
    """An ONNX Runtime session of the exported model, scoring windows of token ids."""

    runtime = RUNTIME

    def __init__(
        self, session: Any, tokenizer: PreTrainedTokenizerBase, precision: str, path: Path
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.precision = precision
        self.path = path

    def forward(self, windows: list[list[int]]) -> list[list[float]]:
        """Each window's probability per model output, from one run over the padded batch."""
        if not windows:
            return []
        feeds = padded_inputs(self.tokenizer, windows)
        (logits,) = self.session.run([OUTPUT_NAME], feeds)
        return probabilities(logits)


def build(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    precision: str,
    *,
    cache_dir: Path,
    checksum: str,
    threads: int,
    calibration_windows: Sequence[list[int]] = (),
) -> OnnxEngine:
    """An engine of `model` at `precision`, exported (and quantized) only if not cached yet.
    `calibration_windows` are not needed: int8 is dynamic quantization."""
    check_precision(RUNTIME, precision, supported_precisions())
    directory = model_dir(cache_dir, checksum)
    path = fp32 = directory / "onnxruntime-fp32.onnx"
    if not fp32.is_file():
        with atomic_file(fp32) as temporary:
            what = f"exported {type(model).__name__} to ONNX"
            timed(logger, what, export_onnx, model, tokenizer, temporary)
    if precision == "int8":
        path = directory / f"onnxruntime-int8{int8_variant()}.onnx"
        if not path.is_file():
            with atomic_file(path) as temporary:
                timed(logger, "quantized the ONNX model to int8", quantize_int8, fp32, temporary)
    return OnnxEngine(session(path, threads), tokenizer, precision, path)


def session(path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session on `threads` threads, one operator at a time."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of `source` into `target`: int8 weights with one scale per
    output channel (the finer choice; no slower here), activations quantized per batch at run
    time; weights in 7 bits where this CPU's int8 kernels saturate (int8_kernels.py)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger("onnxruntime"):
        quantize_dynamic(
            source,
            target,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=int8_saturates(),
        )


@contextmanager
def _quiet_root_logger(package: str) -> Iterator[None]:
    """Meanwhile, drop what `package` logs below WARNING straight to the root logger (ONNX
    Runtime's quantizer logs a line there for every tensor it leaves in fp32)."""

    def keep(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or f"/{package}/" not in record.pathname

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


# --- shared with the OpenVINO engine -------------------------------------------------------------


def export_onnx(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, path: Path) -> None:
    """Write `model` (left unchanged) to `path` as one ONNX file: input_ids and attention_mask
    (int64, any batch and length) in, logits out."""
    example = example_inputs(tokenizer, "pt")
    dynamic = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    with torch.no_grad(), warnings.catch_warnings():
        # The exporter warns that it is deprecated and that the trace fixes Python values
        # (transformers' mask checks, which hold for any shape): the tests check the results.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example["input_ids"], example["attention_mask"]),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={**dynamic, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def example_inputs(tokenizer: PreTrainedTokenizerBase, tensors: str) -> dict[str, Any]:
    """Two windows of different lengths, padded (so the trace sees a real attention mask), as
    `tensors` ("pt" or "np"): the unknown token between the model's first and last tokens."""
    first, last, filler = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id
    windows = [[first, *[filler] * n, last] for n in (8, 2)]
    batch = tokenizer.pad({"input_ids": windows}, return_tensors=tensors)
    return {name: batch[name] for name in INPUT_NAMES}


def padded_inputs(
    tokenizer: PreTrainedTokenizerBase, windows: list[list[int]], multiple: int | None = None
) -> dict[str, np.ndarray]:
    """input_ids and attention_mask (int64) of `windows` padded to the longest, or up to a
    `multiple` of tokens while that stays within the tokenizer's limit."""
    longest = max(map(len, windows))
    if multiple and -(-longest // multiple) * multiple > tokenizer.model_max_length:
        multiple = None
    batch = tokenizer.pad({"input_ids": windows}, return_tensors="np", pad_to_multiple_of=multiple)
    return {name: batch[name].astype(np.int64) for name in INPUT_NAMES}


def probabilities(logits: np.ndarray) -> list[list[float]]:
    """sigmoid(logits) per window and output, as Python floats (expit does not overflow)."""
    values: list[list[float]] = expit(logits.astype(np.float32)).tolist()  # scipy is untyped
    return values


def check_precision(runtime: str, precision: str, supported: tuple[str, ...]) -> None:
    """Raise ValueError unless `precision` is one of those `runtime` can run here."""
    if precision not in supported:
        runs = ", ".join(supported) or "nothing (not installed)"
        raise ValueError(f"{runtime} cannot run {precision!r} here (it runs {runs})")


def model_dir(cache_dir: Path, checksum: str) -> Path:
    """The directory, created if need be, holding every export of the model `checksum` names."""
    if not _CHECKSUM.fullmatch(checksum):
        raise ValueError(f"the model checksum must be hexadecimal, not {checksum!r}")
    directory = Path(cache_dir) / checksum
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write; renamed to `path` if the block succeeds,
    removed otherwise. Processes writing the same file at once each rename a whole one."""
    temporary = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def timed(log: logging.Logger, what: str, action: Callable[..., Any], *args: Any) -> Any:
    """`action(*args)`, logged to `log` at info level with the seconds it took."""
    started = time.perf_counter()
    result = action(*args)
    log.info("%s in %.1fs", what, time.perf_counter() - started)
    return result
