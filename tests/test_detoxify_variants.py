"""Every published Detoxify shape loads, scores and decides comments: tiny offline checkpoints of
each architecture (BERT, RoBERTa, XLM-RoBERTa, ALBERT) with the published outputs and classes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import torch
from detoxify import Detoxify
from flask.testing import FlaskClient

from moderation.app import create_app
from moderation.core.redis_keys import KEYS
from moderation.core.settings import Settings
from moderation.storage.site_store import SiteStore
from tests.support.processes import live_workers, moderation_env, moderation_process, wait_for
from tests.support.recording_model import Recording
from tests.support.redis_server import RedisServer
from tests.support.tiny_detoxify import (
    CLEAN_EXAMPLE,
    MULTILINGUAL_EXAMPLES,
    SHAPES,
    TOXIC_EXAMPLE,
    TinyDetoxify,
    as_published,
    build_tiny_detoxify,
    harmless_text,
)
from workers.scoring.toxicity import (
    ENGLISH,
    MULTILINGUAL,
    VARIANTS,
    DetoxifyScorer,
    cached_checkpoint,
    load_toxicity_scorer,
    predict,
    window_starts,
)

Build = Callable[[str], TinyDetoxify]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, tiny_detoxify: TinyDetoxify) -> Build:
    """Builds each variant's tiny checkpoint once, when a test first asks for it."""
    built = {"original": tiny_detoxify}

    def build(variant: str) -> TinyDetoxify:
        if variant not in built:
            directory = tmp_path_factory.mktemp(f"tiny-{variant}")
            built[variant] = build_tiny_detoxify(directory, SHAPES[variant])
        return built[variant]

    return build


def scorer_of(model: TinyDetoxify, **options: object) -> DetoxifyScorer:
    scorer = load_toxicity_scorer(model.spec, config_dir=model.config_dir, **options)
    assert isinstance(scorer, DetoxifyScorer)
    return scorer


@pytest.mark.parametrize("variant", list(SHAPES))
def test_the_variant_table_matches_the_published_configs(variant: str) -> None:
    shape, known = SHAPES[variant], VARIANTS[variant]

    assert (known.architecture, known.tokenizer) == (shape.model_name, shape.tokenizer_name)
    assert (known.labels, known.outputs) == (shape.labels, shape.num_classes)
    assert known.languages == (MULTILINGUAL if variant == "multilingual" else ENGLISH)


@pytest.mark.parametrize("variant", list(SHAPES))
def test_detoxify_loads_the_tiny_checkpoint(tiny: Build, variant: str) -> None:
    model, shape = tiny(variant), SHAPES[variant]

    detoxify = Detoxify(checkpoint=model.checkpoint, huggingface_config_path=model.config_dir)
    results = detoxify.predict([TOXIC_EXAMPLE, CLEAN_EXAMPLE])

    assert type(detoxify.model).__name__ == shape.model_name
    assert type(detoxify.tokenizer).__name__ == shape.tokenizer_name
    assert detoxify.model.config.num_labels == shape.num_classes
    assert tuple(detoxify.class_names) == tuple(results) == shape.labels
    assert results["toxicity"][0] > 0.9 > 0.1 > results["toxicity"][1]


@pytest.mark.parametrize("variant", list(SHAPES))
def test_the_scorer_reports_what_detoxify_does(tiny: Build, variant: str) -> None:
    model, shape = tiny(variant), SHAPES[variant]
    texts = [TOXIC_EXAMPLE, CLEAN_EXAMPLE, "nice post", "i will kill you"]
    detoxify = Detoxify(checkpoint=model.checkpoint, huggingface_config_path=model.config_dir)
    reference = detoxify.predict(texts)  # reads the first len(class_names) outputs

    scorer = scorer_of(model)
    scores = scorer.score(texts)

    assert scorer.labels == shape.labels
    assert scorer.languages == VARIANTS[variant].languages
    for index, row in enumerate(scores):
        assert tuple(row) == shape.labels
        for label, value in row.items():
            assert value == pytest.approx(reference[label][index], abs=1e-4)
    assert scores[0]["toxicity"] > 0.9 > 0.1 > scores[1]["toxicity"]


def test_the_multilingual_model_reads_its_languages(tiny: Build) -> None:
    scorer = scorer_of(tiny("multilingual"))
    insults, thanks = zip(*MULTILINGUAL_EXAMPLES.values(), strict=True)

    toxic = [row["toxicity"] for row in scorer.score(insults)]
    clean = [row["toxicity"] for row in scorer.score(thanks)]

    assert scorer.languages == {"en", *MULTILINGUAL_EXAMPLES} == MULTILINGUAL
    assert min(toxic) > 0.9 > 0.1 > max(clean)


def test_languages_given_replace_the_multilingual_ones(tiny: Build) -> None:
    scorer = scorer_of(tiny("multilingual"), languages=frozenset({"en", "fr"}))

    assert scorer.languages == {"en", "fr"}


@pytest.mark.parametrize("variant", list(SHAPES))
def test_each_window_has_the_tokenizers_special_tokens(tiny: Build, variant: str) -> None:
    model = tiny(variant)
    detoxify = Detoxify(checkpoint=model.checkpoint, huggingface_config_path=model.config_dir)
    recording, tokenizer = Recording(detoxify.model.eval()), detoxify.tokenizer
    text = f"{CLEAN_EXAMPLE} {TOXIC_EXAMPLE} " * 20
    whole = tokenizer(text)["input_ids"]

    predict(recording, tokenizer, [text], max_tokens=32, batch_size=4)

    windows = recording.windows(tokenizer.pad_token_id)
    assert len(windows) > 1
    for window in windows:
        assert len(window) == 32  # the last window ends at the end: none is a short tail
        assert (window[0], window[-1]) == (whole[0], whole[-1])  # e.g. <s> ... </s>
    body = whole[1:-1]
    assert [window[1:-1] for window in windows] == [
        body[start : start + 30] for start in window_starts(len(body), 30)
    ]


@pytest.mark.parametrize("variant", ["unbiased", "multilingual"])
def test_roberta_windows_stay_within_its_positions(tiny: Build, variant: str) -> None:
    # RoBERTa's 514 positions hold 512 tokens (they are numbered from 2): 514-token windows
    # would fail. A tokenizer saved without its limit leaves the positions as the only bound.
    model = tiny(variant)
    detoxify = Detoxify(checkpoint=model.checkpoint, huggingface_config_path=model.config_dir)
    detoxify.tokenizer.model_max_length = 10**30
    scorer = DetoxifyScorer(detoxify, variant, max_tokens=100_000)

    [scores] = scorer.score([f"{TOXIC_EXAMPLE} {harmless_text(1500)}"])

    assert scorer.max_tokens == 512
    assert 0.0 <= scores["toxicity"] <= 1.0


@pytest.fixture
def hub_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty torch hub cache and HF_HUB_OFFLINE, so nothing is downloaded."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("TORCH_HUB", raising=False)


@pytest.mark.usefixtures("hub_offline")
@pytest.mark.parametrize("variant", list(SHAPES))
def test_a_published_checkpoint_loads_offline_from_its_base_models_files(
    tiny: Build, variant: str, tmp_path: Path
) -> None:
    """As README's offline recipe has it: the checkpoint names its base model by hub name, and
    the configuration directory is the base model's (config.json leaves the outputs at 2).
    `Detoxify(checkpoint=..., huggingface_config_path=...)` fails on both counts: it asks the
    hub for the base model's config, then finds 2 outputs where the checkpoint has 6 or 16."""
    published = as_published(tiny(variant), tmp_path)
    shape = SHAPES[variant]

    scorer = scorer_of(published)

    assert scorer.labels == shape.labels
    assert scorer.config.num_labels == shape.num_classes
    assert scorer.score([TOXIC_EXAMPLE])[0]["toxicity"] > 0.9


@pytest.mark.usefixtures("hub_offline")
@pytest.mark.parametrize("variant", list(SHAPES))
def test_a_variant_by_name_loads_from_the_torch_hub_cache(
    tiny: Build, variant: str, tmp_path: Path
) -> None:
    model = as_published(tiny(variant), tmp_path)
    cached = cached_checkpoint(variant)
    cached.parent.mkdir(parents=True)
    cached.symlink_to(model.checkpoint)

    scorer = load_toxicity_scorer(f"detoxify:{variant}", config_dir=model.config_dir)

    assert isinstance(scorer, DetoxifyScorer)
    assert (scorer.name, scorer.labels) == (f"detoxify:{variant}", VARIANTS[variant].labels)
    assert scorer.languages == VARIANTS[variant].languages
    assert scorer.score([TOXIC_EXAMPLE])[0]["toxicity"] > 0.9


# --- end to end: a real worker process per shape -------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    """One variant's worker, on a Redis database of its own, and an API client for it."""

    model: TinyDetoxify
    client: FlaskClient
    auth: dict[str, str]
    url: str
    log: Path


@pytest.fixture(scope="module")
def deployments(
    tiny: Build, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Deployment]]:
    """A real worker process per variant, started together (each loading a model takes
    seconds), each on its own Redis database so that it scores only its variant's comments.
    Each is given its checkpoint as a published one is (see `as_published`), and measures
    which torch precision to score with (the other runtimes are tested elsewhere)."""
    logs = tmp_path_factory.mktemp("variant-workers")
    engines = tmp_path_factory.mktemp("variant-engines")
    base = redis_server.url.rsplit("/", 1)[0]
    urls = {variant: f"{base}/{number}" for number, variant in enumerate(SHAPES, start=1)}
    models: dict[str, TinyDetoxify] = {}
    with ExitStack() as stack:
        processes: dict[str, subprocess.Popen[bytes]] = {}
        for variant, url in urls.items():  # each starts while the next model is built
            with redis.Redis.from_url(url) as connection:
                connection.flushdb()
            directory = tmp_path_factory.mktemp(f"published-{variant}")
            model = models[variant] = as_published(tiny(variant), directory)
            extra = {
                "MODERATION_TOXICITY_MODEL": model.spec,
                "MODERATION_DETOXIFY_CONFIG_DIR": str(model.config_dir),
                "MODERATION_RUNTIME": "torch",
                "MODERATION_ENGINE_CACHE_DIR": str(engines),
            }
            env = moderation_env(url, extra)
            log = logs / f"{variant}.log"
            processes[variant] = stack.enter_context(moderation_process(["worker"], env, log))
        for variant, url in urls.items():
            wait_for(
                lambda url=url, variant=variant: _registered(
                    url, processes[variant], logs / f"{variant}.log"
                ),
                timeout=120,
                interval=0.1,
                what=f"the {variant} worker to register",
            )
        try:
            yield {
                variant: stack.enter_context(
                    _deployment(models[variant], url, logs / f"{variant}.log")
                )
                for variant, url in urls.items()
            }
        finally:  # all stop together; moderation_process then waits for each
            for process in processes.values():
                process.terminate()


def _registered(url: str, process: subprocess.Popen[bytes], log: Path) -> bool:
    """True once RQ knows the worker on `url`'s database; fails if it has exited."""
    if process.poll() is not None:
        raise AssertionError(f"worker exited:\n{log.read_text()[-3000:]}")
    return bool(live_workers(url))


@contextmanager
def _deployment(model: TinyDetoxify, url: str, log: Path) -> Iterator[Deployment]:
    """An app on `url`'s database with a `news` site, as conftest's fixtures make for db 0."""
    secret = moderation_env(url)["MODERATION_SECRET_KEY"]  # the workers' own
    settings = Settings(redis_url=url, secret_key=secret, toxicity_model="lite")
    app = create_app(settings)
    with redis.Redis.from_url(url) as connection:
        site = SiteStore(connection, secret).create("news")
    try:
        auth = {"Authorization": f"Bearer {site.api_key}"}
        yield Deployment(model, app.test_client(), auth, url, log)
    finally:
        app.extensions["moderation"].redis.close()


def decided(deployment: Deployment, comment_id: str) -> dict:
    """The record once decided (the API blocks on the decision; the loop only bounds retries)."""
    url = f"/v1/comments/{comment_id}?wait=5"
    return wait_for(
        lambda: (
            (r := deployment.client.get(url, headers=deployment.auth).get_json())
            and r["decision"]
            and r
        ),
        timeout=60,
        what=f"a decision on {comment_id}",
    )


@pytest.mark.e2e
@pytest.mark.parametrize("variant", list(SHAPES))
def test_a_worker_decides_with_each_variant(
    deployments: dict[str, Deployment], variant: str
) -> None:
    deployment = deployments[variant]
    comments = {"toxic": TOXIC_EXAMPLE, "clean": CLEAN_EXAMPLE}
    if variant == "original":  # the model trained to find an insult in a long clean text
        comments["long"] = f"{harmless_text(350)} {TOXIC_EXAMPLE}"
    for comment_id, content in comments.items():
        body = {"id": comment_id, "content": content}
        response = deployment.client.post("/v1/comments", json=body, headers=deployment.auth)
        assert response.status_code == 202

    records = {comment_id: decided(deployment, comment_id) for comment_id in comments}

    for comment_id, record in records.items():
        decision = record["decision"]
        assert decision["models"]["toxicity"] == deployment.model.spec
        assert set(decision["scores"]) == {*SHAPES[variant].labels, "spam"}
        expected = "approved" if comment_id == "clean" else "held"
        assert record["status"] == expected, (comment_id, decision)
    toxic_reasons = records["toxic"]["decision"]["reasons"]
    assert any(reason.startswith("toxicity ") for reason in toxic_reasons)


@pytest.mark.e2e
@pytest.mark.parametrize("variant", list(SHAPES))
def test_each_variant_worker_measured_its_engine(
    deployments: dict[str, Deployment], variant: str
) -> None:
    """`MODERATION_PRECISION` is `auto` by default: each worker timed the torch precisions on
    its own architecture, kept the answer in its Redis and says what it scores with."""
    deployment = deployments[variant]

    readiness = deployment.client.get("/readyz").get_json()

    assert (readiness["runtime"], readiness["workers"]) == ("torch", 1)
    assert readiness["precision"] in ("fp32", "bf16", "int8")
    assert f"engine auto chose torch-{readiness['precision']} " in deployment.log.read_text()
    with redis.Redis.from_url(deployment.url) as connection:
        assert len(connection.keys(KEYS.engine_choice("*"))) == 1
        assert connection.keys(KEYS.engine_choice_lock("*")) == []


def test_tiny_checkpoints_are_saved_as_published(tiny: Build) -> None:
    """The checkpoint file holds what Detoxify's own do: the training config, the state dict."""
    model = tiny("unbiased")

    loaded = torch.load(model.checkpoint, weights_only=False)

    args = loaded["config"]["arch"]["args"]
    assert set(args) == {"model_type", "model_name", "tokenizer_name", "num_classes"}
    assert (args["model_name"], args["num_classes"]) == ("RobertaForSequenceClassification", 16)
    dataset = loaded["config"]["dataset"]["args"]
    assert len(dataset["classes"]) + len(dataset["identity_classes"]) == 16
    assert loaded["state_dict"]["classifier.out_proj.weight"].shape[0] == 16
