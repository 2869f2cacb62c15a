"""Whether this CPU's int8 kernels saturate, and so which int8 variant the engines build.

On x86 CPUs without a VNNI instruction (AVX-512 VNNI, AVX-VNNI or AMX), ONNX Runtime and
OpenVINO multiply unsigned 8-bit activations by signed 8-bit weights with `vpmaddubsw`, which
adds pairs of products into a signed 16-bit value and saturates there: a transformer's large
activations come out wrong (0.085 off torch fp32 on a tiny Detoxify model, on an AVX2-only AMD
EPYC). Both runtimes document the remedy, applied on such CPUs only: ONNX Runtime's quantizer
keeps weights to 7 bits (`reduce_range`), NNCF's applies its overflow fix to every layer. The
variant is part of the cached file's name, so a cache shared between CPUs never mixes them.
"""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path

VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
X86 = frozenset({"x86_64", "amd64", "i386", "i686"})


@cache
def int8_saturates(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True on an x86 CPU without VNNI; False elsewhere (ARM's int8 dot products do not
    saturate), and when the CPU's flags cannot be read."""
    architecture = platform.machine().lower()
    if architecture not in X86:
        return False
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        None,
    )
    return flags is not None and not VNNI_FLAGS.intersection(flags)


def int8_variant() -> str:
    """The suffix of this CPU's int8 model files: "" where int8 does not saturate."""
    return "-no-saturation" if int8_saturates() else ""
