"""What to play: an arrangement and its exact tags, a pure function of (seed, index).

Three kinds, drawn by the seed: a genre groove (`styles.STYLES`), a named ensemble playing
classical textures (string quartet, choir, orchestra, ...), or a solo instrument from any
General MIDI family. Tags are read off what was generated, never guessed: an instrument's
words only when it plays, a tempo word only past a threshold, a mood word only where its
musical definition holds (below).

    arrangement = make_arrangement(seed=0, index=17, seconds=10)
    arrangement.tags        # ['reggae', 'electric bass', 'bass', 'organ', ..., 'slow', 'minor']
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mre.training.corpus import music
from mre.training.corpus.instruments import DRUM_KEYS, DRUM_KITS, DRUM_TAGS, FAMILIES, INSTRUMENTS, in_family, instrument
from mre.training.corpus.music import NOTE_NAMES, PROGRESSIONS, Part
from mre.training.corpus.styles import EIGHTHS, QUARTERS, STYLES, SWING_RIDE, SYNCOPATED, WALTZ_LINES, Style

# Tempo words by the Italian markings: up to adagio is slow (adagio ≈ 66-76 bpm), allegro
# vivace and beyond is fast (allegro ≈ 120-156). Between them no tempo word is claimed.
SLOW_BPM, FAST_BPM = 80, 140
# Key velocity per dynamic marking (MIDI 1.0 leaves the curve to the instrument; these are
# the common notation-software values: p ≈ 49, mf ≈ 80, ff ≈ 112).
DYNAMIC_VELOCITY = {"soft": 49, "medium": 80, "loud": 112}
DYNAMIC_TAGS = {"soft": ("soft", "quiet"), "medium": (), "loud": ("loud",)}
ROLE_VELOCITY = {"melody": 1.0, "bass": 0.95, "chords": 0.85, "pad": 0.7, "drums": 1.0, "voice": 0.9}
KIND_WEIGHTS = {"genre": 0.55, "ensemble": 0.2, "solo": 0.25}


@dataclass
class Arrangement:
    seed: int
    index: int
    kind: str                 # genre, ensemble, solo
    style: str                # the style, ensemble or solo texture that made it
    bpm: float
    key: str                  # tonic spelled with sharps, "" for unpitched clips
    mode: str                 # major / minor, "" where none is claimed (blues, unpitched)
    meter: int                # beats per bar
    swing: float              # 0.5 straight
    dynamics: str             # soft, medium, loud
    bars: int
    parts: list[Part] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    humanise_ms: float = 8.0
    echo: bool = False

    @property
    def seconds_per_beat(self) -> float:
        return 60.0 / self.bpm


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _melody_range(name: str) -> tuple[int, int]:
    inst = instrument(name)
    middle = (inst.low + inst.high) // 2
    return max(inst.low, middle - 12), min(inst.high, middle + 12)


def _center(name: str, wanted: int) -> int:
    inst = instrument(name)
    return int(np.clip(wanted, inst.low + 7, max(inst.low + 7, inst.high - 12)))


def _bars_for(seconds: float, bpm: float, meter: int) -> int:
    # the renderer may lengthen a clip by 15 % and start it up to a bar late
    return math.ceil(seconds * 1.15 * bpm / 60.0 / meter) + 2


def make_arrangement(seed: int, index: int, seconds: float = 10.0) -> Arrangement:
    """The index-th arrangement of a corpus; the same (seed, index, seconds) gives the same one."""
    rng = np.random.default_rng([seed, index, 0])
    kinds = list(KIND_WEIGHTS)
    kind = kinds[int(rng.choice(len(kinds), p=list(KIND_WEIGHTS.values())))]
    if kind == "genre":
        arrangement = _genre(rng, STYLES[_pick(rng, sorted(STYLES))], seconds)
    elif kind == "ensemble":
        arrangement = _ensemble(rng, _pick(rng, sorted(ENSEMBLES)), seconds)
    else:
        arrangement = _solo(rng, seconds)
    arrangement.seed, arrangement.index = seed, index
    for part in arrangement.parts:
        part.notes = music.swing(part.notes, arrangement.swing)
    return arrangement


def _base(rng, kind, style, tempo, meter, modes, dynamics, seconds, swing=(0.5, 0.5)) -> Arrangement:
    low, high = _pick(rng, tempo)
    bpm = float(rng.integers(low, high + 1))
    return Arrangement(0, 0, kind, style, bpm, _pick(rng, NOTE_NAMES), _pick(rng, modes), meter,
                       round(float(rng.uniform(*swing)), 3), _pick(rng, dynamics), _bars_for(seconds, bpm, meter))


def _velocity(a: Arrangement, role: str) -> int:
    return int(DYNAMIC_VELOCITY[a.dynamics] * ROLE_VELOCITY[role])


def _chords(rng, a: Arrangement, progressions: tuple[str, str], bars_per_chord: int = 1):
    name = progressions[0] if a.mode != "minor" else progressions[1]
    chords = music.progression_chords(music.tonic_pitch_class(a.key), _pick(rng, PROGRESSIONS[name]))
    return music.chords_for_bars(chords, a.bars, bars_per_chord)


def _genre(rng, style: Style, seconds: float) -> Arrangement:
    a = _base(rng, "genre", style.name, style.tempo, style.meter, style.modes, style.dynamics, seconds, style.swing)
    a.humanise_ms, a.echo = style.humanise_ms, style.echo
    steps = a.meter * music.STEPS_PER_BEAT
    tonic = music.tonic_pitch_class(a.key)
    chords = _chords(rng, a, style.progressions, style.bars_per_chord)
    if style.drums:
        kit = _pick(rng, style.kits)
        grid = _pick(rng, style.drums)
        a.parts.append(Part(kit, "drums", music.drum_part(rng, list(grid), DRUM_KEYS, a.bars, _velocity(a, "drums"), steps),
                            drums=True))
    if style.bass_instruments:
        name = _pick(rng, style.bass_instruments)
        low = max(instrument(name).low, 28)
        if style.bass == "walking":
            notes = music.walking_bass(rng, chords, tonic, a.mode or "major", low, _velocity(a, "bass"), a.meter)
        else:
            notes = music.bass_line(rng, chords, list(_pick(rng, style.bass)), low, _velocity(a, "bass"), steps)
        a.parts.append(Part(name, "bass", notes))
    if style.comp_instruments:
        name = _pick(rng, style.comp_instruments)
        center = _center(name, style.comp_center)
        if style.arpeggio:
            rhythm, order = style.arpeggio
            notes = music.arpeggio(rng, chords, rhythm, order, center, _velocity(a, "chords"), steps)
        else:
            patterns, kind = _pick(rng, style.comp)
            notes = music.comping(rng, chords, list(patterns), kind, center, _velocity(a, "chords"), steps, style.staccato)
        a.parts.append(Part(name, "chords", notes))
    if style.pad_instruments and rng.random() < 0.5:
        name = _pick(rng, style.pad_instruments)
        pad = "x" + "-" * (steps - 1)
        a.parts.append(Part(name, "pad", music.comping(rng, chords, [pad], "spread", _center(name, 64),
                                                       _velocity(a, "pad"), steps), level_db=-4))
    if style.melody_instruments and rng.random() < style.melody_probability:
        name = _pick(rng, style.melody_instruments)
        low, high = _melody_range(name)
        a.parts.append(Part(name, "melody", music.melody(rng, chords, tonic, a.mode or "major", list(style.melody_rhythms),
                                                         low, high, _velocity(a, "melody"), steps, style.blues), level_db=2))
    if style.blues:
        a.mode = ""   # blue notes over dominant sevenths: neither major nor minor is claimed
    a.tags = _tags(a, list(style.genres) + list(style.ensemble) + list(style.extra_tags))
    return a


# Ensembles: (tags, tempo windows, the parts as (instrument, role) with chorale voice ranges).
ENSEMBLES = {
    "string quartet": (("string quartet", "classical", "chamber music"), ((60, 132),),
                       (("violin", (67, 88)), ("violin", (60, 79)), ("viola", (50, 72)), ("cello", (36, 60)))),
    "choir": (("choir", "choral", "a cappella"), ((56, 100),),
              (("choir", (60, 79)), ("choir", (55, 72)), ("choir", (48, 67)), ("choir", (40, 60)))),
    "brass ensemble": (("brass ensemble",), ((60, 120),),
                       (("trumpet", (64, 82)), ("trumpet", (58, 76)), ("french horn", (50, 69)), ("trombone", (43, 64)),
                        ("tuba", (29, 50)))),
    "woodwind quintet": (("woodwind quintet", "classical", "chamber music"), ((60, 132),),
                         (("flute", (70, 93)), ("oboe", (62, 84)), ("clarinet", (55, 77)), ("french horn", (48, 67)),
                          ("bassoon", (36, 58)))),
    "organ chorale": (("classical",), ((56, 96),),
                      (("church organ", (64, 81)), ("church organ", (57, 74)), ("church organ", (48, 67)),
                       ("church organ", (36, 55)))),
    "orchestra": (("orchestra", "orchestral", "classical"), ((60, 140),), ()),
    "piano trio": (("piano trio", "classical", "chamber music"), ((60, 132),), ()),
    "jazz trio": (("jazz trio", "jazz"), ((100, 200),), ()),
}


def _ensemble(rng, name: str, seconds: float) -> Arrangement:
    tags, tempo, voices = ENSEMBLES[name]
    meter = 3 if rng.random() < 0.25 and name != "jazz trio" else 4
    a = _base(rng, "ensemble", name, tempo, meter, ("major", "minor"), ("soft", "medium", "loud"), seconds,
              (0.6, 0.67) if name == "jazz trio" else (0.5, 0.5))
    steps = meter * music.STEPS_PER_BEAT
    tonic = music.tonic_pitch_class(a.key)
    lines = WALTZ_LINES if meter == 3 else QUARTERS
    if voices:
        chords = _chords(rng, a, ("pop major", "pop minor"))
        rhythm = _pick(rng, lines)
        written = music.chorale(rng, chords, tonic, a.mode, [r for _, r in voices], rhythm, _velocity(a, "voice"), steps)
        a.parts += [Part(inst, "voice", notes) for (inst, _), notes in zip(voices, written)]
    elif name == "orchestra":
        chords = _chords(rng, a, ("pop major", "pop minor"))
        lead = _pick(rng, ("violin", "flute", "oboe", "trumpet", "french horn", "clarinet"))
        low, high = _melody_range(lead)
        rhythms = list(WALTZ_LINES if meter == 3 else QUARTERS + EIGHTHS)
        a.parts.append(Part(lead, "melody", music.melody(rng, chords, tonic, a.mode, rhythms, low, high,
                                                         _velocity(a, "melody"), steps), level_db=2))
        hit = "x" + "-" * (steps - 1)
        a.parts.append(Part("string ensemble", "chords", music.comping(rng, chords, [hit], "close", 62,
                                                                       _velocity(a, "chords"), steps)))
        a.parts.append(Part("french horn", "pad", music.comping(rng, chords, [hit], "close", 55,
                                                                _velocity(a, "pad"), steps), level_db=-3))
        bass = "R" + "-" * (steps // 2 - 1) + "5" + "-" * (steps // 2 - 1)
        a.parts.append(Part("contrabass", "bass", music.bass_line(rng, chords, [bass], 28, _velocity(a, "bass"), steps)))
        if rng.random() < 0.5:
            roll = "x" + "." * (steps - 1)
            a.parts.append(Part("timpani", "bass", music.bass_line(rng, chords, [roll.replace("x", "R")], 40,
                                                                   _velocity(a, "bass"), steps), level_db=-2))
    elif name == "piano trio":
        chords = _chords(rng, a, ("pop major", "pop minor"))
        arp = "x-x-x-x-x-x-" if meter == 3 else "x-x-x-x-x-x-x-x-"
        a.parts.append(Part("piano", "chords", music.arpeggio(rng, chords, arp, (0, 2, 1, 2), 55, _velocity(a, "chords"), steps)))
        low, high = _melody_range("violin")
        a.parts.append(Part("violin", "melody", music.melody(rng, chords, tonic, a.mode, list(lines), low, high,
                                                             _velocity(a, "melody"), steps), level_db=2))
        bass = "R" + "-" * (steps - 1)
        a.parts.append(Part("cello", "bass", music.bass_line(rng, chords, [bass], 36, _velocity(a, "bass"), steps)))
    else:  # jazz trio: the piano plays the head over its own comping, walking bass, ride cymbal
        chords = _chords(rng, a, ("jazz major", "jazz minor"))
        a.parts.append(Part(_pick(rng, ("jazz", "brush")), "drums",
                            music.drum_part(rng, [SWING_RIDE], DRUM_KEYS, a.bars, _velocity(a, "drums"), steps), drums=True))
        a.parts.append(Part("upright bass", "bass", music.walking_bass(rng, chords, tonic, a.mode, 28, _velocity(a, "bass"), meter)))
        a.parts.append(Part("piano", "chords", music.comping(rng, chords, ["x-----x---------"], "shell", 58,
                                                            _velocity(a, "chords"), steps)))
        a.parts.append(Part("piano", "melody", music.melody(rng, chords, tonic, a.mode, list(EIGHTHS + SYNCOPATED), 65, 86,
                                                            _velocity(a, "melody"), steps), level_db=2))
    a.tags = _tags(a, list(tags))
    return a


# Solo textures: keyboards, harps and guitars accompany themselves; single-line instruments
# play a melody; bass instruments a bass line; pads hold chords; unpitched ones a rhythm.
_SELF_ACCOMPANYING = {"piano", "bright piano", "honky-tonk piano", "electric piano", "fm piano", "harpsichord", "clavinet",
                      "celesta", "vibraphone", "marimba", "organ", "percussive organ", "rock organ", "church organ",
                      "accordion", "nylon guitar", "steel guitar", "jazz guitar", "clean guitar", "harp", "koto",
                      "dulcimer", "music box", "kalimba", "string ensemble", "slow strings", "banjo"}
_UNPITCHED = {"woodblock", "taiko", "melodic tom", "synth drum", "agogo"}


def _solo(rng, seconds: float) -> Arrangement:
    family = _pick(rng, FAMILIES + ("drums",))
    if family == "drums":
        return _drum_solo(rng, seconds)
    name = _pick(rng, in_family(family))
    inst = INSTRUMENTS[name]
    meter = 3 if rng.random() < 0.2 else 4
    a = _base(rng, "solo", f"solo {name}", ((60, 150),), meter, ("major", "minor"), ("soft", "medium", "loud"), seconds)
    steps = meter * music.STEPS_PER_BEAT
    tonic = music.tonic_pitch_class(a.key)
    chords = _chords(rng, a, ("pop major", "pop minor"))
    rhythms = list(WALTZ_LINES if meter == 3 else EIGHTHS + QUARTERS + SYNCOPATED)
    if name in _UNPITCHED:
        a.key, a.mode = "", ""
        pitch = (inst.low + inst.high) // 2
        grid = _pick(rng, rhythms)
        notes = music.drum_part(rng, [{"a": grid}], {"a": pitch}, a.bars, _velocity(a, "melody"), steps)
        a.parts.append(Part(name, "melody", notes))
    elif family == "bass" or name in ("timpani", "tuba"):
        pattern = _pick(rng, ("R---5---R---5---", "R-R-5-R-8-5-R-3-", "R--5--R-3-5-8---")) if meter == 4 else "R---5---5---"
        a.parts.append(Part(name, "bass", music.bass_line(rng, chords, [pattern], max(inst.low, 28), _velocity(a, "bass"), steps)))
    elif family == "synth pad":
        a.parts.append(Part(name, "pad", music.comping(rng, chords, ["x" + "-" * (steps - 1)], "spread", _center(name, 64),
                                                       _velocity(a, "pad"), steps)))
    else:
        low, high = _melody_range(name)
        if name in _SELF_ACCOMPANYING:
            high = inst.high if high < inst.high - 5 else high
            low = max(low, (inst.low + inst.high) // 2)
            arp = "x-x-x-x-x-x-" if meter == 3 else _pick(rng, ("x-x-x-x-x-x-x-x-", "x---x---x---x---"))
            accompaniment = music.arpeggio(rng, chords, arp, (0, 2, 1, 2), _center(name, low - 10),
                                           _velocity(a, "chords"), steps)
            a.parts.append(Part(name, "chords", accompaniment))
        a.parts.append(Part(name, "melody", music.melody(rng, chords, tonic, a.mode, rhythms, low, high,
                                                         _velocity(a, "melody"), steps)))
    # a section (string ensemble, choir, brass section) alone is not a solo
    a.tags = _tags(a, [] if family == "ensemble" or name == "brass section" else ["solo"])
    return a


def _drum_solo(rng, seconds: float) -> Arrangement:
    grooves = [s for s in sorted(STYLES) if STYLES[s].drums and STYLES[s].meter == 4]
    style = STYLES[_pick(rng, grooves)]
    a = _base(rng, "solo", "solo drums", style.tempo, 4, ("",), ("soft", "medium", "loud"), seconds, style.swing)
    a.key = ""
    kit = _pick(rng, style.kits)
    a.parts.append(Part(kit, "drums", music.drum_part(rng, list(_pick(rng, style.drums)), DRUM_KEYS, a.bars,
                                                      _velocity(a, "drums"), 16), drums=True))
    a.tags = _tags(a, ["solo"])
    return a


def _third_sounds(a: Arrangement) -> bool:
    """Whether the mode is audible: some pitched part plays the tonic's third of that mode.
    Power chords over root-fifth bass lines (punk, metal without a lead) leave it open."""
    third = (music.tonic_pitch_class(a.key) + (3 if a.mode == "minor" else 4)) % 12
    return any(note.pitch % 12 == third for part in a.parts if not part.drums for note in part.notes)


def _tags(a: Arrangement, leading: list[str]) -> list[str]:
    """The clip's words: style and ensemble first, then what plays, then tempo, dynamics, mode, mood.
    A mode no part makes audible is dropped from the clip (its `mode` becomes "").

    Mood words follow from their musical cues (Juslin & Laukka 2003): "calm" is slow, soft
    and without drums; "energetic" fast and loud with drums; "upbeat" a major key at a
    brisk tempo (≥ 116 bpm) with drums, not soft.
    """
    if a.mode and not _third_sounds(a):
        a.mode = ""
    words = list(leading)
    has_drums = False
    for part in a.parts:
        if part.drums:
            has_drums = True
            words += DRUM_KITS[part.instrument].tags
            keys = {note.pitch for note in part.notes}
            words += [t for drum, tags in DRUM_TAGS.items() if DRUM_KEYS[drum] in keys for t in tags]
        else:
            words += instrument(part.instrument).tags
            has_drums |= part.instrument in ("taiko", "melodic tom", "synth drum")
    if a.bpm < SLOW_BPM:
        words.append("slow")
    elif a.bpm >= FAST_BPM:
        words.append("fast")
    words += DYNAMIC_TAGS[a.dynamics]
    if a.mode:
        words.append(a.mode)
    if a.bpm < SLOW_BPM and a.dynamics == "soft" and not has_drums:
        words.append("calm")
    if a.bpm >= FAST_BPM and a.dynamics == "loud" and has_drums:
        words.append("energetic")
    if a.mode == "major" and a.bpm >= 116 and has_drums and a.dynamics != "soft":
        words.append("upbeat")
    return list(dict.fromkeys(words))


def catalogue() -> dict[str, list[str]]:
    """What the generator can make, for the manifest and the docs."""
    return {"genres": sorted({g for s in STYLES.values() for g in s.genres}),
            "ensembles": sorted(set(ENSEMBLES) | {e for s in STYLES.values() for e in s.ensemble}),
            "instruments": sorted(INSTRUMENTS), "families": list(FAMILIES), "drum kits": sorted(DRUM_KITS)}


