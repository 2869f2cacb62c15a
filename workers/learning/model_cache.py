"""The site models a worker scores with.

Before each batch the worker reads which version each of the batch's sites uses (one round
trip for the whole batch); a version it has not loaded yet is loaded once and kept, so a new
model takes effect on every worker, on every host, without a restart. A model trained over
another base model than the one this worker runs is not used here.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable

from moderation.storage.model_registry import SPAM, TOXICITY, ModelRegistry
from workers.learning.linear import LinearModel, ModelFileError
from workers.learning.site_models import SiteModels

log = logging.getLogger(__name__)

#: Loaded models kept per worker (each takes a few megabytes).
CAPACITY = 64


class SiteModelCache:
    def __init__(
        self,
        registry: ModelRegistry,
        *,
        spam_base: str,
        toxicity_base: str,
        enabled: bool = True,
        capacity: int = CAPACITY,
    ) -> None:
        self.registry = registry
        self.bases = {SPAM: spam_base, TOXICITY: toxicity_base}
        self.enabled = enabled
        self.capacity = capacity
        self._loaded: OrderedDict[tuple[str, str, int], LinearModel | None] = OrderedDict()

    def for_sites(self, sites: Iterable[str]) -> dict[str, SiteModels]:
        """Each site's models in use (None for a kind that uses the base model)."""
        names = list(dict.fromkeys(sites))
        if not self.enabled or not names:
            return {site: SiteModels() for site in names}
        active = self.registry.active_many(names)
        return {site: self.in_use(site, active[site]) for site in names}

    def in_use(self, site: str, versions: dict[str, int]) -> SiteModels:
        """The site's models at `versions` (kind -> version, as `ModelRegistry.active` reads
        them); a kind without one uses the base model."""
        if not self.enabled:
            return SiteModels()
        return SiteModels(
            spam=self._model(site, SPAM, versions.get(SPAM)),
            toxicity=self._model(site, TOXICITY, versions.get(TOXICITY)),
        )

    def _model(self, site: str, kind: str, version: int | None) -> LinearModel | None:
        """Site model `version` of `kind`, loaded once (None: the base model, or a version
        this worker cannot use)."""
        if not version:
            return None
        key = (site, kind, version)
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key]
        model = self._load(site, kind, version)
        self._loaded[key] = model
        while len(self._loaded) > self.capacity:
            self._loaded.popitem(last=False)
        return model

    def _load(self, site: str, kind: str, version: int) -> LinearModel | None:
        data = self.registry.model_file(site, kind, version)
        if data is None:
            log.warning("site %s: %s model version %d is gone; using the base", site, kind, version)
            return None
        try:
            model = LinearModel.from_bytes(data)
        except ModelFileError as error:
            log.error("site %s: %s model version %d unreadable (%s)", site, kind, version, error)
            return None
        if model.info.get("base") != self.bases[kind]:
            log.info("site %s: %s model %s is for another base model", site, kind, model.name)
            return None
        log.info("site %s: loaded %s model %s", site, kind, model.name)
        return model
