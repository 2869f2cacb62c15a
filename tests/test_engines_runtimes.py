"""ONNX Runtime and OpenVINO engines (workers.scoring.onnx_engine, .openvino_engine): they score
as the torch model does, cache their exports, and mask padding. Tiny offline Detoxify models."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from detoxify import Detoxify

from tests.support.tiny_detoxify import (
    CLEAN_EXAMPLE,
    SHAPES,
    TOXIC_EXAMPLE,
    TRAINING_DATA,
    TinyDetoxify,
    build_tiny_detoxify,
    harmless_text,
)
from workers.scoring import onnx_engine, openvino_engine

ROOT = Path(__file__).resolve().parent.parent
MODULES = {"onnxruntime": onnx_engine, "openvino": openvino_engine}
EXTRAS = {"onnxruntime": "onnx", "openvino": "openvino"}
CASES = [
    (runtime, precision) for runtime, module in MODULES.items() for precision in module.PRECISIONS
]
#: Largest difference from the torch fp32 model's probabilities, per precision.
TOLERANCE = {"fp32": 1e-4, "bf16": 0.02, "int8": 0.02}
#: Texts of 3 to 256 tokens (the longest cut to 256), insults and clean ones.
TEXTS = (
    TOXIC_EXAMPLE,
    CLEAN_EXAMPLE,
    "nice post",
    f"{harmless_text(60)} {TOXIC_EXAMPLE}",
    harmless_text(300),
)
OTHER_ARCHITECTURES = ("unbiased", "multilingual", "original-small")  # RoBERTa, XLM-R, ALBERT
CHECKSUM = "0123456789abcdef"

Loaded = tuple[torch.nn.Module, Any]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, tiny_detoxify: TinyDetoxify) -> Callable:
    """Loads each variant's tiny model (model, tokenizer) once, when a test first asks."""
    built: dict[str, Loaded] = {}

    def load(variant: str) -> Loaded:
        if variant not in built:
            model = tiny_detoxify
            if variant != "original":
                directory = tmp_path_factory.mktemp(f"tiny-{variant}")
                model = build_tiny_detoxify(directory, SHAPES[variant])
            detoxify = Detoxify(
                checkpoint=model.checkpoint, huggingface_config_path=model.config_dir
            )
            built[variant] = (detoxify.model.eval(), detoxify.tokenizer)
        return built[variant]

    return load


class Engines:
    """Builds each (runtime, precision, variant) engine once, all in `cache_dir`, each model
    under its own checksum (as the service does: precisions of one model share its exports)."""

    def __init__(self, cache_dir: Path, tiny: Callable) -> None:
        self.cache_dir = cache_dir
        self.tiny = tiny
        self.built: dict[tuple[str, str, str], Any] = {}

    def __call__(self, runtime: str, precision: str, variant: str = "original") -> Any:
        module = usable(runtime, precision)
        if (runtime, precision, variant) not in self.built:
            model, tokenizer = self.tiny(variant)
            self.built[runtime, precision, variant] = build(
                module, model, tokenizer, precision, self.cache_dir, checksum(variant)
            )
        return self.built[runtime, precision, variant]


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory, tiny: Callable) -> Engines:
    return Engines(tmp_path_factory.mktemp("engines"), tiny)


def checksum(variant: str) -> str:
    return f"{CHECKSUM}{list(SHAPES).index(variant)}"


def usable(runtime: str, precision: str = "fp32") -> ModuleType:
    """The runtime's module, or a skip saying why it cannot run `precision` here."""
    module = MODULES[runtime]
    if not module.available():
        pytest.skip(f"{runtime} is not installed (pip install 'moderation[{EXTRAS[runtime]}]')")
    if precision not in module.supported_precisions():
        pytest.skip(f"{runtime} cannot run {precision} on this machine")
    return module


def build(
    module: ModuleType,
    model: torch.nn.Module,
    tokenizer: Any,
    precision: str,
    cache_dir: Path,
    checksum: str = CHECKSUM,
) -> Any:
    """`module`'s engine on one thread, calibrated on the tiny model's training texts."""
    return module.build(
        model,
        tokenizer,
        precision,
        cache_dir=cache_dir,
        checksum=checksum,
        threads=1,
        calibration_windows=windows(tokenizer, [text for text, _ in TRAINING_DATA]),
    )


def windows(tokenizer: Any, texts: Any = TEXTS) -> list[list[int]]:
    return [tokenizer(text, truncation=True, max_length=256)["input_ids"] for text in texts]


def torch_probabilities(model: torch.nn.Module, tokenizer: Any, batch: list[list[int]]) -> Any:
    """What the service's torch path gives: sigmoid of the fp32 model's logits."""
    inputs = tokenizer.pad({"input_ids": batch}, return_tensors="pt")
    with torch.inference_mode():
        return torch.sigmoid(model(**inputs).logits.float())


def largest_difference(rows: list[list[float]], expected: torch.Tensor) -> float:
    return (torch.tensor(rows) - expected).abs().max().item()


def files(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file under `directory`: its inode and modification time."""
    found = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            stat = path.stat()
            found[str(path.relative_to(directory))] = (stat.st_ino, stat.st_mtime_ns)
    return found


# --- scores --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("runtime", "precision"), CASES)
def test_each_precision_scores_as_the_torch_model(
    tiny: Callable, engines: Engines, runtime: str, precision: str
) -> None:
    model, tokenizer = tiny("original")
    engine = engines(runtime, precision)
    batch = windows(tokenizer)
    assert min(map(len, batch)) < 8 and max(map(len, batch)) == 256  # a few tokens to the cut

    rows = engine.forward(batch)

    assert (engine.runtime, engine.precision) == (runtime, precision)
    assert [len(row) for row in rows] == [model.config.num_labels] * len(TEXTS)
    assert all(type(value) is float for row in rows for value in row)
    difference = largest_difference(rows, torch_probabilities(model, tokenizer, batch))
    assert difference <= TOLERANCE[precision], difference


@pytest.mark.parametrize("variant", OTHER_ARCHITECTURES)
@pytest.mark.parametrize("runtime", list(MODULES))
def test_every_architecture_exports_at_fp32(
    tiny: Callable, engines: Engines, runtime: str, variant: str
) -> None:
    model, tokenizer = tiny(variant)
    engine = engines(runtime, "fp32", variant)
    batch = windows(tokenizer)

    rows = engine.forward(batch)

    assert [len(row) for row in rows] == [model.config.num_labels] * len(TEXTS)
    assert largest_difference(rows, torch_probabilities(model, tokenizer, batch)) <= 1e-4


@pytest.mark.parametrize(("runtime", "precision"), CASES)
def test_padding_is_masked(tiny: Callable, engines: Engines, runtime: str, precision: str) -> None:
    _, tokenizer = tiny("original")
    engine = engines(runtime, precision)
    batch = windows(tokenizer)

    together = engine.forward(batch)
    alone = [engine.forward([window])[0] for window in batch]

    assert engine.forward([]) == []
    difference = largest_difference(together, torch.tensor(alone))
    assert difference <= min(TOLERANCE[precision], 1e-3), difference


# --- the cache -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("runtime", "precision"), CASES)
def test_a_second_build_reads_the_cache(
    tiny: Callable,
    engines: Engines,
    caplog: pytest.LogCaptureFixture,
    runtime: str,
    precision: str,
) -> None:
    module = usable(runtime, precision)
    model, tokenizer = tiny("original")
    first = engines(runtime, precision)
    written = files(engines.cache_dir)
    caplog.set_level(logging.INFO, logger=module.__name__)

    second = build(module, model, tokenizer, precision, engines.cache_dir, checksum("original"))

    assert written and files(engines.cache_dir) == written  # none rewritten, none added
    assert not [path for path in written if path.startswith(".") or "/." in path]  # no temp
    assert not [r for r in caplog.records if r.name == module.__name__]  # no export logged
    batch = windows(tokenizer)
    assert second.forward(batch) == first.forward(batch)


def test_the_cache_holds_only_onnx_and_openvino_files(engines: Engines) -> None:
    for runtime, precision in CASES:
        if precision in MODULES[runtime].supported_precisions():
            engines(runtime, precision)

    suffixes = {Path(name).suffix for name in files(engines.cache_dir)}

    assert suffixes <= {".onnx", ".xml", ".bin"}


@pytest.mark.parametrize("runtime", list(MODULES))
def test_exports_leave_the_model_unchanged(tiny: Callable, tmp_path: Path, runtime: str) -> None:
    """fp32 builds are the ones that read the module (the others read fp32's files)."""
    module = usable(runtime)
    model, tokenizer = tiny("unbiased")
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    flags = [parameter.requires_grad for parameter in model.parameters()]

    build(module, model, tokenizer, "fp32", tmp_path)

    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert [parameter.requires_grad for parameter in model.parameters()] == flags
    assert not model.training


def test_an_openvino_model_another_process_put_first_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "openvino-fp32"
    target.mkdir()
    (target / openvino_engine.MODEL_FILE).write_text("theirs")

    with openvino_engine.atomic_dir(target) as temporary:
        (temporary / openvino_engine.MODEL_FILE).write_text("ours")

    assert (target / openvino_engine.MODEL_FILE).read_text() == "theirs"
    assert [path.name for path in tmp_path.iterdir()] == ["openvino-fp32"]


def test_a_failed_export_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"

    with pytest.raises(RuntimeError), onnx_engine.atomic_file(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("export failed")

    assert list(tmp_path.iterdir()) == []


# --- options and fallbacks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "precision", "checksum"),
    [
        ("onnxruntime", "bf16", CHECKSUM),
        ("openvino", "fp16", CHECKSUM),
        ("openvino", "fp32", "../x"),
    ],
)
def test_unknown_precisions_and_checksums_are_refused(
    tiny: Callable, tmp_path: Path, runtime: str, precision: str, checksum: str
) -> None:
    module = usable(runtime)
    model, tokenizer = tiny("original")

    with pytest.raises(ValueError):
        build(module, model, tokenizer, precision, tmp_path, checksum=checksum)


def test_openvino_converts_through_onnx_when_the_module_fails(
    tiny: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usable("openvino")
    model, tokenizer = tiny("original")

    def unconvertible(*args: object) -> None:
        raise RuntimeError("this module cannot be traced")

    monkeypatch.setattr(openvino_engine, "_from_torch", unconvertible)
    engine = build(openvino_engine, model, tokenizer, "fp32", tmp_path)

    batch = windows(tokenizer)
    expected = torch_probabilities(model, tokenizer, batch)
    assert largest_difference(engine.forward(batch), expected) <= 1e-4
    assert {Path(name).suffix for name in files(tmp_path)} == {".xml", ".bin"}


def test_importing_openvino_sends_no_telemetry(tmp_path: Path) -> None:
    """Importing openvino (and nncf) sends usage data to Intel unless a consent file in the
    home directory declines: a fresh process with an empty home (and not in CI, where both skip
    it) writes no consent, client id or statistics file there."""
    usable("openvino")
    script = (
        "import os\n"
        "from workers.scoring import openvino_engine\n"
        "openvino_engine.supported_precisions()\n"  # imports nncf too, where installed
        "print(os.environ.get('CI'), os.environ.get('NNCF_CI'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**outside_ci(), "HOME": str(tmp_path)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "None None"  # the variables are put back
    assert list(tmp_path.iterdir()) == []


def test_converting_and_quantizing_send_no_telemetry(
    tiny: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The converter and NNCF check for consent again when they run (as other apps than the
    import): with an empty home, they write nothing there either."""
    module = usable("openvino")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("CI", "NNCF_CI"):
        monkeypatch.delenv(name, raising=False)
    model, tokenizer = tiny("original")

    for precision in ("fp32", "int8"):
        if precision in module.supported_precisions():
            build(module, model, tokenizer, precision, tmp_path / "cache")

    assert list(home.iterdir()) == []
    assert "CI" not in os.environ and "NNCF_CI" not in os.environ


def outside_ci() -> dict[str, str]:
    """This process's environment without the variables that turn telemetry off."""
    return {name: value for name, value in os.environ.items() if name not in ("CI", "NNCF_CI")}
