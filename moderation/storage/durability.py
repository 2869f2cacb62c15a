"""What a 202 promises when Redis itself dies (MODERATION_DURABILITY), and how it is kept.

- `off`: a 202 once Redis has the comment in memory. With `appendfsync everysec` a crash of
  Redis's machine can lose about the last second of acknowledged comments.
- `disk`: a 202 once the comment is on Redis's disk. Redis must run `appendonly yes` with
  `appendfsync always` (it then fsyncs before it replies), checked at start; where the server
  has `WAITAOF` (Redis 7.2+, Valkey) each write also waits for `WAITAOF 1 0`, which fails if
  the append-only file was turned off meanwhile. `everysec` with WAITAOF is not accepted: on
  Valkey 9.1.2 WAITAOF confirmed writes before they were fsynced (the bug Redis fixed in
  redis/redis#13793), and tests/faults lost acknowledged comments that way.
- `replica`: everything `disk` promises, and at least `replicas` replicas have the write too
  (`WAIT N`: in their memory; on their disks a moment later when they run `always` too). When
  they do not confirm within the time-out the API answers 503 with Retry-After.

How a write is confirmed: after its own transaction, the process sends on one connection a
tiny write (a counter) and then WAITAOF or WAIT. Redis tracks each connection's last write;
the counter moves this connection's to the server's latest, so the wait covers every write the
server acknowledged to anyone before it: the comment just stored or, when a retry finds the
comment already there, the earlier attempt's write. Decisions and moderators' actions are
confirmed the same way before anyone is told of them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from moderation.core.redis_keys import KEYS
from moderation.core.settings import DURABILITY_MODES, Settings

log = logging.getLogger(__name__)

OFF, DISK, REPLICA = DURABILITY_MODES
#: Seconds a client should wait before retrying a write Redis did not confirm.
RETRY_AFTER = 2
#: Seconds a starting process waits for Redis before giving up on checking it.
START_CHECK_DEADLINE = 60.0


class NotDurable(redis.ConnectionError):
    """Redis did not confirm a write in time: the write may or may not survive a crash.

    A ConnectionError, so every caller already treating "Redis unavailable" as 503 with
    Retry-After (and workers as a retry) does the same here; redis-py never retries it, because
    it is raised after the write's own command returned.
    """


class DurabilityUnavailable(Exception):
    """The Redis this process uses cannot keep the promise MODERATION_DURABILITY makes."""


@dataclass
class Durability:
    """The configured promise, and the command that confirms a write on this server."""

    mode: str = OFF
    #: Seconds to wait for the disk or the replicas.
    timeout: float = 2.0
    replicas: int = 1
    #: Whether the server has WAITAOF; asked once, on first use.
    _has_waitaof: bool | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Durability:
        return cls(settings.durability, settings.durability_timeout, settings.durability_replicas)

    @property
    def enabled(self) -> bool:
        return self.mode != OFF

    def confirm(self, connection: redis.Redis) -> None:
        """Return once every write Redis acknowledged so far keeps the promise; NotDurable if it
        does not within the time-out (or Redis went away meanwhile)."""
        if not self.enabled:
            return
        try:
            commands = self._wait_commands(connection)
            if not commands:  # disk with appendfsync always: the reply came after the fsync
                return
            with connection.pipeline(transaction=False) as pipe:
                pipe.hincrby(KEYS.metric_counters, "durable_confirmations", 1)
                for command in commands:
                    pipe.execute_command(*command)
                replies = pipe.execute()[1:]
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as error:
            raise NotDurable(f"could not confirm the write: {type(error).__name__}") from error
        shortfall = self._shortfall(replies)
        if shortfall:
            raise NotDurable(f"{shortfall} within {self.timeout:g} s")

    def _wait_commands(self, connection: redis.Redis) -> list[tuple[Any, ...]]:
        """WAITAOF 1 0 where the server has it (with `always` it answers at once, and fails if
        the append-only file was switched off), then WAIT N for `replica`. Not WAITAOF 1 N: a
        replica on `everysec` reports what it has fsynced about once a second (each write waited
        954 ms for it on Valkey 9, against 1.5 ms for WAIT), and under `everysec` that report
        can come before the fsync; a replica on `always` has it on disk milliseconds later."""
        milliseconds = max(1, round(self.timeout * 1000))
        commands: list[tuple[Any, ...]] = []
        if self.has_waitaof(connection):
            commands.append(("WAITAOF", 1, 0, milliseconds))
        if self.mode == REPLICA:
            commands.append(("WAIT", self.replicas, milliseconds))
        return commands

    def _shortfall(self, replies: list[Any]) -> str:
        """What the replies to WAITAOF and WAIT say is missing ("" when nothing is)."""
        for reply in replies:
            if isinstance(reply, list):  # WAITAOF: [local fsync, replicas]
                if int(reply[0]) < 1:
                    return "Redis did not write its append-only file to disk"
            elif int(reply) < self.replicas:  # WAIT: replicas that have the write
                return f"{int(reply)} of {self.replicas} replicas confirmed the write"
        return ""

    def has_waitaof(self, connection: redis.Redis) -> bool:
        if self._has_waitaof is None:
            self._has_waitaof = server_has_waitaof(connection)
        return self._has_waitaof

    def require(self, connection: redis.Redis, deadline: float = START_CHECK_DEADLINE) -> None:
        """At start: raise DurabilityUnavailable, naming the setting to change, when the Redis
        `connection` reaches cannot keep the promise (waits up to `deadline` s for Redis)."""
        if not self.enabled:
            return
        give_up = time.monotonic() + deadline
        while True:
            try:
                self._check(connection)
                self.confirm(connection)  # the whole path once, as every write will use it
                return
            except NotDurable as error:
                raise DurabilityUnavailable(
                    f"MODERATION_DURABILITY={self.mode}: Redis did not confirm a test write "
                    f"({error})"
                ) from error
            except (redis.ConnectionError, redis.TimeoutError) as error:
                if time.monotonic() > give_up:
                    raise DurabilityUnavailable(
                        f"MODERATION_DURABILITY={self.mode}: Redis did not answer for "
                        f"{deadline:g} s, so the setting could not be checked"
                    ) from error
                log.warning("waiting for Redis to check MODERATION_DURABILITY=%s", self.mode)
                time.sleep(1.0)

    def _check(self, connection: redis.Redis) -> None:
        replication = cast(dict[str, Any], connection.info("replication"))
        if replication.get("role") != "master":
            raise DurabilityUnavailable(
                "REDIS_URL names a replica; point it at the master (or at the Sentinels)"
            )
        persistence = cast(dict[str, Any], connection.info("persistence"))
        setting = f"MODERATION_DURABILITY={self.mode}"
        if not int(persistence.get("aof_enabled", 0)):
            raise DurabilityUnavailable(
                f"{setting} needs Redis to run with appendonly yes (it runs appendonly no)"
            )
        fsync = appendfsync(connection)
        if fsync != "always":
            raise DurabilityUnavailable(
                f"{setting} needs Redis to run appendfsync always (it runs appendfsync {fsync}); "
                "with everysec WAITAOF can confirm writes not yet on disk (redis/redis#13793)"
            )
        if self.mode == REPLICA:
            online = online_replicas(replication)
            if online < self.replicas:
                raise DurabilityUnavailable(
                    f"{setting} needs {self.replicas} replica(s) of the master; "
                    f"{online} connected and in sync (MODERATION_DURABILITY_REPLICAS)"
                )


def online_replicas(replication: dict[str, Any]) -> int:
    """Replicas that INFO replication lists as in sync (`state=online`), not still loading."""
    entries = (value for name, value in replication.items() if name.startswith("slave"))
    return sum(1 for entry in entries if isinstance(entry, dict) and entry.get("state") == "online")


def server_has_waitaof(connection: redis.Redis) -> bool:
    """Whether the server knows WAITAOF (asked with a wait for nothing, which returns at once)."""
    try:
        connection.execute_command("WAITAOF", 0, 0, 1)
    except redis.ResponseError as error:
        if "unknown command" in str(error).lower():
            return False
        raise
    return True


def appendfsync(connection: redis.Redis) -> str:
    """The server's appendfsync policy, or "unknown" when CONFIG is not available to us."""
    try:
        config = cast(dict[str, str], connection.config_get("appendfsync"))
        value = config.get("appendfsync", "unknown")
    except redis.ResponseError:  # managed Redis often renames or disables CONFIG
        return "unknown (CONFIG GET is refused)"
    return value.decode() if isinstance(value, bytes) else str(value)
