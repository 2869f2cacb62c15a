"""Coral Talk's External Moderation Phase request, built as Coral builds it.

From `coralproject/talk` v9.11.8: `server/src/core/server/services/comments/pipeline/phases/
external.ts` (`processPhase`: the request's fields, in this order, `parentID` null for a
top-level comment), `server/src/core/server/services/fetch/fetch.ts` (`generateFetchOptions`:
`JSON.stringify(request, null, 2)`, `Content-Type: application/json`, `X-Coral-Signature`;
`createFetch`: `User-Agent: Coral Moderation/<version>`), `models/settings/signingSecret/
helpers.ts` (`generateSignatures`: `sha256=<hex HMAC-SHA256 of the body>` per active secret,
joined by `,`). node-fetch 2 adds `Accept: */*` and `Accept-Encoding: gzip,deflate`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import requests

CORAL_VERSION = "9.11.8"
#: Coral's signing secrets look like this: `empsec_` and 64 to 74 hex digits.
SECRET = "empsec_" + "3f" * 33
OLD_SECRET = "empsec_" + "a1" * 34


def moderation_request(
    body: str,
    *,
    action: str = "NEW",
    parent_id: str | None = None,
    author_id: str = "baf4e943-3594-4fcc-b2ba-3e8de7a76352",
    role: str = "COMMENTER",
    story_id: str = "245b3856-b0a0-4d2f-a6bb-58c71f18d6a6",
    story_url: str = "https://news.example/posts/a-story/",
    site_id: str = "a4bede88-2d2c-4424-bc18-4322a9e285a6",
) -> dict[str, Any]:
    """`ExternalModerationRequest`, its keys in external.ts's order."""
    return {
        "action": action,
        "comment": {"body": body, "parentID": parent_id},
        "author": {"id": author_id, "role": role},
        "story": {"id": story_id, "url": story_url},
        "site": {"id": site_id},
        "tenantID": "19ba5794-7eeb-4d46-a81b-c00c61672501",
        "tenantDomain": "comments.news.example",
    }


def serialised(request: dict[str, Any]) -> bytes:
    """`JSON.stringify(request, null, 2)`: two-space indent, `": "`, no ASCII escaping."""
    return json.dumps(request, indent=2, ensure_ascii=False).encode()


def signature_header(body: bytes, secrets: list[str]) -> str:
    """`generateSignatures`: one `sha256=<hex>` per active secret, joined by `,`."""
    return ",".join(
        "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        for secret in secrets
    )


def headers_for(body: bytes, secrets: list[str]) -> dict[str, str]:
    """The headers node-fetch sends for Coral's moderation fetch."""
    return {
        "Content-Type": "application/json",
        "X-Coral-Signature": signature_header(body, secrets),
        "User-Agent": f"Coral Moderation/{CORAL_VERSION}",
        "Accept": "*/*",
        "Accept-Encoding": "gzip,deflate",
    }


def send(
    session: requests.Session, url: str, request: dict[str, Any], secrets: list[str]
) -> requests.Response:
    """POST the request as Coral does (timeouts here are the test's, not Coral's 200 ms)."""
    body = serialised(request)
    return session.post(url, data=body, headers=headers_for(body, secrets), timeout=30)
