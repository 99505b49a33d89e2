"""Playing an arrangement through a SoundFont, and the seeded variation around it.

Each part is rendered alone (a stem) with tinysoundfont, so parts can be balanced, the dub
echo can fall on the off-beat parts only, and a test can listen to the drums alone. The
variation — which SoundFont, timing and velocity humanisation, tuning, balance, room, EQ,
compression, noise, level, lossy coding, clip length and start — is drawn from the clip's
own generator (seed, index) and returned as a plain dict for the manifest.

MuseScore General is held out of every training corpus: it is the SoundFont evaluation sets
are rendered with, so a model must never have heard it. `check_soundfont` refuses it unless
the corpus is marked as a held-out evaluation set.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from mre.training.corpus import effects
from mre.training.corpus.arrangements import Arrangement
from mre.training.corpus.instruments import DRUM_KITS, instrument

HELD_OUT_NAME = re.compile(r"muse[\W_]*score[\W_]*general", re.IGNORECASE)
# What the Debian package musescore-general-soundfont installs, and the MuseScore program's own copy.
HELD_OUT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/sounds/sf3", "/usr/share/mscore", "/usr/share/musescore")
# dBFS RMS by dynamic: soft clips sit ~10 dB under medium ones, loud ones ~6 dB over, as
# quiet and loud passages of mastered music do (EBU R 128 loudness ranges of 5-20 LU).
# TinySoundFont's quick release after a reset: a held organ note falls silent 11.6 ms after it; 40 times that
RELEASE_SECONDS = 0.5
LEVEL_DBFS = {"soft": (-32.0, -27.0), "medium": (-24.0, -18.0), "loud": (-15.0, -11.0)}


class HeldOutSoundFont(ValueError):
    """A held-out SoundFont given for a training corpus."""


class SoundFontGap(ValueError):
    """The SoundFont lacks a part's instrument, or plays it silent at the part's notes (TimGM6mb's
    whistle in one 10 s solo of seed 0): the clip is rendered with another SoundFont."""


def is_held_out(path: str | Path) -> bool:
    """True for MuseScore General: by file name, by where Debian installs it (links followed),
    or by the name written inside the file (a renamed copy)."""
    path = Path(path)
    for candidate in {path, path.resolve()}:
        if HELD_OUT_NAME.search(candidate.name):
            return True
        text = str(candidate).lower()
        if any(text.startswith(d) for d in HELD_OUT_DIRS) and "musescore" in text:
            return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return HELD_OUT_NAME.search(head.decode("latin-1")) is not None


def check_soundfont(path: str | Path, held_out_evaluation: bool) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"SoundFont {path} does not exist")
    if path.suffix.lower() not in (".sf2", ".sf3"):
        raise ValueError(f"{path} is not a SoundFont (.sf2 or .sf3)")
    if is_held_out(path) and not held_out_evaluation:
        raise HeldOutSoundFont(f"{path.name} is MuseScore General, held out of training corpora; "
                               "render with it only for an evaluation set (--held-out-evaluation)")
    return path


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def draw_variation(arrangement: Arrangement, n_soundfonts: int, seconds: float, length_jitter: float) -> dict:
    """Everything about a clip's sound that is not the music, from the clip's own generator."""
    rng = np.random.default_rng([arrangement.seed, arrangement.index, 1])

    def u(low, high, digits=3):
        return round(float(rng.uniform(low, high)), digits)

    parts = arrangement.parts
    variation = {
        "soundfont": int(rng.integers(n_soundfonts)),
        "seconds": round(seconds * float(rng.uniform(1 - length_jitter, 1 + length_jitter)), 3),
        "start_s": round(float(rng.uniform(0, arrangement.meter)) * arrangement.seconds_per_beat, 3),
        "timing_ms": u(0.5, 1.5) * arrangement.humanise_ms if arrangement.humanise_ms else 0.0,
        "velocity_jitter": u(0, 10) if arrangement.humanise_ms else 0.0,
        "tuning_cents": u(-15, 15, 1),      # well inside a quarter tone: the key stays the key
        "levels_db": [round(p.level_db + float(rng.uniform(-3, 3)), 2) for p in parts],
        "eq": {"low_hz": u(60, 300, 0), "low_db": u(-6, 6, 1), "high_hz": u(2500, 9000, 0), "high_db": u(-9, 4, 1)},
        "reverb": {"rt60": u(0.2, 2.5, 2), "wet": u(0.05, 0.35, 2), "predelay_s": u(0, 0.03)} if rng.random() < 0.75 else None,
        "chorus": {"rate_hz": u(0.2, 1.5, 2), "depth_ms": u(1, 4, 1), "mix": u(0.2, 0.5, 2)} if rng.random() < 0.2 else None,
        "compression": {"threshold_db": u(-12, 0, 1), "ratio": u(1.5, 5, 1)} if rng.random() < 0.5 else None,
        "noise": {"snr_db": u(35, 70, 1), "colour": "pink" if rng.random() < 0.5 else "white"} if rng.random() < 0.5 else None,
        "level_dbfs": u(*LEVEL_DBFS[arrangement.dynamics], 1),
        "lossy_quality": u(0.1, 0.6, 2) if rng.random() < 0.15 else None,
        "echo": {"beats": 0.75, "feedback": u(0.35, 0.55, 2), "wet": u(0.3, 0.5, 2)} if arrangement.echo else None,
        "noise_seed": int(rng.integers(2 ** 31)),
    }
    return variation


class Renderer:
    """SoundFonts loaded once (per worker process); renders arrangements to mono float32."""

    def __init__(self, soundfonts: list[str | Path], sample_rate: int):
        import tinysoundfont

        self.sample_rate = sample_rate
        self.fonts = []
        for path in soundfonts:
            synth = tinysoundfont.Synth(samplerate=sample_rate)
            try:
                font_id = synth.sfload(str(path))
            except Exception as error:  # the binding raises a bare Exception on unreadable files
                raise ValueError(f"cannot load SoundFont {path}: {error}") from None
            self.fonts.append((synth, font_id))

    def stem(self, font: int, arrangement: Arrangement, part_index: int, variation: dict, rng) -> tuple[np.ndarray, dict]:
        """One part from time 0 to the clip's end (start + length), mono; and what was used."""
        synth, font_id = self.fonts[font]
        part = arrangement.parts[part_index]
        low_level = synth.soundfonts[font_id]
        low_level.reset()
        # reset only starts a quick release of the voices still sounding: rendered on, they would
        # take voice slots and change the order voices are summed in, so a clip's last bits
        # would depend on the clips this process rendered before. Let them die first.
        low_level.render(np.zeros((int(RELEASE_SECONDS * self.sample_rate), 2), dtype=np.float32), False)
        used = {}
        if part.drums:
            channel, preset = 9, DRUM_KITS[part.instrument].preset
            if synth.sfpreset_name(font_id, 128, preset) is None:
                preset = 0       # a GM SoundFont without GS drum sets: the standard kit
            synth.program_select(channel, font_id, 128, preset, True)
            used["drum_preset"] = preset
        else:
            channel, program = 0, instrument(part.instrument).program
            if synth.sfpreset_name(font_id, 0, program) is None:
                raise SoundFontGap(f"the SoundFont has no General MIDI program {program} ({part.instrument})")
            synth.program_select(channel, font_id, 0, program)
            low_level.channel_set_tuning(channel, variation["tuning_cents"] / 100.0)
        rate = self.sample_rate
        total = int(round((variation["start_s"] + variation["seconds"]) * rate))
        spb = arrangement.seconds_per_beat
        events = []
        sigma = variation["timing_ms"] / 1000.0
        for note in part.notes:
            on = note.start * spb + (rng.normal(0, sigma) if sigma else 0.0)
            # GM drum sounds are one-shots: the off only bounds a looped sample
            off = on + (1.5 if part.drums else note.length * spb)
            if on >= total / rate:
                continue
            velocity = note.velocity + (rng.normal(0, variation["velocity_jitter"]) if variation["velocity_jitter"] else 0)
            events.append((max(0, int(on * rate)), 1, note.pitch, float(np.clip(velocity, 1, 127)) / 127.0))
            events.append((max(0, int(off * rate)), 0, note.pitch, 0.0))
        events.sort(key=lambda e: (e[0], e[1]))
        buffer = np.zeros((total, 2), dtype=np.float32)
        position = 0
        for when, is_on, pitch, velocity in events:
            when = min(when, total)
            if when > position:
                low_level.render(buffer[position:when], False)
                position = when
            if position >= total:
                break
            if is_on:
                low_level.channel_note_on(channel, pitch, velocity)
            else:
                low_level.channel_note_off(channel, pitch)
        if position < total:
            low_level.render(buffer[position:], False)
        return (buffer[:, 0] + buffer[:, 1]) * 0.5, used

    def render(self, arrangement: Arrangement, variation: dict) -> tuple[np.ndarray, dict, dict[int, np.ndarray]]:
        """The finished clip, what the SoundFont supplied, and the dry stems (cut to the clip)."""
        rng = np.random.default_rng([arrangement.seed, arrangement.index, 2])
        rate = self.sample_rate
        start = int(round(variation["start_s"] * rate))
        used, stems = {}, {}
        for k, part in enumerate(arrangement.parts):
            stem, info = self.stem(variation["soundfont"], arrangement, k, variation, rng)
            if part.notes and not np.any(stem):
                raise SoundFontGap(f"clip {arrangement.index} ({arrangement.style}): the SoundFont plays "
                                   f"{part.instrument} silent")
            used.update(info)
            stems[k] = stem[start:].astype(np.float64)
        n = len(next(iter(stems.values())))
        mix = np.zeros(n)
        delayed = np.zeros(n)
        for k, part in enumerate(arrangement.parts):
            gain = 10.0 ** (variation["levels_db"][k] / 20.0)
            if variation["echo"] and part.role in ("chords", "drums", "melody"):
                delayed += gain * stems[k]
            else:
                mix += gain * stems[k]
        if variation["echo"]:
            e = variation["echo"]
            mix += effects.echo(delayed, rate, e["beats"] * arrangement.seconds_per_beat, e["feedback"], e["wet"])
        if not np.any(mix):
            raise SoundFontGap(f"clip {arrangement.index} ({arrangement.style}) rendered silent")
        if variation["chorus"]:
            mix = effects.chorus(mix, rate, **variation["chorus"])
        eq = variation["eq"]
        mix = effects.equalise(mix, rate, eq["low_hz"], eq["low_db"], eq["high_hz"], eq["high_db"])
        if variation["reverb"]:
            mix = effects.reverb(mix, rate, seed=variation["noise_seed"], **variation["reverb"])
        if variation["compression"]:
            mix = effects.compress(mix, rate, **variation["compression"])
        if variation["noise"]:
            rms = np.sqrt(np.mean(mix ** 2))
            mix = mix + effects.noise(n, variation["noise_seed"] + 1, variation["noise"]["colour"]) * rms * \
                10.0 ** (-variation["noise"]["snr_db"] / 20.0)
        mix, final_dbfs = effects.set_level(mix, rate, variation["level_dbfs"])
        if variation["lossy_quality"] is not None:
            mix = effects.lossy(mix, rate, variation["lossy_quality"])
        used["final_dbfs"] = round(final_dbfs, 2)
        return mix.astype(np.float32), used, stems
