"""Generated music-like clips with known tempo, key, mode, loudness, instruments and mood.

Everything is deterministic numpy synthesis from a seed, so evaluation sets (tempo/key
benchmarks, zero-shot tag retrieval) need no downloaded audio. A clip is a few bars of a
chord progression in one key that leans on tonic and dominant (I–IV–V–I, or i–iv–v–i with
the minor third in every minor chord) so the mode is audible; melody notes fall on the beats;
drums fall exactly on the bpm grid; the mix is scaled to a target RMS level in dBFS.

    spec = ClipSpec(bpm=128, tonic="F#", mode="minor", instruments=("piano", "bass"),
                    drums="four_on_the_floor", loudness_db=-14)
    audio = render(spec)                      # float32 mono, 16 kHz
    for spec, tags in evaluation_set(n_per_group=4, seed=0): ...
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
SCALE_STEPS = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}  # natural minor
# Progressions as 0-based scale degrees, one chord per bar; each starts and ends on the tonic
# or its dominant so the key centre is unambiguous.
PROGRESSIONS = ((0, 3, 4, 0), (0, 4, 3, 0), (0, 3, 0, 4), (0, 5, 3, 4))
INSTRUMENTS = ("piano", "guitar", "strings", "violin", "flute", "organ", "synth", "bass", "vocal")
DRUM_STYLES = ("none", "rock", "four_on_the_floor", "halftime")
MELODY_INSTRUMENTS = ("violin", "flute", "vocal")
# Ground-truth words each instrument puts in a clip's tag set (a violin is also strings).
INSTRUMENT_TAGS = {name: frozenset({name}) for name in INSTRUMENTS} | {
    "violin": frozenset({"violin", "strings"})}
# Drum patterns on a 16-step (sixteenth-note) grid per 4/4 bar: (kick, snare, closed hat, open hat).
DRUM_PATTERNS = {
    "rock": ((0, 8, 10), (4, 12), tuple(range(0, 16, 2)), ()),
    "four_on_the_floor": ((0, 4, 8, 12), (4, 12), (0, 4, 8, 12), (2, 6, 10, 14)),
    "halftime": ((0, 6), (8,), tuple(range(0, 16, 2)), ()),
}
# Thresholds that define the ground-truth words of evaluation_set.
FAST_BPM, SLOW_BPM = 120.0, 85.0
LOUD_DB, QUIET_DB = -16.0, -24.0


@dataclass(frozen=True)
class ClipSpec:
    """What to render. `tonic` is spelled with sharps; `loudness_db` is the mix's RMS in dBFS;
    `drums` is a style name from DRUM_STYLES (True means "rock", False "none")."""
    bpm: float
    tonic: str
    mode: str
    instruments: tuple[str, ...]
    drums: bool | str
    loudness_db: float
    seconds: float = 10.0
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.drums, bool):
            object.__setattr__(self, "drums", "rock" if self.drums else "none")
        object.__setattr__(self, "instruments", tuple(self.instruments))
        if self.tonic not in NOTE_NAMES:
            raise ValueError(f"tonic {self.tonic!r} is not one of {', '.join(NOTE_NAMES)} (sharps only)")
        if self.mode not in SCALE_STEPS:
            raise ValueError(f"mode {self.mode!r} must be 'major' or 'minor'")
        if self.drums not in DRUM_STYLES:
            raise ValueError(f"drums {self.drums!r} must be one of {', '.join(DRUM_STYLES)}")
        unknown = [name for name in self.instruments if name not in INSTRUMENTS]
        if unknown:
            raise ValueError(f"unknown instruments {unknown}; known: {', '.join(INSTRUMENTS)}")
        if not self.instruments and self.drums == "none":
            raise ValueError("a clip needs at least one instrument or a drum style")
        if not 20.0 <= self.bpm <= 400.0:
            raise ValueError(f"bpm {self.bpm} outside 20..400")
        if not self.seconds > 0:
            raise ValueError(f"seconds must be positive, got {self.seconds}")


def midi_to_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear attack, flat sustain, linear release over n samples."""
    env = np.ones(n, dtype=np.float32)
    a, r = min(n, max(1, int(attack * sr))), min(n, max(1, int(release * sr)))
    env[:a] *= np.linspace(0.0, 1.0, a, dtype=np.float32)
    env[n - r:] *= np.linspace(1.0, 0.0, r, dtype=np.float32)
    return env


def _phase(freq: float, n: int, sr: int, vibrato_hz=0.0, vibrato_depth=0.0, detune_cents=0.0):
    """Phase in cycles of a tone with optional vibrato (depth as a fraction of frequency)."""
    t = np.arange(n, dtype=np.float64) / sr
    inst = freq * 2.0 ** (detune_cents / 1200.0) * (1.0 + vibrato_depth * np.sin(2 * np.pi * vibrato_hz * t))
    return np.cumsum(inst) / sr


def _saw(phase: np.ndarray, freq: float, sr: int) -> np.ndarray:
    """Sawtooth with PolyBLEP correction at the wrap, so aliasing stays low at 16 kHz."""
    t, dt = phase % 1.0, freq / sr
    saw = 2.0 * t - 1.0
    low, high = t < dt, t > 1.0 - dt
    x = t[low] / dt
    saw[low] -= 2.0 * x - x * x - 1.0
    x = (t[high] - 1.0) / dt
    saw[high] -= x * x + 2.0 * x + 1.0
    return saw


def _spectral_filter(signal: np.ndarray, sr: int, gain_of_hz) -> np.ndarray:
    """Zero-phase filtering by a magnitude response in the FFT domain (vectorised; no scipy)."""
    spectrum = np.fft.rfft(signal)
    spectrum *= gain_of_hz(np.fft.rfftfreq(len(signal), 1.0 / sr))
    return np.fft.irfft(spectrum, len(signal)).astype(np.float32)


def _lowpass(cutoff_hz: float, order: int = 2):
    return lambda f: 1.0 / np.sqrt(1.0 + (f / cutoff_hz) ** (2 * order))


def _highpass(cutoff_hz: float, order: int = 2):
    return lambda f: 1.0 / np.sqrt(1.0 + (cutoff_hz / np.maximum(f, 1e-3)) ** (2 * order))


# --- instrument voices: (midi, n samples, sr, rng) -> float32 note --------------------------

def _piano(midi, n, sr, rng):
    """Inharmonic partials with per-partial exponential decay, plus a short hammer click."""
    f0, t = midi_to_hz(midi), np.arange(n) / sr
    note = np.zeros(n)
    for k in range(1, 8):
        fk = k * f0 * np.sqrt(1.0 + 4e-4 * k * k)  # string stiffness: stretched partials
        if fk >= sr / 2:
            break
        decay = 1.2 * (261.6 / f0) ** 0.5 / (1.0 + 0.35 * k)
        note += np.sin(2 * np.pi * fk * t) * np.exp(-t / decay) / k
    click = int(0.004 * sr)
    note[:click] += rng.standard_normal(click) * 0.15 * np.linspace(1, 0, click)
    return note * _envelope(n, sr, 0.002, 0.06)


def _guitar(midi, n, sr, rng):
    """Karplus–Strong plucked string, computed a whole period at a time."""
    period = max(2, int(round(sr / midi_to_hz(midi) - 0.5)))  # the 2-tap average adds half a sample
    damping = 10.0 ** (-3.0 * period / (sr * 2.5))  # reach -60 dB in about 2.5 s
    previous = rng.uniform(-1, 1, period)
    previous = 0.5 * (previous + np.roll(previous, 1))  # softer pick: a little low-passed
    blocks, carry = [previous], previous[-1]
    for _ in range(n // period):
        current = damping * 0.5 * (previous + np.concatenate(([carry], previous[:-1])))
        carry, previous = previous[-1], current
        blocks.append(current)
    return np.concatenate(blocks)[:n] * _envelope(n, sr, 0.001, 0.05)


def _strings(midi, n, sr, rng):
    """Ensemble: three detuned sawtooths with vibrato and a slow bowed attack."""
    f0 = midi_to_hz(midi)
    note = sum(_saw(_phase(f0, n, sr, 5.5, 0.003, cents), f0, sr) for cents in (-7.0, 0.0, 7.0))
    return note / 3.0 * _envelope(n, sr, 0.18, 0.15)


def _violin(midi, n, sr, rng):
    """Solo bowed string: one sawtooth, wider vibrato, quicker attack than the ensemble."""
    f0 = midi_to_hz(midi)
    return _saw(_phase(f0, n, sr, 6.0, 0.006), f0, sr) * _envelope(n, sr, 0.07, 0.08)


def _flute(midi, n, sr, rng):
    """Nearly pure tone with vibrato, a weak second harmonic and breath noise."""
    f0 = midi_to_hz(midi)
    phase = 2 * np.pi * _phase(f0, n, sr, 5.0, 0.004)
    breath = np.diff(rng.standard_normal(n + 1)) * 0.06  # differenced noise: airy, high-tilted
    return (np.sin(phase) + 0.2 * np.sin(2 * phase) + breath) * _envelope(n, sr, 0.05, 0.08)


def _organ(midi, n, sr, rng):
    """Drawbar-style sum of sine harmonics (8', 4', 2 2/3', 2') without decay."""
    f0 = midi_to_hz(midi)
    phase = 2 * np.pi * _phase(f0, n, sr)
    note = sum(a * np.sin(k * phase) for k, a in ((1, 1.0), (2, 0.7), (3, 0.5), (4, 0.35)) if k * f0 < sr / 2)
    return note * _envelope(n, sr, 0.01, 0.03)


def _synth(midi, n, sr, rng):
    """Pad: two detuned sawtooths (low-passed later, per track)."""
    f0 = midi_to_hz(midi)
    note = _saw(_phase(f0, n, sr, detune_cents=-10), f0, sr) + _saw(_phase(f0, n, sr, detune_cents=10), f0, sr)
    return note * 0.5 * _envelope(n, sr, 0.04, 0.1)


def _bass(midi, n, sr, rng):
    """Plucked electric-bass-like tone: saturated sine with a decaying envelope."""
    f0, t = midi_to_hz(midi), np.arange(n) / sr
    phase = 2 * np.pi * f0 * t
    return np.tanh(1.5 * (np.sin(phase) + 0.3 * np.sin(2 * phase))) * np.exp(-t / 0.5) * _envelope(n, sr, 0.005, 0.04)


# Vowel formants (F1, F2, F3 in Hz) after Peterson & Barney (1952), adult male averages.
VOWEL_FORMANTS = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010),
                  "o": (570, 840, 2410), "u": (300, 870, 2240)}


def _vocal(midi, n, sr, rng):
    """Glottal pulse train with vibrato through a vowel's three formant resonances."""
    phase = _phase(midi_to_hz(midi), n, sr, 5.5, 0.01)
    pulses = np.zeros(n)
    pulses[1:][np.diff(np.floor(phase)) > 0] = 1.0
    formants = VOWEL_FORMANTS[tuple(VOWEL_FORMANTS)[rng.integers(len(VOWEL_FORMANTS))]]

    def vocal_tract(f):
        gain = 1.0 / (1.0 + (f / 150.0) ** 2) * (f / 150.0)  # glottal roll-off times lip radiation
        for centre, bandwidth in zip(formants, (80.0, 90.0, 120.0)):
            gain = gain / np.sqrt((1 - (f / centre) ** 2) ** 2 + (f * bandwidth / centre ** 2) ** 2)
        return gain
    return _spectral_filter(pulses, sr, vocal_tract) * _envelope(n, sr, 0.04, 0.08)


VOICES = {"piano": _piano, "guitar": _guitar, "strings": _strings, "violin": _violin,
          "flute": _flute, "organ": _organ, "synth": _synth, "bass": _bass, "vocal": _vocal}
# Per-track tone shaping applied to the summed notes of an instrument.
TRACK_FILTERS = {"strings": _lowpass(2500.0), "violin": lambda f: _lowpass(4000.0)(f) * _highpass(200.0)(f),
                 "synth": _lowpass(1800.0, 3), "flute": _lowpass(6000.0)}


# --- drums -----------------------------------------------------------------------------------

def _drum_sounds(sr: int, rng) -> dict[str, np.ndarray]:
    t = np.arange(int(0.4 * sr)) / sr
    kick_hz = 50.0 + 110.0 * np.exp(-t / 0.03)  # pitch drop gives the thump
    kick = np.sin(2 * np.pi * np.cumsum(kick_hz) / sr) * np.exp(-t / 0.22)
    ts = t[: int(0.25 * sr)]
    snare_noise = _spectral_filter(rng.standard_normal(len(ts)), sr, _highpass(1200.0))
    snare = 0.5 * np.sin(2 * np.pi * 185.0 * ts) * np.exp(-ts / 0.06) + snare_noise * np.exp(-ts / 0.09)
    th = t[: int(0.2 * sr)]
    hat_noise = _spectral_filter(rng.standard_normal(len(th)), sr, _highpass(6000.0, 4))
    return {"kick": kick, "snare": 0.8 * snare, "hat": 0.35 * hat_noise * np.exp(-th / 0.025),
            "open_hat": 0.3 * hat_noise * np.exp(-th / 0.12)}


def _drum_track(spec: ClipSpec, n: int, sr: int, rng) -> np.ndarray:
    track = np.zeros(n + sr)
    sounds = _drum_sounds(sr, rng)
    step_seconds = 60.0 / spec.bpm / 4.0
    n_steps = int(np.ceil(spec.seconds / step_seconds))
    for name, steps in zip(("kick", "snare", "hat", "open_hat"), DRUM_PATTERNS[spec.drums]):
        for step in range(n_steps):
            if step % 16 in steps:
                start = int(round(step * step_seconds * sr))  # exactly on the grid
                accent = 1.0 if step % 4 == 0 else 0.8
                sound = sounds[name] * accent * rng.uniform(0.9, 1.0)
                track[start:start + len(sound)] += sound
    return track[:n]


# --- arrangement -----------------------------------------------------------------------------

def _degree_midi(tonic_midi: int, mode: str, degree: int) -> int:
    steps = SCALE_STEPS[mode]
    return tonic_midi + 12 * (degree // 7) + steps[degree % 7]


def _note_events(spec: ClipSpec, instrument: str, melody_player: str | None, rng):
    """(start seconds, duration seconds, midi) for one instrument's part."""
    beat = 60.0 / spec.bpm
    tonic_midi = 48 + NOTE_NAMES.index(spec.tonic)  # C3..B3
    progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    events, n_beats = [], int(np.ceil(spec.seconds / beat))
    for beat_index in range(n_beats):
        start = beat_index * beat
        degree = progression[(beat_index // 4) % len(progression)]
        chord = [_degree_midi(tonic_midi, spec.mode, degree + step) for step in (0, 2, 4)]
        on_downbeat = beat_index % 4 == 0
        if instrument == melody_player:
            # Chord tones two octaves up; the root on each downbeat, then root/third/fifth.
            pick = 0 if on_downbeat else int(rng.choice(3, p=(0.4, 0.35, 0.25)))
            events.append((start, beat * 0.95, chord[pick] + 24))
        elif instrument in MELODY_INSTRUMENTS and beat_index % 2 == 0:
            # A second melodic voice sings/plays a harmony: the chord's third, held two beats.
            events.append((start, 2 * beat * 0.95, chord[1] + 12))
        if instrument in ("piano", "guitar"):
            strum = 0.012 if instrument == "guitar" else 0.0
            events += [(start + i * strum, beat * 0.95, m + 12) for i, m in enumerate(chord)]
        elif instrument in ("strings", "organ", "synth") and on_downbeat:
            events += [(start, 4 * beat, m + 12) for m in chord]
        elif instrument == "bass" and beat_index % 2 == 0:
            events.append((start, 2 * beat * 0.9, chord[0] - 12))
    return events


def render(spec: ClipSpec, sample_rate: int = 16000) -> np.ndarray:
    """The clip as float32 mono in [-1, 1], RMS at `spec.loudness_db` dBFS unless the soft
    limiter had to act (only for very loud targets)."""
    rng = np.random.default_rng(spec.seed)
    n = int(round(spec.seconds * sample_rate))
    melody_candidates = [name for name in spec.instruments if name in MELODY_INSTRUMENTS]
    melody_player = melody_candidates[0] if melody_candidates else (
        "piano" if "piano" in spec.instruments else None)
    tracks = []
    for instrument in spec.instruments:
        track, note_cache = np.zeros(n + 4 * sample_rate), {}
        for start, duration, midi in _note_events(spec, instrument, melody_player, rng):
            length = int(duration * sample_rate)
            key = (midi, length) if instrument != "vocal" else None  # vowels vary per note
            if key not in note_cache:
                note_cache[key] = VOICES[instrument](midi, length, sample_rate, rng)
            offset = int(round(start * sample_rate))
            track[offset:offset + length] += note_cache[key]
        track = track[:n]
        if instrument in TRACK_FILTERS:
            track = _spectral_filter(track, sample_rate, TRACK_FILTERS[instrument])
        tracks.append(_unit_rms(track) * (0.6 if melody_player not in (None, instrument) else 0.8))
    if spec.drums != "none":
        tracks.append(_unit_rms(_drum_track(spec, n, sample_rate, rng)) * 0.9)
    mix = _unit_rms(np.sum(tracks, axis=0)) * 10.0 ** (spec.loudness_db / 20.0)
    peak = np.max(np.abs(mix))
    if peak > 0.98:  # soft-limit like a mastered record instead of hard clipping
        mix = 0.98 * np.tanh(mix / 0.98)
    return mix.astype(np.float32)


def _unit_rms(signal: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.mean(np.square(signal)))
    return signal / rms if rms > 0 else signal


def write_wav(path: str | Path, audio: np.ndarray, sr: int) -> Path:
    """Write mono float audio as 16-bit PCM WAV (values clipped to [-1, 1])."""
    import soundfile
    path = Path(path)
    soundfile.write(str(path), np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0), sr, subtype="PCM_16")
    return path


# --- the evaluation set ----------------------------------------------------------------------
# Groups of clips with the cues music-emotion research finds strongest (Juslin & Laukka 2003:
# tempo and loudness carry arousal, mode carries valence). Mood words follow from the clip's
# own flags, not from its group, by MOOD_RULES:
#   calm = slow and quiet;   energetic = fast and loud;
#   sad = slow, minor and quiet;   tender = slow, major and quiet;   happy = fast, major and loud.
# "fast" means bpm >= FAST_BPM, "slow" bpm <= SLOW_BPM, "loud" RMS >= LOUD_DB, "quiet" <= QUIET_DB.
MOOD_RULES = {
    "calm": lambda w: {"slow", "quiet"} <= w,
    "energetic": lambda w: {"fast", "loud"} <= w,
    "sad": lambda w: {"slow", "minor", "quiet"} <= w,
    "tender": lambda w: {"slow", "major", "quiet"} <= w,
    "happy": lambda w: {"fast", "major", "loud"} <= w,
}
_SOFT = ("piano", "guitar", "strings", "violin", "flute", "vocal")
_BAND = ("guitar", "synth", "bass", "piano", "organ", "vocal", "strings")
# name: (bpm range, modes, loudness range dBFS, instrument pool, drum styles). Every drum style
# appears at every tempo, so tempo is measured across patterns, not one pattern per tempo.
EVALUATION_GROUPS = {
    "slow_minor_quiet": ((60, 84), ("minor",), (-32, -26), _SOFT, DRUM_STYLES),
    "slow_major_quiet": ((60, 84), ("major",), (-32, -26), _SOFT, DRUM_STYLES),
    "fast_major_loud": ((122, 180), ("major",), (-14, -10), _BAND, DRUM_STYLES),
    "fast_minor_loud": ((122, 180), ("minor",), (-14, -10), _BAND, DRUM_STYLES),
    "moderate": ((90, 115), ("major", "minor"), (-22, -18), INSTRUMENTS, DRUM_STYLES),
}
_ONSET_INSTRUMENTS = ("piano", "guitar")  # they play on every beat; the bass on every other


def clip_tags(spec: ClipSpec) -> frozenset[str]:
    """Ground-truth words of a clip: instruments, drums, tempo, loudness, mode and mood."""
    words = set().union(*(INSTRUMENT_TAGS[name] for name in spec.instruments)) | {spec.mode}
    if spec.drums != "none":
        words.add("drums")
    if spec.bpm >= FAST_BPM:
        words.add("fast")
    elif spec.bpm <= SLOW_BPM:
        words.add("slow")
    if spec.loudness_db >= LOUD_DB:
        words.add("loud")
    elif spec.loudness_db <= QUIET_DB:
        words.add("quiet")
    words |= {mood for mood, rule in MOOD_RULES.items() if rule(words)}
    return frozenset(words)


def evaluation_set(n_per_group: int, seed: int = 0, seconds: float = 10.0) -> list[tuple[ClipSpec, frozenset[str]]]:
    """`n_per_group` clips from each of EVALUATION_GROUPS (tempo 60–180 BPM over every drum
    style, all 12 tonics, both modes), each with its ground-truth tag set."""
    if n_per_group < 1:
        raise ValueError(f"n_per_group must be at least 1, got {n_per_group}")
    rng = np.random.default_rng(seed)
    clips = []
    for bpm_range, modes, db_range, pool, drum_styles in EVALUATION_GROUPS.values():
        for _ in range(n_per_group):
            drums = str(rng.choice(drum_styles))
            instruments = list(rng.choice(pool, size=int(rng.integers(1, 4)), replace=False))
            if drums == "none" and not set(instruments) & set(_ONSET_INSTRUMENTS):
                instruments.append(str(rng.choice(_ONSET_INSTRUMENTS)))  # something marks every beat
            if instruments == ["bass"]:  # roots alone leave the mode unheard: add a chord or tune
                instruments.append(str(rng.choice([name for name in pool if name != "bass"])))
            spec = ClipSpec(bpm=round(float(rng.uniform(*bpm_range)), 1), tonic=str(rng.choice(NOTE_NAMES)),
                            mode=str(rng.choice(modes)), instruments=tuple(str(i) for i in instruments),
                            drums=drums, loudness_db=round(float(rng.uniform(*db_range)), 1),
                            seconds=seconds, seed=int(rng.integers(2**31)))
            clips.append((spec, clip_tags(spec)))
    return clips
