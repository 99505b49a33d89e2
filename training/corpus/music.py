"""Music theory for generated arrangements: keys, chords, progressions and the parts built on them.

Time is in beats (quarter notes) from the start of the clip; pitches are MIDI numbers.
Rhythms are written as step strings, one character per sixteenth note, so a pattern reads
like a drum-machine grid:

    "x.x.x.x.x.x.x.x."   eighth notes        'x' a note, 'X' accented, 'o' a ghost note
    "x---x---x---x---"   held quarter notes  '-' holds the note before, '.' is a rest

Bass patterns use chord-relative tokens instead of 'x' (R root, 3 third, 5 fifth, 6 sixth,
7 seventh, 8 octave, a an approach to the next chord's root), so one pattern follows any
progression.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}  # natural minor
BLUES_SCALE = (0, 3, 5, 6, 7, 10)
CHORD_INTERVALS = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "5": (0, 7),
    "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "m7": (0, 3, 7, 10), "m7b5": (0, 3, 6, 10), "6": (0, 4, 7, 9),
}
STEPS_PER_BEAT = 4
VELOCITY = {"X": 1.2, "x": 1.0, "o": 0.5}


@dataclass(frozen=True)
class Note:
    start: float      # beats
    length: float     # beats
    pitch: int
    velocity: int     # 1..127


@dataclass
class Part:
    """One instrument's notes. `instrument` names an entry of INSTRUMENTS, or a DRUM_KITS entry when drums."""
    instrument: str
    role: str                       # melody, bass, chords, pad, drums, voice
    notes: list[Note] = field(default_factory=list)
    drums: bool = False
    level_db: float = 0.0           # the arrangement's balance; the renderer varies it


@dataclass(frozen=True)
class Chord:
    root: int          # pitch class, 0 = C
    quality: str       # a CHORD_INTERVALS key

    def pitch_classes(self) -> list[int]:
        return [(self.root + i) % 12 for i in CHORD_INTERVALS[self.quality]]


# Progressions as (semitones above the tonic, quality), one chord per bar. Each starts on the
# tonic (the ii–V–I ones resolve to it instead) and leans on the dominant or subdominant so
# the key is audible.
PROGRESSIONS = {
    "pop major": [((0, "maj"), (7, "maj"), (9, "min"), (5, "maj")), ((0, "maj"), (5, "maj"), (7, "maj"), (0, "maj")),
                  ((0, "maj"), (9, "min"), (5, "maj"), (7, "maj")), ((0, "maj"), (5, "maj"), (0, "maj"), (7, "maj"))],
    "pop minor": [((0, "min"), (5, "min"), (7, "maj"), (0, "min")), ((0, "min"), (8, "maj"), (5, "min"), (7, "maj")),
                  ((0, "min"), (10, "maj"), (8, "maj"), (7, "maj")), ((0, "min"), (8, "maj"), (3, "maj"), (10, "maj"))],
    "twelve bar": [((0, "7"), (0, "7"), (0, "7"), (0, "7"), (5, "7"), (5, "7"), (0, "7"), (0, "7"),
                    (7, "7"), (5, "7"), (0, "7"), (7, "7"))],
    "jazz major": [((2, "m7"), (7, "7"), (0, "maj7"), (0, "maj7")), ((0, "maj7"), (9, "m7"), (2, "m7"), (7, "7")),
                   ((0, "maj7"), (5, "maj7"), (2, "m7"), (7, "7"))],
    "jazz minor": [((2, "m7b5"), (7, "7"), (0, "m7"), (0, "m7")), ((0, "m7"), (5, "m7"), (2, "m7b5"), (7, "7"))],
    "two chord major": [((0, "maj"), (5, "maj")), ((0, "maj"), (7, "maj"))],
    "two chord minor": [((0, "min"), (5, "min")), ((0, "min"), (8, "maj")), ((0, "m7"), (5, "m7"))],
    "vamp minor": [((0, "m7"),), ((0, "m7"), (0, "m7"), (5, "7"), (0, "m7"))],
    "power minor": [((0, "5"), (8, "5"), (10, "5"), (0, "5")), ((0, "5"), (3, "5"), (10, "5"), (8, "5"))],
    "power major": [((0, "5"), (5, "5"), (7, "5"), (0, "5")), ((0, "5"), (7, "5"), (9, "5"), (5, "5"))],
    "dance major": [((0, "maj"), (9, "min"), (5, "maj"), (7, "maj")), ((0, "maj7"), (5, "maj7"))],
    "dance minor": [((0, "min"), (8, "maj"), (10, "maj"), (0, "min")), ((0, "m7"), (10, "maj"), (8, "maj"), (10, "maj")),
                    ((0, "min"),)],
    # tonic-heavy: a clip is a few bars, and long dominant stretches would make it sound in the fifth
    "oom-pah major": [((0, "maj"), (0, "maj"), (7, "7"), (0, "maj")), ((0, "maj"), (5, "maj"), (7, "7"), (0, "maj"))],
    "oom-pah minor": [((0, "min"), (0, "min"), (7, "7"), (0, "min")), ((0, "min"), (5, "min"), (7, "7"), (0, "min"))],
    # the circle-of-fifths sequence of baroque practice (I–IV–vii°–iii–vi–ii–V–I)
    "baroque major": [((0, "maj"), (5, "maj"), (11, "dim"), (4, "min"), (9, "min"), (2, "min"), (7, "maj"), (0, "maj")),
                      ((0, "maj"), (7, "maj"), (9, "min"), (4, "min"), (5, "maj"), (0, "maj"), (5, "maj"), (7, "maj"))],
    "baroque minor": [((0, "min"), (5, "min"), (10, "maj"), (3, "maj"), (8, "maj"), (2, "dim"), (7, "maj"), (0, "min")),
                      ((0, "min"), (7, "maj"), (8, "maj"), (5, "min"), (0, "min"), (5, "min"), (7, "maj"), (0, "min"))],
    "ambient major": [((0, "maj7"), (5, "maj7")), ((0, "maj"), (4, "min"), (5, "maj"), (0, "maj"))],
    "ambient minor": [((0, "m7"), (8, "maj7")), ((0, "min"), (3, "maj"), (5, "min"), (0, "min"))],
}


def tonic_pitch_class(key: str) -> int:
    return NOTE_NAMES.index(key)


def progression_chords(tonic: int, progression) -> list[Chord]:
    return [Chord((tonic + offset) % 12, quality) for offset, quality in progression]


def chords_for_bars(chords: list[Chord], bars: int, bars_per_chord: int = 1) -> list[Chord]:
    return [chords[(bar // bars_per_chord) % len(chords)] for bar in range(bars)]


def parse_steps(pattern: str) -> list[tuple[int, int, str]]:
    """A step string → (first step, steps held, character) per note."""
    events = []
    for step, char in enumerate(pattern):
        if char in "-.":
            continue
        held = 1
        while step + held < len(pattern) and pattern[step + held] == "-":
            held += 1
        events.append((step, held, char))
    return events


def _velocity(base: int, char: str, rng: np.random.Generator) -> int:
    return int(np.clip(round(base * VELOCITY.get(char, 1.0) + rng.normal(0, 3)), 1, 127))


def nearest(pitch_classes, target: float, low: int, high: int) -> int:
    """The MIDI pitch of one of `pitch_classes` nearest to target within [low, high]."""
    candidates = [p for p in range(low, high + 1) if p % 12 in pitch_classes]
    return min(candidates, key=lambda p: (abs(p - target), p))


def scale_for(chord: Chord, tonic: int, mode: str, blues: bool = False) -> set[int]:
    """Pitch classes a melody may use over a chord: the key's scale, with the chord's own tones
    replacing scale tones a semitone from them (the raised leading tone over V in minor)."""
    steps = BLUES_SCALE if blues else SCALES[mode]
    scale = {(tonic + s) % 12 for s in steps}
    tones = set(chord.pitch_classes())
    foreign = tones - scale
    scale = {p for p in scale if not any((p - f) % 12 in (1, 11) for f in foreign)}
    return scale | tones


def bass_line(rng, chords: list[Chord], patterns: list[str], low: int, velocity: int, steps_per_bar: int) -> list[Note]:
    """Chord-relative bass patterns (see module docstring), one pattern per bar, cycling."""
    notes = []
    for bar, chord in enumerate(chords):
        pattern = patterns[bar % len(patterns)]
        following = chords[bar + 1] if bar + 1 < len(chords) else chords[0]
        root = low + (chord.root - low) % 12
        intervals = CHORD_INTERVALS[chord.quality]
        third = intervals[1] if len(intervals) > 2 else 4
        seventh = intervals[3] if len(intervals) > 3 else 10
        offsets = {"R": 0, "3": third, "5": 7, "6": 9, "7": seventh, "8": 12}
        for step, held, char in parse_steps(pattern):
            if char == "a":
                next_root = low + (following.root - low) % 12
                pitch = next_root - 1 if next_root - 1 >= low else next_root + 1
            else:
                pitch = root + offsets[char]
            start = bar * steps_per_bar + step
            notes.append(Note(start / STEPS_PER_BEAT, held / STEPS_PER_BEAT * 0.92, pitch, _velocity(velocity, "x", rng)))
    return notes


def walking_bass(rng, chords: list[Chord], tonic: int, mode: str, low: int, velocity: int, beats_per_bar: int) -> list[Note]:
    """Quarter-note walking line: the root on one, chord and scale tones between, and a
    chromatic or scale approach into the next bar's root, as jazz bassists walk."""
    notes = []
    previous = low + (chords[0].root - low) % 12
    for bar, chord in enumerate(chords):
        following = chords[bar + 1] if bar + 1 < len(chords) else chords[0]
        root = nearest({chord.root}, previous, low, low + 19)
        target = nearest({following.root}, root, low, low + 19)
        line = [root]
        scale = sorted(scale_for(chord, tonic, mode))
        for beat in range(1, beats_per_bar):
            if beat == beats_per_bar - 1:
                line.append(target + (1 if rng.random() < 0.5 else -1))
            else:
                pcs = chord.pitch_classes() if beat % 2 == 0 else scale
                step = int(np.sign(target - line[-1]) or 1) * int(rng.integers(1, 5))
                line.append(nearest(set(pcs), line[-1] + step, low, low + 19))
        for beat, pitch in enumerate(line):
            notes.append(Note(bar * beats_per_bar + beat, 0.9, pitch, _velocity(velocity, "x", rng)))
        previous = root
    return notes


def voicing(chord: Chord, center: int, kind: str, previous: list[int] | None) -> list[int]:
    """Pitches of a chord: 'close' triads/sevenths voice-led near the previous voicing,
    'power' root-fifth-octave, 'shell' root-third-seventh, 'spread' root below an open chord."""
    pcs = chord.pitch_classes()
    root_low = center - 12 + (chord.root - (center - 12)) % 12
    if kind == "power":
        root = center - 12 + (chord.root - (center - 12)) % 12
        return [root, root + 7, root + 12]
    if kind == "shell":
        intervals = CHORD_INTERVALS[chord.quality]
        root = root_low - 12 if root_low - 12 >= 36 else root_low
        return [root, root + 12 + intervals[1], root + 12 + (intervals[3] if len(intervals) > 3 else 7)]
    if kind == "spread":
        upper = sorted(nearest(set(pcs), center + 4 * i, center - 6, center + 18) for i in range(len(pcs)))
        return [root_low - 12 if root_low - 12 >= 28 else root_low] + upper
    options = []
    for inversion in range(len(pcs)):
        ordered = pcs[inversion:] + pcs[:inversion]
        pitches, last = [], center - 7 + (ordered[0] - (center - 7)) % 12
        pitches.append(last)
        for pc in ordered[1:]:
            last = last + (pc - last) % 12
            pitches.append(last)
        options.append(pitches)
    anchor = previous if previous else [center] * len(pcs)
    return min(options, key=lambda v: (abs(np.mean(v) - np.mean(anchor)), v[0]))


def comping(rng, chords: list[Chord], patterns: list[str], kind: str, center: int, velocity: int,
            steps_per_bar: int, staccato: bool = False) -> list[Note]:
    """Chord hits on a rhythm, one pattern per bar, cycling."""
    notes, previous = [], None
    for bar, chord in enumerate(chords):
        pitches = voicing(chord, center, kind, previous)
        previous = pitches
        for step, held, char in parse_steps(patterns[bar % len(patterns)]):
            length = (0.5 if staccato else held * 0.95) / STEPS_PER_BEAT
            start = (bar * steps_per_bar + step) / STEPS_PER_BEAT
            for pitch in pitches:
                notes.append(Note(start, length, pitch, _velocity(velocity, char, rng)))
    return notes


def arpeggio(rng, chords: list[Chord], pattern: str, order: tuple[int, ...], center: int, velocity: int,
             steps_per_bar: int) -> list[Note]:
    """Broken chords: each hit of the pattern plays the next chord tone of `order` (Alberti bass is 0, 2, 1, 2)."""
    notes = []
    previous = None
    for bar, chord in enumerate(chords):
        pitches = voicing(chord, center, "close", previous)
        previous = pitches
        for k, (step, held, char) in enumerate(parse_steps(pattern)):
            pitch = pitches[order[k % len(order)] % len(pitches)]
            notes.append(Note((bar * steps_per_bar + step) / STEPS_PER_BEAT, held * 0.95 / STEPS_PER_BEAT, pitch,
                              _velocity(velocity, char, rng)))
    return notes


def melody(rng, chords: list[Chord], tonic: int, mode: str, rhythms: list[str], low: int, high: int, velocity: int,
           steps_per_bar: int, blues: bool = False) -> list[Note]:
    """A phrase-shaped line: two one-bar rhythms in the order A A B A, chord tones on the beats,
    stepwise scale motion between, ending each four bars on a chord tone held to the bar's end."""
    a, b = (rhythms[int(i)] for i in rng.choice(len(rhythms), 2))
    notes = []
    pitch = float(nearest({tonic}, (low + high) / 2, low, high))
    direction = 1 if rng.random() < 0.5 else -1
    for bar, chord in enumerate(chords):
        rhythm = (a, a, b, a)[bar % 4]
        scale = scale_for(chord, tonic, mode, blues)
        events = parse_steps(rhythm)
        for k, (step, held, char) in enumerate(events):
            on_beat = step % STEPS_PER_BEAT == 0
            if rng.random() < 0.2 or not low + 3 < pitch < high - 3:
                direction = -direction if low + 3 < pitch < high - 3 else (1 if pitch <= low + 3 else -1)
            pool = set(chord.pitch_classes()) if on_beat else scale
            target = pitch + direction * (rng.integers(1, 4) if on_beat else rng.integers(1, 3))
            pitch = float(nearest(pool, target, low, high))
            last_of_phrase = bar % 4 == 3 and k == len(events) - 1
            length = (steps_per_bar - step if last_of_phrase else held) / STEPS_PER_BEAT
            notes.append(Note((bar * steps_per_bar + step) / STEPS_PER_BEAT, length * 0.95, int(pitch),
                              _velocity(velocity, char, rng)))
    return notes


def drum_part(rng, patterns: list[dict[str, str]], keys: dict[str, int], bars: int, velocity: int,
              steps_per_bar: int) -> list[Note]:
    """Drum grids ({drum name: step string}), one per bar, cycling; a crash on the first downbeat
    of every four bars where the groove has cymbals."""
    notes = []
    for bar in range(bars):
        grid = patterns[bar % len(patterns)]
        for drum, pattern in grid.items():
            for step, _, char in parse_steps(pattern):
                notes.append(Note((bar * steps_per_bar + step) / STEPS_PER_BEAT, 0.25, keys[drum],
                                  _velocity(velocity, char, rng)))
        if bar % 4 == 0 and bar and any(d in grid for d in ("hat", "ride")):
            notes.append(Note(bar * steps_per_bar / STEPS_PER_BEAT, 0.25, keys["crash"], _velocity(velocity, "x", rng)))
    return notes


def swing(notes: list[Note], ratio: float) -> list[Note]:
    """Delay off-beat eighths: the beat's first half stretches to `ratio` of it (0.5 straight,
    2/3 a triplet shuffle); everything inside a beat moves piecewise-linearly."""
    if ratio == 0.5:
        return notes

    def warp(t: float) -> float:
        beat, frac = divmod(t, 1.0)
        return beat + (frac / 0.5 * ratio if frac < 0.5 else ratio + (frac - 0.5) / 0.5 * (1 - ratio))

    return [Note(warp(n.start), max(0.05, warp(n.start + n.length) - warp(n.start)), n.pitch, n.velocity) for n in notes]


def chorale(rng, chords: list[Chord], tonic: int, mode: str, ranges: list[tuple[int, int]], rhythm: str,
            velocity: int, steps_per_bar: int) -> list[list[Note]]:
    """Four-part writing (or as many parts as ranges, top first): the top voice a melody, the
    bottom the chord roots, inner voices the nearest chord tones to where they were."""
    top_low, top_high = ranges[0]
    voices = [melody(rng, chords, tonic, mode, [rhythm], top_low, top_high, velocity, steps_per_bar)]
    previous = [(low + high) // 2 for low, high in ranges[1:]]
    inner = [[] for _ in ranges[1:]]
    for bar, chord in enumerate(chords):
        for h in range(0, steps_per_bar, steps_per_bar // 2 if steps_per_bar % 8 == 0 else steps_per_bar // 3):
            start = (bar * steps_per_bar + h) / STEPS_PER_BEAT
            length = (steps_per_bar // 2 if steps_per_bar % 8 == 0 else steps_per_bar // 3) / STEPS_PER_BEAT * 0.95
            for v, (low, high) in enumerate(ranges[1:]):
                last = v == len(ranges) - 2
                pool = {chord.root} if last else set(chord.pitch_classes())
                pitch = nearest(pool, previous[v], low, high)
                previous[v] = pitch
                inner[v].append(Note(start, length, pitch, _velocity(velocity, "x", rng)))
    return voices + inner
