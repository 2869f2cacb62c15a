"""What runs a loaded Detoxify model: an engine, one runtime at one precision.

The model always loads through Detoxify's own code as a torch module. An engine then scores
windows of token ids with it: torch itself (fp32, bf16, dynamic int8), or the same model
exported once to ONNX Runtime (fp32, int8) or OpenVINO (fp32, bf16, int8), each an optional
extra (`pip install 'moderation[onnx]'`, `'moderation[openvino]'`). Exports are cached on disk
under the model's checksum, so a worker restart does not export again.

Which engine is fastest, and which stay close enough to fp32, depends on the CPU and on the
model: `workers.scoring.calibration` measures that; this module only builds and names them.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

import torch

from workers.scoring import torch_engine

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

#: Every runtime, and the module that runs the model on it (imported only when used).
RUNTIME_MODULES = {
    "torch": "workers.scoring.torch_engine",
    "onnxruntime": "workers.scoring.onnx_engine",
    "openvino": "workers.scoring.openvino_engine",
}
RUNTIMES = tuple(RUNTIME_MODULES)
#: The pip extra that installs each optional runtime.
EXTRAS = {"onnxruntime": "onnx", "openvino": "openvino"}
#: The instruction-set features that decide which precision is fast on a CPU.
CPU_FEATURES = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


class Engine(Protocol):
    """Scores windows of token ids (special tokens included) in one forward pass."""

    # Read-only, so that frozen dataclasses (TorchEngine) are engines too.
    @property
    def runtime(self) -> str: ...
    @property
    def precision(self) -> str: ...

    def forward(self, windows: list[list[int]]) -> list[list[float]]:
        """Each window's probability per model output (a sigmoid per output)."""
        ...


@dataclass(frozen=True, order=True)
class Candidate:
    """A runtime at a precision: what `MODERATION_RUNTIME` and `MODERATION_PRECISION` name."""

    runtime: str
    precision: str

    @property
    def name(self) -> str:
        return f"{self.runtime}-{self.precision}"

    @classmethod
    def parse(cls, name: str) -> Candidate:
        runtime, _, precision = name.rpartition("-")
        return cls(runtime, precision)


class RuntimeUnavailableError(RuntimeError):
    """The runtime asked for is not installed, or cannot run the precision asked for here."""


def runtime_module(runtime: str) -> ModuleType:
    if runtime not in RUNTIME_MODULES:
        raise ValueError(f"unknown runtime {runtime!r} (expected one of {', '.join(RUNTIMES)})")
    return importlib.import_module(RUNTIME_MODULES[runtime])


def installed_runtimes() -> tuple[str, ...]:
    """The runtimes this process can use: torch always, the others when their extra is in."""
    return tuple(runtime for runtime in RUNTIMES if _usable(runtime))


def _usable(runtime: str) -> bool:
    if runtime == "torch":
        return True
    try:
        return bool(runtime_module(runtime).available())
    except ImportError:
        return False
    except Exception as error:  # e.g. a shared library that does not load on this host
        logger.warning("runtime %s is installed but unusable here: %s", runtime, error)
        return False


def candidates(runtime: str = "auto", precision: str = "auto") -> list[Candidate]:
    """The engines `runtime` and `precision` (each a name or `auto`) allow on this machine.

    A runtime named outright that is not installed, or a precision it cannot run here, raises
    RuntimeUnavailableError saying what to install or choose instead."""
    if runtime != "auto" and runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r} (expected auto or one of {RUNTIMES})")
    if runtime != "auto" and not _usable(runtime):
        raise RuntimeUnavailableError(
            f"MODERATION_RUNTIME={runtime} but {runtime} is not installed: "
            f"pip install 'moderation[{EXTRAS[runtime]}]'"
        )
    runtimes = installed_runtimes() if runtime == "auto" else (runtime,)
    found = [
        Candidate(each, each_precision)
        for each in runtimes
        for each_precision in _precisions(each)
        if precision in ("auto", each_precision)
    ]
    if not found:
        raise RuntimeUnavailableError(
            f"no installed runtime ({', '.join(runtimes)}) runs precision {precision} on this CPU"
        )
    return found


def _precisions(runtime: str) -> tuple[str, ...]:
    if runtime == "torch":
        return torch_engine.PRECISIONS
    return tuple(runtime_module(runtime).supported_precisions())


def build_engine(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    candidate: Candidate,
    *,
    cache_dir: Path,
    checksum: str,
    threads: int,
    calibration_windows: Sequence[list[int]] = (),
) -> Engine:
    """`candidate`'s engine for the fp32 `model`, which is left unchanged (torch's bf16 and
    int8 are copies over its tensors; exports are read back from `cache_dir` when there)."""
    if candidate.runtime == "torch":
        converted = torch_engine.precision_copy(model, candidate.precision)
        return torch_engine.TorchEngine(converted, tokenizer, candidate.precision)
    module = runtime_module(candidate.runtime)
    engine: Engine = module.build(
        model,
        tokenizer,
        candidate.precision,
        cache_dir=cache_dir,
        checksum=checksum,
        threads=threads,
        calibration_windows=calibration_windows,
    )
    return engine


def model_checksum(model: torch.nn.Module) -> str:
    """A digest of the model's class, configuration and every weight: the same for the same
    model on every host, whatever file or download it came from."""
    digest = hashlib.sha256(type(model).__name__.encode())
    config = getattr(model, "config", None)
    if config is not None:
        digest.update(config.to_json_string(use_diff=False).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        # Viewed as bytes (numpy has no bf16), hashed in place without a copy.
        digest.update(tensor.detach().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:32]


@cache
def machine_signature() -> dict[str, str]:
    """What makes one engine faster than another on this machine: the CPU model and the
    instruction-set features that matter, and the runtimes' versions."""
    flags: set[str] = set()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    versions = {runtime: _version(runtime) for runtime in installed_runtimes()}
    return {
        "cpu": cpu,
        "features": " ".join(feature for feature in CPU_FEATURES if feature in flags),
        "runtimes": " ".join(f"{name} {version}" for name, version in versions.items()),
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"
