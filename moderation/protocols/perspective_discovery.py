"""Perspective's discovery document, the pure part: Google's discovery format for
`commentanalyzer` v1alpha1, which Google's own clients (`google-api-python-client`'s
`discovery.build`) fetch before their first call, pointed at this service.

The document is `perspective_discovery.json` beside this module (Google's structure: names,
paths, schemas and types as Google publishes them; descriptions say what this service does);
only `rootUrl` and `baseUrl` are filled in per request. No I/O beyond reading that file once:
`moderation.protocols.perspective_discovery_api` serves it.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from moderation.protocols.perspective import SERVICE_NAME, PerspectiveError

VERSION = "v1alpha1"
DOCUMENT = Path(__file__).with_name("perspective_discovery.json")

#: A Host header this service will put in a URL: a name (with `_` too, as Docker's service
#: names have) or IPv4 address, or a bracketed IPv6 address, and an optional port. Anything
#: else (spaces, slashes, `@`) is refused.
_HOST = re.compile(
    r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"
)


@cache
def _template() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    return document


def discovery_document(root_url: str) -> dict[str, Any]:
    """The document, pointing Google's clients at `root_url` (ending in `/`)."""
    document = dict(_template())
    document["rootUrl"] = root_url
    document["baseUrl"] = root_url + document["servicePath"]
    return document


def request_root_url(scheme: str, host: str, script_root: str) -> str:
    """`https://moderation.example/` from a request's scheme, Host header and mount point;
    PerspectiveError (400) for a Host header that is no host name."""
    if scheme not in ("http", "https") or not _HOST.fullmatch(host):
        raise PerspectiveError(400, "The request's Host header is not a valid host name.")
    return f"{scheme}://{host.lower()}{script_root.rstrip('/')}/"


def version_not_found(version: str) -> PerspectiveError:
    """Google's answer for a version the API does not have."""
    return PerspectiveError(
        404,
        f"Discovery document not found for API service: {SERVICE_NAME} format: rest "
        f"version: {version[:40]}",
    )
