"""Where a model runs: the device choice every model and the runner share (torch only when called)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["choose_device"]


def choose_device(device: str = "auto") -> torch.device:
    """`auto` takes CUDA when torch sees a GPU, else the CPU; `cuda` without a GPU is an error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(device)
