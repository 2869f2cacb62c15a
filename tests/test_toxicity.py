"""Toxicity scorers: the embedded lite model, Detoxify through a tiny offline checkpoint, `auto`."""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from detoxify import Detoxify

from tests.support.tiny_detoxify import CLEAN_EXAMPLE, LABELS, TOXIC_EXAMPLE, TinyDetoxify
from workers.scoring import toxicity
from workers.scoring.toxicity import (
    DetoxifyScorer,
    LiteScorer,
    ModelLoadError,
    apply_precision,
    cached_checkpoint,
    load_toxicity_scorer,
    precision_copy,
    predict,
    warm_up,
)

# Deliberately not in length order, so that sorting by length has something to undo.
TEXTS = [
    "i agree with this post and thank you for this great article",
    TOXIC_EXAMPLE,
    "nice post",
    "i will kill you",
    CLEAN_EXAMPLE,
    "this is dumb trash",
    "we love this",
]


def assert_valid(scores: list[dict[str, float]], labels: set[str], count: int) -> None:
    assert len(scores) == count
    for row in scores:
        assert set(row) == labels
        for value in row.values():
            assert type(value) is float
            assert 0.0 <= value <= 1.0


def assert_close(left: list[dict[str, float]], right: list[dict[str, float]], tol: float) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert a.keys() == b.keys()
        for label in a:
            assert a[label] == pytest.approx(b[label], abs=tol), label


@pytest.fixture(scope="module")
def tiny_scorer(tiny_detoxify: TinyDetoxify) -> DetoxifyScorer:
    scorer = load_toxicity_scorer(
        f"detoxify:{tiny_detoxify.checkpoint}", config_dir=tiny_detoxify.config_dir
    )
    assert isinstance(scorer, DetoxifyScorer)
    return scorer


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty torch hub cache and HF_HUB_OFFLINE, so nothing is downloaded; the hub dir."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("TORCH_HUB", raising=False)
    return tmp_path / "torch" / "hub"


# --- lite ----------------------------------------------------------------------------------------


def test_lite_scores_profanity_above_clean_text() -> None:
    scorer = load_toxicity_scorer("lite")

    scores = scorer.score(["you are a fucking idiot", CLEAN_EXAMPLE])

    assert isinstance(scorer, LiteScorer)
    assert (scorer.name, scorer.labels) == ("lite", ("toxicity",))
    assert_valid(scores, {"toxicity"}, 2)
    assert scores[0]["toxicity"] > 0.5 > scores[1]["toxicity"]
    assert scorer.score([]) == []


# --- Detoxify through the tiny checkpoint --------------------------------------------------------


def test_detoxify_scorer_names_itself_by_checkpoint_path(
    tiny_scorer: DetoxifyScorer, tiny_detoxify: TinyDetoxify
) -> None:
    assert tiny_scorer.name == f"detoxify:{tiny_detoxify.checkpoint}"
    assert set(tiny_scorer.labels) == LABELS


def test_detoxify_scores_a_batch_in_input_order(tiny_scorer: DetoxifyScorer) -> None:
    batch = tiny_scorer.score(TEXTS)
    one_by_one = [tiny_scorer.score([text])[0] for text in TEXTS]

    assert_valid(batch, LABELS, len(TEXTS))
    assert_close(batch, one_by_one, 1e-4)
    # The tiny model separates its examples, so a permutation could not go unnoticed.
    assert batch[1]["toxicity"] > 0.9 > 0.1 > batch[4]["toxicity"]


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_sub_batches_keep_input_order(tiny_detoxify: TinyDetoxify, batch_size: int) -> None:
    detoxify = Detoxify(
        checkpoint=tiny_detoxify.checkpoint, huggingface_config_path=tiny_detoxify.config_dir
    )
    reference = detoxify.predict(TEXTS)
    scorer = DetoxifyScorer(detoxify, "tiny", batch_size=batch_size)

    scores = scorer.score(TEXTS)

    expected = [{label: reference[label][i] for label in scorer.labels} for i in range(len(TEXTS))]
    assert_close(scores, expected, 1e-4)


def test_detoxify_scores_a_single_text_as_a_list(tiny_scorer: DetoxifyScorer) -> None:
    scores = tiny_scorer.score([TOXIC_EXAMPLE])

    assert_valid(scores, LABELS, 1)
    assert scores[0]["toxicity"] > 0.9
    assert tiny_scorer.score([]) == []


def test_long_texts_are_truncated_to_max_tokens(tiny_detoxify: TinyDetoxify) -> None:
    spec = f"detoxify:{tiny_detoxify.checkpoint}"
    # Every word is one token: [CLS] + the five words of TOXIC_EXAMPLE + [SEP] = 7 tokens.
    short = load_toxicity_scorer(spec, config_dir=tiny_detoxify.config_dir, max_tokens=7)
    huge = load_toxicity_scorer(spec, config_dir=tiny_detoxify.config_dir, max_tokens=100_000)
    long_text = f"{TOXIC_EXAMPLE} " + f"{CLEAN_EXAMPLE} " * 2000

    truncated = short.score([long_text, CLEAN_EXAMPLE])
    beyond_positions = huge.score([long_text])

    assert_close(truncated[:1], short.score([TOXIC_EXAMPLE]), 1e-4)
    assert truncated[0]["toxicity"] > 0.9
    assert_valid(beyond_positions, LABELS, 1)
    assert huge.max_tokens == 512  # clamped to the model's position embeddings


@pytest.mark.parametrize("precision", ["bf16", "int8", "auto"])
def test_reduced_precision_stays_close_to_fp32(
    tiny_detoxify: TinyDetoxify, tiny_scorer: DetoxifyScorer, precision: str
) -> None:
    spec = f"detoxify:{tiny_detoxify.checkpoint}"
    scorer = load_toxicity_scorer(spec, config_dir=tiny_detoxify.config_dir, precision=precision)

    scores = scorer.score(TEXTS)

    assert_valid(scores, LABELS, len(TEXTS))
    assert_close(scores, tiny_scorer.score(TEXTS), 0.05)
    assert scores[1]["toxicity"] > 0.8 and scores[4]["toxicity"] < 0.2
    assert isinstance(scorer, DetoxifyScorer)
    assert scorer.name == spec  # the precision is not part of the name
    assert scorer.precision in ("fp32", "bf16", "int8")
    if precision != "auto":
        assert (scorer.precision, scorer.calibration) == (precision, None)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_precision_copy_leaves_the_original_as_it_was(
    tiny_detoxify: TinyDetoxify, precision: str
) -> None:
    detoxify = Detoxify(
        checkpoint=tiny_detoxify.checkpoint, huggingface_config_path=tiny_detoxify.config_dir
    )
    model, tokenizer = detoxify.model.eval(), detoxify.tokenizer
    before = predict(model, tokenizer, TEXTS, max_tokens=64, batch_size=4)

    converted = precision_copy(model, precision)

    assert predict(model, tokenizer, TEXTS, max_tokens=64, batch_size=4) == before
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert type(model.classifier) is torch.nn.Linear
    after = predict(converted, tokenizer, TEXTS, max_tokens=64, batch_size=4)
    assert_close([dict(enumerate(r)) for r in after], [dict(enumerate(r)) for r in before], 0.05)
    embeddings = converted.bert.embeddings.word_embeddings.weight
    if precision == "bf16":
        assert embeddings.dtype == torch.bfloat16
    else:  # int8 quantizes Linear layers only and shares the rest rather than copying it
        assert type(converted.classifier) is not torch.nn.Linear
        assert embeddings is model.bert.embeddings.word_embeddings.weight


def test_int8_conversion_is_quiet(tiny_detoxify: TinyDetoxify) -> None:
    detoxify = Detoxify(
        checkpoint=tiny_detoxify.checkpoint, huggingface_config_path=tiny_detoxify.config_dir
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's deprecation notices would reach the log
        apply_precision(detoxify.model, "int8")


def test_unknown_precision_raises(tiny_detoxify: TinyDetoxify) -> None:
    detoxify = Detoxify(
        checkpoint=tiny_detoxify.checkpoint, huggingface_config_path=tiny_detoxify.config_dir
    )
    with pytest.raises(ValueError, match="unknown precision"):
        DetoxifyScorer(detoxify, "tiny", precision="fp16")


@pytest.mark.parametrize("spec", ["lite", "tiny"])
def test_warm_up_runs_one_pass(tiny_scorer: DetoxifyScorer, spec: str) -> None:
    warm_up(load_toxicity_scorer("lite") if spec == "lite" else tiny_scorer)


# --- failures ------------------------------------------------------------------------------------


def test_missing_checkpoint_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no Detoxify checkpoint file"):
        load_toxicity_scorer(f"detoxify:{tmp_path / 'missing.ckpt'}")


@pytest.mark.parametrize("content", [b"not a checkpoint", b""])
def test_broken_checkpoint_raises(tmp_path: Path, content: bytes) -> None:
    checkpoint = tmp_path / "broken.ckpt"
    checkpoint.write_bytes(content)

    with pytest.raises(ModelLoadError, match="could not load Detoxify"):
        load_toxicity_scorer(f"detoxify:{checkpoint}")


def test_checkpoint_without_config_raises(tmp_path: Path) -> None:
    import torch

    checkpoint = tmp_path / "bare.ckpt"
    torch.save({"state_dict": {}}, checkpoint)

    with pytest.raises(ModelLoadError, match="could not load Detoxify"):
        load_toxicity_scorer(f"detoxify:{checkpoint}")


def test_explicit_variant_that_is_not_available_raises(offline_hub: Path) -> None:
    with pytest.raises(ModelLoadError, match="not cached"):
        load_toxicity_scorer("detoxify:original")


@pytest.mark.parametrize(
    ("spec", "precision"), [("detox", "fp32"), ("detoxify", "fp32"), ("lite", "fp16")]
)
def test_bad_arguments_raise_value_error(spec: str, precision: str) -> None:
    with pytest.raises(ValueError, match="unknown"):
        load_toxicity_scorer(spec, precision=precision)


# --- auto ----------------------------------------------------------------------------------------


def test_auto_falls_back_to_lite_quickly_when_offline(
    offline_hub: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=toxicity.__name__)
    started = time.perf_counter()

    scorer = load_toxicity_scorer("auto", load_timeout=5.0)

    assert time.perf_counter() - started < 5.0
    assert isinstance(scorer, LiteScorer)
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "FALLBACK" in record.getMessage()
    assert str(cached_checkpoint("original")) in record.getMessage()


@pytest.fixture
def hanging_loader(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the Detoxify load attempt block until the test ends (a stalled download)."""
    release = threading.Event()

    def hang(target: str, config_dir: Path | None) -> Detoxify:
        release.wait(30)
        raise ModelLoadError("released")

    monkeypatch.setattr(toxicity, "_load_detoxify", hang)
    yield
    release.set()


@pytest.mark.usefixtures("hanging_loader")
def test_auto_gives_up_after_the_load_timeout(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=toxicity.__name__)
    started = time.perf_counter()

    scorer = load_toxicity_scorer("auto", load_timeout=0.3)

    assert time.perf_counter() - started < 5.0
    assert isinstance(scorer, LiteScorer)
    assert "did not load in 0.3s" in caplog.text


def test_auto_uses_a_cached_checkpoint(offline_hub: Path, tiny_detoxify: TinyDetoxify) -> None:
    cached = cached_checkpoint("original")
    cached.parent.mkdir(parents=True)
    cached.symlink_to(tiny_detoxify.checkpoint)

    scorer = load_toxicity_scorer("auto", config_dir=tiny_detoxify.config_dir)

    assert isinstance(scorer, DetoxifyScorer)
    assert scorer.name == "detoxify:original"
    assert scorer.score([TOXIC_EXAMPLE])[0]["toxicity"] > 0.9
