"""`MODERATION_PRECISION=auto`: the start-up measurement of the candidate engines and its
built-in calibration comments (keeping the measurement in Redis: test_engine_choice.py)."""

from __future__ import annotations

import copy
import csv
import gc
import io
import json
import logging
import re
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from detoxify import Detoxify

from tests.support.tiny_detoxify import TinyDetoxify
from workers.scoring import calibration
from workers.scoring.calibration import (
    CALIBRATION_COMMENTS,
    REFERENCE,
    EngineChoice,
    choose_engine,
)
from workers.scoring.engines import Candidate, Engine, build_engine, candidates
from workers.scoring.torch_engine import TorchEngine, precision_copy
from workers.scoring.toxicity import DetoxifyScorer, EngineRequest, load_toxicity_scorer, predict

#: Torch at each precision: the candidates whatever else is installed.
TORCH = candidates("torch")
NAMES = {"torch-fp32", "torch-bf16", "torch-int8"}
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
Build = Callable[[Candidate], Engine]


@pytest.fixture
def detoxify(tiny_detoxify: TinyDetoxify) -> Detoxify:
    return Detoxify(
        checkpoint=tiny_detoxify.checkpoint, huggingface_config_path=tiny_detoxify.config_dir
    )


class Clock:
    """The time `calibration` reads: moved only by the models and engines below, so that which
    one is faster is decided by the test, not by what else this machine runs meanwhile."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(calibration, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    return clock


class Slow(torch.nn.Module):
    """Wraps a model and takes a second of `clock` per forward pass: surely the slowest."""

    def __init__(self, inner: torch.nn.Module, clock: Clock, seconds: float = 1.0) -> None:
        super().__init__()
        self.inner, self.clock, self.seconds = inner, clock, seconds

    def forward(self, **inputs: Any) -> Any:
        self.clock.now += self.seconds
        return self.inner(**inputs)


@dataclass
class Timed:
    """An engine that takes `seconds` of `clock` per forward pass."""

    engine: Engine
    clock: Clock
    seconds: float

    @property
    def runtime(self) -> str:
        return self.engine.runtime

    @property
    def precision(self) -> str:
        return self.engine.precision

    def forward(self, windows: list[list[int]]) -> list[list[float]]:
        self.clock.now += self.seconds
        return self.engine.forward(windows)


def choose(
    model: torch.nn.Module,
    detoxify: Detoxify,
    build: Build | None = None,
    *,
    among: Sequence[Candidate] = TORCH,
    **options: Any,
) -> tuple[Engine, EngineChoice]:
    """`choose_engine` over `among`, built by `build` (by default as workers build them)."""
    if build is None:
        build = built_as_workers_do(model, detoxify)
    return choose_engine(
        model, detoxify.tokenizer, among, build, max_tokens=256, batch_size=16, **options
    )


def built_as_workers_do(model: torch.nn.Module, detoxify: Detoxify) -> Build:
    def build(candidate: Candidate) -> Engine:
        return build_engine(
            model,
            detoxify.tokenizer,
            candidate,
            cache_dir=Path("/nonexistent"),  # torch exports nothing
            checksum="unused",
            threads=1,
        )

    return build


def ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == calibration.__name__]


#: Seconds per forward pass of the fast candidates: int8 the fastest, both faster than `Slow`.
FAST = {"bf16": 0.2, "int8": 0.1}


def fast_real(model: Slow, detoxify: Detoxify) -> Build:
    """The real candidates, built from the model inside `Slow`: faster than fp32 for sure."""

    def build(candidate: Candidate) -> Engine:
        converted = precision_copy(model.inner, candidate.precision)
        engine = TorchEngine(converted, detoxify.tokenizer, candidate.precision)
        return Timed(engine, model.clock, FAST[candidate.precision])

    return build


def scrambled(model: Slow, detoxify: Detoxify) -> Engine:
    """A very fast engine with scrambled outputs."""
    copied = copy.deepcopy(model.inner)
    with torch.no_grad():
        copied.classifier.weight.normal_(std=10.0)
    return Timed(TorchEngine(copied, detoxify.tokenizer, "garbage"), model.clock, 0.01)


def garbage(model: Slow, detoxify: Detoxify) -> Build:
    return lambda candidate: scrambled(model, detoxify)


# --- the choice ----------------------------------------------------------------------------------


def test_auto_picks_an_engine_within_tolerance(detoxify: Detoxify) -> None:
    model = detoxify.model.eval()

    chosen, choice = choose(model, detoxify)

    assert choice.engine in NAMES
    assert (chosen.runtime, chosen.precision) == ("torch", choice.candidate.precision)
    assert choice.candidate == Candidate.parse(choice.engine)
    assert choice.deviation <= 0.02 == choice.tolerance
    assert set(choice.comments_per_s) == set(choice.deviations) == NAMES
    assert all(speed > 0 for speed in choice.comments_per_s.values())
    assert choice.deviations["torch-fp32"] == 0.0
    assert choice.comments == len(CALIBRATION_COMMENTS)
    assert 0 < choice.seconds < 30
    reference = predict(
        model, detoxify.tokenizer, CALIBRATION_COMMENTS, max_tokens=256, batch_size=16
    )
    scores = predict(
        chosen, detoxify.tokenizer, CALIBRATION_COMMENTS, max_tokens=256, batch_size=16
    )
    difference = (torch.tensor(scores) - torch.tensor(reference)).abs().max().item()
    assert difference == pytest.approx(choice.deviation, abs=1e-6)


def test_the_fastest_within_tolerance_wins(detoxify: Detoxify, clock: Clock) -> None:
    model = Slow(detoxify.model.eval(), clock)

    _, choice = choose(model, detoxify, fast_real(model, detoxify))

    within = [e for e, deviation in choice.deviations.items() if deviation <= choice.tolerance]
    assert choice.engine != "torch-fp32"  # both candidates beat a slow fp32; one is close
    assert choice.engine == max(within, key=choice.comments_per_s.__getitem__)
    # 33 comments in 3 passes of the calibration set: the speeds are what the clock said
    assert choice.comments_per_s["torch-fp32"] == pytest.approx(len(CALIBRATION_COMMENTS) / 3)
    # each with its warm-up, then the two fastest accurate ones again, side by side
    assert choice.seconds > 4 * (1.0 + 0.2 + 0.1)


def test_tolerance_zero_keeps_fp32(detoxify: Detoxify, clock: Clock) -> None:
    model = Slow(detoxify.model.eval(), clock)

    chosen, choice = choose(model, detoxify, fast_real(model, detoxify), tolerance=0.0)

    assert isinstance(chosen, TorchEngine)
    assert (chosen.model, chosen.precision) == (model, "fp32")
    assert (choice.engine, choice.deviation) == ("torch-fp32", 0.0)
    assert choice.comments_per_s["torch-fp32"] < min(
        choice.comments_per_s["torch-bf16"], choice.comments_per_s["torch-int8"]
    )


def test_candidates_with_wrong_scores_are_refused_however_fast(
    detoxify: Detoxify, clock: Clock
) -> None:
    model = Slow(detoxify.model.eval(), clock)

    chosen, choice = choose(model, detoxify, garbage(model, detoxify))
    _, anything_goes = choose(model, detoxify, garbage(model, detoxify), tolerance=1.0)

    assert isinstance(chosen, TorchEngine)
    assert (chosen.model, choice.engine) == (model, "torch-fp32")
    assert min(choice.deviations["torch-bf16"], choice.deviations["torch-int8"]) > 0.02
    # refused for their scores, not for their speed
    assert anything_goes.engine in ("torch-bf16", "torch-int8")


def test_fp32_torch_is_the_reference_even_when_not_a_candidate(
    detoxify: Detoxify, clock: Clock
) -> None:
    model = Slow(detoxify.model.eval(), clock)
    others = [Candidate("torch", "bf16"), Candidate("torch", "int8")]

    chosen, choice = choose(model, detoxify, fast_real(model, detoxify), among=others)

    assert set(choice.deviations) == set(choice.comments_per_s) == {"torch-bf16", "torch-int8"}
    assert choice.engine in ("torch-bf16", "torch-int8")
    assert chosen.precision == choice.candidate.precision
    assert 0 < choice.deviation <= 0.02  # measured against fp32 all the same


def test_no_candidate_within_tolerance_is_an_error(detoxify: Detoxify, clock: Clock) -> None:
    model = Slow(detoxify.model.eval(), clock)
    others = [Candidate("torch", "bf16"), Candidate("torch", "int8")]

    with pytest.raises(RuntimeError, match=r"no engine scored within 0.02 of fp32 \(torch-bf16"):
        choose(model, detoxify, garbage(model, detoxify), among=others)


@pytest.mark.parametrize("stage", ["build", "run"])
def test_a_failing_candidate_is_skipped(
    detoxify: Detoxify, caplog: pytest.LogCaptureFixture, stage: str
) -> None:
    class Unsupported(torch.nn.Module):
        def forward(self, **inputs: Any) -> Any:
            raise RuntimeError("no bf16 kernel here")

    model = detoxify.model.eval()
    real = built_as_workers_do(model, detoxify)

    def build(candidate: Candidate) -> Engine:
        if candidate.precision != "bf16":
            return real(candidate)
        if stage == "build":
            raise RuntimeError("no bf16 kernel here")
        return TorchEngine(Unsupported(), detoxify.tokenizer, "bf16")

    caplog.set_level(logging.INFO, logger=calibration.__name__)

    _, choice = choose(model, detoxify, build)

    assert set(choice.comments_per_s) == set(choice.deviations) == {"torch-fp32", "torch-int8"}
    assert choice.engine in ("torch-fp32", "torch-int8")
    [warning] = [r for r in ours(caplog) if r.levelno == logging.WARNING]
    assert "engine auto: skipping torch-bf16, which failed" in warning.getMessage()
    assert "RuntimeError: no bf16 kernel here" in warning.getMessage()


def test_when_every_candidate_fails_nothing_is_chosen(detoxify: Detoxify) -> None:
    def build(candidate: Candidate) -> Engine:
        raise RuntimeError("not here")

    others = [Candidate("torch", "bf16"), Candidate("torch", "int8")]
    with pytest.raises(RuntimeError, match=r"no engine scored within .* \(none ran\)"):
        choose(detoxify.model.eval(), detoxify, build, among=others)


def test_models_not_chosen_are_freed_as_soon_as_measured(detoxify: Detoxify, clock: Clock) -> None:
    """Candidates are measured one at a time, and each is freed unless it is the fastest
    accurate one so far: memory never holds more than the fp32 model and two others."""
    model = Slow(detoxify.model.eval(), clock)
    real = fast_real(model, detoxify)
    slower = TorchEngine(model.inner, detoxify.tokenizer)
    makers: dict[str, Callable[[], Engine]] = {
        "torch-bf16": lambda: real(Candidate("torch", "bf16")),
        "test-garbage": lambda: scrambled(model, detoxify),  # refused for its scores
        "test-slower": lambda: Timed(slower, clock, 2.0),  # exact, but slower than fp32
        "torch-int8": lambda: real(Candidate("torch", "int8")),
    }
    built: dict[str, weakref.ref[Engine]] = {}
    alive_at_each_build: list[set[str]] = []

    def build(candidate: Candidate) -> Engine:
        alive_at_each_build.append({name for name, ref in built.items() if ref() is not None})
        engine = makers[candidate.name]()
        built[candidate.name] = weakref.ref(engine)
        return engine

    among = [REFERENCE, *map(Candidate.parse, makers)]
    chosen, choice = choose(model, detoxify, build, among=among)
    gc.collect()

    assert choice.engine in ("torch-bf16", "torch-int8")
    assert alive_at_each_build[0] == set()
    for alive in alive_at_each_build[1:]:
        assert len(alive) <= 1 and not alive & {"test-garbage", "test-slower"}, alive
    alive = {name for name, ref in built.items() if ref() is not None}
    assert alive == {choice.engine}
    assert built[choice.engine]() is chosen


def test_a_candidate_that_failed_is_freed_before_the_next_is_built(
    detoxify: Detoxify, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The warning's arguments hold the error, whose traceback holds the engine: pytest keeps
    # every record it captures, so this test's do not reach it.
    monkeypatch.setattr(logging.getLogger(calibration.__name__), "propagate", False)

    class Failing:
        runtime, precision = "test", "failing"

        def forward(self, windows: list[list[int]]) -> list[list[float]]:
            raise RuntimeError("no kernel for this here")

    model = Slow(detoxify.model.eval(), clock)
    real = fast_real(model, detoxify)
    built: dict[str, weakref.ref[Any]] = {}
    alive_at_each_build: list[set[str]] = []

    def build(candidate: Candidate) -> Engine:
        alive_at_each_build.append({name for name, ref in built.items() if ref() is not None})
        engine = Failing() if candidate.runtime == "test" else real(candidate)
        built[candidate.name] = weakref.ref(engine)
        return engine

    among = [REFERENCE, Candidate("test", "failing"), Candidate("torch", "bf16")]
    _, choice = choose(model, detoxify, build, among=among)

    assert choice.engine == "torch-bf16"
    assert alive_at_each_build == [set(), set()]


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
    real_comment = "my neighbour's number is 555-0199, call him a liar"
    texts = (*CALIBRATION_COMMENTS, real_comment)

    _, choice = choose(detoxify.model.eval(), detoxify, texts=texts)

    [record] = ours(caplog)
    message = record.getMessage()
    assert record.levelno == logging.INFO
    assert message.startswith(f"engine auto chose {choice.engine} in ")
    assert f"on {len(texts)} comments" in message and choice.comments == len(texts)
    for name in NAMES:
        assert re.search(rf"{name} [\d.]+/s, deviation [\d.]+", message), name
    assert record.comments_per_s.keys() == NAMES  # type: ignore[attr-defined]
    assert record.engine == choice.engine  # type: ignore[attr-defined]
    logged = message + str(record.__dict__)
    assert not [comment for comment in texts if comment in logged]


@pytest.mark.parametrize(
    ("among", "texts", "error"),
    [([], CALIBRATION_COMMENTS, "no candidate engines"), (TORCH, (), "no texts")],
)
def test_nothing_to_measure_is_refused(
    detoxify: Detoxify, among: list[Candidate], texts: tuple[str, ...], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        choose(detoxify.model.eval(), detoxify, among=among, texts=texts)


def test_a_choice_survives_json(detoxify: Detoxify) -> None:
    """What Redis keeps for the other workers reads back as the same choice."""
    _, choice = choose(detoxify.model.eval(), detoxify)

    again = EngineChoice.from_dict(json.loads(json.dumps(choice.as_dict())))

    assert again == choice
    assert again.summary() == choice.summary()


def test_the_scorer_runs_with_the_engine_chosen(tiny_detoxify: TinyDetoxify) -> None:
    spec = f"detoxify:{tiny_detoxify.checkpoint}"
    real = ["a real comment, kept by the service", "another one"]
    request = EngineRequest(runtime="torch", precision="auto", real_comments=lambda: real)

    scorer = load_toxicity_scorer(spec, config_dir=tiny_detoxify.config_dir, engine=request)

    assert isinstance(scorer, DetoxifyScorer)
    assert scorer.name == spec
    assert scorer.calibration is not None
    assert scorer.calibration.engine == f"{scorer.runtime}-{scorer.precision}"
    assert (scorer.engine.runtime, scorer.engine.precision) == (scorer.runtime, scorer.precision)
    assert scorer.calibration.engine in NAMES
    assert set(scorer.calibration.comments_per_s) == NAMES
    assert scorer.calibration.comments == len(CALIBRATION_COMMENTS) + len(real)


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
