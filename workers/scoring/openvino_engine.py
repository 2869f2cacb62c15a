"""The model run by OpenVINO, at fp32, bf16 or int8 (an optional extra: `moderation[openvino]`).

OpenVINO's CPU plugin fuses BERT's operators and runs bf16 on AVX-512 BF16 or AMX and int8 on
VNNI or AMX. The torch module is converted once (from the module itself, or from an ONNX export
when that fails) to OpenVINO IR at full fp32 (not the default fp16 weights) and cached on disk
under the model's checksum; bf16 is that same IR compiled with a bf16 inference hint. int8 is
NNCF's post-training quantization of the IR, calibrated on the windows the caller gives, cached
as its own IR (the extra installs nncf; where it is missing, int8 is not offered). Each IR is
written to a temporary directory and renamed into place, so workers starting together never
read half of one.

OpenVINO's CPU plugin keeps memory for every input shape it has run (1-3 MB each for a bert-base
model, measured), and no setting bounds it (its CPU_RUNTIME_CACHE_CAPACITY made no difference):
windows are padded up to a multiple of `LENGTH_MULTIPLE` tokens, so that a worker sees at most
one length in 16 per batch size. OpenVINO and NNCF send usage telemetry unless told not to
(their default, even on import): it is turned off around every call that would send it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import threading
import uuid
import warnings
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from workers.scoring.int8_kernels import int8_saturates, int8_variant
from workers.scoring.onnx_engine import (
    INPUT_NAMES,
    check_precision,
    example_inputs,
    export_onnx,
    model_dir,
    padded_inputs,
    probabilities,
    timed,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

RUNTIME = "openvino"
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")
#: Sequence lengths are padded up to a multiple of this, so that few shapes are run.
LENGTH_MULTIPLE = 16
MODEL_FILE = "model.xml"  # and model.bin beside it


def available() -> bool:
    """True when openvino imports."""
    try:
        _openvino()
    except ImportError:
        return False
    return True


def supported_precisions() -> tuple[str, ...]:
    """fp32; bf16 where OpenVINO finds bf16 units on this CPU; int8 when nncf is installed."""
    if not available():
        return ()
    capabilities = set(_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    found = ["fp32"]
    if "BF16" in capabilities:
        found.append("bf16")
    if "INT8" in capabilities and _nncf_available():
        found.append("int8")
    return tuple(found)


class OpenVinoEngine:
    """A compiled OpenVINO model, scoring windows of token ids (one request at a time)."""

    runtime = RUNTIME

    def __init__(
        self, compiled: Any, tokenizer: PreTrainedTokenizerBase, precision: str, path: Path
    ) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.tokenizer = tokenizer
        self.precision = precision
        self.path = path
        self._lock = threading.Lock()

    def forward(self, windows: list[list[int]]) -> list[list[float]]:
        """Each window's probability per model output, from one run over the padded batch."""
        if not windows:
            return []
        feeds = padded_inputs(self.tokenizer, windows, LENGTH_MULTIPLE)
        with self._lock:
            self.request.infer(feeds)
            logits = self.request.get_output_tensor(0).data
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
) -> OpenVinoEngine:
    """An engine of `model` at `precision`, converted (and quantized) only if not cached yet.
    int8 is calibrated on `calibration_windows` when it is first built."""
    check_precision(RUNTIME, precision, supported_precisions())
    directory = model_dir(cache_dir, checksum)
    path = fp32 = directory / "openvino-fp32" / MODEL_FILE
    if not fp32.is_file():
        with atomic_dir(fp32.parent) as temporary:
            _convert(model, tokenizer, temporary / MODEL_FILE)
    if precision == "int8":
        path = directory / f"openvino-int8{int8_variant()}" / MODEL_FILE
        if not path.is_file():
            with atomic_dir(path.parent) as temporary:
                _quantize(fp32, calibration_windows, temporary / MODEL_FILE)
    compiled = _core().compile_model(_core().read_model(path), "CPU", _config(precision, threads))
    return OpenVinoEngine(compiled, tokenizer, precision, path)


def _config(precision: str, threads: int) -> dict[str, Any]:
    """Compile options: `threads` threads in one stream, run at bf16 for bf16 and for int8's
    unquantized operators where the CPU has bf16 units, else at fp32.

    Not pinned to cores: OpenVINO pins its threads by default, and every worker process pins
    its one thread to the same first core (two workers on a 2-core machine measured no faster
    than one), while the operating system spreads unpinned processes over the cores."""
    bf16 = precision == "bf16" or (precision == "int8" and "bf16" in supported_precisions())
    return {
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
        "ENABLE_CPU_PINNING": False,
    }


def _convert(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, target: Path) -> None:
    """Convert `model` (left unchanged) to an fp32 IR at `target`: from the torch module, or
    from an ONNX export of it if OpenVINO cannot convert the module."""
    openvino = _openvino()
    what = f"converted {type(model).__name__} to OpenVINO IR"
    with _no_telemetry():
        try:
            converted = timed(logger, what, _from_torch, model, tokenizer)
        except Exception as error:
            logger.warning("OpenVINO could not convert the torch module (%s); via ONNX", error)
            onnx_file = target.with_suffix(".onnx")
            converted = timed(logger, f"{what} via ONNX", _via_onnx, model, tokenizer, onnx_file)
        openvino.save_model(converted, target, compress_to_fp16=False)
    target.with_suffix(".onnx").unlink(missing_ok=True)


def _from_torch(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> Any:
    """OpenVINO's conversion of the torch module, traced on padded example windows."""
    example = example_inputs(tokenizer, "pt")
    with warnings.catch_warnings():
        # As for the ONNX export: the tracer's warnings about transformers' mask checks, which
        # hold for any shape, and deprecations (torch.jit.trace) the tests would see first.
        warnings.simplefilter("ignore")
        return _openvino().convert_model(model, example_input=example)


def _via_onnx(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, onnx_file: Path) -> Any:
    """OpenVINO's conversion of an ONNX export of the module, written to `onnx_file`."""
    export_onnx(model, tokenizer, onnx_file)
    return _openvino().convert_model(onnx_file)


def _quantize(fp32: Path, windows: Sequence[list[int]], target: Path) -> None:
    """NNCF's int8 post-training quantization of the IR at `fp32`, calibrated on `windows` (one
    window per sample), saved at `target`."""
    if not windows:
        raise ValueError("OpenVINO int8 needs calibration windows to quantize with")
    with _no_telemetry():
        import nncf

        dataset = nncf.Dataset(list(windows), _calibration_inputs)
        what = f"quantized the OpenVINO model to int8 on {len(windows)} windows"
        # NNCF draws progress bars on stdout, which is the workers' log: the line above says
        # how long it took instead.
        with contextlib.redirect_stdout(io.StringIO()):
            quantized = timed(
                logger,
                what,
                lambda: nncf.quantize(
                    _core().read_model(fp32),
                    dataset,
                    model_type=nncf.ModelType.TRANSFORMER,
                    subset_size=len(windows),
                    advanced_parameters=_overflow_fix(nncf),
                ),
            )
        _openvino().save_model(quantized, target, compress_to_fp16=False)


def _overflow_fix(nncf: Any) -> Any:
    """NNCF's overflow fix on every layer where this CPU's int8 kernels saturate, else its
    default (the first layer only)."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    fix = nncf.OverflowFix.ENABLE if int8_saturates() else nncf.OverflowFix.FIRST_LAYER
    return AdvancedQuantizationParameters(overflow_fix=fix)


def _calibration_inputs(window: list[int]) -> dict[str, np.ndarray]:
    """One calibration window as the model's inputs (a batch of one, nothing padded)."""
    ids = np.asarray([window], dtype=np.int64)
    return dict(zip(INPUT_NAMES, (ids, np.ones_like(ids)), strict=True))


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """A temporary directory beside `path` to fill; renamed to `path` if the block succeeds
    (unless another process has put one there first: its copy is as good), removed otherwise."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}")
    temporary.mkdir()
    try:
        yield temporary
        try:
            os.replace(temporary, path)
        except OSError:
            if not (path / MODEL_FILE).is_file():
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


@contextlib.contextmanager
def _no_telemetry() -> Iterator[None]:
    """Meanwhile, environment variables that stop OpenVINO's converter and NNCF from sending
    usage data to Intel (both send it by default, in a subprocess, unless a consent file in
    the home directory declines it): both skip telemetry in CI, which these variables declare."""
    names = {"CI": "true", "NNCF_CI": "1"}
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _openvino() -> Any:
    """The openvino module, imported without telemetry (its import sends an event)."""
    with _no_telemetry():
        import openvino

    return openvino


@cache
def _core() -> Any:
    """The process's one OpenVINO Core."""
    return _openvino().Core()


@cache
def _nncf_available() -> bool:
    try:
        with _no_telemetry():
            import nncf  # noqa: F401
    except ImportError:
        return False
    return True
