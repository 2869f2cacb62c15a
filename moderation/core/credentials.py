"""Secrets for sites: API keys (stored as SHA-256 digests) and derived webhook secrets.

API keys and moderator tokens are 256-bit random strings, so a fast digest is as safe as a
slow one and lets the service find the owner by digest; the stored digest is then compared in
constant time. Webhook secrets must be usable for signing, so they are never stored: each is
an HMAC of the site's random nonce under the server's secret key. Akismet-shaped keys
(12 hex characters, for Akismet's clients) are stored as HMACs under the server's key too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

API_KEY_PREFIX = "mk_"
WEBHOOK_SECRET_PREFIX = "whsec_"
#: Akismet's own keys are 12 lowercase hex characters; its clients (WordPress's plugin first)
#: refuse anything else before sending a request.
AKISMET_KEY = re.compile(r"[0-9a-f]{12}")


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def new_akismet_key() -> str:
    """A key of Akismet's form: 12 lowercase hex characters (48 random bits)."""
    return secrets.token_hex(6)


def is_akismet_key(presented: str) -> bool:
    """Whether `presented` has Akismet's key form, in any case (host names arrive lowercased)."""
    return bool(AKISMET_KEY.fullmatch(presented.lower()))


def akismet_digest(secret_key: str, akismet_key: str) -> str:
    """The stored form of an Akismet-shaped key. 48 bits are too few for a plain digest (they
    could be searched offline from a copy of Redis), so it is an HMAC under the server's key."""
    mac = hmac.new(secret_key.encode(), f"akismet:{akismet_key.lower()}".encode(), hashlib.sha256)
    return mac.hexdigest()


def new_nonce() -> str:
    return secrets.token_hex(16)


def digest(secret: str) -> str:
    """The form in which a key or token is stored and looked up."""
    return hashlib.sha256(secret.encode()).hexdigest()


def digests_match(stored: str, presented: str) -> bool:
    """Constant-time comparison of a stored digest with the digest of a presented secret."""
    return hmac.compare_digest(stored.encode(), digest(presented).encode())


def webhook_secret(secret_key: str, site: str, nonce: str) -> str:
    """The site's webhook signing secret, re-derived whenever it is needed."""
    mac = hmac.new(secret_key.encode(), f"webhook:{site}:{nonce}".encode(), hashlib.sha256)
    return WEBHOOK_SECRET_PREFIX + mac.hexdigest()
