"""Moderator accounts: roles, site assignments, passwords (slow salted hash) and API tokens."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

import redis
from werkzeug.security import check_password_hash, generate_password_hash

from moderation.core import credentials
from moderation.core.records import utc_now
from moderation.core.redis_keys import KEYS

MODERATOR_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
TOKEN_PREFIX = "mt_"
# Checked against when the name is unknown, so a login takes as long for a missing account.
_DUMMY_HASH = generate_password_hash("not-a-password")


class Role(StrEnum):
    ADMIN = "admin"
    MODERATOR = "moderator"


class ModeratorExistsError(Exception):
    pass


class UnknownModeratorError(Exception):
    pass


@dataclass(frozen=True)
class Moderator:
    name: str
    role: Role
    sites: tuple[str, ...]
    disabled: bool = False
    #: Random, renewed by a password reset and by disabling: a /moderate session keeps the
    #: value it logged in with and ends when it no longer matches.
    session_epoch: str = ""

    def may_see(self, site: str) -> bool:
        return self.role is Role.ADMIN or site in self.sites

    @property
    def actor(self) -> str:
        """How decisions and audit events name this moderator."""
        return f"moderator:{self.name}"


@dataclass(frozen=True)
class ModeratorCredentials:
    """Shown once: only the password's hash and the token's digest are stored."""

    name: str
    role: Role
    token: str
    password: str


def new_password() -> str:
    return secrets.token_urlsafe(15)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_session_epoch() -> str:
    return secrets.token_hex(8)


class ModeratorStore:
    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def create(self, name: str, role: Role, sites: list[str]) -> ModeratorCredentials:
        if not MODERATOR_NAME.match(name):
            raise ValueError("moderator names are 1-63 of a-z, 0-9, '.', '-', '_'")
        if not self.redis.hsetnx(KEYS.moderator(name), "name", name):
            raise ModeratorExistsError(name)
        password, token = new_password(), new_token()
        token_digest = credentials.digest(token)
        with self.redis.pipeline() as pipe:
            pipe.hset(
                KEYS.moderator(name),
                mapping={
                    "role": role.value,
                    "sites": json.dumps(sorted(set(sites))),
                    "password_hash": generate_password_hash(password),
                    "token_digest": token_digest,
                    "disabled": "0",
                    "session_epoch": new_session_epoch(),
                    "created_at": repr(utc_now()),
                },
            )
            pipe.set(KEYS.moderator_token(token_digest), name)
            pipe.sadd(KEYS.moderators, name)
            pipe.execute()
        return ModeratorCredentials(name, role, token, password)

    def get(self, name: str) -> Moderator | None:
        data = cast(dict[bytes, bytes], self.redis.hgetall(KEYS.moderator(name)))
        return _moderator_from_hash(name, data)

    def names(self) -> list[str]:
        names = cast(set[bytes], self.redis.smembers(KEYS.moderators))
        return sorted(name.decode() for name in names)

    def by_token(self, token: str) -> Moderator | None:
        """The enabled moderator whose API token this is, or None: the token index names the
        account, whose record (read once) must still hold the token's digest, compared in
        constant time (an index entry left by a reset finds nothing)."""
        name = cast(bytes | None, self.redis.get(KEYS.moderator_token(credentials.digest(token))))
        if name is None:
            return None
        data = cast(dict[bytes, bytes], self.redis.hgetall(KEYS.moderator(name.decode())))
        stored = data.get(b"token_digest")
        if stored is None or not credentials.digests_match(stored.decode(), token):
            return None
        moderator = _moderator_from_hash(name.decode(), data)
        return moderator if moderator and not moderator.disabled else None

    def by_password(self, name: str, password: str) -> Moderator | None:
        """The enabled moderator with this name and password, or None (same cost either way:
        an unknown name is checked against a dummy hash). The record is read once."""
        data = cast(dict[bytes, bytes], self.redis.hgetall(KEYS.moderator(name))) if name else {}
        stored = data.get(b"password_hash")
        matches = check_password_hash(stored.decode() if stored else _DUMMY_HASH, password)
        if stored is None or not matches:
            return None
        moderator = _moderator_from_hash(name, data)
        return moderator if moderator and not moderator.disabled else None

    def set_disabled(self, name: str, disabled: bool) -> None:
        """Disabling also ends the account's sessions for good (re-enabling revives none)."""
        self._require(name)
        fields = {"disabled": "1" if disabled else "0"}
        if disabled:
            fields["session_epoch"] = new_session_epoch()
        self.redis.hset(KEYS.moderator(name), mapping=fields)

    def reset_password(self, name: str) -> ModeratorCredentials:
        """A new password and a new token; the old ones, and the sessions opened with the old
        password, stop working at once."""
        moderator = self._require(name)
        password, token = new_password(), new_token()
        token_digest = credentials.digest(token)
        old_digest = cast(bytes | None, self.redis.hget(KEYS.moderator(name), "token_digest"))
        with self.redis.pipeline() as pipe:
            if old_digest:
                pipe.delete(KEYS.moderator_token(old_digest.decode()))
            pipe.hset(
                KEYS.moderator(name),
                mapping={
                    "password_hash": generate_password_hash(password),
                    "token_digest": token_digest,
                    "session_epoch": new_session_epoch(),
                },
            )
            pipe.set(KEYS.moderator_token(token_digest), name)
            pipe.execute()
        return ModeratorCredentials(name, moderator.role, token, password)

    def _require(self, name: str) -> Moderator:
        moderator = self.get(name)
        if moderator is None:
            raise UnknownModeratorError(name)
        return moderator


def _moderator_from_hash(name: str, data: dict[bytes, bytes]) -> Moderator | None:
    """The account a moderator's record (HGETALL) describes; None when there is none."""
    if not data or b"role" not in data:
        return None
    fields = {key.decode(): value.decode() for key, value in data.items()}
    return Moderator(
        name=name,
        role=Role(fields["role"]),
        sites=tuple(json.loads(fields.get("sites", "[]"))),
        disabled=fields.get("disabled") == "1",
        session_epoch=fields.get("session_epoch", ""),
    )
