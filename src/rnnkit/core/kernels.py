"""rnnkit's own C++ kernels, compiled for this machine on first use.

There is one: the layer-norm LSTM recurrence (``csrc/layer_norm_lstm.cpp``), which torch has
no fused kernel for. It is built with torch's extension builder (a C++ compiler and ninja;
the ``ninja`` wheel is a dependency) into torch's extension cache (``~/.cache/torch_extensions``
or ``$TORCH_EXTENSIONS_DIR``), once per machine and version; later processes load it in
milliseconds. Where it cannot be built (no compiler) or is switched off with
``RNNKIT_NO_KERNELS=1``, rnnkit runs the same recurrence as a TorchScript loop: the same
numbers, about half the speed.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).parent / "csrc" / "layer_norm_lstm.cpp"

# No -ffast-math: it lets the compiler assume there is no NaN or Inf, and then a NaN in the
# input came out of the kernel as a finite number (the clamps in its sigmoid became min/max
# instructions that drop NaN) where torch and the TorchScript loop give NaN.
# The kernel's exp is plain arithmetic (csrc: exp_bounded) that vectorizes without it, given
# -fno-trapping-math (no floating-point trap handlers: lets the compiler turn the clamps
# into blends) and -fno-math-errno (sqrt is one instruction); neither changes a result.
# AVX2 (8 floats a time) where torch itself runs AVX2 or AVX-512 code on this CPU.
COMPILE_FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math"]
AVX2_FLAGS = ["-mavx2", "-mfma"]


@functools.cache
def layer_norm_lstm() -> object | None:
    """``torch.ops.rnnkit_kernels`` with the layer-norm LSTM kernel, or None (not built)."""
    if os.environ.get("RNNKIT_NO_KERNELS"):
        return None
    try:
        _build()
        ops = torch.ops.rnnkit_kernels
        ops.layer_norm_lstm_forward  # noqa: B018 (raises if the library did not register)
        return ops
    except Exception as error:  # noqa: BLE001 (any build failure means: use the loop)
        if shutil.which("c++") is None:
            reason = "no C++ compiler found: install one, e.g. apt install g++"
        else:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        warnings.warn(
            f"rnnkit: the layer-norm LSTM kernel could not be built ({reason}); "
            "using the TorchScript loop (same numbers, about half the speed)",
            stacklevel=2,
        )
        return None


@torch.compiler.assume_constant_result
def layer_norm_lstm_available() -> bool:
    """Whether the layer-norm LSTM kernel is there. torch.compile takes the answer as a
    constant instead of tracing the build."""
    return layer_norm_lstm() is not None


def _build() -> None:
    from torch.utils import cpp_extension  # imported here: it is slow to import

    if shutil.which("ninja") is None:  # the pip wheel's ninja, when none is on PATH
        import ninja

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    if not _already_built():
        print(
            "rnnkit: compiling the layer-norm LSTM kernel for this machine (once, ~20 s)",
            file=sys.stderr,
        )
    cpp_extension.load(
        name="rnnkit_kernels",
        sources=[str(SOURCE)],
        extra_cflags=COMPILE_FLAGS + (AVX2_FLAGS if _has_avx2() else []),
        is_python_module=False,
        verbose=False,
    )


def _has_avx2() -> bool:
    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


def _already_built() -> bool:
    """Whether torch's extension cache seems to hold a build (then no message is printed)."""
    default = Path.home() / ".cache" / "torch_extensions"
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR", default))
    return any(root.glob("*/rnnkit_kernels*/*.so"))
