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

from tests.support.recording_model import Recording
from tests.support.tiny_detoxify import (
    CLEAN_EXAMPLE,
    LABELS,
    TOXIC_EXAMPLE,
    TinyDetoxify,
    harmless_text,
)
from workers.scoring import toxicity
from workers.scoring.torch_engine import TorchEngine, apply_precision, precision_copy
from workers.scoring.toxicity import (
    TORCH_FP32,
    WINDOW_OVERLAP,
    DetoxifyScorer,
    EngineRequest,
    LiteScorer,
    ModelLoadError,
    cached_checkpoint,
    load_toxicity_scorer,
    predict,
    warm_up,
    window_starts,
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
    assert (scorer.name, scorer.labels, scorer.languages) == ("lite", ("toxicity",), {"en"})
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


def test_the_default_engine_is_torch_at_fp32_without_measuring(
    tiny_scorer: DetoxifyScorer,
) -> None:
    assert EngineRequest(runtime="torch", precision="fp32", threads=1) == TORCH_FP32
    assert isinstance(tiny_scorer.engine, TorchEngine)
    assert (tiny_scorer.runtime, tiny_scorer.precision) == ("torch", "fp32")
    assert tiny_scorer.calibration is None
    assert {p.dtype for p in tiny_scorer.engine.model.parameters()} == {torch.float32}
    assert tiny_scorer.config.num_labels == len(LABELS)


class ListingEngine:
    """An engine of no runtime in particular: keeps every pass, scores a window by its length."""

    runtime = "listing"
    precision = "fp32"

    def __init__(self) -> None:
        self.passes: list[list[list[int]]] = []

    def forward(self, windows: list[list[int]]) -> list[list[float]]:
        self.passes.append(windows)
        return [[len(window) / 1000, 0.5] for window in windows]


def test_predict_runs_an_engine_on_windows_of_token_ids(tiny_detoxify: TinyDetoxify) -> None:
    detoxify = Detoxify(
        checkpoint=tiny_detoxify.checkpoint, huggingface_config_path=tiny_detoxify.config_dir
    )
    tokenizer, engine = detoxify.tokenizer, ListingEngine()
    texts = [harmless_text(100), "nice post", TOXIC_EXAMPLE]

    scores = predict(engine, tokenizer, texts, max_tokens=32, batch_size=3)

    windows = [window for batch in engine.passes for window in batch]
    lengths = [len(window) for window in windows]
    assert [len(batch) for batch in engine.passes] == [3, 3, 1]  # 5 windows + 2 short texts
    assert lengths == sorted(lengths) and max(lengths) == 32  # unpadded, sorted, cut at 32
    assert all(window[0] == tokenizer.cls_token_id for window in windows)
    # Each text gets each output's highest value over its windows.
    short, toxic = (len(tokenizer(text)["input_ids"]) for text in texts[1:])
    assert scores == [[32 / 1000, 0.5], [short / 1000, 0.5], [toxic / 1000, 0.5]]
    model = detoxify.model.eval()
    wrapped = TorchEngine(model, tokenizer)
    by_engine = predict(wrapped, tokenizer, texts, max_tokens=32, batch_size=3)
    assert by_engine == predict(model, tokenizer, texts, max_tokens=32, batch_size=3)


def test_detoxify_scores_a_single_text_as_a_list(tiny_scorer: DetoxifyScorer) -> None:
    scores = tiny_scorer.score([TOXIC_EXAMPLE])

    assert_valid(scores, LABELS, 1)
    assert scores[0]["toxicity"] > 0.9
    assert tiny_scorer.score([]) == []


# --- long texts: windows ------------------------------------------------------------------------


def test_an_insult_after_350_harmless_tokens_is_found(tiny_scorer: DetoxifyScorer) -> None:
    # Every word is one token of the tiny model's: the insult starts at token 351.
    text = f"{harmless_text(350)} {TOXIC_EXAMPLE}"
    engine, tokenizer = tiny_scorer.engine, tiny_scorer.tokenizer

    [whole] = tiny_scorer.score([text])
    [first_window] = predict(engine, tokenizer, [text], max_tokens=256, batch_size=4, max_windows=1)

    assert tiny_scorer.max_tokens == 256
    assert whole["toxicity"] > 0.9
    assert first_window[0] < 0.1  # truncation, as the service did before, missed it


def test_a_long_clean_text_stays_clean(tiny_scorer: DetoxifyScorer) -> None:
    [scores] = tiny_scorer.score([harmless_text(3000)])

    assert_valid([scores], LABELS, 1)
    assert max(scores.values()) < 0.1


def test_one_window_is_truncation(tiny_detoxify: TinyDetoxify) -> None:
    """The first window of a long text is exactly what truncation gave the model."""
    detoxify = Detoxify(
        checkpoint=tiny_detoxify.checkpoint, huggingface_config_path=tiny_detoxify.config_dir
    )
    model, tokenizer = detoxify.model.eval(), detoxify.tokenizer
    texts = [f"{TOXIC_EXAMPLE} {harmless_text(300)}", CLEAN_EXAMPLE, harmless_text(40)]
    inputs = tokenizer(texts, return_tensors="pt", truncation=True, max_length=32, padding=True)
    with torch.inference_mode():
        truncated = torch.sigmoid(model(**inputs).logits).tolist()

    first = predict(model, tokenizer, texts, max_tokens=32, batch_size=2, max_windows=1)

    assert_close([dict(enumerate(r)) for r in first], [dict(enumerate(r)) for r in truncated], 1e-5)


def test_windows_are_batched_sorted_and_within_max_tokens(tiny_detoxify: TinyDetoxify) -> None:
    detoxify = Detoxify(
        checkpoint=tiny_detoxify.checkpoint, huggingface_config_path=tiny_detoxify.config_dir
    )
    recording, tokenizer = Recording(detoxify.model.eval()), detoxify.tokenizer
    long_text = f"{harmless_text(200)} {TOXIC_EXAMPLE} {harmless_text(100)}"  # 305 tokens
    texts = [CLEAN_EXAMPLE, long_text, "nice post", TOXIC_EXAMPLE]

    scores = predict(recording, tokenizer, texts, max_tokens=64, batch_size=3)

    windows = recording.windows(tokenizer.pad_token_id)
    lengths = [len(row) for row in windows]
    # 305 tokens between [CLS] and [SEP], 62 per window: 7 windows, plus one per short text.
    assert len(windows) == len(window_starts(305, 62)) + 3 == 10
    assert [len(ids) for ids in recording.passes] == [3, 3, 3, 1]
    assert all(ids.shape[1] <= 64 for ids in recording.passes)
    assert lengths == sorted(lengths)
    assert all(row[0] == tokenizer.cls_token_id for row in windows)
    assert all(row[-1] == tokenizer.sep_token_id for row in windows)
    assert scores[1][0] > 0.9 and scores[0][0] < 0.1  # the insult is in a middle window


@pytest.mark.parametrize(
    ("length", "size"), [(1, 254), (254, 254), (255, 254), (2000, 254), (40, 6)]
)
def test_windows_cover_the_text_and_overlap(length: int, size: int) -> None:
    starts = window_starts(length, size)

    ends = [min(start + size, length) for start in starts]
    overlap = min(WINDOW_OVERLAP, size // 4)
    assert starts[0] == 0 and ends[-1] == length
    assert starts == sorted(set(starts))
    # Consecutive windows share `overlap` tokens or more: every span that long plus one lies
    # whole in one window; none is shorter than `size` unless the text is.
    assert all(end - start >= overlap for start, end in zip(starts[1:], ends, strict=False))
    assert all(end - start == min(size, length) for start, end in zip(starts, ends, strict=True))
    assert len(starts) == max(1, -(-(length - overlap) // (size - overlap)))


def test_max_windows_must_be_positive(tiny_scorer: DetoxifyScorer) -> None:
    engine, tokenizer = tiny_scorer.engine, tiny_scorer.tokenizer
    with pytest.raises(ValueError, match="max_windows"):
        predict(engine, tokenizer, [CLEAN_EXAMPLE], max_tokens=64, batch_size=4, max_windows=0)


def test_windows_never_exceed_the_model_positions(tiny_detoxify: TinyDetoxify) -> None:
    spec = f"detoxify:{tiny_detoxify.checkpoint}"
    huge = load_toxicity_scorer(spec, config_dir=tiny_detoxify.config_dir, max_tokens=100_000)

    scores = huge.score([f"{TOXIC_EXAMPLE} {harmless_text(1500)}"])

    assert isinstance(huge, DetoxifyScorer)
    assert huge.max_tokens == 512  # clamped to the model's position embeddings
    assert_valid(scores, LABELS, 1)


@pytest.mark.parametrize("precision", ["bf16", "int8", "auto"])
def test_reduced_precision_stays_close_to_fp32(
    tiny_detoxify: TinyDetoxify, tiny_scorer: DetoxifyScorer, precision: str
) -> None:
    spec = f"detoxify:{tiny_detoxify.checkpoint}"
    request = EngineRequest(runtime="torch", precision=precision)
    scorer = load_toxicity_scorer(spec, config_dir=tiny_detoxify.config_dir, engine=request)

    scores = scorer.score(TEXTS)

    assert_valid(scores, LABELS, len(TEXTS))
    assert_close(scores, tiny_scorer.score(TEXTS), 0.05)
    assert scores[1]["toxicity"] > 0.8 and scores[4]["toxicity"] < 0.2
    assert isinstance(scorer, DetoxifyScorer)
    assert scorer.name == spec  # the precision is not part of the name
    assert (scorer.runtime, scorer.engine.runtime) == ("torch", "torch")
    assert scorer.precision == scorer.engine.precision in ("fp32", "bf16", "int8")
    if precision == "auto":
        assert scorer.calibration is not None
        assert scorer.calibration.engine == f"torch-{scorer.precision}"
    else:
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
        DetoxifyScorer(detoxify, "tiny", engine=EngineRequest(precision="fp16"))


@pytest.mark.parametrize("spec", ["lite", "tiny"])
def test_warm_up_runs_one_pass(tiny_scorer: DetoxifyScorer, spec: str) -> None:
    warm_up(load_toxicity_scorer("lite") if spec == "lite" else tiny_scorer)


# --- failures ------------------------------------------------------------------------------------


def resaved(tiny_detoxify: TinyDetoxify, path: Path, classes: list[str]) -> Path:
    """The tiny checkpoint saved again with other class names."""
    loaded = torch.load(tiny_detoxify.checkpoint, weights_only=False)
    loaded["config"]["dataset"]["args"]["classes"] = classes
    torch.save(loaded, path)
    return path


def test_checkpoint_without_a_toxicity_label_raises(
    tiny_detoxify: TinyDetoxify, tmp_path: Path
) -> None:
    classes = ["rude", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
    checkpoint = resaved(tiny_detoxify, tmp_path / "no-toxicity.ckpt", classes)

    with pytest.raises(ModelLoadError, match="no toxicity label"):
        load_toxicity_scorer(f"detoxify:{checkpoint}", config_dir=tiny_detoxify.config_dir)


def test_checkpoint_with_fewer_outputs_than_labels_raises(
    tiny_detoxify: TinyDetoxify, tmp_path: Path
) -> None:
    classes = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate", "spam"]
    checkpoint = resaved(tiny_detoxify, tmp_path / "seven.ckpt", classes)

    with pytest.raises(ModelLoadError, match="6 outputs for 7 labels"):
        load_toxicity_scorer(f"detoxify:{checkpoint}", config_dir=tiny_detoxify.config_dir)


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
        load_toxicity_scorer(spec, engine=EngineRequest(precision=precision))


def test_an_unknown_runtime_raises_value_error() -> None:
    with pytest.raises(ValueError, match="unknown runtime 'tensorflow'"):
        load_toxicity_scorer("lite", engine=EngineRequest(runtime="tensorflow"))


# --- languages -----------------------------------------------------------------------------------


def test_english_models_read_english(tiny_scorer: DetoxifyScorer) -> None:
    assert tiny_scorer.languages == {"en"}
    assert load_toxicity_scorer("lite").languages == {"en"}


def test_languages_given_replace_the_inferred_ones(tiny_detoxify: TinyDetoxify) -> None:
    spec = f"detoxify:{tiny_detoxify.checkpoint}"
    languages = frozenset({"en", "de"})

    detoxify = load_toxicity_scorer(spec, config_dir=tiny_detoxify.config_dir, languages=languages)
    lite = load_toxicity_scorer("lite", languages=frozenset({"nl"}))

    assert (detoxify.languages, lite.languages) == (languages, {"nl"})


@pytest.mark.parametrize("languages", [frozenset(), frozenset({"en", "EN"}), frozenset({"eng"})])
def test_languages_must_be_iso_639_1_codes(languages: frozenset[str]) -> None:
    with pytest.raises(ValueError, match="ISO 639-1"):
        load_toxicity_scorer("lite", languages=languages)


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
    assert scorer.languages == {"en"}
    assert scorer.score([TOXIC_EXAMPLE])[0]["toxicity"] > 0.9
