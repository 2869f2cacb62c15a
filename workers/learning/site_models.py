"""A site's own models: what they read and how they are named, for training and scoring alike.

Each site may have two, trained on its own labels (`workers.learning.training`):

- **spam**: logistic regression over the base spam model's logit and the text's own features,
  so that with few labels it mostly adjusts the base model, and with many it learns the
  site's own spam (its campaigns, the links its readers may post).
- **toxicity**: logistic regression over the toxicity model's label scores (as logits) and the
  text's features, predicting what this site's moderators reject as abuse. It is tied to the
  toxicity model it was trained over, and used only by workers that run that model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from moderation.core.records import SITE_MODEL_SEPARATOR
from workers.learning.features import FeatureSpec
from workers.learning.linear import LinearModel

#: The site spam model's one input besides the text: the base spam model's logit.
BASE_SPAM_LOGIT = "base_spam_logit"
SITE_SPAM_SPEC = FeatureSpec(signals=True, inputs=(BASE_SPAM_LOGIT,))

#: A site toxicity score of 0.80 (the default hold threshold) means the site's moderators are
#: as likely to reject the comment as to approve it; higher means likelier rejected. The
#: calibrated model's even odds are moved there, so the default threshold holds what the
#: site's own moderators would more likely reject, and a site that lowers its threshold holds
#: more, as it would with the base model.
EVEN_ODDS_SCORE = 0.80
EVEN_ODDS_SHIFT = math.log(EVEN_ODDS_SCORE / (1 - EVEN_ODDS_SCORE))

_CLIP = 1e-4


@dataclass(frozen=True)
class SiteModels:
    """The site's models in use (None: the base model alone)."""

    spam: LinearModel | None = None
    toxicity: LinearModel | None = None


def toxicity_spec(labels: Sequence[str]) -> FeatureSpec:
    """A site toxicity model's features: the toxicity model's labels, then the text."""
    return FeatureSpec(signals=False, inputs=tuple(labels))


def toxicity_inputs(scores: Sequence[Mapping[str, float]], labels: Sequence[str]) -> np.ndarray:
    """The toxicity model's label scores as logits, one row per text (a missing label: 0.5)."""
    values = np.array([[float(row.get(label, 0.5)) for label in labels] for row in scores])
    values = np.clip(values, _CLIP, 1 - _CLIP).reshape(len(scores), len(labels))
    return np.log(values / (1 - values))


def model_name(base: str, site: str, version: int) -> str:
    """What decisions record for a site model: `spam-base-1+news.v3`."""
    return f"{base}{SITE_MODEL_SEPARATOR}{site}.v{version}"
