"""The Perspective-compatible endpoints' paths, and reading an answer in Google's error format."""

from __future__ import annotations

from typing import Any

from moderation.protocols.perspective import GOOGLE_STATUS
from tests.support.hostile import strict_json

ANALYZE = "/v1alpha1/comments:analyze"
SUGGEST = "/v1alpha1/comments:suggestscore"


def google_error(response: Any, code: int | None = None, status: str | None = None) -> dict:
    """The `error` of an answer in Google's format, `{"error": {"code", "message", "status"}}`:
    HTTP status `code` (any 4xx when None), `status` Google's name for it, a message."""
    body = strict_json(response)
    if code is None:
        assert 400 <= response.status_code < 500, (response.status_code, body)
    else:
        assert response.status_code == code, body
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == response.status_code, body
    assert error["status"] == GOOGLE_STATUS[response.status_code], body
    assert status is None or error["status"] == status, body
    assert isinstance(error["message"], str) and error["message"], body
    return error


def error_reason(error: dict) -> str | None:
    """The `reason` of the error's google.rpc.ErrorInfo detail (what Google's clients read)."""
    infos = [
        detail["reason"]
        for detail in error.get("details", [])
        if detail.get("@type") == "type.googleapis.com/google.rpc.ErrorInfo"
    ]
    assert len(infos) <= 1, error
    return infos[0] if infos else None
