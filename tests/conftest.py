"""Session-wide fixtures: a real redis-server, settings pointing at it, the app and a client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from moderation.app import create_app
from moderation.core.settings import Settings
from moderation.storage.site_store import SiteCredentials, SiteStore
from tests.support.browser import browser, page  # noqa: F401  (the page tests' fixtures)
from tests.support.held import worker_is_done
from tests.support.processes import running_worker, wait_for
from tests.support.redis_server import RedisServer, lost_page_cache_library
from tests.support.tiny_detoxify import TinyDetoxify, build_tiny_detoxify

TEST_SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole session, on a free port, stopped at the end."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lost_page_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The LD_PRELOAD library under which a killed Redis loses what it had not fsynced."""
    return lost_page_cache_library(tmp_path_factory.mktemp("lost-page-cache"))


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on an emptied database: every test starts from nothing."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def settings(redis_server: RedisServer, redis_client: redis.Redis) -> Settings:
    """Settings for a test: the session's Redis, the embedded lite model, a fixed secret."""
    return Settings(
        redis_url=redis_server.url,
        secret_key=TEST_SECRET_KEY,
        toxicity_model="lite",
        model_load_timeout=5.0,
    )


@pytest.fixture(scope="session")
def tiny_detoxify(tmp_path_factory: pytest.TempPathFactory) -> TinyDetoxify:
    """A 2-layer, hidden-32 BERT Detoxify checkpoint and its config directory, built offline."""
    return build_tiny_detoxify(Path(tmp_path_factory.mktemp("tiny-detoxify")))


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings)
    yield application
    application.extensions["moderation"].redis.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_site(settings: Settings, redis_client: redis.Redis) -> Callable[[str], SiteCredentials]:
    """Creates a site and returns its credentials (API key shown once)."""
    store = SiteStore(redis_client, settings.secret_key)
    return store.create


@pytest.fixture
def site(make_site: Callable[[str], SiteCredentials]) -> SiteCredentials:
    return make_site("news")


@pytest.fixture
def auth(site: SiteCredentials) -> dict[str, str]:
    """Headers that authenticate as the `news` site."""
    return {"Authorization": f"Bearer {site.api_key}"}


@pytest.fixture(scope="module")
def module_worker(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """One real `moderation worker` for all the tests of a module that use `scoring_worker`
    (it takes seconds to start). Each test empties Redis first; the worker registers again by
    itself and decides whatever is queued next. Yields its log file."""
    log = tmp_path_factory.mktemp("scoring-worker") / "worker.log"
    with running_worker(redis_server.url, log):
        yield log


@pytest.fixture
def scoring_worker(module_worker: Path, redis_client: redis.Redis) -> Iterator[Path]:
    """The module's real worker, for one test (tests.support.held.hold waits for its holds).
    Afterwards waits until it has finished everything the test gave it, so nothing it writes
    lands in the next test's emptied Redis."""
    yield module_worker
    wait_for(
        lambda: worker_is_done(redis_client),
        timeout=60,
        interval=0.05,
        what="the worker to finish the test's comments",
    )
