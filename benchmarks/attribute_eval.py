"""Tempo, key and mode accuracy of mre.embedder.audio.attributes on a generated evaluation set.

    python -m mre.benchmarks.attribute_eval [--n 20] [--seed 0] [--json OUT] [--no-librosa]

Clips come from mre.benchmarks.synth.evaluation_set (tempo 60–180 BPM over every drum style,
all 12 tonics, both modes). Tempo is scored as in MIREX audio tempo extraction: within 4 % of
the true tempo ("accuracy 1"); an estimate within 4 % of a half, double, third or triple is an
octave error, counted apart ("accuracy 2" adds them). Keys are scored exactly and with the MIREX
weighted score (fifth 0.5, relative 0.3, parallel 0.2). Baselines measured in the same run:
librosa's beat tracker and chroma_stft (same Krumhansl–Schmuckler key step) when librosa is
importable, and decoding the same audio from a WAV file, for the time per 3-minute track.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from mre.benchmarks.synth import NOTE_NAMES, ClipSpec, evaluation_set, render, write_wav
from mre.embedder.audio import attributes as A
from mre.embedder.audio.attributes import MAJOR_PROFILE, MINOR_PROFILE, estimate_key, extract_attributes

SAMPLE_RATE = 16000
TEMPO_TOLERANCE = 0.04  # MIREX audio tempo extraction
OCTAVE_FACTORS = (0.5, 2.0, 1.0 / 3.0, 3.0)


def tempo_outcome(estimated_bpm: float, true_bpm: float) -> str:
    """"exact" within 4 %, "octave" within 4 % of a half/double/third/triple, else "wrong"."""
    if abs(estimated_bpm / true_bpm - 1.0) <= TEMPO_TOLERANCE:
        return "exact"
    if any(abs(estimated_bpm / (true_bpm * f) - 1.0) <= TEMPO_TOLERANCE for f in OCTAVE_FACTORS):
        return "octave"
    return "wrong"


def mirex_key_score(tonic: str, mode: str, true_tonic: str, true_mode: str) -> float:
    """MIREX key detection weights: same key 1, perfect fifth 0.5, relative 0.3, parallel 0.2."""
    if tonic not in NOTE_NAMES:
        return 0.0
    interval = (NOTE_NAMES.index(tonic) - NOTE_NAMES.index(true_tonic)) % 12
    if mode == true_mode:
        return {0: 1.0, 7: 0.5, 5: 0.5}.get(interval, 0.0)
    relative = 9 if true_mode == "major" else 3  # A minor is C major's relative: tonic -3 semitones
    return 0.3 if interval == relative else 0.2 if interval == 0 else 0.0


def ours(y: np.ndarray, sr: int) -> tuple[float, str, str]:
    attributes = extract_attributes(y, sr)
    return attributes.bpm, attributes.key, attributes.mode


def fixed_rules(y: np.ndarray, sr: int) -> tuple[float, str, str]:
    """(bpm, tonic, mode) by the rules without learned decisions: the prior-weighted
    autocorrelation peak and Krumhansl & Kessler's profiles, on the same analysis."""
    frames = A._Spectrogram(y, sr, frame_seconds=0.032)
    analysis = A.tempo_analysis(A._onset_envelope(frames), frames.frame_rate)
    tonic, mode, _, _ = estimate_key(A.chroma_vector(y, sr), (MAJOR_PROFILE, MINOR_PROFILE))
    return (analysis[1] if analysis is not None else 0.0), tonic, mode


def librosa_baseline(y: np.ndarray, sr: int) -> tuple[float, str, str]:
    """librosa's beat tracker for tempo; librosa's chroma_stft with our key step."""
    import librosa
    tempo, _ = librosa.beat.beat_track(y=y, sr=sr)
    # Krumhansl & Kessler's profiles: the learned ones fit this module's chroma, not librosa's
    tonic, mode, _, _ = estimate_key(librosa.feature.chroma_stft(y=y, sr=sr).mean(axis=1), (MAJOR_PROFILE, MINOR_PROFILE))
    return float(np.atleast_1d(tempo)[0]), tonic, mode


def score(method, clips: list[tuple[ClipSpec, np.ndarray]]) -> dict:
    outcomes, modes, keys, weighted, seconds, slower = [], [], [], [], [], []
    per_style: dict[str, list[str]] = {}
    for spec, audio in clips:
        start = time.perf_counter()
        bpm, tonic, mode = method(audio, SAMPLE_RATE)
        seconds.append(time.perf_counter() - start)
        outcome = tempo_outcome(bpm, spec.bpm) if bpm > 0 else "wrong"
        outcomes.append(outcome)
        slower.append(outcome == "octave" and bpm < spec.bpm)
        per_style.setdefault(spec.drums, []).append(outcome)
        modes.append(mode == spec.mode)
        keys.append(mode == spec.mode and tonic == spec.tonic)
        weighted.append(mirex_key_score(tonic, mode, spec.tonic, spec.mode))
    fraction = lambda values, wanted="exact": float(np.mean([v == wanted for v in values]))
    return {
        "tempo_accuracy": fraction(outcomes),
        "tempo_octave_errors": fraction(outcomes, "octave"),
        "tempo_accuracy_with_octaves": fraction(outcomes) + fraction(outcomes, "octave"),
        # a fast clip read at half its tempo, or a slow one at double: the metrical level
        # (two-beat kick/snare cycles, eighth-note hi-hats), not the period, was mistaken
        "tempo_octave_errors_slower": float(np.mean(slower)),
        "tempo_accuracy_by_drum_style": {style: fraction(v) for style, v in sorted(per_style.items())},
        "mode_accuracy": float(np.mean(modes)),
        "key_accuracy": float(np.mean(keys)),
        "key_mirex_score": float(np.mean(weighted)),
        "seconds_per_clip": float(np.mean(seconds)),
    }


def full_track_seconds(methods: dict, seed: int, repeats: int = 3) -> dict:
    """Best-of-`repeats` seconds per 3-minute track, and decoding that track from WAV."""
    import soundfile
    spec = ClipSpec(bpm=124.0, tonic="A", mode="minor", instruments=("piano", "bass", "synth"),
                    drums="rock", loudness_db=-14.0, seconds=180.0, seed=seed)
    audio = render(spec, SAMPLE_RATE)
    best = lambda run: min(_timed(run) for _ in range(repeats))
    timings = {name: best(lambda m=method: m(audio, SAMPLE_RATE)) for name, method in methods.items()}
    with tempfile.TemporaryDirectory() as folder:
        path = write_wav(Path(folder) / "track.wav", audio, SAMPLE_RATE)
        timings["decode_wav"] = best(lambda: soundfile.read(str(path), dtype="float32"))
    return timings


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _one_thread():
    """Single-threaded BLAS/FFT, so the figures are per core."""
    try:
        from threadpoolctl import threadpool_limits
        return threadpool_limits(1)
    except ImportError:
        return nullcontext()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m mre.benchmarks.attribute_eval", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20, help="clips per evaluation group (5 groups)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--no-librosa", action="store_true", help="skip the librosa baseline")
    args = parser.parse_args(argv)
    methods = {"mre": ours, "fixed rules": fixed_rules}
    if not args.no_librosa:
        try:
            import librosa  # noqa: F401
            methods["librosa"] = librosa_baseline
        except ImportError:
            print("librosa not importable: no librosa baseline", file=sys.stderr)
    with _one_thread():
        clips = [(spec, render(spec, SAMPLE_RATE)) for spec, _ in evaluation_set(args.n, args.seed)]
        if "librosa" in methods:
            start = time.perf_counter()
            librosa_baseline(clips[0][1], SAMPLE_RATE)  # first call pays numba's JIT compilation
            first_call = time.perf_counter() - start
        results = {name: score(method, clips) for name, method in methods.items()}
        timings = full_track_seconds(methods, args.seed)
    report = {"clips": len(clips), "seed": args.seed, "methods": results, "seconds_per_3min_track": timings}
    if "librosa" in methods:
        report["librosa_first_call_seconds"] = first_call
    _print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


def _print(report: dict) -> None:
    print(f"{report['clips']} generated clips (seed {report['seed']}), tempo 60-180 BPM, 12 tonics, both modes")
    names = list(report["methods"])
    rows = [("tempo within 4 %", "tempo_accuracy"), ("  octave errors", "tempo_octave_errors"),
            ("    of which read slower", "tempo_octave_errors_slower"),
            ("  within 4 % incl. octaves", "tempo_accuracy_with_octaves"), ("mode right", "mode_accuracy"),
            ("key right (tonic and mode)", "key_accuracy"), ("key, MIREX weighted", "key_mirex_score"),
            ("seconds per 10 s clip", "seconds_per_clip")]
    print(f"{'':30}" + "".join(f"{name:>12}" for name in names))
    for label, key in rows:
        print(f"{label:30}" + "".join(f"{report['methods'][name][key]:12.3f}" for name in names))
    for style in report["methods"]["mre"]["tempo_accuracy_by_drum_style"]:
        print(f"{'  tempo, drums ' + style:30}" + "".join(
            f"{report['methods'][name]['tempo_accuracy_by_drum_style'][style]:12.3f}" for name in names))
    timings = report["seconds_per_3min_track"]
    print(f"3-minute track, one core: mre {timings['mre']:.3f} s = {timings['mre'] / timings['decode_wav']:.1f}x "
          f"decoding it from WAV ({timings['decode_wav']:.3f} s)")
    if "librosa" in timings:
        print(f"  librosa beat tracker + chroma_stft {timings['librosa']:.3f} s: mre takes "
              f"{timings['mre'] / timings['librosa']:.2f}x librosa's time; librosa's first call "
              f"(numba JIT) {report['librosa_first_call_seconds']:.1f} s")
        for key, label in (("tempo_accuracy", "tempo"), ("mode_accuracy", "mode")):
            ours_value, theirs = report["methods"]["mre"][key], report["methods"]["librosa"][key]
            print(f"  {label} accuracy mre/librosa: {ours_value / theirs if theirs else float('inf'):.2f}")


if __name__ == "__main__":
    main()
