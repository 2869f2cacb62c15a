"""`GET /$discovery/rest?version=v1alpha1`: Perspective's discovery document, so that Google's
own client (`discovery.build("commentanalyzer", "v1alpha1", discoveryServiceUrl=...)`) can be
built against this service. No key needed; never rate limited (`moderation.http.rate_limits`): it is
a document held in memory, cheaper to send than a rate-limit count in Redis would be.

`rootUrl` is MODERATION_PUBLIC_URL when set, else the request's own scheme and Host (behind
MODERATION_PROXY_HOPS proxies, the scheme they were called with). A document built from the
Host header is marked `no-store`: a shared cache must not hand one caller's host to another,
whose client would then send its key there.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from moderation.http.app_services import services
from moderation.protocols.perspective import PerspectiveError
from moderation.protocols.perspective_api import answer_error
from moderation.protocols.perspective_discovery import (
    VERSION,
    discovery_document,
    request_root_url,
    version_not_found,
)

blp = Blueprint("perspective-discovery", __name__)
blp.register_error_handler(PerspectiveError, answer_error)

#: How long a document naming the configured public URL may be cached.
CONFIGURED_MAX_AGE = 3600


@blp.route("/$discovery/rest", methods=["GET"])
def discovery() -> Response:
    """Google's discovery document for `commentanalyzer` v1alpha1, `rootUrl` this service."""
    version = request.args.get("version", VERSION)
    if version != VERSION:
        raise version_not_found(version)
    configured = services().settings.public_url
    # werkzeug's request.host is "" for a name with "_" (Docker's service names): the header.
    host = request.host or request.headers.get("Host", "")
    root = configured or request_root_url(request.scheme, host, request.script_root)
    response = jsonify(discovery_document(root))
    response.headers["Cache-Control"] = (
        f"public, max-age={CONFIGURED_MAX_AGE}" if configured else "no-store"
    )
    return response
