"""The error answers every operation can give, documented in one place.

An apispec plugin: as each operation enters the OpenAPI document it gets the contract's error
responses that apply to it (401/429/503 where a credential is needed, 403 for moderators, 404
where the path names a resource, 400/413/415/422 where it takes a JSON body), each with the
error schema, and `Retry-After` on 429 and 503. There is no catch-all `default` response, so
the document says exactly which status codes an operation answers.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec, BasePlugin

from moderation.http.schemas import ErrorSchema

#: The error schema's name among the document's components.
ERROR_SCHEMA = "Error"

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}

#: Response components: name -> (status, description, more fields of the response object).
ERROR_RESPONSES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "MalformedJSON": ("400", "The body is not valid JSON (or is nested too deeply).", {}),
    "Unauthorized": ("401", "No credential, or one the service does not know.", {}),
    "Forbidden": ("403", "The credential is valid but not for this site.", {}),
    "NotFound": ("404", "No such resource (also: another site's comment).", {}),
    "PayloadTooLarge": ("413", "The body is larger than the service accepts.", {}),
    "UnsupportedMediaType": ("415", "The body is not sent as application/json.", {}),
    "ValidationFailed": ("422", "Invalid fields; `fields` names each with its problems.", {}),
    "RateLimited": (
        "429",
        "Too many requests; retry after `Retry-After` seconds.",
        {"headers": RETRY_AFTER},
    ),
    "Unavailable": ("503", "Redis is unavailable; nothing was accepted.", {"headers": RETRY_AFTER}),
}

#: Unauthenticated paths that still read Redis.
_READS_REDIS_WITHOUT_AUTH = {"/metrics"}


def errors_for(
    path: str, operation: dict[str, Any], default_security: list[dict[str, Any]]
) -> list[str]:
    """The names of the error responses `operation` at `path` can answer with."""
    requirements = operation.get("security", default_security)
    schemes = {name for requirement in requirements for name in requirement}
    names = []
    if schemes:
        names += ["Unauthorized", "RateLimited", "Unavailable"]
    elif path in _READS_REDIS_WITHOUT_AUTH:
        names.append("Unavailable")
    if "moderatorToken" in schemes:
        names.append("Forbidden")
    if "{" in path:
        names.append("NotFound")
    if "requestBody" in operation:
        names += ["MalformedJSON", "PayloadTooLarge", "UnsupportedMediaType"]
    if "requestBody" in operation or operation.get("parameters"):
        names.append("ValidationFailed")
    return names


class ErrorResponsesPlugin(BasePlugin):
    """Adds the contract's error responses to every operation (see the module docstring)."""

    def init_spec(self, spec: APISpec) -> None:
        super().init_spec(spec)
        self.spec = spec
        for name, (_, description, extra) in ERROR_RESPONSES.items():
            response = {
                "description": description,
                "content": {"application/json": {"schema": ErrorSchema}},
                **extra,
            }
            spec.components.response(name, response, lazy=True)

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        default_security = self.spec.options.get("security", [])
        for method, operation in (operations or {}).items():
            if not isinstance(operation, dict) or method == "parameters":
                continue
            responses = operation.setdefault("responses", {})
            documented = {str(status) for status in responses}
            for name in errors_for(path or "", operation, default_security):
                status = ERROR_RESPONSES[name][0]
                if status not in documented:
                    responses[status] = name
            for status, response in responses.items():
                # alt_response(409, description=...) documents no body: it is the error JSON.
                if str(status)[0] in "45" and isinstance(response, dict):
                    response.setdefault("content", {"application/json": {"schema": ERROR_SCHEMA}})
