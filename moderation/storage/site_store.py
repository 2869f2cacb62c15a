"""Sites (tenants): creation, API key lookup and rotation, stored in Redis.

Each site has an API key (every endpoint) and an Akismet-shaped key (12 hex characters, only
the Akismet endpoints: Akismet's clients refuse any other form, and put it in host names).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import cast

import redis

from moderation.core import credentials
from moderation.core.records import utc_now
from moderation.core.redis_keys import KEYS

SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class StoredKey:
    """One stored form of a site's key: the site record's field holding its digest, and the
    index from that digest back to the site."""

    field: str
    index: Callable[[str], str]


API_KEY = StoredKey("api_key_digest", KEYS.api_key)
#: The API key lowercased: Akismet's clients put the key in host names, which some lowercase
#: (Node). 43 random characters folded to 38 letters keep over 220 bits, as unguessable.
API_KEY_FOLDED = StoredKey("api_key_folded_digest", KEYS.api_key_folded)
AKISMET_KEY = StoredKey("akismet_key_digest", KEYS.akismet_key)


def api_key_digests(api_key: str) -> dict[StoredKey, str]:
    return {
        API_KEY: credentials.digest(api_key),
        API_KEY_FOLDED: credentials.digest(api_key.lower()),
    }


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
        api_key, nonce = credentials.new_api_key(), credentials.new_nonce()
        akismet_key = credentials.new_akismet_key()
        digests = {
            **api_key_digests(api_key),
            AKISMET_KEY: credentials.akismet_digest(secret_key, akismet_key),
        }
        created = self.redis.hsetnx(KEYS.site(name), "name", name)
        if not created:
            raise SiteExistsError(name)
        with self.redis.pipeline() as pipe:
            pipe.hset(
                KEYS.site(name),
                mapping={
                    **{stored.field: digest for stored, digest in digests.items()},
                    "webhook_nonce": nonce,
                    "callback_url": callback_url or "",
                    "created_at": repr(utc_now()),
                },
            )
            for stored, digest in digests.items():
                pipe.set(stored.index(digest), name)
            pipe.sadd(KEYS.sites, name)
            pipe.execute()
        webhook_secret = credentials.webhook_secret(secret_key, name, nonce)
        return SiteCredentials(name, api_key, webhook_secret, akismet_key)

    def rotate_api_key(self, name: str) -> SiteCredentials:
        """Replace the site's API key (the old one stops working at once)."""
        secret_key = self._require_secret_key()
        site = self.get(name)
        if site is None:
            raise UnknownSiteError(name)
        api_key = credentials.new_api_key()
        self._replace_digests(name, api_key_digests(api_key))
        return SiteCredentials(
            name, api_key, credentials.webhook_secret(secret_key, name, site.webhook_nonce)
        )

    def rotate_akismet_key(self, name: str) -> str:
        """A new Akismet-shaped key for the site (the old one stops working at once); also how
        a site created before these keys existed gets one."""
        secret_key = self._require_secret_key()
        if self.get(name) is None:
            raise UnknownSiteError(name)
        akismet_key = credentials.new_akismet_key()
        akismet_digest = credentials.akismet_digest(secret_key, akismet_key)
        self._replace_digests(name, {AKISMET_KEY: akismet_digest})
        return akismet_key

    def _replace_digests(self, name: str, digests: dict[StoredKey, str]) -> None:
        """Store each new digest in its field and index it, dropping the old ones' index
        entries (so the old key stops working at once)."""
        fields = [stored.field for stored in digests]
        old_digests = cast(list[bytes | None], self.redis.hmget(KEYS.site(name), fields))
        with self.redis.pipeline() as pipe:
            for stored, old_digest in zip(digests, old_digests, strict=True):
                if old_digest:
                    pipe.delete(stored.index(old_digest.decode()))
            pipe.hset(KEYS.site(name), mapping={s.field: d for s, d in digests.items()})
            for stored, digest in digests.items():
                pipe.set(stored.index(digest), name)
            pipe.execute()

    def get(self, name: str) -> Site | None:
        return _site_from_hash(name, cast(dict[bytes, bytes], self.redis.hgetall(KEYS.site(name))))

    def get_many(self, names: Iterable[str]) -> dict[str, Site | None]:
        """The sites of `names` (None for unknown ones), in one round trip."""
        unique = list(dict.fromkeys(names))
        with self.redis.pipeline(transaction=False) as pipe:
            for name in unique:
                pipe.hgetall(KEYS.site(name))
            found = pipe.execute()
        return {name: _site_from_hash(name, data) for name, data in zip(unique, found, strict=True)}

    def set_callback_url(self, name: str, url: str | None) -> None:
        if self.get(name) is None:
            raise UnknownSiteError(name)
        self.redis.hset(KEYS.site(name), "callback_url", url or "")

    def authenticate(self, api_key: str) -> str | None:
        """The site that owns `api_key`, or None."""
        return self._owner(API_KEY, credentials.digest(api_key))

    def authenticate_akismet(self, presented: str) -> str | None:
        """The site that owns `presented` on the Akismet endpoints: its Akismet-shaped key or
        its API key, in any case (host names may arrive lowercased). A key created before the
        folded form was stored matches exactly only, until it is rotated."""
        if credentials.is_akismet_key(presented):
            if not self.secret_key:
                return None
            return self._owner(AKISMET_KEY, credentials.akismet_digest(self.secret_key, presented))
        exact = self.authenticate(presented)
        return exact or self._owner(API_KEY_FOLDED, credentials.digest(presented.lower()))

    def api_key_digest(self, name: str) -> str | None:
        """The stored digest of the site's API key (what rate limits count a site's calls by)."""
        held = cast(bytes | None, self.redis.hget(KEYS.site(name), API_KEY.field))
        return held.decode() if held else None

    def _owner(self, stored: StoredKey, presented_digest: str) -> str | None:
        """The site the index names, if its record still holds the digest (compared in
        constant time): an index entry left by a rotation finds nothing."""
        name = cast(bytes | None, self.redis.get(stored.index(presented_digest)))
        if name is None:
            return None
        held = cast(bytes | None, self.redis.hget(KEYS.site(name.decode()), stored.field))
        if held is None or not hmac.compare_digest(held, presented_digest.encode()):
            return None
        return name.decode()

    def names(self) -> list[str]:
        return sorted(n.decode() for n in cast(set[bytes], self.redis.smembers(KEYS.sites)))

    def _require_secret_key(self) -> str:
        if not self.secret_key:
            raise RuntimeError(
                "MODERATION_SECRET_KEY is not set (nor a key file at MODERATION_SECRET_KEY_FILE); "
                "it derives the sites' webhook secrets"
            )
        return self.secret_key


def _site_from_hash(name: str, data: dict[bytes, bytes]) -> Site | None:
    if not data:
        return None
    fields = {k.decode(): v.decode() for k, v in data.items()}
    return Site(
        name=name,
        callback_url=fields.get("callback_url") or None,
        webhook_nonce=fields.get("webhook_nonce", ""),
    )
