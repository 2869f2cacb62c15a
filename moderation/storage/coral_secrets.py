"""Each site's Coral Talk signing secrets, stored encrypted in Redis.

Coral signs its External Moderation Phase requests with secrets it generates and shows once;
checking a signature means computing the HMAC again, so the secrets cannot be stored as
digests. They are encrypted with Fernet (AES-128-CBC and HMAC-SHA256, `cryptography`) under
a key derived (HKDF-SHA256) from the server's MODERATION_SECRET_KEY; the site's name is sealed
inside with them, so a value copied to another site's key does not decrypt as that site's.
Rotating MODERATION_SECRET_KEY makes the stored secrets unreadable: sites set them again.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import cast

import redis
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from moderation.core.redis_keys import KEYS

log = logging.getLogger(__name__)

#: HKDF's `info`: this key encrypts nothing else.
KEY_PURPOSE = b"moderation: coral signing secrets v1"


def fernet_for(secret_key: str) -> Fernet:
    """The Fernet cipher whose key is derived from the server's secret key."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_PURPOSE).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


class CoralSecretStore:
    """Set, read and clear a site's Coral signing secrets (never logged, never echoed)."""

    def __init__(self, connection: redis.Redis, secret_key: str | None) -> None:
        self.redis = connection
        self._fernet = fernet_for(secret_key) if secret_key else None

    def set(self, site: str, secrets: list[str]) -> int:
        """Replace the site's secrets; returns how many are stored."""
        sealed = self._cipher().encrypt(json.dumps({"site": site, "secrets": secrets}).encode())
        self.redis.set(KEYS.coral_secrets(site), sealed)
        return len(secrets)

    def get(self, site: str) -> list[str]:
        """The site's secrets; empty when it has none or they cannot be read (wrong server key
        or a value that is not this site's)."""
        sealed = cast(bytes | None, self.redis.get(KEYS.coral_secrets(site)))
        if sealed is None or self._fernet is None:
            return []
        try:
            opened = json.loads(self._fernet.decrypt(sealed))
        except (InvalidToken, ValueError):
            log.warning("Coral signing secrets of site %s unreadable: set them again", site)
            return []
        if not isinstance(opened, dict) or opened.get("site") != site:
            log.warning("Coral signing secrets stored for site %s belong to another site", site)
            return []
        return [secret for secret in opened.get("secrets", []) if isinstance(secret, str)]

    def count(self, site: str) -> int:
        return len(self.get(site))

    def clear(self, site: str) -> None:
        self.redis.delete(KEYS.coral_secrets(site))

    def _cipher(self) -> Fernet:
        if self._fernet is None:
            raise RuntimeError(
                "MODERATION_SECRET_KEY is not set (nor a key file at MODERATION_SECRET_KEY_FILE); "
                "it encrypts the sites' Coral signing secrets"
            )
        return self._fernet
