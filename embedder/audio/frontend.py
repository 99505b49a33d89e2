"""The mel front-end in torch: waveforms → log-mel spectrograms → model patches.

Settings default to the ones musicnn records (``musicnn/configuration.py``: SR 16000,
FFT_SIZE 512, FFT_HOP 256, N_MELS 96) and the log compression its extractor applies
(``musicnn/extractor.py``: ``np.log10(10000 * mel + 1)`` after a float16 cast). The mel
filter bank is librosa's default (Slaney mel scale, Slaney area normalisation), written
here in numpy so that librosa is needed only by the tests that compare against it.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

# FrontendConfig lives apart so that code reading the settings need not import torch.
from mre.embedder.audio.frontend_config import LOG_COMPRESSIONS, PAD_MODES, FrontendConfig  # noqa: F401  (re-exported)

# Largest finite float16: musicnn's float16 cast would turn anything above it into inf.
FLOAT16_MAX = 65504.0


def _hz_to_mel_slaney(frequencies: np.ndarray) -> np.ndarray:
    # Slaney's Auditory Toolbox scale, as librosa.hz_to_mel(htk=False): linear below 1 kHz
    # (200/3 Hz per mel), logarithmic above (27 mels per factor 6.4).
    frequencies = np.asarray(frequencies, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    mels = frequencies / f_sp
    log_region = frequencies >= min_log_hz
    mels[log_region] = min_log_mel + np.log(frequencies[log_region] / min_log_hz) / logstep
    return mels


def _mel_to_hz_slaney(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    frequencies = f_sp * mels
    log_region = mels >= min_log_mel
    frequencies[log_region] = min_log_hz * np.exp(logstep * (mels[log_region] - min_log_mel))
    return frequencies


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    dtype: type = np.float32,
) -> np.ndarray:
    """librosa's default mel filter bank, ``[n_mels, n_fft // 2 + 1]``.

    Same as ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
    fmax=fmax)`` (Slaney mel scale, triangles normalised to constant area: ``norm="slaney"``).
    With ``dtype=np.float32`` the rounding steps are librosa's too (triangles rounded to
    float32, then scaled), so the result is bit-equal; ``np.float64`` keeps full precision.
    """
    if fmax is None:
        fmax = sample_rate / 2
    fft_frequencies = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_edges = np.linspace(_hz_to_mel_slaney(np.array([fmin]))[0], _hz_to_mel_slaney(np.array([fmax]))[0], n_mels + 2)
    hz_edges = _mel_to_hz_slaney(mel_edges)
    edge_widths = np.diff(hz_edges)
    ramps = hz_edges[:, None] - fft_frequencies[None, :]
    lower = -ramps[:-2] / edge_widths[:-1, None]
    upper = ramps[2:] / edge_widths[1:, None]
    triangles = np.maximum(0.0, np.minimum(lower, upper)).astype(dtype)
    # Slaney normalisation: each triangle has area ~1 so bands carry comparable energy.
    area_norm = 2.0 / (hz_edges[2 : n_mels + 2] - hz_edges[:n_mels])
    return (triangles * area_norm[:, None]).astype(dtype)


def periodic_hann(n_fft: int) -> np.ndarray:
    """``scipy.signal.get_window('hann', n_fft, fftbins=True)``, the window librosa uses.

    Computed the way scipy's ``general_cosine`` does (a symmetric window of n_fft + 1 points,
    last one dropped), so it is bit-equal to scipy's.
    """
    phase = np.linspace(-np.pi, np.pi, n_fft + 1)
    return (0.5 + 0.5 * np.cos(phase))[:n_fft]


class MelFrontend(torch.nn.Module):
    """Batched log-mel spectrograms on CPU or CUDA, equal to librosa's with the same settings.

    ``forward(waveforms[B, n]) -> [B, frames, n_mels]`` with ``frames = config.frame_count(n)``.
    Tracks of different lengths can share a batch when zero-padded at the end: with the
    default ``center=True, pad_mode="constant"`` librosa pads with zeros too, so each track's
    first ``config.frame_count(its_length)`` frames are exactly its own spectrogram.

    ``compute_dtype`` is float32 (fast, the default) or float64 (for reference-grade
    comparisons). The window and filter bank are kept in float64 whatever ``.half()`` or
    ``.float()`` is applied to a model that contains this module, because rounding the
    window to float32 alone raises the spectral leakage floor ~1e6-fold (measured against
    librosa, which windows in float64).
    """

    def __init__(self, config: FrontendConfig | None = None, compute_dtype: torch.dtype = torch.float32):
        super().__init__()
        if compute_dtype not in (torch.float32, torch.float64):
            raise ValueError(f"MelFrontend computes in float32 or float64, not {compute_dtype}")
        self.config = config if config is not None else FrontendConfig()
        self.compute_dtype = compute_dtype
        window, filterbank_t = self._exact_buffers(torch.device("cpu"))
        # Buffers, not parameters: they move with .to(device); not saved (derived from config).
        self.register_buffer("window", window, persistent=False)
        # Stored transposed, [n_fft//2+1, n_mels], so power[B, frames, bins] @ it is one matmul.
        self.register_buffer("filterbank_t", filterbank_t, persistent=False)

    def _exact_buffers(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        window = torch.from_numpy(periodic_hann(c.n_fft)).to(device)
        # librosa's filter bank is float32 (its default dtype); float64 here holds it exactly.
        filterbank = mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, c.fmin, c.fmax).astype(np.float64)
        return window, torch.from_numpy(np.ascontiguousarray(filterbank.T)).to(device)

    def _apply(self, fn, recurse=True):
        # Follow device moves, but rebuild the buffers in float64 after any dtype cast.
        super()._apply(fn, recurse)
        self.window, self.filterbank_t = self._exact_buffers(self.window.device)
        return self

    def _as_batch(self, waveforms: torch.Tensor | np.ndarray) -> torch.Tensor:
        waveforms = torch.as_tensor(waveforms)
        if waveforms.ndim != 2:
            raise ValueError(f"MelFrontend expects waveforms shaped [batch, samples], got shape {tuple(waveforms.shape)}")
        if waveforms.shape[0] == 0 or waveforms.shape[1] == 0:
            raise ValueError(f"MelFrontend got an empty batch, shape {tuple(waveforms.shape)}")
        if not self.config.center and waveforms.shape[1] < self.config.n_fft:
            raise ValueError(
                f"with center=False a waveform needs at least n_fft={self.config.n_fft} samples, got {waveforms.shape[1]}"
            )
        if not waveforms.is_floating_point():
            # Integer PCM needs scaling to [-1, 1] first (audio.to_mono_float), not a bare cast.
            raise ValueError(f"MelFrontend expects float waveforms in [-1, 1], got dtype {waveforms.dtype}")
        return waveforms.to(device=self.window.device, dtype=self.compute_dtype)

    def mel_power(self, waveforms: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Mel power spectrogram ``[B, frames, n_mels]`` (librosa.feature.melspectrogram, transposed)."""
        c = self.config
        batch = self._as_batch(waveforms)
        window = self.window.to(batch.dtype)
        spectrum = torch.stft(
            batch,
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            window=window,
            center=c.center,
            pad_mode=c.pad_mode,
            return_complex=True,
        )  # [B, bins, frames]
        parts = torch.view_as_real(spectrum)
        power = parts[..., 0].square() + parts[..., 1].square()  # |X|², librosa's power=2
        return torch.matmul(power.transpose(1, 2), self.filterbank_t.to(power.dtype))

    def compress(self, mel_power: torch.Tensor) -> torch.Tensor:
        """Apply the configured float16 rounding and log compression to a mel power spectrogram."""
        c = self.config
        mel = mel_power
        if c.float16_before_log:
            # musicnn's astype(np.float16); clamp first so a mel above float16's range
            # saturates instead of becoming inf (musicnn would give inf there).
            mel = mel.clamp(max=FLOAT16_MAX).to(torch.float16).to(mel_power.dtype)
        if c.log == "log10_1p_10000":
            # Same operation order as musicnn: np.log10(10000 * mel + 1).
            return torch.log10(mel * 10000.0 + 1.0)
        return mel

    def forward(self, waveforms: torch.Tensor | np.ndarray) -> torch.Tensor:
        return self.compress(self.mel_power(waveforms))


def make_patches(mel: torch.Tensor, patch_frames: int) -> torch.Tensor:
    """Cut one track's spectrogram ``[frames, n_mels]`` into model inputs ``[P, patch_frames, n_mels]``.

    Non-overlapping patches from frame 0, the last partial patch dropped, exactly as
    ``musicnn.extractor.batch_data`` with ``overlap = n_frames``. A track shorter than one
    patch (where musicnn fails) is repeat-padded: its frames are tiled until they fill a patch.
    """
    if mel.ndim != 2:
        raise ValueError(f"make_patches expects a spectrogram shaped [frames, n_mels], got shape {tuple(mel.shape)}")
    if patch_frames <= 0:
        raise ValueError(f"patch_frames must be positive, got {patch_frames}")
    frames, n_mels = mel.shape
    if frames == 0:
        raise ValueError("make_patches got a spectrogram with no frames")
    if frames < patch_frames:
        repeats = math.ceil(patch_frames / frames)
        return mel.repeat(repeats, 1)[:patch_frames].unsqueeze(0)
    n_patches = frames // patch_frames
    return mel[: n_patches * patch_frames].reshape(n_patches, patch_frames, n_mels)


def patch_counts(frame_counts: Sequence[int], patch_frames: int) -> list[int]:
    """Patches ``make_patches`` gives for each track's frame count (at least 1 per track)."""
    return [max(1, int(frames) // patch_frames) for frames in frame_counts]


def make_patches_batch(
    mels: torch.Tensor, frame_counts: Sequence[int], patch_frames: int
) -> tuple[torch.Tensor, list[int]]:
    """Patches of a padded batch ``[B, frames, n_mels]``, each track cut at its own frame count.

    Returns all patches stacked ``[sum(counts), patch_frames, n_mels]`` and the per-track
    counts, so per-track results are ``torch.split(outputs, counts)``.
    """
    if mels.ndim != 3:
        raise ValueError(f"make_patches_batch expects [batch, frames, n_mels], got shape {tuple(mels.shape)}")
    if len(frame_counts) != mels.shape[0]:
        raise ValueError(f"make_patches_batch got {len(frame_counts)} frame counts for a batch of {mels.shape[0]}")
    if any(not 0 < int(frames) <= mels.shape[1] for frames in frame_counts):
        raise ValueError(f"frame counts must lie in 1..{mels.shape[1]}, got {list(frame_counts)}")
    patches = [make_patches(mel[: int(frames)], patch_frames) for mel, frames in zip(mels, frame_counts)]
    return torch.cat(patches), [len(track_patches) for track_patches in patches]
