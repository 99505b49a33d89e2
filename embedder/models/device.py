"""Where a model runs: the device choice every model and the runner share (torch only when called)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["PRECISIONS", "choose_device"]

# The model's arithmetic, `mre index --precision`, with what each cost in drift when measured on
# an NVIDIA H200 (mre.benchmarks.gpu_check, the 28 demo tracks; the 92 label log-odds against the
# CPU's float32): float32 4.1e-5, none of the 92 label rankings of the tracks changed; float16
# 1.3e-2, 14 changed; bfloat16 6.4e-2, 48 changed. Neither half precision was faster there
# (decoding limits throughput), so float32 is the default; the store records which one made it.
PRECISIONS = ("float32", "float16", "bfloat16")


def choose_device(device: str = "auto") -> torch.device:
    """`auto` takes CUDA when torch sees a GPU, else the CPU; `cuda` without a GPU is an error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(device)
