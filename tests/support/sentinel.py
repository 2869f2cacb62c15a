"""A real Redis that fails over: a master, its replica and three `redis-server --sentinel`.

with SentinelSet(tmp_path) as redis_set:
    redis_set.url            # redis+sentinel://127.0.0.1:p1,.../mymaster/0
    redis_set.master.kill()  # SIGKILL: the Sentinels promote the replica within seconds
    redis_set.wait_for_failover()
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import TracebackType

import redis

from tests.support.processes import wait_for
from tests.support.redis_server import RedisServer, free_port

MASTER_NAME = "mymaster"
#: How long a master must be silent before a Sentinel calls it down (ms).
DOWN_AFTER_MS = 1000


class SentinelProcess:
    """One `redis-server --sentinel` watching MASTER_NAME (it rewrites its own config file)."""

    def __init__(self, directory: Path, master_port: int) -> None:
        self.directory = directory
        self.port = free_port()
        self.master_port = master_port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "sentinel.conf"
        config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.directory}\n"
            f"logfile {self.directory / 'sentinel.log'}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        self.process = subprocess.Popen([binary, str(config), "--sentinel"])
        wait_for(self.answers, timeout=10, what=f"Sentinel on port {self.port}")

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)

    def answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.ConnectionError:
            assert self.process is not None and self.process.poll() is None, "Sentinel exited"
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class SentinelSet:
    """A master and one replica (both `appendonly yes`, `appendfsync` as given) and three
    Sentinels that agree on them; ready once every Sentinel knows the replica and the others."""

    def __init__(self, directory: Path, appendfsync: str = "everysec") -> None:
        # No 5 s wait before a full sync (the default gathers replicas that arrive together).
        quick_sync = ["--repl-diskless-sync-delay", "0"]
        self.master = RedisServer(
            directory / "a", appendonly=True, appendfsync=appendfsync, extra=quick_sync
        )
        self.replica = RedisServer(
            directory / "b",
            appendonly=True,
            appendfsync=appendfsync,
            extra=[*quick_sync, "--replicaof", "127.0.0.1", str(self.master.port)],
        )
        self.sentinels = [
            SentinelProcess(directory / f"sentinel-{number}", self.master.port)
            for number in (1, 2, 3)
        ]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    def __enter__(self) -> SentinelSet:
        self.master.start()
        self.replica.start()
        wait_for(self._replica_in_sync, timeout=20, what="the replica to sync")
        for sentinel in self.sentinels:
            sentinel.start()
        wait_for(self._sentinels_agree, timeout=30, what="the Sentinels to find each other")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        self.replica.stop()
        self.master.stop()

    def master_port(self) -> int:
        """The master's port as the first Sentinel that answers reports it."""
        for sentinel in self.sentinels:
            try:
                with sentinel.client() as client:
                    host_port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
                return int(host_port[1])
            except redis.ConnectionError:
                continue
        raise AssertionError("no Sentinel answers")

    def wait_for_failover(self, old_port: int, timeout: float = 60) -> int:
        """The new master's port, once the Sentinels report it and it acts as master."""

        def promoted() -> int | None:
            port = self.master_port()
            if port == old_port:
                return None
            with redis.Redis(port=port, socket_timeout=2) as client:
                return port if client.info("replication")["role"] == "master" else None

        return wait_for(promoted, timeout=timeout, interval=0.1, what="the replica's promotion")

    def _replica_in_sync(self) -> bool:
        with redis.Redis(port=self.replica.port, socket_timeout=2) as client:
            return client.info("replication").get("master_link_status") == "up"

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                if len(client.sentinel_slaves(MASTER_NAME)) < 1:
                    return False
                if len(client.sentinel_sentinels(MASTER_NAME)) < len(self.sentinels) - 1:
                    return False
        return True
