"""The General MIDI instruments an arrangement can use, with the words each one puts in a tag set.

Program numbers are the General MIDI Level 1 sound set (MIDI Manufacturers Association,
"General MIDI System Level 1", 1991), 0-based; percussion keys are its channel-10 key map.
A name's tags say what a listener hears: the instrument ("trumpet"), its broader name where
one exists ("guitar" for an electric guitar), and its family ("brass"). GM's own family
labels are used only where they name a sound ("brass", "strings"), not where they are a
catalogue heading ("ethnic", "sound effects").

Ranges are comfortable written ranges (after Adler, *The Study of Orchestration*, 3rd ed.),
so a melody never leaves the register that makes the instrument recognisable.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Instrument:
    name: str                 # the key arrangements use, e.g. "trumpet"
    program: int              # GM program, 0-based
    family: str               # one of FAMILIES (GM's grouping), for catalogue coverage
    tags: tuple[str, ...]     # the words a clip with this instrument audibly carries
    low: int                  # comfortable MIDI range
    high: int
    sustained: bool = True    # holds a note (bowed, blown, organ) rather than decaying


FAMILIES = ("piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass", "reed",
            "pipe", "synth lead", "synth pad", "ethnic", "percussive")

_CATALOGUE = (
    # piano
    Instrument("piano", 0, "piano", ("piano", "keyboard"), 36, 96, False),
    Instrument("bright piano", 1, "piano", ("piano", "keyboard"), 36, 96, False),
    Instrument("honky-tonk piano", 3, "piano", ("piano", "honky tonk", "keyboard"), 40, 88, False),
    Instrument("electric piano", 4, "piano", ("electric piano", "keyboard"), 40, 88, False),
    Instrument("fm piano", 5, "piano", ("electric piano", "keyboard"), 40, 88, False),
    Instrument("harpsichord", 6, "piano", ("harpsichord", "keyboard"), 41, 89, False),
    Instrument("clavinet", 7, "piano", ("clavinet", "keyboard"), 41, 84, False),
    # chromatic percussion
    Instrument("celesta", 8, "chromatic percussion", ("celesta", "keyboard"), 60, 96, False),
    Instrument("glockenspiel", 9, "chromatic percussion", ("glockenspiel", "mallets", "percussion"), 72, 100, False),
    Instrument("music box", 10, "chromatic percussion", ("music box",), 60, 96, False),
    Instrument("vibraphone", 11, "chromatic percussion", ("vibraphone", "mallets", "percussion"), 53, 89, False),
    Instrument("marimba", 12, "chromatic percussion", ("marimba", "mallets", "percussion"), 45, 84, False),
    Instrument("xylophone", 13, "chromatic percussion", ("xylophone", "mallets", "percussion"), 65, 96, False),
    Instrument("tubular bells", 14, "chromatic percussion", ("tubular bells", "bells", "percussion"), 60, 77, False),
    Instrument("dulcimer", 15, "chromatic percussion", ("dulcimer",), 55, 84, False),
    # organ (GM also files accordion and harmonica here: they are free reeds, tagged as themselves)
    Instrument("organ", 16, "organ", ("organ", "keyboard"), 36, 91),
    Instrument("percussive organ", 17, "organ", ("organ", "keyboard"), 36, 91),
    Instrument("rock organ", 18, "organ", ("organ", "keyboard"), 36, 91),
    Instrument("church organ", 19, "organ", ("church organ", "organ", "keyboard"), 36, 91),
    Instrument("accordion", 21, "organ", ("accordion",), 53, 89),
    Instrument("harmonica", 22, "organ", ("harmonica",), 60, 84),
    Instrument("bandoneon", 23, "organ", ("bandoneon", "accordion"), 48, 84),
    # guitar
    Instrument("nylon guitar", 24, "guitar", ("acoustic guitar", "classical guitar", "guitar"), 40, 79, False),
    Instrument("steel guitar", 25, "guitar", ("acoustic guitar", "guitar"), 40, 79, False),
    Instrument("jazz guitar", 26, "guitar", ("electric guitar", "guitar"), 40, 79, False),
    Instrument("clean guitar", 27, "guitar", ("electric guitar", "guitar"), 40, 79, False),
    Instrument("muted guitar", 28, "guitar", ("electric guitar", "guitar"), 40, 72, False),
    Instrument("overdriven guitar", 29, "guitar", ("electric guitar", "distorted guitar", "guitar"), 40, 76),
    Instrument("distortion guitar", 30, "guitar", ("electric guitar", "distorted guitar", "guitar"), 40, 76),
    # bass
    Instrument("upright bass", 32, "bass", ("double bass", "upright bass", "bass"), 28, 55, False),
    Instrument("electric bass", 33, "bass", ("electric bass", "bass"), 28, 55, False),
    Instrument("picked bass", 34, "bass", ("electric bass", "bass"), 28, 55, False),
    Instrument("fretless bass", 35, "bass", ("fretless bass", "electric bass", "bass"), 28, 55, False),
    Instrument("slap bass", 36, "bass", ("slap bass", "electric bass", "bass"), 28, 55, False),
    Instrument("synth bass", 38, "bass", ("synth bass", "bass", "synth"), 28, 55, False),
    Instrument("synth bass 2", 39, "bass", ("synth bass", "bass", "synth"), 28, 55, False),
    # strings
    Instrument("violin", 40, "strings", ("violin", "strings"), 55, 93),
    Instrument("viola", 41, "strings", ("viola", "strings"), 48, 81),
    Instrument("cello", 42, "strings", ("cello", "strings"), 36, 69),
    Instrument("contrabass", 43, "strings", ("double bass", "strings"), 28, 55),
    Instrument("pizzicato strings", 45, "strings", ("pizzicato", "strings"), 40, 84, False),
    Instrument("harp", 46, "strings", ("harp",), 36, 91, False),
    Instrument("timpani", 47, "strings", ("timpani", "percussion"), 40, 55, False),
    # ensemble
    Instrument("string ensemble", 48, "ensemble", ("strings", "string section"), 40, 88),
    Instrument("slow strings", 49, "ensemble", ("strings", "string section"), 40, 88),
    Instrument("synth strings", 50, "ensemble", ("synth strings", "synth"), 40, 88),
    Instrument("choir", 52, "ensemble", ("choir", "voices"), 48, 79),
    Instrument("voice oohs", 53, "ensemble", ("voices",), 48, 79),
    Instrument("synth voice", 54, "ensemble", ("synth", "voices"), 48, 79),
    # brass
    Instrument("trumpet", 56, "brass", ("trumpet", "brass"), 55, 82),
    Instrument("trombone", 57, "brass", ("trombone", "brass"), 40, 70),
    Instrument("tuba", 58, "brass", ("tuba", "brass"), 28, 53),
    Instrument("muted trumpet", 59, "brass", ("muted trumpet", "trumpet", "brass"), 55, 82),
    Instrument("french horn", 60, "brass", ("french horn", "horn", "brass"), 41, 72),
    Instrument("brass section", 61, "brass", ("brass section", "brass"), 48, 79),
    Instrument("synth brass", 62, "brass", ("synth brass", "synth"), 48, 79),
    # reed
    Instrument("soprano sax", 64, "reed", ("soprano saxophone", "saxophone", "woodwinds"), 56, 87),
    Instrument("alto sax", 65, "reed", ("alto saxophone", "saxophone", "woodwinds"), 49, 80),
    Instrument("tenor sax", 66, "reed", ("tenor saxophone", "saxophone", "woodwinds"), 44, 75),
    Instrument("baritone sax", 67, "reed", ("baritone saxophone", "saxophone", "woodwinds"), 36, 68),
    Instrument("oboe", 68, "reed", ("oboe", "woodwinds"), 58, 89),
    Instrument("english horn", 69, "reed", ("english horn", "woodwinds"), 52, 81),
    Instrument("bassoon", 70, "reed", ("bassoon", "woodwinds"), 34, 72),
    Instrument("clarinet", 71, "reed", ("clarinet", "woodwinds"), 50, 89),
    # pipe
    Instrument("piccolo", 72, "pipe", ("piccolo", "flute", "woodwinds"), 74, 103),
    Instrument("flute", 73, "pipe", ("flute", "woodwinds"), 60, 96),
    Instrument("recorder", 74, "pipe", ("recorder", "woodwinds"), 60, 86),
    Instrument("pan flute", 75, "pipe", ("pan flute", "flute"), 60, 86),
    Instrument("shakuhachi", 77, "pipe", ("shakuhachi", "flute"), 55, 84),
    Instrument("whistle", 78, "pipe", ("whistle",), 72, 96),
    Instrument("ocarina", 79, "pipe", ("ocarina",), 60, 84),
    # synth lead
    Instrument("square lead", 80, "synth lead", ("synth lead", "synth"), 48, 84),
    Instrument("saw lead", 81, "synth lead", ("synth lead", "synth"), 48, 84),
    Instrument("calliope lead", 82, "synth lead", ("synth lead", "synth"), 55, 84),
    Instrument("charang lead", 84, "synth lead", ("synth lead", "synth"), 48, 84),
    Instrument("fifths lead", 86, "synth lead", ("synth lead", "synth"), 48, 79),
    # synth pad
    Instrument("new age pad", 88, "synth pad", ("synth pad", "pad", "synth"), 48, 84),
    Instrument("warm pad", 89, "synth pad", ("synth pad", "pad", "synth"), 48, 84),
    Instrument("polysynth pad", 90, "synth pad", ("synth pad", "pad", "synth"), 48, 84),
    Instrument("choir pad", 91, "synth pad", ("synth pad", "pad", "synth"), 48, 84),
    Instrument("bowed pad", 92, "synth pad", ("synth pad", "pad", "synth"), 48, 84),
    Instrument("halo pad", 94, "synth pad", ("synth pad", "pad", "synth"), 48, 84),
    Instrument("sweep pad", 95, "synth pad", ("synth pad", "pad", "synth"), 48, 84),
    # ethnic
    Instrument("sitar", 104, "ethnic", ("sitar",), 48, 77, False),
    Instrument("banjo", 105, "ethnic", ("banjo",), 48, 79, False),
    Instrument("shamisen", 106, "ethnic", ("shamisen",), 50, 79, False),
    Instrument("koto", 107, "ethnic", ("koto",), 50, 84, False),
    Instrument("kalimba", 108, "ethnic", ("kalimba",), 60, 84, False),
    Instrument("bagpipe", 109, "ethnic", ("bagpipes",), 55, 74),
    Instrument("fiddle", 110, "ethnic", ("fiddle", "violin", "strings"), 55, 88),
    Instrument("shanai", 111, "ethnic", ("shehnai", "woodwinds"), 60, 84),
    # percussive (pitched enough to carry a line, or played as rhythm)
    Instrument("steel drums", 114, "percussive", ("steel drums", "percussion"), 55, 84, False),
    Instrument("woodblock", 115, "percussive", ("woodblock", "percussion"), 60, 72, False),
    Instrument("taiko", 116, "percussive", ("taiko", "drums", "percussion"), 36, 60, False),
    Instrument("melodic tom", 117, "percussive", ("toms", "drums", "percussion"), 40, 60, False),
    Instrument("synth drum", 118, "percussive", ("electronic drums", "drums", "percussion"), 40, 60, False),
    Instrument("agogo", 113, "percussive", ("agogo", "percussion"), 60, 72, False),
)
INSTRUMENTS: dict[str, Instrument] = {instrument.name: instrument for instrument in _CATALOGUE}


@dataclass(frozen=True)
class DrumKit:
    name: str
    preset: int                   # bank-128 preset of GM-compatible SoundFonts (GS drum sets)
    tags: tuple[str, ...]


# Drum sets after Roland GS numbering, which GM SoundFonts (FluidR3, TimGM6mb) follow.
DRUM_KITS = {
    "standard": DrumKit("standard", 0, ("drums",)),
    "room": DrumKit("room", 8, ("drums",)),
    "power": DrumKit("power", 16, ("drums",)),
    "electronic": DrumKit("electronic", 24, ("drums", "drum machine", "electronic drums")),
    "808": DrumKit("808", 25, ("drums", "drum machine", "electronic drums")),
    "jazz": DrumKit("jazz", 32, ("drums",)),
    "brush": DrumKit("brush", 40, ("drums", "brushes")),
    "orchestra": DrumKit("orchestra", 48, ("drums", "percussion")),   # concert snare and bass drum
}

# General MIDI percussion key map (channel 10).
DRUM_KEYS = {
    "kick": 36, "rimshot": 37, "snare": 38, "clap": 39, "snare2": 40, "low tom": 41, "hat": 42, "mid tom": 45,
    "pedal hat": 44, "open hat": 46, "high tom": 48, "crash": 49, "ride": 51, "ride bell": 53, "tambourine": 54,
    "cowbell": 56, "high bongo": 60, "low bongo": 61, "mute conga": 62, "high conga": 63, "low conga": 64,
    "high timbale": 65, "low timbale": 66, "shaker": 70, "claves": 75, "high woodblock": 76, "low woodblock": 77,
    "triangle": 81, "bass drum": 35,
}
# Drums whose sound names a percussion instrument a listener can pick out, and the words it carries.
DRUM_TAGS = {
    "cowbell": ("cowbell",), "tambourine": ("tambourine",), "high bongo": ("bongos",), "low bongo": ("bongos",),
    "mute conga": ("congas",), "high conga": ("congas",), "low conga": ("congas",), "high timbale": ("timbales",),
    "low timbale": ("timbales",), "claves": ("claves",), "shaker": ("shaker",), "triangle": ("triangle",),
    "clap": ("handclaps",),
}


def instrument(name: str) -> Instrument:
    try:
        return INSTRUMENTS[name]
    except KeyError:
        raise ValueError(f"unknown instrument {name!r}") from None


def in_family(family: str) -> list[str]:
    return [i.name for i in _CATALOGUE if i.family == family]
