"""What a Redis or Valkey container image's tag says about the server (deployment tests)."""

from __future__ import annotations

import re

#: The first release of each server with WAITAOF (Valkey forked from Redis 7.2.4).
WAITAOF_SINCE = {"redis": (7, 2), "valkey/valkey": (7, 2)}


def image_version(image: str) -> tuple[str, tuple[int, int]]:
    """("redis", (7, 4)) for `redis:7.4-alpine`: the least version the tag can name."""
    name, _, tag = image.partition(":")
    version = re.match(r"(\d+)(?:\.(\d+))?", tag)
    assert name in WAITAOF_SINCE and version, f"{image}: a Redis or Valkey image, version pinned"
    major, minor = version.groups()
    return name, (int(major), int(minor or 0))


def image_has_waitaof(image: str) -> bool:
    """Whether every version the image's tag can name has WAITAOF (`redis:7` may be 7.0)."""
    name, version = image_version(image)
    return version >= WAITAOF_SINCE[name]
