"""Everything a Redis database holds, as bytes to search: every key name and every value."""

from __future__ import annotations

import zlib

import redis


def _unpacked(value: bytes) -> list[bytes]:
    """The value, and its zlib-inflated form when it is one (RQ stores job data that way)."""
    try:
        return [value, zlib.decompress(value)]
    except zlib.error:
        return [value]


def dump_everything(connection: redis.Redis) -> dict[bytes, list[bytes]]:
    """Every key (SCAN) with the byte strings it holds, whatever its type; fails on a type it
    does not know, so a new kind of value cannot slip past a search of the dump."""
    dump: dict[bytes, list[bytes]] = {}
    for key in connection.scan_iter(count=1000):
        kind = connection.type(key).decode()
        if kind == "none":  # expired between SCAN and TYPE
            continue
        values: list[bytes]
        if kind == "string":
            values = [connection.get(key) or b""]
        elif kind == "hash":
            values = [part for item in connection.hgetall(key).items() for part in item]
        elif kind == "list":
            values = list(connection.lrange(key, 0, -1))
        elif kind == "set":
            values = list(connection.smembers(key))
        elif kind == "zset":
            values = [member for member, _ in connection.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            values = [
                part
                for _, fields in connection.xrange(key)
                for item in fields.items()
                for part in item
            ]
        else:
            raise AssertionError(f"don't know how to read a Redis {kind} ({key!r})")
        dump[key] = [unpacked for value in values for unpacked in _unpacked(value)]
    return dump


def find_in_dump(dump: dict[bytes, list[bytes]], needle: str) -> list[str]:
    """Where `needle` occurs: key names, or "<key> value"."""
    raw = needle.encode()
    found = []
    for key, values in dump.items():
        if raw in key:
            found.append(f"{key!r} (key name)")
        if any(raw in value for value in values):
            found.append(f"{key!r} value")
    return found
