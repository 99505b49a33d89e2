"""The musicnn taggers (Pons & Serra, "musicnn: pre-trained convolutional neural networks
for music audio tagging", ISMIR LBD 2019) in PyTorch, for inference.

The graphs mirror ``musicnn/models.py`` (package musicnn 0.1.0, ISC licence, notice in
``weights/NOTICE-musicnn.txt``) layer by layer, including its zero padding and the order in
which features are concatenated. Weights are the original checkpoints' tensors, unchanged,
under their TensorFlow names (see ``mre.embedder.models.convert``); the layout changes from TF's
NHWC/HWIO to torch's happen in ``from_tf_tensors``.

Input: log-mel patches ``[B, frames, 96]`` made as musicnn's ``extractor.batch_data`` makes
them (see ``mre.embedder.audio.frontend``). Output: tag probabilities and the penultimate
features (musicnn: the 200-d batch-normalised dense layer; vgg: the flattened last pool).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MusicnnTagger",
    "VggTagger",
    "PatchShapeError",
    "tagger_from_tf_tensors",
]


# tf.compat.v1.layers.batch_normalization's default epsilon; musicnn never overrides it.
_TF_BATCH_NORM_EPSILON = 1e-3


class PatchShapeError(ValueError):
    """Mel patches do not have the shape a tagger accepts."""


def _batch_norm_scale_shift(tensors: dict[str, np.ndarray], layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Inference batch-norm as one multiply-add, folded the way TF's fused kernel does."""
    gamma = torch.from_numpy(tensors[f"{layer}/gamma"]).double()
    beta = torch.from_numpy(tensors[f"{layer}/beta"]).double()
    mean = torch.from_numpy(tensors[f"{layer}/moving_mean"]).double()
    variance = torch.from_numpy(tensors[f"{layer}/moving_variance"]).double()
    scale = gamma / torch.sqrt(variance + _TF_BATCH_NORM_EPSILON)
    return scale.float(), (beta - mean * scale).float()


def _conv_weight(tensors: dict[str, np.ndarray], layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    # TF conv2d kernels are [height(time), width(freq), in, out]; torch wants [out, in, h, w].
    kernel = torch.from_numpy(tensors[f"{layer}/kernel"]).permute(3, 2, 0, 1).contiguous()
    return kernel, torch.from_numpy(tensors[f"{layer}/bias"]).clone()


def _dense_weight(tensors: dict[str, np.ndarray], layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    # TF dense kernels are [in, out]; torch Linear weights are [out, in].
    kernel = torch.from_numpy(tensors[f"{layer}/kernel"]).t().contiguous()
    return kernel, torch.from_numpy(tensors[f"{layer}/bias"]).clone()


def _channel_affine(features: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Per-channel multiply-add on ``[B, C, ...]`` (a batch-norm at inference)."""
    view = (1, -1) + (1,) * (features.dim() - 2)
    return features * scale.view(view) + shift.view(view)


# The timbral convolutions on CPU go through the discrete Fourier transform over the 96 mel
# bands (see _band_dft_operators). Channels are taken this many at a time so that one group's
# products and band outputs (~0.9 MB + 0.5 MB) stay in cache between the two matrix products:
# per 3 s patch on one core of the 2-core EPYC (Zen 4), the two timbral blocks took 27 ms as
# oneDNN direct convolutions, 20 ms through the transform with all 204 channels at once, and
# 13.4-15.7 ms in groups of 4 to 34 channels (no clear best within that range).
_DFT_CHANNEL_GROUP = 12


def _band_dft_operators(kernel: torch.Tensor, bands: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A one-input-channel 'valid' convolution over (time, band), seen through the real DFT
    over the band axis, as two dense operators (built in float64, stored in float32).

    Cross-correlating a band axis of length N with a kernel of width w gives N - w + 1 valid
    outputs, the same as the circular cross-correlation of length N at those offsets, which
    the DFT turns into one complex product per frequency bin: Y_k = conj(K_k) X_k. Over the
    kernel's time taps that is, per bin, a small real matrix ``spectral [groups, bins,
    2·group, 2·taps]`` (rows: real/imaginary part × channel of the group; columns:
    real/imaginary part × tap), and the inverse DFT restricted to the valid offsets is
    ``inverse [valid, 2·bins]`` (columns: bin × real/imaginary part). It costs ~2.2x fewer
    multiply-adds than the direct convolution for a 7 x 38 kernel on 96 bands, 3.3x for
    7 x 67, and both steps are matrix products (on one Zen 4 core the inverse runs at ~80
    GFLOP/s, the per-bin products, whose inner dimension is only 2·taps = 14, at ~35). The
    results equal the direct convolution's up to float32 rounding (~1e-6 relative).
    """
    channels, _, taps, width = kernel.shape
    bins = bands // 2 + 1
    padded = torch.zeros(channels, taps, bands, dtype=torch.float64)
    padded[:, :, :width] = kernel[:, 0].double()
    spectrum = torch.fft.rfft(padded, dim=-1).conj()  # [C, taps, bins]
    real, imag = spectrum.real, spectrum.imag
    # [Y_re; Y_im] = [[K_re, -K_im], [K_im, K_re]] @ [X_re; X_im] per bin
    per_bin = torch.cat([torch.cat([real, -imag], dim=1), torch.cat([imag, real], dim=1)], dim=0)  # [2C, 2taps, bins]
    per_bin = per_bin.permute(2, 0, 1)  # [bins, 2C, 2taps], rows (part, channel)
    group = _DFT_CHANNEL_GROUP if channels % _DFT_CHANNEL_GROUP == 0 else channels
    spectral = per_bin.reshape(bins, 2, channels // group, group, 2 * taps).permute(2, 0, 1, 3, 4)
    spectral = spectral.reshape(channels // group, bins, 2 * group, 2 * taps)
    offsets = torch.arange(bands - width + 1, dtype=torch.float64)
    frequencies = torch.arange(bins, dtype=torch.float64)
    angle = 2.0 * torch.pi * frequencies[:, None] * offsets[None] / bands
    # irfft: bin 0 (and bin N/2 for even N) once and real only, the others twice
    weight = torch.full((bins, 1), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if bands % 2 == 0:
        weight[-1] = 1.0
    cosine, sine = weight * torch.cos(angle) / bands, -weight * torch.sin(angle) / bands
    sine[0] = 0.0
    if bands % 2 == 0:
        sine[-1] = 0.0
    inverse = torch.stack([cosine, sine], dim=1).reshape(2 * bins, -1).t()  # [valid, (bin, part)]
    return spectral.float().contiguous(), inverse.float().contiguous()


def _band_spectrum_taps(patch: torch.Tensor, taps: int) -> torch.Tensor:
    """``patch [T + taps - 1, bands]`` -> its band spectra at every tap offset,
    ``[bins, 2·taps, T]`` (rows: real/imaginary part × tap), the right operand of the
    per-bin products of :func:`_band_dft_operators`."""
    spectrum = torch.fft.rfft(patch.float(), dim=-1)  # [T + taps - 1, bins]
    parts = torch.stack([spectrum.real, spectrum.imag])  # [2, T + taps - 1, bins]
    windows = parts.unfold(1, taps, 1)  # [2, T, bins, taps]
    return windows.permute(2, 0, 3, 1).reshape(parts.shape[2], 2 * taps, -1)


def _band_maxima_via_dft(spectrum_taps: torch.Tensor, spectral: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """Max over valid band offsets of the timbral convolution, ``[C, T]``, one channel
    group at a time (see _band_dft_operators)."""
    bins, _, frames = spectrum_taps.shape
    maxima = []
    for group_kernel in spectral:
        products = torch.bmm(group_kernel, spectrum_taps)  # [bins, 2·group, T]
        band_outputs = inverse @ products.view(2 * bins, -1)  # [valid, group·T]
        maxima.append(band_outputs.amax(dim=0).view(-1, frames))
    return torch.cat(maxima)


class _TaggerBase(nn.Module):
    """Shared input checks and the probabilities/penultimate/logits interface."""

    n_mels = 96
    fixed_frames: int | None = None

    def _check_patches(self, mel_patches: torch.Tensor) -> torch.Tensor:
        if mel_patches.dim() != 3 or mel_patches.shape[2] != self.n_mels:
            raise PatchShapeError(
                f"expected mel patches [batch, frames, {self.n_mels}], got {tuple(mel_patches.shape)}"
            )
        if self.fixed_frames is not None and mel_patches.shape[1] != self.fixed_frames:
            raise PatchShapeError(
                f"{type(self).__name__} takes patches of exactly {self.fixed_frames} frames, "
                f"got {mel_patches.shape[1]}"
            )
        if mel_patches.shape[1] < 1:
            raise PatchShapeError("mel patches have no frames")
        return mel_patches.float()

    def forward(self, mel_patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mel_patches [B, frames, 96]`` -> (tag probabilities [B, tags], penultimate [B, D])."""
        logits, penultimate = self.forward_logits(mel_patches)
        return torch.sigmoid(logits.float()), penultimate

    def forward_logits(self, mel_patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class MusicnnTagger(_TaggerBase):
    """musicnn ``build_musicnn``: timbral + temporal front-end, residual mid-end, pooled back-end.

    Sizes from ``models.define_model`` for MSD_musicnn / MTT_musicnn: front-end filters
    int(1.6 * 128) = 204 (timbral) and int(1.6 * 32) = 51 (temporal), mid-end 64 filters,
    back-end 200 units.
    """

    penultimate_dim = 200
    # Device types whose timbral convolutions go through the DFT over bands; elsewhere
    # (cuDNN) the direct convolution is the fast one.
    band_dft_devices: tuple[str, ...] = ("cpu",)
    _temporal_span = 128  # the longest temporal kernel
    _temporal_before = 63  # TF 'same' padding before the output frame: (128 - 1) // 2

    def __init__(self, tensors: dict[str, np.ndarray]):
        super().__init__()
        self.num_tags = tensors["dense_1/bias"].shape[0]
        self._register_affine("input", tensors, "batch_normalization")
        # Front-end blocks: timbral kernels 7 frames x int(0.4*96)=38 and x int(0.7*96)=67 bands
        # (tf.pad 3 frames each side, 'valid'); temporal kernels 128, 64, 32 frames x 1 band
        # (TF 'same' padding). Each block is conv -> bias -> ReLU -> batch-norm -> max over bands.
        self._frontend_blocks = []
        signs, biases, scales, shifts = [], [], [], []
        for index, (name, layer) in enumerate(
            [("timbral_38", "conv2d"), ("timbral_67", "conv2d_1"),
             ("temporal_128", "conv2d_2"), ("temporal_64", "conv2d_3"), ("temporal_32", "conv2d_4")]
        ):
            kernel, bias = _conv_weight(tensors, layer)  # [C, 1, frames, bands]
            scale, shift = _batch_norm_scale_shift(tensors, f"batch_normalization_{index + 1}")
            # Only the max over bands is ever needed. Where the batch-norm scale is negative
            # the block keeps the min instead (max(s*x + t) = s*min(x) + t), and min(x) is
            # -max(-x): negating those channels' kernels (exact in floating point) lets one
            # amax serve every channel; _frontend multiplies the sign back.
            sign = torch.where(scale >= 0, 1.0, -1.0)
            self.register_buffer(f"{name}_kernel", kernel * sign.view(-1, 1, 1, 1))
            if name.startswith("timbral"):
                spectral, inverse = _band_dft_operators(getattr(self, f"{name}_kernel"), self.n_mels)
                self.register_buffer(f"{name}_spectral_kernel", spectral, persistent=False)
                self.register_buffer(f"{name}_inverse_dft", inverse, persistent=False)
            self._frontend_blocks.append(name)
            signs.append(sign), biases.append(bias), scales.append(scale), shifts.append(shift)
        # The five blocks' per-channel steps after the max, concatenated in tf.concat's order.
        for part, values in [("sign", signs), ("bias", biases), ("scale", scales), ("shift", shifts)]:
            self.register_buffer(f"frontend_{part}", torch.cat(values).view(-1, 1))
        # Mid-end: three conv layers over time whose kernels span all channels: conv1d.
        for index, name in enumerate(["midend_1", "midend_2", "midend_3"]):
            kernel, bias = _conv_weight(tensors, f"conv2d_{index + 5}")
            # [out, 1, 7, channels] -> conv1d [out, channels, 7]
            self.register_buffer(f"{name}_kernel", kernel[:, 0].permute(0, 2, 1).contiguous())
            self.register_buffer(f"{name}_bias", bias)
            self._register_affine(name, tensors, f"batch_normalization_{index + 6}")
        # Back-end: batch-norm over the pooled vector folded into the dense layer after it
        # (no padding or nonlinearity in between, so the fold is exact up to rounding).
        pooled_scale, pooled_shift = _batch_norm_scale_shift(tensors, "batch_normalization_9")
        dense_kernel, dense_bias = _dense_weight(tensors, "dense")
        self.register_buffer("dense_kernel", (dense_kernel.double() * pooled_scale.double()).float())
        self.register_buffer("dense_bias", (dense_bias.double() + dense_kernel.double() @ pooled_shift.double()).float())
        self._register_affine("penultimate", tensors, "batch_normalization_10")
        output_kernel, output_bias = _dense_weight(tensors, "dense_1")
        self.register_buffer("output_kernel", output_kernel)
        self.register_buffer("output_bias", output_bias)
        self.eval()

    def _register_affine(self, name: str, tensors: dict[str, np.ndarray], layer: str) -> None:
        scale, shift = _batch_norm_scale_shift(tensors, layer)
        self.register_buffer(f"{name}_scale", scale)
        self.register_buffer(f"{name}_shift", shift)

    def _frontend(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """The five front-end blocks on ``spectrogram [b, T, bands]`` -> ``[b, 561, T]``.

        Each block is conv -> bias -> ReLU -> batch-norm -> max over all bands (musicnn's
        timbral_block/tempo_block), computed as conv -> max -> bias -> ReLU -> batch-norm:
        adding the bias and ReLU commute with the max, and a batch-norm with a positive
        scale s keeps it (max(s*x + t) = s*max(x) + t), one with a negative scale keeps the
        min, which the sign-flipped kernel turned into a max. Only [C, T] values are touched
        after the reduction instead of [C, T, bands]; as rounding is monotonic the result
        is the same. Each convolution has one input channel. On CPU the two timbral ones
        (80 % of the model's multiply-adds) go through the DFT over bands
        (_band_dft_operators); on other devices, and the temporal ones everywhere, are
        direct convolutions (oneDNN, cuDNN). The temporal kernels slice their own TF 'same'
        padding ((length - 1) // 2 frames before the output frame) out of the 128-frame one.
        """
        frames = spectrogram.shape[1]
        timbral_input = F.pad(spectrogram, (0, 0, 3, 3)).unsqueeze(1)  # tf.pad 3 frames: [b, 1, T+6, bands]
        padded = F.pad(spectrogram, (0, 0, self._temporal_before, self._temporal_span - 1 - self._temporal_before))
        temporal_input = padded.unsqueeze(1)  # [b, 1, T+127, bands]
        band_maxima = []
        timbral_through_dft = spectrogram.device.type in self.band_dft_devices
        spectra_by_taps = {}  # both timbral kernels span 7 frames: their input's band spectra are shared
        for name in self._frontend_blocks:
            kernel = getattr(self, f"{name}_kernel")
            if name.startswith("timbral") and timbral_through_dft:
                taps = kernel.shape[2]
                if taps not in spectra_by_taps:
                    spectra_by_taps[taps] = [_band_spectrum_taps(patch, taps) for patch in timbral_input[:, 0]]
                band_maxima.append(torch.stack([
                    _band_maxima_via_dft(spectrum, getattr(self, f"{name}_spectral_kernel"),
                                         getattr(self, f"{name}_inverse_dft"))
                    for spectrum in spectra_by_taps[taps]]))
                continue
            if name.startswith("timbral"):
                block_input = timbral_input
            else:
                start = self._temporal_before - (kernel.shape[2] - 1) // 2
                block_input = temporal_input[:, :, start : start + frames + kernel.shape[2] - 1]
            band_maxima.append(F.conv2d(block_input, kernel).amax(dim=-1))
        pooled = torch.cat(band_maxima, dim=1) * self.frontend_sign  # [b, 561, T], tf.concat's order
        return (pooled + self.frontend_bias).relu() * self.frontend_scale + self.frontend_shift

    def _midend_layer(self, features: torch.Tensor, name: str) -> torch.Tensor:
        padded = F.pad(features, (3, 3))  # tf.pad [3, 3] on time, then a 'valid' 7-frame kernel
        activation = F.conv1d(padded, getattr(self, f"{name}_kernel"), getattr(self, f"{name}_bias")).relu()
        return _channel_affine(activation, getattr(self, f"{name}_scale"), getattr(self, f"{name}_shift"))

    def forward_logits(self, mel_patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mel_patches [B, frames, 96]`` -> (logits [B, tags], penultimate [B, 200])."""
        logits, penultimate, _ = self.forward_layers(mel_patches)
        return logits, penultimate

    def forward_layers(self, mel_patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``mel_patches [B, frames, 96]`` -> (logits [B, tags], penultimate [B, 200], pooled
        [B, 1506]: the back-end's max and mean over time of the 753 front- and mid-end channels,
        before its batch-norm and dense layer)."""
        mel_patches = self._check_patches(mel_patches)
        spectrogram = mel_patches * self.input_scale + self.input_shift  # input batch-norm
        # On CPU one patch at a time, so that a patch's front-end activations stay in the
        # last-level cache between a convolution and its max (with four patches at once the
        # direct 7 x 38 convolution ran 1.8x slower per patch; 2-core EPYC, 32 MB L3).
        chunk = 1 if spectrogram.device.type == "cpu" else len(spectrogram)
        frontend_features = torch.cat([self._frontend(part) for part in spectrogram.split(chunk)])
        midend_1 = self._midend_layer(frontend_features, "midend_1")
        midend_2 = self._midend_layer(midend_1, "midend_2") + midend_1
        midend_3 = self._midend_layer(midend_2, "midend_3") + midend_2
        midend_features = torch.cat([frontend_features, midend_1, midend_2, midend_3], dim=1)  # [B, 753, T]
        # tf.concat([max_pool, mean_pool], 2) on [B, 753, 1] then flatten interleaves
        # them: feature 2c is the max of channel c, 2c+1 its mean.
        pooled = torch.stack([midend_features.amax(dim=2), midend_features.mean(dim=2)], dim=2).flatten(1)
        hidden = F.linear(pooled, self.dense_kernel, self.dense_bias).relu()
        penultimate = hidden * self.penultimate_scale + self.penultimate_shift
        logits = F.linear(penultimate, self.output_kernel, self.output_bias)
        return logits, penultimate, pooled

    def outputs(self, mel_patches: torch.Tensor, layer: str = "penultimate") -> tuple[torch.Tensor, torch.Tensor]:
        """(tag probabilities, features of `layer`): "penultimate" as ``forward``, or "pooled"."""
        if layer == "penultimate":
            return self(mel_patches)
        logits, _, pooled = self.forward_layers(mel_patches)
        return torch.sigmoid(logits.float()), pooled


class VggTagger(_TaggerBase):
    """musicnn's ``vgg`` baseline: five 3x3 conv blocks with 128 filters, then one dense layer.

    It flattens a fixed-size map, so it takes only 187-frame (3 s) patches, as musicnn's
    extractor enforces. Its "penultimate" output is the flattened last pool (256-d).
    """

    fixed_frames = 187
    penultimate_dim = 256
    # (pool size, pool stride) after each conv block, from models.vgg.
    _pools = [((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))]

    def __init__(self, tensors: dict[str, np.ndarray]):
        super().__init__()
        self.num_tags = tensors["dense/bias"].shape[0]
        scale, shift = _batch_norm_scale_shift(tensors, "batch_normalization")
        self.register_buffer("input_scale", scale)
        self.register_buffer("input_shift", shift)
        for block in range(1, 6):
            kernel, bias = _conv_weight(tensors, f"{block}CNN")
            self.register_buffer(f"conv{block}_kernel", kernel)
            self.register_buffer(f"conv{block}_bias", bias)
            scale, shift = _batch_norm_scale_shift(tensors, f"batch_normalization_{block}")
            self.register_buffer(f"conv{block}_scale", scale)
            self.register_buffer(f"conv{block}_shift", shift)
        output_kernel, output_bias = _dense_weight(tensors, "dense")
        self.register_buffer("output_kernel", output_kernel)
        self.register_buffer("output_bias", output_bias)
        self.eval()

    def forward_logits(self, mel_patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mel_patches [B, 187, 96]`` -> (logits [B, tags], flattened pool5 [B, 256])."""
        mel_patches = self._check_patches(mel_patches)
        features = (mel_patches * self.input_scale + self.input_shift).unsqueeze(1)
        for block, (pool_size, pool_stride) in enumerate(self._pools, start=1):
            # TF 'same' with a 3x3 kernel and stride 1 pads one row/column on each side.
            features = F.conv2d(features, getattr(self, f"conv{block}_kernel"), getattr(self, f"conv{block}_bias"), padding=1)
            features = _channel_affine(features.relu(), getattr(self, f"conv{block}_scale"), getattr(self, f"conv{block}_shift"))
            features = F.max_pool2d(features, pool_size, pool_stride)  # 'valid' pooling
        # TF flattens NHWC: index (time * width + band) * channels + channel.
        penultimate = features.permute(0, 2, 3, 1).flatten(1)
        return F.linear(penultimate, self.output_kernel, self.output_bias), penultimate


_ARCHITECTURES = {"musicnn": MusicnnTagger, "vgg": VggTagger}


def tagger_from_tf_tensors(architecture: str, tensors: dict[str, np.ndarray]) -> _TaggerBase:
    """Build a tagger of ``architecture`` ("musicnn" or "vgg") from checkpoint tensors."""
    if architecture not in _ARCHITECTURES:
        raise ValueError(f"unknown musicnn architecture {architecture!r}; known: {sorted(_ARCHITECTURES)}")
    return _ARCHITECTURES[architecture](tensors)
