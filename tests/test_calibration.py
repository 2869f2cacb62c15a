"""`MODERATION_PRECISION=auto`: the start-up measurement and its built-in calibration comments."""

from __future__ import annotations

import copy
import csv
import gc
import io
import logging
import re
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from detoxify import Detoxify

from tests.support.tiny_detoxify import TinyDetoxify
from workers.scoring import calibration
from workers.scoring.calibration import CALIBRATION_COMMENTS, PrecisionChoice, choose_precision
from workers.scoring.toxicity import DetoxifyScorer, load_toxicity_scorer, precision_copy, predict

PRECISIONS = {"fp32", "bf16", "int8"}
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
Builder = Callable[[torch.nn.Module, str], torch.nn.Module]


@pytest.fixture
def detoxify(tiny_detoxify: TinyDetoxify) -> Detoxify:
    return Detoxify(
        checkpoint=tiny_detoxify.checkpoint, huggingface_config_path=tiny_detoxify.config_dir
    )


class Slow(torch.nn.Module):
    """Wraps a model and sleeps before every forward pass: a model that is surely the slowest."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, **inputs: Any) -> Any:
        time.sleep(0.02)
        return self.inner(**inputs)


def choose(
    model: torch.nn.Module, detoxify: Detoxify, **options: Any
) -> tuple[torch.nn.Module, PrecisionChoice]:
    return choose_precision(model, detoxify.tokenizer, max_tokens=256, batch_size=16, **options)


def use_builder(monkeypatch: pytest.MonkeyPatch, builder: Builder) -> None:
    monkeypatch.setattr(calibration, "precision_copy", builder)


def ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == calibration.__name__]


def fast_real(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """The real candidate, built from the model inside `Slow`: faster than fp32 for sure."""
    return precision_copy(model.inner, precision)


def garbage(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """A fast model with scrambled outputs."""
    scrambled = copy.deepcopy(model.inner)
    with torch.no_grad():
        scrambled.classifier.weight.normal_(std=10.0)
    return scrambled


# --- the choice ----------------------------------------------------------------------------------


def test_auto_picks_a_precision_within_tolerance(detoxify: Detoxify) -> None:
    model = detoxify.model.eval()

    chosen, choice = choose(model, detoxify)

    assert choice.precision in PRECISIONS
    assert choice.deviation <= 0.02 == choice.tolerance
    assert set(choice.comments_per_s) == set(choice.deviations) == PRECISIONS
    assert all(speed > 0 for speed in choice.comments_per_s.values())
    assert choice.deviations["fp32"] == 0.0
    assert 0 < choice.seconds < 30
    reference = predict(
        model, detoxify.tokenizer, CALIBRATION_COMMENTS, max_tokens=256, batch_size=16
    )
    scores = predict(
        chosen, detoxify.tokenizer, CALIBRATION_COMMENTS, max_tokens=256, batch_size=16
    )
    difference = (torch.tensor(scores) - torch.tensor(reference)).abs().max().item()
    assert difference == pytest.approx(choice.deviation, abs=1e-6)


def test_the_fastest_within_tolerance_wins(
    detoxify: Detoxify, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_builder(monkeypatch, fast_real)

    _, choice = choose(Slow(detoxify.model.eval()), detoxify)

    within = [p for p, deviation in choice.deviations.items() if deviation <= choice.tolerance]
    assert choice.precision != "fp32"  # both candidates beat a sleeping fp32; one is close enough
    assert choice.precision == max(within, key=choice.comments_per_s.__getitem__)


def test_tolerance_zero_keeps_fp32(detoxify: Detoxify, monkeypatch: pytest.MonkeyPatch) -> None:
    use_builder(monkeypatch, fast_real)
    model = Slow(detoxify.model.eval())

    chosen, choice = choose(model, detoxify, tolerance=0.0)

    assert chosen is model
    assert (choice.precision, choice.deviation) == ("fp32", 0.0)
    assert choice.comments_per_s["fp32"] < min(
        choice.comments_per_s["bf16"], choice.comments_per_s["int8"]
    )


def test_candidates_with_wrong_scores_are_refused_however_fast(
    detoxify: Detoxify, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_builder(monkeypatch, garbage)
    model = Slow(detoxify.model.eval())

    chosen, choice = choose(model, detoxify)
    _, anything_goes = choose(model, detoxify, tolerance=1.0)

    assert (chosen, choice.precision) == (model, "fp32")
    assert min(choice.deviations["bf16"], choice.deviations["int8"]) > 0.02
    assert anything_goes.precision in ("bf16", "int8")  # refused for their scores, not speed


@pytest.mark.parametrize("stage", ["build", "run"])
def test_a_failing_candidate_is_skipped(
    detoxify: Detoxify,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    stage: str,
) -> None:
    class Unsupported(torch.nn.Module):
        def forward(self, **inputs: Any) -> Any:
            raise RuntimeError("no bf16 kernel here")

    def builder(model: torch.nn.Module, precision: str) -> torch.nn.Module:
        if precision != "bf16":
            return precision_copy(model, precision)
        if stage == "build":
            raise RuntimeError("no bf16 kernel here")
        return Unsupported()

    use_builder(monkeypatch, builder)
    caplog.set_level(logging.INFO, logger=calibration.__name__)

    _, choice = choose(detoxify.model.eval(), detoxify)

    assert set(choice.comments_per_s) == set(choice.deviations) == {"fp32", "int8"}
    assert choice.precision in ("fp32", "int8")
    [warning] = [r for r in ours(caplog) if r.levelno == logging.WARNING]
    assert "skipping bf16" in warning.getMessage()
    assert "no bf16 kernel here" in warning.getMessage()


def test_models_not_chosen_are_freed(detoxify: Detoxify, monkeypatch: pytest.MonkeyPatch) -> None:
    built: dict[str, weakref.ref[torch.nn.Module]] = {}

    def builder(model: torch.nn.Module, precision: str) -> torch.nn.Module:
        candidate = fast_real(model, precision)
        built[precision] = weakref.ref(candidate)
        return candidate

    use_builder(monkeypatch, builder)

    chosen, choice = choose(Slow(detoxify.model.eval()), detoxify, tolerance=1.0)
    gc.collect()

    alive = {precision for precision, ref in built.items() if ref() is not None}
    assert alive == {choice.precision}
    assert built[choice.precision]() is chosen


def test_the_model_given_is_left_as_it_was(detoxify: Detoxify) -> None:
    model = detoxify.model.eval()
    before = predict(model, detoxify.tokenizer, CALIBRATION_COMMENTS, max_tokens=64, batch_size=8)

    choose(model, detoxify, tolerance=1.0)

    after = predict(model, detoxify.tokenizer, CALIBRATION_COMMENTS, max_tokens=64, batch_size=8)
    assert after == before
    assert {parameter.dtype for parameter in model.parameters()} == {torch.float32}


def test_one_info_line_with_speeds_and_no_comment_text(
    detoxify: Detoxify, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=calibration.__name__)

    _, choice = choose(detoxify.model.eval(), detoxify)

    [record] = ours(caplog)
    message = record.getMessage()
    assert record.levelno == logging.INFO
    assert f"chose {choice.precision}" in message
    for precision in PRECISIONS:
        assert re.search(rf"{precision} [\d.]+/s, deviation [\d.]+", message), precision
    assert record.comments_per_s.keys() == PRECISIONS  # type: ignore[attr-defined]
    logged = message + str(record.__dict__)
    assert not [comment for comment in CALIBRATION_COMMENTS if comment in logged]


def test_unknown_candidates_are_refused(detoxify: Detoxify) -> None:
    with pytest.raises(ValueError, match="unknown candidates"):
        choose(detoxify.model.eval(), detoxify, candidates=("fp16",))


def test_the_scorer_runs_at_the_precision_chosen(tiny_detoxify: TinyDetoxify) -> None:
    spec = f"detoxify:{tiny_detoxify.checkpoint}"

    scorer = load_toxicity_scorer(spec, config_dir=tiny_detoxify.config_dir, precision="auto")

    assert isinstance(scorer, DetoxifyScorer)
    assert scorer.name == spec
    assert scorer.calibration is not None
    assert scorer.precision == scorer.calibration.precision
    assert scorer.precision in PRECISIONS


# --- the calibration comments --------------------------------------------------------------------


def test_calibration_comments_are_many_and_varied() -> None:
    words = sorted(len(comment.split()) for comment in CALIBRATION_COMMENTS)

    assert len(CALIBRATION_COMMENTS) >= 30
    assert len(set(CALIBRATION_COMMENTS)) == len(CALIBRATION_COMMENTS)
    assert words[0] <= 3 and words[-1] >= 120  # a few tokens to about two hundred
    assert sum(10 <= count <= 60 for count in words) >= 15  # mostly short to medium
    assert sum("http" in c or "www." in c for c in CALIBRATION_COMMENTS) >= 2  # spam links
    assert sum(not c.isascii() for c in CALIBRATION_COMMENTS) >= 5  # other languages, emoji


def _normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def _shared_records() -> set[str]:
    """Every field of every row in the shared datasets (CSV cells; tab-separated fields)."""
    records: set[str] = set()
    for path in sorted(SHARED_DATA.rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".csv":
            rows: Any = csv.reader(io.StringIO(text))
        else:
            rows = (line.split("\t") for line in text.splitlines())
        records.update(_normalise(field) for row in rows for field in row)
    return records


def test_calibration_comments_are_not_copied_from_the_shared_datasets() -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"no shared datasets at {SHARED_DATA}")
    records = _shared_records()
    corpus = "\n".join(records)
    assert len(records) > 1000  # the datasets were read

    for comment in map(_normalise, CALIBRATION_COMMENTS):
        assert comment not in records, comment
        if len(comment) >= 30:  # shorter ones could occur inside some longer text by chance
            assert comment not in corpus, comment
