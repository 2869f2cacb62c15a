"""The engine measured best, kept in Redis: measured by the first worker with a model on a kind
of machine, read by the next; one worker measures at a time; real comments to measure on."""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
import torch
from detoxify import Detoxify
from flask.testing import FlaskClient

from moderation.core.records import Submission
from moderation.core.redis_keys import KEYS
from moderation.core.settings import Settings
from moderation.storage import engine_choices
from moderation.storage.comment_store import CommentStore
from moderation.storage.engine_choices import KEEP_SECONDS, EngineChoices, signature_digest
from tests.support.processes import running_worker, wait_for
from tests.support.redis_server import RedisServer
from tests.support.tiny_detoxify import CLEAN_EXAMPLE, TOXIC_EXAMPLE, TinyDetoxify
from workers.scoring import calibration
from workers.scoring.calibration import (
    CALIBRATION_COMMENTS,
    REFERENCE,
    EngineChoice,
    select_engine,
)
from workers.scoring.engines import Candidate, Engine, model_checksum
from workers.scoring.runtime import CALIBRATION_SAMPLE, engine_request
from workers.scoring.torch_engine import TorchEngine
from workers.scoring.toxicity import (
    DetoxifyScorer,
    EngineRequest,
    default_engine_cache,
    load_toxicity_scorer,
    predict,
)

NAMES = ["torch-fp32", "torch-bf16", "torch-int8"]
WAITING = "waiting for another worker's engine measurement"


def load(tiny_detoxify: TinyDetoxify) -> Detoxify:
    """The tiny model, loaded anew: as another worker process would load it."""
    return Detoxify(
        checkpoint=tiny_detoxify.checkpoint, huggingface_config_path=tiny_detoxify.config_dir
    )


@pytest.fixture
def detoxify(tiny_detoxify: TinyDetoxify) -> Detoxify:
    return load(tiny_detoxify)


@pytest.fixture
def measurements(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The options of every `choose_engine` call (a measurement) while the test runs."""
    calls: list[dict[str, Any]] = []
    real = calibration.choose_engine

    def counted(*args: Any, **options: Any) -> tuple[Engine, EngineChoice]:
        calls.append(options)
        return real(*args, **options)

    monkeypatch.setattr(calibration, "choose_engine", counted)
    return calls


def auto(connection: redis.Redis | None, tmp_path: Path, **options: Any) -> EngineRequest:
    """Torch at whichever precision is measured best, kept in `connection`'s Redis."""
    choices = None if connection is None else EngineChoices(connection)
    return EngineRequest(
        runtime="torch", precision="auto", cache_dir=tmp_path, choices=choices, **options
    )


def select(
    detoxify: Detoxify, request: EngineRequest, *, max_tokens: int = 64, batch_size: int = 8
) -> tuple[Engine, EngineChoice | None]:
    return select_engine(
        detoxify.model.eval(),
        detoxify.tokenizer,
        request,
        max_tokens=max_tokens,
        batch_size=batch_size,
    )


def kept_keys(connection: redis.Redis) -> list[bytes]:
    return connection.keys(KEYS.engine_choice("*"))


def ours(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == calibration.__name__]


# --- select_engine with the choice kept in Redis --------------------------------------------------


def test_the_first_worker_measures_and_the_next_uses_its_choice(
    tiny_detoxify: TinyDetoxify,
    detoxify: Detoxify,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    tmp_path: Path,
    measurements: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=calibration.__name__)

    first, measured = select(detoxify, auto(redis_client, tmp_path))

    assert measured is not None and len(measurements) == 1
    assert (first.runtime, first.precision) == ("torch", measured.candidate.precision)
    [key] = kept_keys(redis_client)
    record = json.loads(redis_client.get(key))
    assert record["choice"] == measured.as_dict()
    signature = record["signature"]
    assert signature["model"] == model_checksum(detoxify.model)
    assert (signature["max_tokens"], signature["pass_size"], signature["threads"]) == (64, 8, 1)
    assert (signature["candidates"], signature["tolerance"]) == (NAMES, calibration.TOLERANCE)
    assert {"cpu", "features", "runtimes"} <= set(signature)
    assert 0 < redis_client.ttl(key) <= KEEP_SECONDS
    assert redis_client.keys(KEYS.engine_choice_lock("*")) == []  # the claim was released
    [chose] = ours(caplog)
    assert chose.startswith(f"engine auto chose {measured.engine} in ")
    caplog.clear()

    # Another worker: the same checkpoint loaded again, its own connection and request.
    other = load(tiny_detoxify)
    with redis.Redis.from_url(redis_server.url) as connection:
        second, kept = select(other, auto(connection, tmp_path))

    assert len(measurements) == 1  # not measured again
    assert ours(caplog) == [f"engine auto: using {measured.engine}, measured by an earlier worker"]
    assert kept == measured
    assert (second.runtime, second.precision) == (first.runtime, first.precision)
    texts = [TOXIC_EXAMPLE, CLEAN_EXAMPLE]
    again = predict(second, other.tokenizer, texts, max_tokens=64, batch_size=2)
    before = predict(first, detoxify.tokenizer, texts, max_tokens=64, batch_size=2)
    assert torch.allclose(torch.tensor(again), torch.tensor(before), atol=1e-6)


def test_the_kept_choice_is_used_without_measuring(
    detoxify: Detoxify,
    redis_client: redis.Redis,
    tmp_path: Path,
    measurements: list[dict[str, Any]],
) -> None:
    """Whatever this worker would measure, it runs what the earlier worker chose."""
    _, measured = select(detoxify, auto(redis_client, tmp_path))
    assert measured is not None
    [key] = kept_keys(redis_client)
    record = json.loads(redis_client.get(key))
    other = next(name for name in NAMES if name != measured.engine)
    record["choice"]["engine"] = other
    redis_client.set(key, json.dumps(record), keepttl=True)

    engine, kept = select(detoxify, auto(redis_client, tmp_path))

    assert len(measurements) == 1
    assert kept is not None and kept.engine == other
    assert f"{engine.runtime}-{engine.precision}" == other


def test_a_kept_choice_that_does_not_build_here_is_measured_here_and_left_kept(
    detoxify: Detoxify,
    redis_client: redis.Redis,
    tmp_path: Path,
    measurements: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A host that cannot build the kept engine (say, no writable directory for its export)
    still starts: it measures for itself and leaves the other hosts' choice as it was."""
    select(detoxify, auto(redis_client, tmp_path))
    [key] = kept_keys(redis_client)
    record = json.loads(redis_client.get(key))
    record["choice"]["engine"] = kept = "torch-int8"  # one that is built (fp32 is the model)
    redis_client.set(key, json.dumps(record), keepttl=True)
    before = redis_client.get(key)
    real = calibration.build_engine

    def unbuildable_here(model: Any, tokenizer: Any, candidate: Any, **options: Any) -> Engine:
        if candidate.name == kept:
            raise OSError("read-only file system")
        return real(model, tokenizer, candidate, **options)

    monkeypatch.setattr(calibration, "build_engine", unbuildable_here)
    caplog.set_level(logging.WARNING, logger=calibration.__name__)

    engine, chosen = select(detoxify, auto(redis_client, tmp_path))

    assert len(measurements) == 2  # measured again, here
    assert chosen is not None and chosen.engine != kept
    assert f"{engine.runtime}-{engine.precision}" == chosen.engine
    assert any("does not build here" in message for message in ours(caplog))
    assert redis_client.get(key) == before  # the kept choice stays for the other hosts


def perturbed(detoxify: Detoxify) -> Detoxify:
    """The same model with one weight moved a little: another checksum."""
    changed = copy.copy(detoxify)
    changed.model = copy.deepcopy(detoxify.model)
    with torch.no_grad():
        changed.model.classifier.bias[0] += 1e-3
    return changed


CHANGES: dict[str, Callable[..., dict[str, Any]]] = {
    "max_tokens": lambda detoxify, request: {"max_tokens": 32},
    "pass size": lambda detoxify, request: {"batch_size": 4},
    "threads": lambda detoxify, request: {"request": replace(request, threads=2)},
    "model": lambda detoxify, request: {"detoxify": perturbed(detoxify)},
}


@pytest.mark.parametrize("change", [*CHANGES, "candidates"])
def test_a_different_signature_is_measured_again(
    detoxify: Detoxify,
    redis_client: redis.Redis,
    tmp_path: Path,
    measurements: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:
    request = auto(redis_client, tmp_path)
    select(detoxify, request)
    options: dict[str, Any] = {"detoxify": detoxify, "request": request}

    if change == "candidates":
        fewer = [REFERENCE, Candidate("torch", "int8")]
        with monkeypatch.context() as patch:
            patch.setattr(calibration, "candidates", lambda runtime, precision: fewer)
            _, choice = select(**options)
    else:
        _, choice = select(**options | CHANGES[change](detoxify, request))

    assert len(measurements) == 2
    assert choice is not None
    assert len(kept_keys(redis_client)) == 2
    if change == "candidates":
        assert set(choice.deviations) == {"torch-fp32", "torch-int8"}
    select(detoxify, request)  # the first signature: still kept
    assert len(measurements) == 2


def test_without_a_keeper_every_start_measures(
    detoxify: Detoxify,
    redis_client: redis.Redis,
    tmp_path: Path,
    measurements: list[dict[str, Any]],
) -> None:
    for _ in range(2):
        _, choice = select(detoxify, auto(None, tmp_path))
        assert choice is not None

    assert len(measurements) == 2
    assert kept_keys(redis_client) == []


def test_real_comments_are_measured_with_the_built_in_ones(
    detoxify: Detoxify, redis_client: redis.Redis, tmp_path: Path
) -> None:
    real = ["a comment the service holds", "and another, rather longer, one"]
    asked: list[bool] = []

    def real_comments() -> list[str]:
        asked.append(True)
        return real

    _, choice = select(detoxify, auto(redis_client, tmp_path, real_comments=real_comments))

    assert choice is not None
    assert choice.comments == len(CALIBRATION_COMMENTS) + len(real)
    assert asked == [True]
    [key] = kept_keys(redis_client)
    kept = redis_client.get(key).decode()
    assert not [text for text in real if text in kept]  # Redis keeps no comment text


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_a_fixed_request_measures_nothing(
    tiny_detoxify: TinyDetoxify,
    redis_client: redis.Redis,
    tmp_path: Path,
    measurements: list[dict[str, Any]],
    precision: str,
) -> None:
    asked: list[bool] = []

    def real_comments() -> list[str]:
        asked.append(True)
        return ["never read"]

    request = EngineRequest(
        runtime="torch",
        precision=precision,
        cache_dir=tmp_path,
        choices=EngineChoices(redis_client),
        real_comments=real_comments,
    )

    scorer = load_toxicity_scorer(
        tiny_detoxify.spec, config_dir=tiny_detoxify.config_dir, engine=request
    )

    assert isinstance(scorer, DetoxifyScorer)
    assert scorer.calibration is None
    assert isinstance(scorer.engine, TorchEngine)
    assert (scorer.runtime, scorer.precision) == ("torch", precision)
    assert scorer.engine.precision == precision
    if precision == "bf16":
        assert {p.dtype for p in scorer.engine.model.parameters()} == {torch.bfloat16}
    assert (measurements, asked, kept_keys(redis_client)) == ([], [], [])
    [row] = scorer.score([TOXIC_EXAMPLE])
    assert row["toxicity"] > 0.8


# --- EngineChoices: one worker measures, the others wait ------------------------------------------

SIGNATURE = {"model": "0123abcd", "cpu": "a test CPU", "candidates": NAMES}


class Attempt(threading.Thread):
    """`EngineChoices.once` in a thread of its own, on a connection of its own: a worker."""

    def __init__(self, url: str, measure: Callable[[], Mapping[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.connection = redis.Redis.from_url(url)
        self.measure = measure
        self.outcome: tuple[dict[str, Any], bool] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.outcome = EngineChoices(self.connection).once(SIGNATURE, self.measure)
        except BaseException as error:
            self.error = error
        finally:
            self.connection.close()

    def finished(self) -> Attempt:
        self.join(timeout=30)
        assert not self.is_alive(), "once() did not return"
        return self


@pytest.fixture
def attempts(
    redis_server: RedisServer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[Callable[[], Mapping[str, Any]]], Attempt]]:
    """Starts attempts; looks at Redis every 10 ms while waiting (not every half second)."""
    monkeypatch.setattr(engine_choices, "POLL_SECONDS", 0.01)
    started: list[Attempt] = []

    def start(measure: Callable[[], Mapping[str, Any]]) -> Attempt:
        attempt = Attempt(redis_server.url, measure)
        attempt.start()
        started.append(attempt)
        return attempt

    yield start
    for attempt in started:
        attempt.join(timeout=30)


class Blocked:
    """A measurement that starts, then waits until the test lets it end (or fail)."""

    def __init__(self, choice: dict[str, Any], *, fail: bool = False) -> None:
        self.choice, self.fail = choice, fail
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self) -> dict[str, Any]:
        self.started.set()
        assert self.release.wait(timeout=30), "never released"
        if self.fail:
            raise RuntimeError("the measuring worker crashed")
        return self.choice


def never(calls: list[str]) -> Callable[[], dict[str, Any]]:
    def measure() -> dict[str, Any]:
        calls.append("measured")
        return {"engine": "from the second worker"}

    return measure


def lock_key() -> str:
    return KEYS.engine_choice_lock(signature_digest(SIGNATURE))


def test_a_worker_waits_for_the_one_measuring_and_takes_its_choice(
    attempts: Callable[..., Attempt],
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=engine_choices.__name__)
    measuring = Blocked({"engine": "torch-int8"})
    first = attempts(measuring)
    wait_for(measuring.started.is_set, timeout=30, what="the first worker to measure")
    assert redis_client.exists(lock_key())
    calls: list[str] = []

    second = attempts(never(calls))
    wait_for(lambda: WAITING in caplog.text, timeout=30, what="the second worker to wait")
    assert second.is_alive() and second.outcome is None  # still waiting for the first

    measuring.release.set()

    assert first.finished().outcome == ({"engine": "torch-int8"}, True)
    assert second.finished().outcome == ({"engine": "torch-int8"}, False)
    assert calls == []
    assert EngineChoices(redis_client).get(SIGNATURE) == {"engine": "torch-int8"}
    assert not redis_client.exists(lock_key())


def test_when_the_measuring_worker_fails_a_waiting_one_measures(
    attempts: Callable[..., Attempt],
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=engine_choices.__name__)
    measuring = Blocked({"engine": "torch-int8"}, fail=True)
    first = attempts(measuring)
    wait_for(measuring.started.is_set, timeout=30, what="the first worker to measure")
    calls: list[str] = []
    second = attempts(never(calls))
    wait_for(lambda: WAITING in caplog.text, timeout=30, what="the second worker to wait")

    measuring.release.set()

    assert isinstance(first.finished().error, RuntimeError)
    assert second.finished().outcome == ({"engine": "from the second worker"}, True)
    assert calls == ["measured"]
    assert EngineChoices(redis_client).get(SIGNATURE) == {"engine": "from the second worker"}
    assert not redis_client.exists(lock_key())


def test_a_claim_that_outlasts_the_wait_is_measured_past(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker that died measuring leaves its claim until it lapses; one that waited long
    enough measures itself, and leaves the other's claim alone."""
    monkeypatch.setattr(engine_choices, "POLL_SECONDS", 0.01)
    caplog.set_level(logging.INFO, logger=engine_choices.__name__)
    redis_client.set(lock_key(), "a worker that died", ex=600)

    outcome = EngineChoices(redis_client).once(
        SIGNATURE, lambda: {"engine": "torch-fp32"}, wait_seconds=0.0
    )

    assert outcome == ({"engine": "torch-fp32"}, True)
    assert "late; measuring here too" in caplog.text
    assert redis_client.get(lock_key()) == b"a worker that died"
    assert EngineChoices(redis_client).get(SIGNATURE) == {"engine": "torch-fp32"}


def test_a_kept_choice_is_read_and_kept_longer(redis_client: redis.Redis) -> None:
    choices = EngineChoices(redis_client)
    choices.put(SIGNATURE, {"engine": "torch-bf16"})
    key = KEYS.engine_choice(signature_digest(SIGNATURE))
    redis_client.expire(key, 100)
    calls: list[str] = []

    outcome = choices.once(SIGNATURE, never(calls))

    assert outcome == ({"engine": "torch-bf16"}, False)
    assert calls == []
    assert redis_client.ttl(key) > KEEP_SECONDS - 60  # read: kept for another 90 days
    assert json.loads(redis_client.get(key))["signature"] == SIGNATURE
    choices.forget(SIGNATURE)
    assert choices.get(SIGNATURE) is None


def test_the_signature_digest_ignores_order_only() -> None:
    reordered = dict(reversed(list(SIGNATURE.items())))

    assert signature_digest(reordered) == signature_digest(SIGNATURE)
    assert signature_digest({**SIGNATURE, "cpu": "another CPU"}) != signature_digest(SIGNATURE)


# --- real comments to measure on -----------------------------------------------------------------


def enqueue(pipe: Any, site: str, comment_id: str) -> str:
    return f"job-{site}-{comment_id}"


def test_sample_texts_are_the_texts_of_stored_comments(redis_client: redis.Redis) -> None:
    store = CommentStore(redis_client)
    assert store.sample_texts(10) == []
    texts = [f"stored comment number {number}" for number in range(5)]
    for number, text in enumerate(texts):
        store.accept("news", Submission(f"c-{number}", text), enqueue)
    store.accept("blog", Submission("same", texts[0]), enqueue)  # the same text on another site
    store.accept("blog", Submission("empty", ""), enqueue)
    store.accept("blog", Submission("erased", "erase me, I said something private"), enqueue)
    store.erase("blog", "erased", actor="moderator:ann")

    assert sorted(store.sample_texts(100)) == sorted(texts)
    some = store.sample_texts(3)
    assert len(some) == len(set(some)) == 3 and set(some) <= set(texts)


def test_sample_texts_stop_at_the_limit(redis_client: redis.Redis) -> None:
    store = CommentStore(redis_client)
    for number in range(3 * CALIBRATION_SAMPLE):
        store.accept("news", Submission(f"c-{number}", f"comment {number}"), enqueue)

    assert len(store.sample_texts(CALIBRATION_SAMPLE)) == CALIBRATION_SAMPLE
    assert len(set(store.sample_texts(1000))) == 3 * CALIBRATION_SAMPLE


def test_a_worker_asks_for_the_engine_its_settings_name(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    store = CommentStore(redis_client)
    store.accept("news", Submission("c-1", "a comment already stored"), enqueue)
    chosen = replace(
        settings, runtime="torch", precision="int8", torch_threads=2, engine_cache_dir=tmp_path
    )

    request = engine_request(chosen, store)
    default = engine_request(settings, store)

    assert (request.runtime, request.precision, request.threads) == ("torch", "int8", 2)
    assert request.cache_dir == tmp_path
    assert isinstance(request.choices, EngineChoices)
    assert request.choices.redis is redis_client
    assert request.real_comments is not None
    assert list(request.real_comments()) == ["a comment already stored"]
    assert (default.runtime, default.precision) == ("auto", "auto")
    assert default.cache_dir == default_engine_cache()


# --- end to end: two worker processes ------------------------------------------------------------


@pytest.mark.e2e
def test_a_second_worker_uses_the_first_ones_measurement(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    client: FlaskClient,
    tiny_detoxify: TinyDetoxify,
    tmp_path: Path,
) -> None:
    env = {
        "MODERATION_TOXICITY_MODEL": tiny_detoxify.spec,
        "MODERATION_DETOXIFY_CONFIG_DIR": str(tiny_detoxify.config_dir),
        "MODERATION_RUNTIME": "torch",  # MODERATION_PRECISION: auto, the default
        "MODERATION_ENGINE_CACHE_DIR": str(tmp_path / "engines"),
    }
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"

    with running_worker(redis_server.url, first_log, env):
        readiness = client.get("/readyz").get_json()
        precision = readiness["precision"]
        assert (readiness["runtime"], readiness["workers"]) == ("torch", 1)
        assert precision in ("fp32", "bf16", "int8")
        assert f"engine auto chose torch-{precision} in " in first_log.read_text()
        assert len(kept_keys(redis_client)) == 1

        with running_worker(redis_server.url, second_log, env):
            both = client.get("/readyz").get_json()

    assert both["workers"] == 2
    assert (both["runtime"], both["precision"]) == ("torch", precision)  # one value: the same
    second = second_log.read_text()
    assert f"engine auto: using torch-{precision}, measured by an earlier worker" in second
    assert "engine auto chose" not in second
    assert re.search(rf"toxicity model ready: \S+ \(torch {precision}\)", second)
    assert len(kept_keys(redis_client)) == 1
