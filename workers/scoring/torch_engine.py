"""The model run by torch itself, at fp32, bf16 or dynamic int8.

Reduced precision is faster on most CPUs (bf16 where the CPU has AMX or AVX-512 BF16: oneDNN
runs it on those units; dynamic int8 through FBGEMM elsewhere) but moves scores a little;
`workers.scoring.calibration` measures by how much before a worker uses one.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

RUNTIME = "torch"
PRECISIONS = ("fp32", "bf16", "int8")


@dataclass(frozen=True)
class TorchEngine:
    """A torch model (already at `precision`) scoring windows of token ids."""

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    precision: str = "fp32"
    runtime: str = RUNTIME

    def forward(self, windows: list[list[int]]) -> list[list[float]]:
        return forward(self.model, self.tokenizer, windows)


def forward(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, windows: list[list[int]]
) -> list[list[float]]:
    """One forward pass: each window's probability per output (a sigmoid per label, as
    Detoxify.predict)."""
    # Single texts: token_type_ids would be all 0, the models' default, so only ids and mask.
    inputs = tokenizer.pad({"input_ids": windows}, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**inputs).logits
        return torch.sigmoid(logits.float()).tolist()  # bf16 goes back to fp32


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
        quantized: torch.nn.Module = torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )
        return quantized
