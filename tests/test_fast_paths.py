"""The fast CPU paths give the same numbers as the plain ones.

- the musicnn front-end, computed as conv -> max over bands -> bias/ReLU/batch-norm with
  sign-flipped kernels, equals musicnn's literal order (conv -> bias -> ReLU -> batch-norm
  -> max) on patches where both batch-norm signs matter;
- the runner's CPU model threads (batch slices on single-threaded Python threads) give the
  same track outputs, in the same order, as one call with torch's own threading;
- the throughput benchmark prints batch size, threads and its ratios, and counts FLOPs right.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from mre.benchmarks import tagging_speed
from mre.embedder.models.factory import load_model
from mre.embedder.models.registry import load_tagger
from mre.embedder.runner import embed_files


@pytest.fixture(scope="module")
def tagger():
    return load_tagger("musicnn-mtt")


# float32 unit roundoff: every float32 operation's result is within u of the exact one, relatively
UNIT_ROUNDOFF = 2.0 ** -24


def _gamma(n: int) -> float:
    """Higham's gamma_n = n·u / (1 − n·u): a sum of n products in float32 is within gamma_n
    times the sum of the products' magnitudes of the exact sum, in any order and with or
    without fused multiply-adds — so the bound holds for every CPU's convolution kernels."""
    return n * UNIT_ROUNDOFF / (1 - n * UNIT_ROUNDOFF)


def _block_inputs(tagger, spectrogram: torch.Tensor):
    """Per front-end block: (name, padded input [b, 1, T', bands], kernel with its sign undone, channels)."""
    offset = 0
    for name in tagger._frontend_blocks:
        signed_kernel = getattr(tagger, f"{name}_kernel")
        channels = slice(offset, offset + signed_kernel.shape[0])
        offset += signed_kernel.shape[0]
        kernel = signed_kernel * tagger.frontend_sign[channels].view(-1, 1, 1, 1)  # undo the flip
        frames = kernel.shape[2]
        if name.startswith("timbral"):
            padded = F.pad(spectrogram, (0, 0, 3, 3))  # tf.pad 3 frames each side, 'valid'
        else:  # TF 'same': (frames - 1) // 2 before, the rest after
            padded = F.pad(spectrogram, (0, 0, (frames - 1) // 2, frames - 1 - (frames - 1) // 2))
        yield name, padded.unsqueeze(1), kernel, channels


def literal_frontend(tagger, spectrogram: torch.Tensor) -> torch.Tensor:
    """musicnn's timbral_block / tempo_block as written: conv + bias -> ReLU -> BN -> max,
    in float64 on the float32 input and weights: the exact value to compare against."""
    blocks = []
    for _, padded, kernel, parts in _block_inputs(tagger, spectrogram.double()):
        activation = F.conv2d(padded, kernel.double(), tagger.frontend_bias[parts, 0].double()).relu()
        scale = tagger.frontend_scale[parts].double().view(1, -1, 1, 1)
        shift = tagger.frontend_shift[parts].double().view(1, -1, 1, 1)
        blocks.append((activation * scale + shift).amax(dim=-1))
    return torch.cat(blocks, dim=1)


def rounding_bounds(tagger, spectrogram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How far the float32 front-end may be from the exact one, per output: (direct
    convolutions, DFT over bands for the timbral blocks), from float32's unit roundoff, the
    number of rounded steps and the magnitudes summed.

    - Direct convolution of a taps × width kernel: gamma_n with n = taps·width, times
      sum |x|·|w| over the kernel (a convolution of |x| with |w|).
    - Through the DFT over N bands: the forward transform (N terms per bin, counted as N
      although an FFT rounds only ~log2 N times), the per-bin products (2·taps terms) and
      the inverse restricted to valid offsets (2·bins terms), plus the float32 storage of
      the operators: gamma of their sum, times the magnitudes on the way, which by
      Cauchy–Schwarz and Parseval (|X|₂ = sqrt(N)|x|₂, inverse weights ≤ 2/N) are at most
      2 · sum over taps of |x_tap|₂ · |w_tap|₂.
    Each max over bands moves by at most the largest error among the bands it picks from;
    bias, ReLU and batch-norm after it add a few roundings of their own magnitude and scale
    the error by |s|.
    """
    bands = spectrogram.shape[-1]
    bins = bands // 2 + 1
    direct, through_dft = [], []
    x = spectrogram.double()
    for name, padded, kernel, parts in _block_inputs(tagger, x):
        kernel = kernel.double()
        taps, width = kernel.shape[2], kernel.shape[3]
        direct.append(_gamma(taps * width) * F.conv2d(padded.abs(), kernel.abs()).amax(dim=-1))
        if name.startswith("timbral"):
            frame_norms = padded[:, 0].norm(dim=-1)  # [b, T + taps - 1]
            tap_norms = kernel[:, 0].norm(dim=-1)  # [C, taps]
            magnitude = 2 * F.conv1d(frame_norms[:, None], tap_norms[:, None])  # [b, C, T]
            through_dft.append(_gamma(bands + 2 * taps + 2 * bins + 4) * magnitude)
        else:
            through_dft.append(direct[-1])
    scale = tagger.frontend_scale.double().abs()
    after_max = 4 * UNIT_ROUNDOFF * (literal_frontend(tagger, spectrogram).abs() + tagger.frontend_shift.double().abs())
    return tuple(torch.cat(bounds, dim=1) * scale + after_max for bounds in (direct, through_dft))


def _assert_frontends_agree(tagger, spectrogram, monkeypatch):
    """The reordered front-end equals the literal one in exact arithmetic, so each float32
    path stays within its rounding bound of the literal order computed in float64."""
    with torch.inference_mode():
        exact = literal_frontend(tagger, spectrogram)
        direct_bound, dft_bound = rounding_bounds(tagger, spectrogram)
        through_dft = torch.cat([tagger._frontend(patch) for patch in spectrogram.split(1)])
        monkeypatch.setattr(tagger, "band_dft_devices", ())
        direct = torch.cat([tagger._frontend(patch) for patch in spectrogram.split(1)])
    assert ((direct.double() - exact).abs() <= direct_bound).all()
    assert ((through_dft.double() - exact).abs() <= dft_bound).all()
    # the bounds are far below the features themselves: a wrong reordering could not hide in them
    assert float(dft_bound.max()) < 1e-3 * float(exact.abs().max())
    return through_dft


def test_frontend_equals_musicnns_literal_order(tagger, monkeypatch):
    # both signs occur, so both the max and the flipped-kernel min paths are exercised
    assert (tagger.frontend_sign > 0).any() and (tagger.frontend_sign < 0).any()
    generator = torch.Generator().manual_seed(3)
    spectrogram = torch.rand(2, 187, 96, generator=generator) * 3
    assert _assert_frontends_agree(tagger, spectrogram, monkeypatch).shape == (2, 561, 187)


def test_frontend_takes_patches_shorter_than_the_longest_kernel(tagger, monkeypatch):
    spectrogram = torch.rand(1, 40, 96) * 3  # 40 frames < the 128-frame temporal kernel
    _assert_frontends_agree(tagger, spectrogram, monkeypatch)


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(7)
    for index, seconds in enumerate([7.0, 2.0, 10.0]):
        t = np.arange(int(seconds * 22050)) / 22050
        tone = 0.3 * np.sin(2 * np.pi * (110 * (index + 2)) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(folder / f"clip{index}.wav", tone.astype(np.float32), 22050)
    return folder


def test_model_threads_give_the_same_tracks_as_one_call(clip_folder):
    paths = sorted(str(p) for p in clip_folder.glob("*.wav"))
    model = load_model("musicnn-mtt")
    # 2, 1 and 3 patches in batches of 2: a track spans batches, a slice holds one patch
    threaded = list(embed_files(paths, model, device="cpu", batch_size=2, workers=0, model_threads=2))
    plain = list(embed_files(paths, model, device="cpu", batch_size=2, workers=0, model_threads=0))
    assert [t.path for t in threaded] == paths == [t.path for t in plain]
    for fast, reference in zip(threaded, plain):
        assert fast.n_patches == reference.n_patches
        np.testing.assert_allclose(fast.patch_mean, reference.patch_mean, rtol=0, atol=1e-6)


def test_flop_count_of_musicnn(tagger):
    # timbral: 204 filters x 7 x 38 at 59 band offsets, 204 x 7 x 67 at 30; temporal:
    # 51 filters x (128 + 64 + 32) frames at 96 bands; mid-end 3 x 64 x 561|64|64 x 7
    frames = 187
    expected = 2 * frames * (204 * 7 * 38 * 59 + 204 * 7 * 67 * 30 + 51 * (128 + 64 + 32) * 96
                             + 7 * 64 * (561 + 64 + 64))
    expected += 2 * (200 * 1506 + 50 * 200)
    assert tagging_speed.musicnn_flops_per_patch(tagger, frames) == expected


def test_benchmark_prints_its_settings_and_ratios(clip_folder, tmp_path, capsys):
    out = tmp_path / "speed.json"
    tagging_speed.main([str(clip_folder), "--model", "musicnn-mtt", "--batch-size", "8", "--workers", "1",
                        "--rounds", "2", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "batch 8" in printed and "1 decode workers" in printed and "model threads" in printed
    assert "end to end" in printed and "vs decode" in printed and "ceiling" in printed and "best of 2 rounds" in printed
    figures = json.loads(out.read_text())
    assert figures["files"] == 3 and figures["patches"] == 2 + 1 + 3  # 3 s patches, a short clip repeat-padded
    assert figures["ratio_end_to_end_vs_decode"] == pytest.approx(
        figures["end_to_end_x_realtime"] / figures["decode_only_x_realtime"], rel=0.02)  # each rounded to 0.1
    assert figures["model_gflops_1_thread"] > 0 and figures["reference_conv_gflops_1_thread"] > 0


def test_gpu_check_transcodes_tracks_to_each_format(clip_folder, tmp_path):
    # the GPU measurement's copies of its tracks: same samples (FLAC, WAV at 16 bits) or the
    # same length (MP3), at the track's own rate, readable by the decoder the engine uses
    from mre.benchmarks.gpu_check import transcode

    paths = sorted(str(p) for p in clip_folder.glob("*.wav"))
    for fmt in ("flac", "mp3", "wav"):
        copies = transcode(paths, tmp_path / fmt, fmt, workers=1)
        assert [Path(c).suffix for c in copies] == [f".{fmt}"] * len(paths)
        for source, copy in zip(paths, copies):
            original, rate = sf.read(source, dtype="float32")
            again, copy_rate = sf.read(copy, dtype="float32")
            assert copy_rate == rate
            if fmt == "mp3":  # a lossy codec: the length, within one MPEG frame of 1152 samples
                assert abs(len(again) - len(original)) <= 1152
            else:  # 16-bit PCM: within half a step of 2^-15
                np.testing.assert_allclose(again, original, rtol=0, atol=2.0 ** -16)


def test_benchmark_main_modules_do_not_import_torch():
    # every new decode worker re-runs the program's main module: one importing torch cost each
    # worker ~1 s (16 workers on a GPU machine decoded at a quarter of their speed)
    import subprocess
    import sys

    code = "import sys, mre.benchmarks.gpu_check, mre.benchmarks.tagging_speed; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_a_model_loads_its_weights_once_on_the_calling_thread():
    # the CPU threads run slices of a batch at once: a model's lazy weight loading must not run on
    # several of them together (it did, and CPython 3.11's per-interpreter AST state, used by
    # np.load's header parse, raised SystemError)
    import threading

    from mre.embedder.runner import CpuPatchThreads

    class LazyModel:
        def __init__(self):
            self.loads = []

        def patch_outputs(self, patches):
            if not self.loads:
                self.loads.append(threading.get_ident())
            return patches.sum(dim=(1, 2))[:, None]

    model, threads = LazyModel(), CpuPatchThreads(2)
    try:
        patches = torch.arange(8 * 3 * 4, dtype=torch.float32).reshape(8, 3, 4)
        outputs = threads(model, patches)
        threads(model, patches)
    finally:
        threads.close()
    assert model.loads == [threading.get_ident()]
    torch.testing.assert_close(outputs, patches.sum(dim=(1, 2))[:, None])
