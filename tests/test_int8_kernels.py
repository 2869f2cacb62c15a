"""Which int8 variant the engines build: the saturation-safe one on x86 CPUs without VNNI."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from workers.scoring.int8_kernels import int8_saturates

AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"


@pytest.mark.parametrize(
    ("machine", "cpuinfo", "saturates"),
    [
        ("x86_64", AVX2_ONLY, True),
        ("x86_64", AVX2_ONLY.replace("fma", "fma avx512f avx512_vnni"), False),
        ("x86_64", AVX2_ONLY.replace("fma", "fma avx_vnni"), False),
        ("x86_64", AVX2_ONLY.replace("fma", "fma amx_bf16 amx_int8"), False),
        ("x86_64", "processor\t: 0\n", False),  # no flags to go by
        ("aarch64", "Features\t: fp asimd asimddp\n", False),
    ],
)
def test_int8_saturates_on_x86_without_vnni_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, machine: str, cpuinfo: str, saturates: bool
) -> None:
    monkeypatch.setattr(platform, "machine", lambda: machine)
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    assert int8_saturates(path) is saturates


def test_an_unreadable_cpuinfo_is_taken_for_a_cpu_that_does_not_saturate(tmp_path: Path) -> None:
    assert int8_saturates(tmp_path / "missing") is False
