"""The torch mel front-end against librosa, the reference musicnn computed its inputs with.

librosa is a test-only dependency here: the front-end itself never imports it.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

librosa = pytest.importorskip("librosa")

from mre.embedder.audio.frontend import (  # noqa: E402
                                         FrontendConfig,
                                         MelFrontend,
                                         make_patches,
                                         make_patches_batch,
                                         mel_filterbank,
                                         patch_counts,
                                         periodic_hann,
)

SR = 16000
# musicnn's call: librosa.feature.melspectrogram(y, sr=16000, hop_length=256, n_fft=512, n_mels=96)
MUSICNN_MEL = dict(sr=SR, n_fft=512, hop_length=256, n_mels=96)
MAX_RELATIVE_ERROR = 1e-4  # the bound


def chord(seconds: float = 6.0) -> np.ndarray:
    """A C-major triad with 3 harmonics per note: sparse spectrum, deep leakage valleys."""
    t = np.arange(int(seconds * SR)) / SR
    notes = [261.63, 329.63, 392.0]
    y = sum(0.15 / h * np.sin(2 * np.pi * f * h * t) for f in notes for h in (1, 2, 3))
    return y.astype(np.float32)


def noise(seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def sweep(seconds: float = 6.0) -> np.ndarray:
    """Linear sine sweep 50 Hz → 7.9 kHz at amplitude 0.5."""
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * (50 * t + (7850 / (2 * seconds)) * t**2))).astype(np.float32)


SIGNALS = {"chord": chord, "noise": noise, "sweep": sweep}


def librosa_mel(y: np.ndarray) -> np.ndarray:
    return librosa.feature.melspectrogram(y=y, **MUSICNN_MEL).T  # [frames, n_mels]


def relative_error(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):  # exact-zero bins are masked by callers
        return np.abs(ours - reference) / np.abs(reference)


def test_filterbank_is_librosas_default():
    ours = mel_filterbank(SR, 512, 96)
    reference = librosa.filters.mel(sr=SR, n_fft=512, n_mels=96)
    assert ours.shape == (96, 257) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, reference)
    precise = mel_filterbank(SR, 512, 96, dtype=np.float64)
    np.testing.assert_allclose(precise, reference, rtol=1e-6, atol=1e-9)
    # other settings a model may declare (the paper's 128 bands, a band limit)
    np.testing.assert_array_equal(
        mel_filterbank(22050, 1024, 128, fmin=30.0, fmax=11000.0),
        librosa.filters.mel(sr=22050, n_fft=1024, n_mels=128, fmin=30.0, fmax=11000.0),
    )


def test_window_is_scipys_periodic_hann():
    scipy_signal = pytest.importorskip("scipy.signal")
    np.testing.assert_array_equal(periodic_hann(512), scipy_signal.get_window("hann", 512, fftbins=True))


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_float64_mel_and_log_mel_match_librosa_on_every_bin(name):
    """Reference grade: float64 on both sides, every bin, including the leakage valleys."""
    y = SIGNALS[name]().astype(np.float64)
    reference = librosa_mel(y)
    frontend = MelFrontend(FrontendConfig(float16_before_log=False), compute_dtype=torch.float64)
    ours = frontend.mel_power(torch.from_numpy(y)[None])[0].numpy()
    assert ours.shape == reference.shape == (1 + len(y) // 256, 96)
    assert relative_error(ours, reference).max() <= MAX_RELATIVE_ERROR
    log_ours = frontend(torch.from_numpy(y)[None])[0].numpy()
    log_reference = np.log10(10000 * reference + 1)
    assert relative_error(log_ours, log_reference).max() <= MAX_RELATIVE_ERROR


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_float32_log_mel_matches_librosa(name):
    """The fast path. float32 FFTs carry ~1e-7 of the frame's peak as noise, so a relative
    bound only means something on bins above that floor (1e-6 of the loudest bin); below it
    the absolute error is what the model sees, and it is tiny too."""
    y = SIGNALS[name]()
    reference = librosa_mel(y)
    frontend = MelFrontend(FrontendConfig(float16_before_log=False))
    ours = frontend.mel_power(torch.from_numpy(y)[None])[0].numpy()
    audible = reference > 1e-6 * reference.max()
    assert audible.mean() > 0.05  # a sweep lights few bands per frame; noise lights all
    assert relative_error(ours, reference)[audible].max() <= MAX_RELATIVE_ERROR
    log_ours = frontend(torch.from_numpy(y)[None])[0].numpy()
    log_reference = np.log10(10000 * reference + 1)
    assert relative_error(log_ours, log_reference)[audible].max() <= MAX_RELATIVE_ERROR
    assert np.abs(log_ours - log_reference).max() <= MAX_RELATIVE_ERROR


def test_float16_step_is_musicnns():
    """musicnn: audio_rep.astype(np.float16), then np.log10(10000 * audio_rep + 1), which
    numpy < 2 computes in float32. Our float32 mel rounds to a neighbouring float16 only
    where librosa's value sits on a rounding boundary: rarely, and by one float16 step."""
    y = noise(seed=3)
    reference = np.log10(10000 * librosa_mel(y).astype(np.float16).astype(np.float32) + 1)
    ours = MelFrontend()(torch.from_numpy(y)[None])[0].numpy()
    assert ours.dtype == np.float32 and np.isfinite(ours).all()
    differs = np.abs(ours - reference) > 1e-5
    assert differs.mean() < 0.005
    # one float16 step is at most 2**-10 of the value, which moves log10(1 + 10000·mel) by
    # at most 2**-10 / ln(10) ≈ 4.2e-4
    assert np.abs(ours - reference).max() <= 4.3e-4


def test_float16_step_saturates_instead_of_inf():
    frontend = MelFrontend()
    loud = torch.full((1, 4096), 300.0)  # far above full scale: mel beyond float16's range
    assert torch.isfinite(frontend(loud)).all()


def test_batch_equals_one_by_one_and_zero_padded_tracks_keep_their_frames():
    config = FrontendConfig()
    frontend = MelFrontend(config)
    tracks = [chord(3.0), noise(2.3, seed=1), sweep(1.1)]
    longest = max(len(t) for t in tracks)
    padded = torch.zeros(len(tracks), longest)
    for row, track in enumerate(tracks):
        padded[row, : len(track)] = torch.from_numpy(track)
    batched = frontend(padded)
    assert batched.shape == (3, config.frame_count(longest), 96)
    for row, track in enumerate(tracks):
        alone = frontend(torch.from_numpy(track)[None])[0]
        frames = config.frame_count(len(track))
        assert alone.shape[0] == frames
        torch.testing.assert_close(batched[row, :frames], alone, rtol=1e-5, atol=1e-5)


def test_input_dtypes_and_devices_follow_the_module():
    frontend = MelFrontend().to(torch.float16)  # a model's .half() must not degrade the front-end
    assert frontend.window.dtype == torch.float64
    y = noise(1.0)
    out_from_numpy = frontend(y[None].astype(np.float64))
    out_from_tensor = frontend(torch.from_numpy(y)[None])
    assert out_from_numpy.dtype == torch.float32
    torch.testing.assert_close(out_from_numpy, out_from_tensor)
    if torch.cuda.is_available():
        on_gpu = MelFrontend().to("cuda")(torch.from_numpy(y)[None])
        assert on_gpu.device.type == "cuda"
        torch.testing.assert_close(on_gpu.cpu(), out_from_tensor, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.zeros(16000), "batch, samples"),
        (torch.zeros(1, 0), "empty"),
        (torch.zeros(1, 100, dtype=torch.int16), "float"),
    ],
)
def test_bad_waveforms_are_one_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        MelFrontend()(bad)


def test_config_validates_and_serialises():
    config = FrontendConfig()
    assert config.as_dict()["n_mels"] == 96 and config.as_dict()["pad_mode"] == "constant"
    assert FrontendConfig(**config.as_dict()) == config
    assert config.patch_frames == 1 + int(librosa.time_to_frames(3, sr=SR, n_fft=512, hop_length=256))
    with pytest.raises(ValueError, match="pad_mode"):
        FrontendConfig(pad_mode="edge")
    with pytest.raises(ValueError, match="n_mels"):
        FrontendConfig(n_mels=0)
    with pytest.raises(ValueError, match="fmax"):
        FrontendConfig(fmax=9000.0)


def test_reflect_padding_matches_old_librosa_behaviour():
    y = sweep(1.0)
    ours = MelFrontend(FrontendConfig(pad_mode="reflect", float16_before_log=False)).mel_power(torch.from_numpy(y)[None])[0]
    reference = librosa.feature.melspectrogram(y=y, pad_mode="reflect", **MUSICNN_MEL).T
    audible = reference > 1e-6 * reference.max()
    assert relative_error(ours.numpy(), reference)[audible].max() <= MAX_RELATIVE_ERROR


def musicnn_batch_data(audio_rep: np.ndarray, n_frames: int) -> np.ndarray:
    """musicnn.extractor.batch_data's patching loop, verbatim logic, overlap = n_frames."""
    last_frame = audio_rep.shape[0] - n_frames + 1
    patches = [audio_rep[t : t + n_frames] for t in range(0, last_frame, n_frames)]
    return np.stack(patches)


@pytest.mark.parametrize("frames", [187, 188, 373, 374, 375, 1000])
def test_patches_are_musicnns(frames):
    mel = torch.randn(frames, 96)
    patches = make_patches(mel, 187)
    np.testing.assert_array_equal(patches.numpy(), musicnn_batch_data(mel.numpy(), 187))
    assert patch_counts([frames], 187) == [len(patches)]


def test_a_clip_shorter_than_a_patch_is_tiled():
    half_second = MelFrontend()(torch.from_numpy(chord(0.5))[None])[0]
    assert half_second.shape == (32, 96)  # 1 + 8000 // 256
    patches = make_patches(half_second, 187)
    assert patches.shape == (1, 187, 96)
    for start in range(0, 187, 32):
        chunk = patches[0, start : start + 32]
        torch.testing.assert_close(chunk, half_second[: len(chunk)])
    assert patch_counts([32, 187, 400], 187) == [1, 1, 2]


def test_patches_of_a_padded_batch():
    mels = torch.randn(3, 400, 96)
    patches, counts = make_patches_batch(mels, [400, 200, 50], 187)
    assert counts == [2, 1, 1] and patches.shape == (4, 187, 96)
    torch.testing.assert_close(patches[2], mels[1, :187])
    torch.testing.assert_close(patches[3], make_patches(mels[2, :50], 187)[0])
    with pytest.raises(ValueError, match="frame counts"):
        make_patches_batch(mels, [401, 1, 1], 187)
    with pytest.raises(ValueError, match="no frames"):
        make_patches(torch.zeros(0, 96), 187)
