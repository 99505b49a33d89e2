"""What a model expects from audio (``FrontendConfig``), apart from the torch front-end.

The model registry and the stores record these settings, and a query or an unchanged
re-index reads them; keeping them here lets those paths run without importing torch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# Log compressions the front-end knows. "log10_1p_10000" is musicnn's log10(1 + 10000·mel).
LOG_COMPRESSIONS = ("log10_1p_10000", "none")
# torch.stft pads with these names; librosa calls "constant" what torch calls "constant".
PAD_MODES = ("constant", "reflect")


@dataclass(frozen=True)
class FrontendConfig:
    """What a model expects from audio: one record, stored with every model.

    ``pad_mode`` is "constant" (zeros) because that is what ``librosa.feature.melspectrogram``
    does since librosa 0.10 with musicnn's arguments; musicnn's own era (librosa <= 0.9) padded
    with "reflect", which changes only the first and last frame of a track.
    ``patch_frames`` 187 is musicnn's 3 s input: ``librosa.time_to_frames(3, sr=16000,
    n_fft=512, hop_length=256) + 1`` in ``musicnn/extractor.py``.
    ``float16_before_log`` rounds the mel power to float16 before the log, as
    ``audio_rep.astype(np.float16)`` does in ``musicnn/extractor.py``; the log itself is taken
    in float32, as numpy < 2 does there (value-based casting makes ``10000 * float16_array``
    a float32 product; under numpy 2 it would stay float16 and overflow above mel 6.55).
    """

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96
    patch_frames: int = 187
    fmin: float = 0.0
    fmax: float | None = None
    center: bool = True
    pad_mode: str = "constant"
    log: str = "log10_1p_10000"
    float16_before_log: bool = True

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels", "patch_frames"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"FrontendConfig.{name} must be a positive integer, got {value!r}")
        nyquist = self.sample_rate / 2
        fmax = nyquist if self.fmax is None else self.fmax
        if not 0 <= self.fmin < fmax <= nyquist:
            raise ValueError(
                f"FrontendConfig needs 0 <= fmin < fmax <= sample_rate/2 ({nyquist:g} Hz), "
                f"got fmin={self.fmin!r}, fmax={self.fmax!r}"
            )
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"FrontendConfig.pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}")
        if self.log not in LOG_COMPRESSIONS:
            raise ValueError(f"FrontendConfig.log must be one of {LOG_COMPRESSIONS}, got {self.log!r}")

    def as_dict(self) -> dict:
        """Plain JSON-ready dict (for a model registry or a store's meta.json)."""
        return asdict(self)

    def frame_count(self, n_samples: int) -> int:
        """Frames the STFT gives for ``n_samples`` samples (librosa's count)."""
        if self.center:
            return 1 + n_samples // self.hop_length
        if n_samples < self.n_fft:
            return 0
        return 1 + (n_samples - self.n_fft) // self.hop_length

    @property
    def patch_seconds(self) -> float:
        """Audio seconds one patch spans (about 3 s for musicnn)."""
        return (self.patch_frames - 1) * self.hop_length / self.sample_rate
