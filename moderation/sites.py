"""Sites (tenants): creation, API key lookup and rotation, stored in Redis.

Each site has an API key (every endpoint) and an Akismet-shaped key (12 hex characters, only
the Akismet endpoints: Akismet's clients refuse any other form, and put it in host names).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

import redis

from moderation import keys
from moderation.keyspace import KEYS
from moderation.records import utc_now

SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
#: The site record's fields holding its keys' stored forms.
API_KEY_FIELD, AKISMET_KEY_FIELD = "api_key_digest", "akismet_key_digest"


class SiteExistsError(Exception):
    pass


class UnknownSiteError(Exception):
    pass


@dataclass(frozen=True)
class Site:
    name: str
    callback_url: str | None
    webhook_nonce: str


@dataclass(frozen=True)
class SiteCredentials:
    """Shown once at creation or rotation; only digests and a nonce are stored."""

    site: str
    api_key: str
    webhook_secret: str
    akismet_key: str | None = None  # at creation only; a rotation of the API key keeps it


def valid_site_name(name: str) -> bool:
    return bool(SITE_NAME.fullmatch(name))  # match() would allow a trailing newline


class SiteStore:
    def __init__(self, connection: redis.Redis, secret_key: str | None) -> None:
        self.redis = connection
        self.secret_key = secret_key

    def create(self, name: str, callback_url: str | None = None) -> SiteCredentials:
        """A new site with a fresh API key; raises SiteExistsError if the name is taken."""
        if not valid_site_name(name):
            raise ValueError("site names are 1-63 of a-z, 0-9, '-' and '_', starting alphanumeric")
        secret_key = self._require_secret_key()
        api_key, nonce = keys.new_api_key(), keys.new_nonce()
        key_digest = keys.digest(api_key)
        akismet_key = keys.new_akismet_key()
        akismet_digest = keys.akismet_digest(secret_key, akismet_key)
        created = self.redis.hsetnx(KEYS.site(name), "name", name)
        if not created:
            raise SiteExistsError(name)
        with self.redis.pipeline() as pipe:
            pipe.hset(
                KEYS.site(name),
                mapping={
                    API_KEY_FIELD: key_digest,
                    AKISMET_KEY_FIELD: akismet_digest,
                    "webhook_nonce": nonce,
                    "callback_url": callback_url or "",
                    "created_at": repr(utc_now()),
                },
            )
            pipe.set(KEYS.api_key(key_digest), name)
            pipe.set(KEYS.akismet_key(akismet_digest), name)
            pipe.sadd(KEYS.sites, name)
            pipe.execute()
        webhook_secret = keys.webhook_secret(secret_key, name, nonce)
        return SiteCredentials(name, api_key, webhook_secret, akismet_key)

    def rotate_api_key(self, name: str) -> SiteCredentials:
        """Replace the site's API key (the old one stops working at once)."""
        secret_key = self._require_secret_key()
        site = self.get(name)
        if site is None:
            raise UnknownSiteError(name)
        api_key = keys.new_api_key()
        self._replace_digest(name, API_KEY_FIELD, KEYS.api_key, keys.digest(api_key))
        return SiteCredentials(
            name, api_key, keys.webhook_secret(secret_key, name, site.webhook_nonce)
        )

    def rotate_akismet_key(self, name: str) -> str:
        """A new Akismet-shaped key for the site (the old one stops working at once); also how
        a site created before these keys existed gets one."""
        secret_key = self._require_secret_key()
        if self.get(name) is None:
            raise UnknownSiteError(name)
        akismet_key = keys.new_akismet_key()
        akismet_digest = keys.akismet_digest(secret_key, akismet_key)
        self._replace_digest(name, AKISMET_KEY_FIELD, KEYS.akismet_key, akismet_digest)
        return akismet_key

    def _replace_digest(
        self, name: str, field: str, index: Callable[[str], str], new_digest: str
    ) -> None:
        """Store `new_digest` as the site's `field` and index it, dropping the old one's index
        entry (so the old key stops working at once)."""
        old_digest = self.redis.hget(KEYS.site(name), field)
        with self.redis.pipeline() as pipe:
            if old_digest:
                pipe.delete(index(old_digest.decode()))
            pipe.hset(KEYS.site(name), field, new_digest)
            pipe.set(index(new_digest), name)
            pipe.execute()

    def get(self, name: str) -> Site | None:
        data = self.redis.hgetall(KEYS.site(name))
        if not data:
            return None
        fields = {k.decode(): v.decode() for k, v in data.items()}
        return Site(
            name=name,
            callback_url=fields.get("callback_url") or None,
            webhook_nonce=fields.get("webhook_nonce", ""),
        )

    def set_callback_url(self, name: str, url: str | None) -> None:
        if self.get(name) is None:
            raise UnknownSiteError(name)
        self.redis.hset(KEYS.site(name), "callback_url", url or "")

    def authenticate(self, api_key: str) -> str | None:
        """The site that owns `api_key`, or None."""
        key_digest = keys.digest(api_key)
        return self._owner(KEYS.api_key(key_digest), API_KEY_FIELD, key_digest)

    def authenticate_akismet(self, presented: str) -> str | None:
        """The site that owns `presented` as its Akismet-shaped key (any case) or its API key."""
        if not keys.is_akismet_key(presented):
            return self.authenticate(presented)
        if not self.secret_key:
            return None
        akismet_digest = keys.akismet_digest(self.secret_key, presented)
        return self._owner(KEYS.akismet_key(akismet_digest), AKISMET_KEY_FIELD, akismet_digest)

    def _owner(self, index_key: str, field: str, presented_digest: str) -> str | None:
        """The site the index names, if its record still holds the digest (compared in
        constant time): an index entry left by a rotation finds nothing."""
        name = self.redis.get(index_key)
        if name is None:
            return None
        stored = self.redis.hget(KEYS.site(name.decode()), field)
        if stored is None or not hmac.compare_digest(stored, presented_digest.encode()):
            return None
        return name.decode()

    def names(self) -> list[str]:
        return sorted(n.decode() for n in self.redis.smembers(KEYS.sites))

    def _require_secret_key(self) -> str:
        if not self.secret_key:
            raise RuntimeError(
                "MODERATION_SECRET_KEY is not set (nor a key file at MODERATION_SECRET_KEY_FILE); "
                "it derives the sites' webhook secrets"
            )
        return self.secret_key
