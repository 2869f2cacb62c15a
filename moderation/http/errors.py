"""The contract's error JSON, one handler per failure kind.

Every error body is `{"error": {"code", "message", "fields"?}}`.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from moderation.core.domain_errors import (
    AlreadyDecided,
    CommentNotFound,
    DomainError,
    InvalidRequest,
    NotAssigned,
)
from moderation.storage.durability import RETRY_AFTER as DURABILITY_RETRY_AFTER
from moderation.storage.durability import NotDurable

log = logging.getLogger(__name__)

#: Seconds a client should wait before retrying when Redis is unavailable.
REDIS_RETRY_AFTER = 5

CODES: dict[int, str] = {
    400: "malformed_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the API answers on purpose, with its status, code and message."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.fields = fields
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """The contents of the contract's `{"error": ...}` object."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        body.update(self.extra)
        return body


def unicode_safe(value: Any) -> Any:
    """`value` with every lone surrogate in its strings (and keys) spelled out as `\\udXXX`.

    Python's JSON reader accepts `"\\ud800"` and errors echo what the client sent (unknown
    field names, ids); written back as is, such a string is JSON that strict readers refuse.
    """
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {unicode_safe(key): unicode_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unicode_safe(item) for item in value]
    return value


def error_response(error: ApiError) -> Response:
    response = jsonify({"error": unicode_safe(error.body())})
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def flatten_fields(messages: Any) -> dict[str, list[str]]:
    """webargs nests messages by location ({"json": {"author": {"email": [..]}}}); flatten to
    dotted field names: {"author.email": [...]}. Location keys are dropped."""
    flat: dict[str, list[str]] = {}

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                # marshmallow names problems with a whole object "_schema"
                walk(value, path if key == "_schema" else [*path, str(key)])
        elif isinstance(node, list) and all(isinstance(item, str) for item in node):
            flat[".".join(path) or "body"] = list(node)
        else:
            flat[".".join(path) or "body"] = [str(node)]

    if isinstance(messages, dict):
        for location_or_field, value in messages.items():
            is_location = location_or_field in ("json", "query", "form", "headers", "view_args")
            walk(value, [] if is_location else [str(location_or_field)])
    else:
        walk(messages, [])
    return flat


def from_http_exception(error: HTTPException) -> ApiError:
    """Werkzeug's and webargs's HTTP errors in the contract's form."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    headers = dict(data.get("headers") or {})
    if status == 400 and messages:
        return ApiError(400, "The request body is not valid JSON.", code="malformed_json")
    if status == 422:
        fields = flatten_fields(messages) if messages else None
        names = ", ".join(sorted(fields)) if fields else "the request"
        return ApiError(422, f"Invalid fields: {names}.", fields=fields, headers=headers)
    if status == 413:
        return ApiError(413, "The request body is larger than this service accepts.")
    message = data.get("message") or error.description or error.name
    return ApiError(status, message, headers=headers)


#: The HTTP status of each domain error; its `code` is already the contract's.
DOMAIN_ERROR_STATUS: dict[type[DomainError], int] = {
    NotAssigned: 403,
    CommentNotFound: 404,
    AlreadyDecided: 409,
    InvalidRequest: 422,
}


def from_domain_error(error: DomainError) -> ApiError:
    """A domain error (`moderation.core.domain_errors`) as the contract's error answer; a kind
    not in DOMAIN_ERROR_STATUS is a 422."""
    status = next(
        (status for kind, status in DOMAIN_ERROR_STATUS.items() if isinstance(error, kind)), 422
    )
    return ApiError(status, error.message, code=error.code, fields=error.fields, extra=error.extra)


def storage_refusal(error: Exception) -> ApiError:
    """The 503 for a Redis failure, for every surface that answers one (the API, Akismet's
    endpoints, the /moderate page): Redis down or failing over, so nothing was stored; or a
    write Redis did not confirm on disk (or at a replica) in time (`NotDurable`), which may or
    may not have been stored."""
    if isinstance(error, NotDurable):
        log.warning("write not confirmed durable: %s", error)
        return ApiError(
            503,
            "Storage did not confirm this write is kept (MODERATION_DURABILITY); it may or may "
            "not have been stored. Retry with the same id: a 200 or 202 then means it is kept.",
            headers={"Retry-After": str(DURABILITY_RETRY_AFTER)},
        )
    log.warning("Redis unavailable: %s", type(error).__name__)
    return ApiError(
        503,
        "The service's storage is unavailable; nothing was accepted. Retry later.",
        headers={"Retry-After": str(REDIS_RETRY_AFTER)},
    )


def init_app(app: Flask) -> None:
    """Register the handlers; flask-smorest's own handler is overridden in `api.Api`."""

    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError) -> Response:
        return error_response(error)

    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError) -> Response:
        return error_response(from_domain_error(error))

    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    def handle_redis_down(error: Exception) -> Response:
        return error_response(storage_refusal(error))

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Response:
        if isinstance(error, HTTPException):
            return error_response(from_http_exception(error))
        log.exception("unhandled error")
        return error_response(ApiError(500, "Internal error."))
