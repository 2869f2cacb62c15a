"""Redis clients from REDIS_URL: one Redis, or the master a set of Sentinels names.

`redis://`, `rediss://` and `unix://` URLs go to redis-py as they are. A Sentinel URL,

    redis+sentinel://[[user]:password@]host:port[,host:port...]/<master name>[/<db>]
        [?sentinel_password=...&sentinel_username=...]

(the scheme flask-limiter's storage understands), gives a client whose connections ask the
Sentinels where the master is each time they connect: after a failover the next command that
finds its connection broken (or the old master read-only) reconnects to the new master, so
no process needs a restart. The URL's user and password are the master's (and its replicas');
the Sentinels get `sentinel_password` (and `sentinel_username`) when they need their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

SENTINEL_SCHEME = "redis+sentinel"
SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME)


@dataclass(frozen=True)
class SentinelAddress:
    """What a `redis+sentinel://` URL names."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None


def is_sentinel_url(url: str) -> bool:
    return urlparse(url).scheme == SENTINEL_SCHEME


def parse_sentinel_url(url: str) -> SentinelAddress:
    """Read a `redis+sentinel://` URL; ValueError naming what is wrong."""
    parsed = urlparse(url)
    if parsed.scheme != SENTINEL_SCHEME:
        raise ValueError(f"expected {SENTINEL_SCHEME}://...")
    hosts = parsed.netloc.rpartition("@")[2]
    sentinels = []
    for location in hosts.split(","):
        host, _, port = location.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"expected host:port for each Sentinel, got {location!r}")
        sentinels.append((host.strip("[]"), int(port)))
    parts = [part for part in parsed.path.split("/") if part]
    if not parts or len(parts) > 2:
        raise ValueError("expected /<master name> or /<master name>/<db> after the Sentinels")
    if len(parts) == 2 and not parts[1].isdigit():
        raise ValueError(f"expected a database number after the master name, got {parts[1]!r}")
    query = {name: values[-1] for name, values in parse_qs(parsed.query).items()}
    unknown = set(query) - {"sentinel_password", "sentinel_username"}
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r} (sentinel_password, ...)")
    return SentinelAddress(
        sentinels=tuple(sentinels),
        master=unquote(parts[0]),
        db=int(parts[1]) if len(parts) == 2 else 0,
        username=unquote(parsed.username) if parsed.username else None,
        password=unquote(parsed.password) if parsed.password else None,
        sentinel_username=query.get("sentinel_username"),
        sentinel_password=query.get("sentinel_password"),
    )


def check_url(url: str) -> str:
    """`url` if it is a REDIS_URL this service can use; ValueError otherwise."""
    scheme = urlparse(url).scheme
    if scheme not in SCHEMES:
        raise ValueError(
            "expected redis://host:port/db, rediss://..., unix:///path or "
            "redis+sentinel://host:port[,host:port...]/<master name>/<db>"
        )
    if scheme == SENTINEL_SCHEME:
        parse_sentinel_url(url)
    return url


def connect(url: str, *, socket_timeout: float | None = 10.0) -> redis.Redis:
    """A Redis client that fails fast when Redis is down (the API answers 503 at once)."""
    options: dict[str, Any] = {
        "socket_connect_timeout": 2.0,
        "socket_timeout": socket_timeout,
        "health_check_interval": 30,
        "retry": Retry(NoBackoff(), retries=1),
    }
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **options)
    address = parse_sentinel_url(url)
    sentinel_auth = {
        "username": address.sentinel_username,
        "password": address.sentinel_password,
    }
    sentinel = Sentinel(
        list(address.sentinels),
        sentinel_kwargs={"socket_connect_timeout": 1.0, "socket_timeout": 1.0, **sentinel_auth},
        min_other_sentinels=0,
    )
    master: redis.Redis = sentinel.master_for(
        address.master,
        db=address.db,
        username=address.username,
        password=address.password,
        **options,
    )
    return master
