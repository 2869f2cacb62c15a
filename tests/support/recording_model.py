"""A model wrapper that keeps what each forward pass was given."""

from __future__ import annotations

import torch


class Recording(torch.nn.Module):
    """Wraps a model and keeps the input ids of every forward pass."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.passes: list[torch.Tensor] = []

    def forward(self, **inputs: torch.Tensor) -> object:
        self.passes.append(inputs["input_ids"])
        return self.inner(**inputs)

    def windows(self, pad_token_id: int) -> list[list[int]]:
        """Every row given, without its padding."""
        rows = [row for ids in self.passes for row in ids.tolist()]
        return [[token for token in row if token != pad_token_id] for row in rows]
