"""A linear model over a feature layout, and its file format.

A model is `logit = weights · features + bias`: fitted by scikit-learn, stored as numpy
arrays in an `.npz` file (never a pickle, which would run code when loaded) with its
description as JSON. Weights that are zero are not stored, so a model trained on a few
thousand texts takes a few hundred kilobytes whatever the size of its hashed feature space.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from workers.learning.features import FeatureSpec, Featurizer

FORMAT = "moderation-linear-1"


class ModelFileError(ValueError):
    """A model file that this code cannot read."""


@dataclass
class LinearModel:
    """A logistic model: its name (the version decisions record), features, weights and bias.

    `info` carries what the trainer wants to keep with it (kind, labels, quality, base).
    """

    name: str
    spec: FeatureSpec
    weights: np.ndarray
    bias: float
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.featurizer = Featurizer(self.spec)
        self.weights = np.asarray(self.weights, dtype=np.float64)
        if self.weights.shape != (self.featurizer.width,):
            raise ModelFileError(
                f"{self.name}: {self.weights.shape[0]} weights for {self.featurizer.width} features"
            )

    def logits(self, features: csr_matrix) -> np.ndarray:
        return np.asarray(features @ self.weights).ravel() + self.bias

    def logits_of(
        self,
        texts: Sequence[str],
        inputs: np.ndarray | None = None,
        signals: Sequence[Mapping[str, tuple[float, str]]] | None = None,
    ) -> np.ndarray:
        return self.logits(self.featurizer.matrix(texts, inputs, signals))

    def input_weight(self, name: str) -> float:
        """The weight of one named input (e.g. the base model's logit)."""
        return float(self.weights[self.spec.inputs.index(name)])

    @cached_property
    def text_featurizer(self) -> Featurizer:
        """Reads the text's own features, in the layout of `text_weights`."""
        return Featurizer(self.spec.without_inputs())

    def text_weights(self) -> np.ndarray:
        """The weights of the text's own features (signals and n-grams), without the inputs:
        the layout of `Featurizer(spec.without_inputs())`."""
        return self.weights[len(self.spec.inputs) :]

    # --- the file format --------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        nonzero = np.flatnonzero(self.weights)
        description = {
            "format": FORMAT,
            "name": self.name,
            "spec": self.spec.to_json(),
            "bias": self.bias,
            "info": self.info,
        }
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            description=np.array(json.dumps(description)),
            indices=nonzero.astype(np.int32),
            values=self.weights[nonzero].astype(np.float32),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearModel:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                description = json.loads(str(arrays["description"]))
                indices, values = arrays["indices"], arrays["values"]
        except (OSError, KeyError, ValueError) as error:
            raise ModelFileError(f"not a model file: {error}") from None
        if description.get("format") != FORMAT:
            raise ModelFileError(f"unknown model format {description.get('format')!r}")
        spec = FeatureSpec.from_json(description["spec"])
        weights = np.zeros(Featurizer(spec).width)
        weights[indices] = values
        bias = float(description["bias"])
        if not math.isfinite(bias) or not np.all(np.isfinite(weights)):
            raise ModelFileError("a model weight is not a finite number")
        return cls(description["name"], spec, weights, bias, description.get("info", {}))

    def save(self, path: Path) -> None:
        path.write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> LinearModel:
        return cls.from_bytes(path.read_bytes())
