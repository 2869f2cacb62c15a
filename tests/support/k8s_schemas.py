"""Offline schemas for the Kubernetes manifests in deploy/kubernetes/.

* Core objects (Deployment, Service, Secret, ...): the Kubernetes JSON schemas that the
  `kubernetes-validate` wheel ships for each minor release, in their strict form (an unknown
  field is an error, as `kubectl apply --validate=strict` makes it).
* KEDA's ScaledObject and TriggerAuthentication: `cloudcoil-models-keda`, pydantic models
  generated from KEDA's CRDs. Their JSON schema is made strict the same way (no unknown fields)
  before validating, since the models themselves ignore unknown fields.

Both packages are test extras; a missing one fails the tests that need it, naming it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import jsonschema
import pytest

KUBERNETES_VALIDATE = "kubernetes-validate"
KEDA_MODELS = "cloudcoil-models-keda"


def require(module: str, package: str) -> ModuleType:
    """Import `module` or fail the test, naming the package that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        pytest.fail(
            f"{package} is not installed ({error}); it is a test extra: "
            f"pip install -e '.[test]' (or pip install {package})",
            pytrace=False,
        )


def kubernetes_versions() -> list[str]:
    """Every Kubernetes minor version whose schemas kubernetes-validate ships ("1.30", ...)."""
    utils = require("kubernetes_validate.utils", KUBERNETES_VALIDATE)
    return list(dict.fromkeys(utils.major_minor(version) for version in utils.all_versions()))


def kubernetes_errors(document: dict[str, Any], version: str) -> list[str]:
    """Problems of one core Kubernetes object against that version's strict schema."""
    utils = require("kubernetes_validate.utils", KUBERNETES_VALIDATE)
    try:
        utils.validate(document, version, strict=True)
    except utils.ValidationError as error:
        where = "/".join(str(part) for part in error.path) or "<root>"
        return [f"{where}: {error.message}"]
    except utils.SchemaNotFoundError as error:
        return [error.message]
    return []


def strict(schema: Any) -> Any:
    """The schema with `additionalProperties: false` on every object that lists properties."""
    if isinstance(schema, dict):
        result = {key: strict(value) for key, value in schema.items()}
        if "properties" in result and "additionalProperties" not in result:
            result["additionalProperties"] = False
        return result
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


KEDA_KINDS = ("ScaledObject", "TriggerAuthentication", "ClusterTriggerAuthentication")


def keda_validator(kind: str) -> Callable[[dict[str, Any]], list[str]]:
    """A function listing the problems of a keda.sh/v1alpha1 object of `kind`."""
    models = require("cloudcoil.models.keda.v1alpha1", KEDA_MODELS)
    model = getattr(models, kind)
    schema = strict(model.model_json_schema(by_alias=True))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)

    def problems(document: dict[str, Any]) -> list[str]:
        errors = sorted(validator.iter_errors(document), key=lambda error: list(error.path))
        found = [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors]
        if not found:
            model.model_validate(document)  # the models' own checks (raises on a problem)
        return found

    return problems
