"""Python client for the moderation service's host-site API (needs only `requests`).

Submit a comment, waiting up to two seconds for its decision:

    from moderation.client import ModerationClient, ModerationError

    client = ModerationClient("https://moderation.example", os.environ["MODERATION_API_KEY"])
    record = client.submit("c-123", text, author={"id": "u-9", "ip": ip}, wait=2)
    if record["decision"] is None:
        ...  # show it as pending; the webhook brings the decision
    elif record["decision"]["action"] == "approve":
        ...  # publish

Receive decisions by webhook in Flask (verify the raw body before parsing it):

    @app.post("/hooks/moderation")
    def moderation_hook():
        body = request.get_data()
        if not ModerationClient.verify_webhook(WEBHOOK_SECRET, request.headers, body):
            abort(400)
        event = json.loads(body)
        apply_decision(event["comment"])  # idempotent: a delivery may be repeated
        return "", 204

Errors are raised as ModerationError. 429 and 503 answers are retried (at most `max_tries`
tries in all, sleeping as `Retry-After` says, capped at `max_retry_sleep` seconds): every call is
safe to repeat, submissions included, because the API is idempotent on the comment id.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests

from moderation.core import webhook_requests

RETRIED_STATUSES = frozenset({429, 503})
USER_AGENT = "moderation-client/1"
JSON = dict[str, Any]


class ModerationError(Exception):
    """An error answer from the service (or no answer: `status` None, code
    "connection_error")."""

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        *,
        fields: dict[str, list[str]] | None = None,
        retry_after: float | None = None,
        current: JSON | None = None,
    ) -> None:
        super().__init__(f"{status or 'no answer'} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}
        self.retry_after = retry_after
        #: For a 409: the record already stored under this id.
        self.current = current


def _retry_after(response: requests.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_from(response: requests.Response) -> ModerationError:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        reason = response.reason or "error"
        return ModerationError(
            response.status_code,
            "http_error",
            f"HTTP {response.status_code} {reason}",
            retry_after=_retry_after(response),
        )
    return ModerationError(
        response.status_code,
        str(error.get("code") or "error"),
        str(error.get("message") or ""),
        fields=error.get("fields"),
        retry_after=_retry_after(response),
        current=error.get("current"),
    )


class ModerationClient:
    """One site's API key against one moderation service."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 15.0,
        session: requests.Session | None = None,
        max_tries: int = 3,
        max_retry_sleep: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_tries = max(1, max_tries)
        self.max_retry_sleep = max_retry_sleep
        self._api_key = api_key
        self._own_session = session is None
        self.session = session if session is not None else requests.Session()

    def __repr__(self) -> str:
        return f"ModerationClient({self.base_url!r})"

    def __enter__(self) -> ModerationClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session if the client made it."""
        if self._own_session:
            self.session.close()

    # --- host-site API -----------------------------------------------------------------------

    def submit(
        self,
        id: str,
        content: str,
        *,
        author: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        honeypot: str | None = None,
        wait: float = 0,
        store: bool | None = None,
    ) -> JSON:
        """Submit a comment; the record (pending, or decided when `wait` sufficed).
        Resubmitting the same id and content returns the existing record; different content
        raises ModerationError 409 with `.current`. `store` is sent only when given."""
        body: JSON = {"id": id, "content": content}
        optional = {"author": author, "context": context, "honeypot": honeypot, "store": store}
        body.update({key: value for key, value in optional.items() if value is not None})
        return self._request("POST", "/v1/comments", json=body, wait=wait)

    def get(self, id: str, *, wait: float = 0) -> JSON:
        """A comment's record, held up to `wait` seconds (at most 10) for its decision."""
        return self._request("GET", self._comment_path(id), wait=wait)

    def wait_for_decision(self, id: str, timeout: float = 30.0) -> JSON:
        """The record once decided; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no decision for comment {id!r} within {timeout:g} s")
            wait = min(10.0, remaining)
            asked = time.monotonic()
            record = self.get(id, wait=wait)
            if record.get("decision") is not None:
                return record
            early = wait - (time.monotonic() - asked)
            if early > 0.05:  # the server did not hold the request: do not spin
                time.sleep(min(early, 0.5))

    def batch(self, comments: list[JSON]) -> list[JSON]:
        """Submit up to 100 comments; one result per comment, in order."""
        answer = self._request("POST", "/v1/comments/batch", json={"comments": comments})
        return list(answer.get("results", []))

    def delete(self, id: str) -> None:
        """Erase a comment's text and personal data."""
        self._request("DELETE", self._comment_path(id))

    def get_policy(self) -> JSON:
        return self._request("GET", "/v1/policy")

    def put_policy(self, policy: JSON) -> JSON:
        return self._request("PUT", "/v1/policy", json=policy)

    @staticmethod
    def verify_webhook(
        secret: str, headers: Mapping[str, str], body: bytes, tolerance: int = 300
    ) -> bool:
        """Whether a webhook's raw `body` carries a valid, fresh signature by `secret`."""
        wanted = webhook_requests.SIGNATURE_HEADER.lower()
        header = next((value for key, value in headers.items() if key.lower() == wanted), None)
        if header is None:
            return False
        return webhook_requests.verify(secret, header, body, tolerance=tolerance)

    # --- transport ---------------------------------------------------------------------------

    @staticmethod
    def _comment_path(id: str) -> str:
        return "/v1/comments/" + quote(id, safe="")

    def _request(
        self, method: str, path: str, *, json: JSON | None = None, wait: float = 0
    ) -> JSON:
        params = {"wait": f"{wait:.3f}"} if wait > 0 else None
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        timeout = (self.timeout, self.timeout + max(0.0, wait))
        for attempt in range(1, self.max_tries + 1):
            try:
                response = self.session.request(
                    method,
                    self.base_url + path,
                    json=json,
                    params=params,
                    headers=headers,
                    timeout=timeout,
                )
            except requests.RequestException as error:
                raise ModerationError(
                    None, "connection_error", f"cannot reach the service ({type(error).__name__})"
                ) from error
            if response.status_code in RETRIED_STATUSES and attempt < self.max_tries:
                delay = _retry_after(response)
                delay = 0.5 * 2 ** (attempt - 1) if delay is None else delay
                response.close()
                time.sleep(min(delay, self.max_retry_sleep))
                continue
            return self._parse(response)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _parse(response: requests.Response) -> JSON:
        if response.status_code >= 400:
            raise _error_from(response)
        if not response.content:
            return {}
        try:
            payload = response.json()
        except ValueError:
            raise ModerationError(
                response.status_code, "invalid_response", "the answer is not JSON"
            ) from None
        if not isinstance(payload, dict):
            raise ModerationError(
                response.status_code, "invalid_response", "the answer is not a JSON object"
            )
        return payload
