"""Musical attributes on generated clips with known tempo, key, mode and loudness."""
import math

import numpy as np
import pytest

from mre.benchmarks.attribute_eval import mirex_key_score, tempo_outcome
from mre.benchmarks.synth import (ClipSpec, _lowpass, _spectral_filter, clip_tags, evaluation_set,
                                  render, write_wav)
from mre.embedder.audio.attributes import (ATTRIBUTE_NAMES, TrackAttributes, extract_attributes,
                                           k_weighting_biquads)

SR = 16000


@pytest.fixture(scope="module")
def small_set():
    """25 clips (5 per evaluation group), rendered and analysed once."""
    return [(spec, extract_attributes(render(spec, SR), SR)) for spec, _ in evaluation_set(5, seed=123)]


@pytest.fixture(scope="module")
def band_clip():
    return render(ClipSpec(bpm=100, tonic="D", mode="minor", instruments=("piano", "bass", "strings"),
                           drums="rock", loudness_db=-18, seed=3), SR)


def test_tempo_and_mode_on_generated_set(small_set):
    outcomes = [tempo_outcome(attributes.bpm, spec.bpm) for spec, attributes in small_set]
    assert np.mean([o == "exact" for o in outcomes]) >= 0.8
    assert np.mean([o != "wrong" for o in outcomes]) >= 0.9  # octave errors aside
    assert np.mean([attributes.mode == spec.mode for spec, attributes in small_set]) >= 0.7
    assert np.mean([mirex_key_score(a.key, a.mode, s.tonic, s.mode) for s, a in small_set]) >= 0.6


def test_every_attribute_is_finite_and_in_range(small_set):
    for _, attributes in small_set:
        values = attributes.as_dict()
        assert tuple(values) == ATTRIBUTE_NAMES
        assert all(math.isfinite(v) for v in values.values() if isinstance(v, float))
        for name in ("bpm_confidence", "key_confidence", "percussiveness", "beat_strength"):
            assert 0.0 <= values[name] <= 1.0, name
        assert values["key"] in ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
        assert (values["mode"] == "major") == (values["mode_strength"] >= 0)


def _assert_finite(attributes: TrackAttributes):
    assert all(math.isfinite(v) for v in attributes.as_dict().values() if isinstance(v, float))


def test_silence_has_no_pulse_no_key_and_floor_loudness():
    attributes = extract_attributes(np.zeros(5 * SR, dtype=np.float32), SR)
    _assert_finite(attributes)
    assert (attributes.bpm, attributes.bpm_confidence) == (0.0, 0.0)
    assert (attributes.key, attributes.mode, attributes.key_confidence) == ("", "", 0.0)
    assert attributes.loudness_db == -70.0
    assert attributes.onset_density == 0.0 and attributes.brightness == 0.0


def test_half_second_clip_is_too_short_for_a_tempo(band_clip):
    attributes = extract_attributes(band_clip[: SR // 2], SR)
    _assert_finite(attributes)
    assert (attributes.bpm, attributes.bpm_confidence) == (0.0, 0.0)
    assert attributes.key != ""


def test_white_noise_has_no_pulse():
    noise = 0.1 * np.random.default_rng(0).standard_normal(10 * SR).astype(np.float32)
    attributes = extract_attributes(noise, SR)
    _assert_finite(attributes)
    assert (attributes.bpm, attributes.bpm_confidence) == (0.0, 0.0)
    assert attributes.brightness > 3000  # flat spectrum to 8 kHz: centroid near 4 kHz


def test_a_steady_tone_or_a_few_clicks_have_no_pulse():
    """One onset at the start and one where the file is cut are no beat, however periodic the
    autocorrelation of a lone click looks; four clicks a beat apart are."""
    seconds = np.arange(6 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * seconds)).astype(np.float32)  # cut off mid-cycle at both ends
    level = np.full(6 * SR, 0.5, dtype=np.float32)  # a DC offset: a step in and a step out
    beat = int(0.5 * SR)  # 120 BPM

    def clicks(n):
        y = np.zeros(6 * SR, dtype=np.float32)
        for i in range(n):
            y[SR // 2 + i * beat: SR // 2 + i * beat + 80] = np.hanning(80) * 0.8
        return y

    for name, y in (("tone", tone), ("level", level), ("two clicks", clicks(2))):
        attributes = extract_attributes(y, SR)
        assert (attributes.bpm, attributes.bpm_confidence) == (0.0, 0.0), name
    assert tempo_outcome(extract_attributes(clicks(10), SR).bpm, 120.0) != "wrong"


def test_clipped_and_over_full_scale_input_stay_finite(band_clip):
    clipped = extract_attributes(np.clip(band_clip * 40.0, -1.0, 1.0), SR)
    _assert_finite(clipped)
    assert clipped.loudness_db > -6.0
    assert abs(clipped.bpm / 100.0 - 1.0) <= 0.04 or clipped.bpm_confidence < 0.5
    _assert_finite(extract_attributes(band_clip * 50.0, SR))  # floats beyond +-1, unclipped


def test_twelve_db_quieter_reads_twelve_db_lower(band_clip):
    loud = extract_attributes(band_clip, SR).loudness_db
    quiet = extract_attributes(band_clip * 10 ** (-12 / 20), SR).loudness_db
    assert loud - quiet == pytest.approx(12.0, abs=0.05)


def test_loudness_matches_time_domain_bs1770():
    """Our STFT-domain K-weighting against the standard's filters run in the time domain."""
    signal = pytest.importorskip("scipy.signal")
    tone = 0.1 * np.sin(2 * np.pi * 1000 * np.arange(5 * SR) / SR).astype(np.float32)
    # BS.1770: a 1 kHz sine's K-weighted level equals its RMS level, so 0.1 peak is -23.01 LUFS.
    assert extract_attributes(tone, SR).loudness_db == pytest.approx(-23.01, abs=0.1)
    music = render(ClipSpec(90, "G", "major", ("guitar", "bass", "vocal"), "halftime", -20, seed=9), SR)
    weighted = music.astype(np.float64)
    for b, a in k_weighting_biquads(SR):
        weighted = signal.lfilter(b, a, weighted)
    block, step = int(0.4 * SR), int(0.1 * SR)
    powers = np.array([np.mean(weighted[i:i + block] ** 2) for i in range(0, len(weighted) - block + 1, step)])
    lufs = lambda p: -0.691 + 10 * np.log10(p)
    powers = powers[lufs(powers) > -70]
    powers = powers[lufs(powers) > lufs(powers.mean()) - 10]
    assert extract_attributes(music, SR).loudness_db == pytest.approx(lufs(powers.mean()), abs=0.3)


def test_k_weighting_reproduces_the_standards_48k_coefficients():
    (shelf_b, shelf_a), (highpass_b, highpass_a) = k_weighting_biquads(48000)
    np.testing.assert_allclose(shelf_b, [1.53512485958697, -2.69169618940638, 1.19839281085285], rtol=1e-9)
    np.testing.assert_allclose(shelf_a, [1.0, -1.69065929318241, 0.73248077421585], rtol=1e-9)
    np.testing.assert_allclose(highpass_a, [1.0, -1.99004745483398, 0.99007225036621], rtol=1e-9)


def test_low_passed_audio_is_darker(band_clip):
    dark = _spectral_filter(band_clip, SR, _lowpass(800.0, 4))
    assert extract_attributes(dark, SR).brightness < 0.6 * extract_attributes(band_clip, SR).brightness


def test_drums_are_more_percussive_than_a_string_pad():
    drums = render(ClipSpec(110, "C", "major", (), "rock", -18), SR)
    pad = render(ClipSpec(110, "C", "major", ("strings",), "none", -18), SR)
    assert extract_attributes(drums, SR).percussiveness > extract_attributes(pad, SR).percussiveness + 0.2


@pytest.mark.parametrize("bpm", [80, 160])
def test_onset_density_counts_one_piano_chord_per_beat(bpm):
    piano = render(ClipSpec(bpm, "A", "minor", ("piano",), "none", -18), SR)
    assert extract_attributes(piano, SR).onset_density == pytest.approx(bpm / 60, rel=0.15)


def test_other_sample_rates_give_the_same_tempo_and_key():
    spec = ClipSpec(bpm=132, tonic="F#", mode="major", instruments=("guitar", "organ"), drums="four_on_the_floor",
                    loudness_db=-16, seed=4)
    at_16k, at_22k = extract_attributes(render(spec, 16000), 16000), extract_attributes(render(spec, 22050), 22050)
    assert at_16k.bpm == pytest.approx(132, rel=0.04) and at_22k.bpm == pytest.approx(132, rel=0.04)
    assert (at_16k.key, at_16k.mode) == (at_22k.key, at_22k.mode) == ("F#", "major")


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, SR), dtype=np.float32), "mono"),
    (np.zeros(0, dtype=np.float32), "no samples"),
    (np.zeros(SR, dtype=np.int16), "float"),
    (np.array([0.0, np.nan] * SR, dtype=np.float32), "NaN"),
])
def test_bad_waveforms_raise_one_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        extract_attributes(bad, SR)


def test_bad_sample_rate_raises():
    with pytest.raises(ValueError, match="sample_rate"):
        extract_attributes(np.zeros(SR, dtype=np.float32), 0)


# --- the generator the evaluation rests on ---------------------------------------------------

def test_render_is_deterministic_and_at_the_requested_level():
    spec = ClipSpec(bpm=120, tonic="C#", mode="minor", instruments=("vocal", "guitar"), drums=True,
                    loudness_db=-20, seconds=3.0, seed=1)
    first, second = render(spec), render(spec)
    assert first.dtype == np.float32 and first.shape == (3 * SR,)
    np.testing.assert_array_equal(first, second)
    assert 20 * np.log10(np.sqrt(np.mean(first.astype(np.float64) ** 2))) == pytest.approx(-20, abs=0.05)
    assert spec.drums == "rock"


def test_evaluation_tags_follow_the_documented_rules():
    clips = evaluation_set(3, seed=0)
    assert len(clips) == 15
    for spec, tags in clips:
        assert spec.mode in tags and set(spec.instruments) <= tags
        assert ("sad" in tags) == ({"slow", "minor", "quiet"} <= tags)
        assert ("calm" in tags) == ({"slow", "quiet"} <= tags)
        assert ("energetic" in tags) == ({"fast", "loud"} <= tags)
        assert ("happy" in tags) == ({"fast", "major", "loud"} <= tags)
        assert ("drums" in tags) == (spec.drums != "none")
    assert clip_tags(ClipSpec(70, "A", "minor", ("violin",), "none", -30)) >= {"violin", "strings", "sad", "calm"}


@pytest.mark.parametrize("kwargs, message", [
    ({"tonic": "Db"}, "sharps"), ({"mode": "dorian"}, "mode"), ({"drums": "jazz"}, "drums"),
    ({"instruments": ("kazoo",)}, "unknown instruments"), ({"bpm": 5}, "bpm"),
])
def test_clip_spec_rejects_bad_values(kwargs, message):
    values = dict(bpm=100, tonic="C", mode="major", instruments=("piano",), drums="none", loudness_db=-20)
    with pytest.raises(ValueError, match=message):
        ClipSpec(**(values | kwargs))


def test_write_wav_round_trips(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    audio = render(ClipSpec(100, "E", "major", ("flute",), "none", -20, seconds=1.0))
    read, rate = soundfile.read(str(write_wav(tmp_path / "clip.wav", audio, SR)), dtype="float32")
    assert rate == SR and np.max(np.abs(read - audio)) < 1e-3


def test_attributes_do_not_depend_on_the_blas_thread_count(tmp_path):
    """The same clip in a process whose BLAS runs one thread and in one that runs two (as a Ray
    worker and a local decode worker may) gives identical attributes, not merely close ones: a
    store's columns other than the vectors are the same whichever engine wrote them."""
    import json
    import os
    import subprocess
    import sys

    clip = render(ClipSpec(bpm=97, tonic="E", mode="major", instruments=("piano", "bass"), drums="rock",
                           loudness_db=-16, seed=5), SR)
    np.save(tmp_path / "clip.npy", clip)
    script = ("import json, sys, numpy as np; from mre.embedder.audio.attributes import extract_attributes; "
              f"a = extract_attributes(np.load(sys.argv[1]), {SR}); print(json.dumps([float(v) if isinstance(v, float) "
              "else v for v in a.__dict__.values()]))")
    results = []
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "clip.npy")], env=env,
                              capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout))
    assert results[0] == results[1]
