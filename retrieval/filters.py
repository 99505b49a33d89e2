"""Search filters over the tracks table: tempo, key, mode, duration, harmonic compatibility.

Keys are spelled with sharps ("F#"); "Bb", "Bbm", "A minor", "a#" are read too.
`--compatible` is harmonic mixing as DJs use it (the Camelot wheel): the same key, its
relative major/minor, and the keys one step away on the circle of fifths in the same mode.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = {"DB": "C#", "EB": "D#", "GB": "F#", "AB": "G#", "BB": "A#", "CB": "B", "FB": "E"}


class FilterError(ValueError):
    """A filter a user typed that cannot be read (one line)."""


def parse_bpm(text: str) -> tuple[float, float]:
    """"120-128" → (120, 128); "124" → (124, 124)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:-\s*(\d+(?:\.\d+)?))?\s*", text or "")
    if not match:
        raise FilterError(f"--bpm takes a tempo or a range like 120-128, got {text!r}")
    low = float(match.group(1))
    high = float(match.group(2)) if match.group(2) else low
    if low > high:
        raise FilterError(f"--bpm range {text!r} runs backwards: write it low-high")
    return low, high


def parse_key(text: str) -> tuple[str, str | None]:
    """"A minor" / "Am" / "F#" / "Bb major" → (tonic with sharps, mode or None)."""
    match = re.fullmatch(r"\s*([A-Ga-g])\s*([#♯b♭]?)\s*(m|min|minor|maj|major)?\s*", text or "")
    if not match:
        raise FilterError(f'--key takes a key like "A minor", "F#" or "Bbm", got {text!r}')
    letter, accidental, mode = match.group(1).upper(), match.group(2), match.group(3)
    if accidental in ("b", "♭"):
        tonic = _FLATS.get(letter + "B") or PITCH_CLASSES[(PITCH_CLASSES.index(letter) - 1) % 12]
    elif accidental in ("#", "♯"):
        tonic = PITCH_CLASSES[(PITCH_CLASSES.index(letter) + 1) % 12]
    else:
        tonic = letter
    if mode is None:
        return tonic, None
    return tonic, "minor" if mode.startswith("m") and not mode.startswith("maj") else "major"


def _camelot(tonic: str, mode: str) -> tuple[int, str]:
    """Position on the circle of fifths of the key's relative major (0..11), and the mode."""
    pitch = PITCH_CLASSES.index(tonic)
    major = pitch if mode == "major" else (pitch + 3) % 12
    return (major * 7) % 12, mode


def compatible_keys(tonic: str, mode: str) -> set[tuple[str, str]]:
    """The same key, its relative major/minor, and its neighbours on the circle of fifths."""
    position, _ = _camelot(tonic, mode)
    out = set()
    for other_tonic in PITCH_CLASSES:
        for other_mode in ("major", "minor"):
            other_position, _ = _camelot(other_tonic, other_mode)
            steps = min((other_position - position) % 12, (position - other_position) % 12)
            if (steps == 0) or (steps == 1 and other_mode == mode):
                out.add((other_tonic, other_mode))
    return out


@dataclass
class Filters:
    """What a search may return. None = no constraint."""

    bpm: tuple[float, float] | None = None
    key: tuple[str, str | None] | None = None
    mode: str | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    compatible_with: tuple[str, str] | None = None  # (tonic, mode) of the track to mix with

    @classmethod
    def from_options(cls, bpm=None, key=None, mode=None, min_duration=None, max_duration=None) -> "Filters":
        if mode is not None and mode not in ("major", "minor"):
            raise FilterError(f"--mode is major or minor, got {mode!r}")
        if min_duration is not None and max_duration is not None and min_duration > max_duration:
            raise FilterError(f"--min-duration {min_duration:g} is above --max-duration {max_duration:g}: no track "
                              "can pass both")
        return cls(bpm=parse_bpm(bpm) if bpm else None, key=parse_key(key) if key else None, mode=mode,
                   min_duration=min_duration, max_duration=max_duration)

    def active(self) -> bool:
        return any(v is not None for v in (self.bpm, self.key, self.mode, self.min_duration, self.max_duration,
                                           self.compatible_with))

    def mask(self, tracks: pa.Table) -> np.ndarray:
        """Which rows of the tracks table pass every filter."""
        n = tracks.num_rows
        keep = np.ones(n, dtype=bool)

        def column(name, default):
            if name not in tracks.column_names:
                raise FilterError(f"this store has no {name!r} column: re-index it to filter by {name}")
            return np.array([default if v is None else v for v in tracks.column(name).to_pylist()])

        if self.bpm is not None:
            bpm = column("bpm", np.nan).astype(float)
            keep &= (bpm >= self.bpm[0]) & (bpm <= self.bpm[1])
        if self.key is not None:
            keep &= column("key", "") == self.key[0]
            if self.key[1] is not None:
                keep &= column("mode", "") == self.key[1]
        if self.mode is not None:
            keep &= column("mode", "") == self.mode
        if self.min_duration is not None or self.max_duration is not None:
            duration = column("duration", np.nan).astype(float)
            if self.min_duration is not None:
                keep &= duration >= self.min_duration
            if self.max_duration is not None:
                keep &= duration <= self.max_duration
        if self.compatible_with is not None:
            allowed = compatible_keys(*self.compatible_with)
            keys, modes = column("key", ""), column("mode", "")
            keep &= np.array([(k, m) in allowed for k, m in zip(keys, modes)], dtype=bool)
        return keep
