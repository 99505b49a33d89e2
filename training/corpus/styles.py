"""Genres defined by what is played: tempo, meter, feel, drum grid, bass pattern, comping and instruments.

Step strings are sixteenth-note grids (see `music`): 16 steps a 4/4 bar, 12 a 3/4 bar.
Tempo windows are the usual ranges of each style; ballroom dances use the World DanceSport
Federation's competition tempos (bars per minute × beats per bar), electronic dance genres
the ranges in Butler, *Unlocking the Groove* (2006), the others the ranges commonly given for
the style (e.g. Wikipedia's genre articles: drum and bass 160–180, disco 110–140, reggae's
one drop well under 100). Where a genre is defined by a rhythmic device the grid carries it:
the one drop (kick and rim on beat 3 only) for reggae, four-on-the-floor for house and
techno, a broken two-step for drum and bass, the son and bossa claves, swung eighths for
jazz, swing and blues, the habanera for tango, oom-pah for march and polka, oom-pah-pah for
waltz.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Melody rhythms per bar.
QUARTERS = ("x---x---x---x---", "x-------x---x---", "x---x---x-------", "x-----x-x-------")
EIGHTHS = ("x-x-x-x-x---x---", "x---x-x-x-x-x---", "x-x-x---x-x-x---", "x-x-x-x-x-------")
SYNCOPATED = ("x--x--x---x-x---", "x-x--x--x---x---", "--x-x--x--x-x---", "x--x----x-x-x---")
SIXTEENTHS = ("xxxxx-x-x-x-x---", "x-xxx-x-xxxxx---", "xxxxxxxxx-------", "x-x-xxxxx-x-x---")
SPARSE = ("x---------------", "x-------x-------", "x-----------x---")
WALTZ_LINES = ("x---x---x---", "x-------x---", "x-----x-x---", "x-x-x-x-x---", "x-----------")

FOUR_ON_THE_FLOOR = {"kick": "x...x...x...x...", "clap": "....x.......x...", "open hat": "..x...x...x...x."}
ROCK = {"kick": "x.......x.x.....", "snare": "....x.......x...", "hat": "x.x.x.x.x.x.x.x."}
SWING_RIDE = {"ride": "x...x.x.x...x.x.", "pedal hat": "....x.......x...", "kick": "o...o...o...o..."}


@dataclass(frozen=True)
class Style:
    name: str
    genres: tuple[str, ...]
    tempo: tuple[tuple[float, float], ...]
    meter: int = 4
    swing: tuple[float, float] = (0.5, 0.5)
    modes: tuple[str, ...] = ("major", "minor")
    progressions: tuple[str, str] = ("pop major", "pop minor")   # PROGRESSIONS names for major, minor
    bars_per_chord: int = 1
    drums: tuple[tuple[dict, ...], ...] = ()                   # options, each a cycle of bars
    kits: tuple[str, ...] = ("standard",)
    bass: tuple[tuple[str, ...], ...] | str = (("R-------R-------",),)  # options, or "walking"
    bass_instruments: tuple[str, ...] = ("electric bass",)
    comp: tuple[tuple[tuple[str, ...], str], ...] = ()          # (patterns, voicing) options
    comp_instruments: tuple[str, ...] = ()
    comp_center: int = 62
    staccato: bool = False
    melody_instruments: tuple[str, ...] = ()
    melody_rhythms: tuple[str, ...] = EIGHTHS
    melody_probability: float = 0.85
    pad_instruments: tuple[str, ...] = ()
    dynamics: tuple[str, ...] = ("soft", "medium", "loud")
    ensemble: tuple[str, ...] = ()
    humanise_ms: float = 8.0
    echo: bool = False            # tempo-synced delay is part of the genre (dub)
    blues: bool = False           # blues scale over dominant sevenths: mode left untagged
    extra_tags: tuple[str, ...] = ()
    arpeggio: tuple[str, tuple[int, ...]] | None = None   # (rhythm, chord-tone order) for the comp part
    notes: str = ""


STYLES = {s.name: s for s in (
    Style("rock", ("rock",), ((100, 140),), drums=((ROCK,), ({**ROCK, "kick": "x.....x.x......."},)),
          kits=("standard", "room", "power"), bass=(("R-R-R-R-R-R-R-R-",), ("R---R---5---R---",)),
          bass_instruments=("picked bass", "electric bass"),
          comp=((("x-x-x-x-x-x-x-x-",), "power"), (("x---x---x---x---",), "close"), (("x-----x---x-----",), "close")),
          comp_instruments=("overdriven guitar", "distortion guitar", "clean guitar"), comp_center=55,
          melody_instruments=("overdriven guitar", "rock organ", "saw lead"), melody_rhythms=EIGHTHS + QUARTERS,
          dynamics=("medium", "loud"), ensemble=("rock band",)),
    Style("punk", ("punk", "rock"), ((160, 200),),
          drums=(({"kick": "x...x...x...x...", "snare": "..x...x...x...x.", "crash": "x.x.x.x.x.x.x.x."},),
                 ({"kick": "x.......x.......", "snare": "....x.......x...", "hat": "x.x.x.x.x.x.x.x."},)),
          kits=("standard", "power"), modes=("major",), progressions=("power major", "power minor"),
          bass=(("R-R-R-R-R-R-R-R-",),), bass_instruments=("picked bass",),
          comp=((("x-x-x-x-x-x-x-x-",), "power"),), comp_instruments=("distortion guitar", "overdriven guitar"),
          comp_center=55, melody_probability=0.0, dynamics=("loud",), ensemble=("rock band",), humanise_ms=6),
    Style("metal", ("metal", "heavy metal"), ((100, 150),), modes=("minor",), progressions=("power major", "power minor"),
          drums=(({"kick": "xxxxxxxxxxxxxxxx", "snare": "....X.......X...", "crash": "x...x...x...x..."},),
                 ({"kick": "x.xxx.xxx.xxx.xx", "snare": "....X.......X...", "ride": "x.x.x.x.x.x.x.x."},)),
          kits=("power", "standard"), bass=(("RRRRRRRRRRRRRRRR",), ("R.RRR.RRR.RRR.RR",)), bass_instruments=("picked bass",),
          comp=((("xxxxxxxxxxxxxxxx",), "power"), (("x.xxx.xxx.xxx.xx",), "power")), staccato=True,
          comp_instruments=("distortion guitar",), comp_center=52, melody_instruments=("distortion guitar",),
          melody_rhythms=SIXTEENTHS, melody_probability=0.4, dynamics=("loud",), ensemble=("rock band",), humanise_ms=4),
    Style("pop", ("pop",), ((95, 130),), drums=((ROCK,), ({"kick": "x.......x.......", "clap": "....x.......x...",
                                                           "hat": "x.x.x.x.x.x.x.x."},)),
          kits=("standard", "electronic"), bass=(("R---R---R-5-R---",), ("R-R-R-R-R-R-R-R-",)),
          bass_instruments=("electric bass", "synth bass"),
          comp=((("x---x---x---x---",), "close"), (("x--x--x-x--x--x-",), "close")),
          comp_instruments=("piano", "steel guitar", "electric piano"),
          melody_instruments=("square lead", "flute", "electric piano", "clean guitar", "vibraphone"),
          melody_rhythms=SYNCOPATED + EIGHTHS, pad_instruments=("warm pad", "string ensemble"), dynamics=("medium", "loud")),
    Style("blues", ("blues",), ((70, 120),), swing=(0.62, 0.68), modes=("major",), progressions=("twelve bar", "twelve bar"),
          drums=(({"kick": "x.......x.......", "snare": "....x.......x...", "hat": "x.x.x.x.x.x.x.x."},),),
          kits=("standard", "room", "brush"), bass=(("R-3-5-6-8-6-5-3-",), ("R---3---5---6---",)),
          bass_instruments=("electric bass", "upright bass"),
          comp=((("x-x-x-x-x-x-x-x-",), "shell"), (("x-----x-----x---",), "close")),
          comp_instruments=("piano", "clean guitar", "organ"),
          melody_instruments=("harmonica", "overdriven guitar", "tenor sax", "clean guitar"),
          melody_rhythms=SYNCOPATED + EIGHTHS, blues=True),
    Style("jazz", ("jazz",), ((110, 200),), swing=(0.6, 0.67), progressions=("jazz major", "jazz minor"),
          drums=((SWING_RIDE,),), kits=("jazz", "brush"), bass="walking", bass_instruments=("upright bass",),
          comp=((("x-----x---------",), "shell"), (("----x-------x---",), "shell"), (("x---------x-----",), "shell")),
          comp_instruments=("piano", "jazz guitar", "vibraphone"),
          melody_instruments=("tenor sax", "alto sax", "trumpet", "muted trumpet", "vibraphone", "jazz guitar",
                              "clarinet", "trombone", "piano"),
          melody_rhythms=EIGHTHS + SYNCOPATED, dynamics=("soft", "medium")),
    Style("swing", ("swing", "jazz", "big band"), ((130, 200),), swing=(0.62, 0.67), progressions=("jazz major", "jazz minor"),
          drums=(({**SWING_RIDE, "kick": "x...x...x...x..."},),), kits=("jazz", "standard"), bass="walking",
          bass_instruments=("upright bass",), comp=((("x.....x...x.....",), "close"), (("....x.......x...",), "close")),
          comp_instruments=("brass section", "trombone", "trumpet"), comp_center=64, staccato=True,
          melody_instruments=("alto sax", "tenor sax", "clarinet", "trumpet"), melody_rhythms=EIGHTHS + SYNCOPATED,
          melody_probability=1.0, pad_instruments=("piano",), dynamics=("medium", "loud"), ensemble=("big band",)),
    Style("bossa nova", ("bossa nova", "latin"), ((110, 140),), progressions=("jazz major", "jazz minor"),
          drums=(({"rimshot": "x..x..x...x..x..", "kick": "x..x....x..x....", "hat": "x.x.x.x.x.x.x.x."},),),
          kits=("jazz", "brush", "standard"), bass=(("R-----5-R-----5-",),), bass_instruments=("upright bass", "fretless bass"),
          comp=((("x--x--x---x--x--",), "shell"),), comp_instruments=("nylon guitar",), comp_center=60,
          melody_instruments=("flute", "tenor sax", "vibraphone", "nylon guitar"), melody_rhythms=SYNCOPATED + QUARTERS,
          dynamics=("soft", "medium")),
    Style("samba", ("samba", "latin"), ((96, 104),),   # WDSF samba: 50-52 bars of 2/4 a minute, in quarter-note beats
          drums=(({"kick": "x..xx..xx..xx..x", "shaker": "XxxxXxxxXxxxXxxx", "snare": "x.x.x..x.x.x.x..",
                   "cowbell": "x.x..x.x..x.x.x."},),),
          bass=(("R-----5-R-----5-",),), bass_instruments=("electric bass", "upright bass"),
          comp=((("x.xx.x.xx.x.x.xx",), "close"),), comp_instruments=("nylon guitar", "steel guitar", "piano"),
          staccato=True, melody_instruments=("flute", "trumpet", "alto sax", "steel drums"), melody_rhythms=SYNCOPATED,
          dynamics=("medium", "loud")),
    Style("cha cha", ("cha cha", "latin"), ((120, 128),),   # WDSF cha-cha: 30-32 bars a minute
          drums=(({"claves": "x.....x.....x...", "low conga": "......x.x.....xx", "cowbell": "x...x...x...x...",
                   "shaker": "x.x.x.x.x.x.x.x."}, {"claves": "....x...x.......", "low conga": "......x.x.....xx",
                                                   "cowbell": "x...x...x...x...", "shaker": "x.x.x.x.x.x.x.x."}),),
          bass=(("R-----5-----R-R-",),), comp=((("x-.x-.x.x-.x-.x.",), "close"),), comp_instruments=("piano",),
          staccato=True, melody_instruments=("trumpet", "flute", "violin"), melody_rhythms=SYNCOPATED + QUARTERS),
    Style("reggae", ("reggae",), ((64, 90),), swing=(0.5, 0.58), progressions=("two chord major", "two chord minor"),
          drums=(({"kick": "........X.......", "rimshot": "........x.......", "hat": "x.x.x.x.x.x.x.x."},),),
          bass=(("R-..5-..R-..3-5-",), ("..R-R-5-8---R-..",)), bass_instruments=("electric bass", "fretless bass"),
          comp=((("....x.......x...",), "close"), (("..x...x...x...x.",), "close")), staccato=True,
          comp_instruments=("clean guitar", "organ", "piano"), melody_instruments=("organ", "harmonica", "trumpet"),
          melody_rhythms=SYNCOPATED + QUARTERS, melody_probability=0.6, dynamics=("soft", "medium")),
    Style("dub", ("dub", "reggae"), ((64, 85),), progressions=("two chord major", "two chord minor"),
          drums=(({"kick": "........X.......", "rimshot": "........x.......", "hat": "x...x...x...x..."},),),
          bass=(("R-----..5---R---",), ("R-..R-5-........",)), bass_instruments=("electric bass", "synth bass"),
          comp=((("....x...........",), "close"),), staccato=True, comp_instruments=("clean guitar", "organ"),
          melody_probability=0.0, dynamics=("medium",), echo=True),
    Style("ska", ("ska",), ((120, 160),),  # faster than rocksteady and reggae, with the skank on every off-beat
          drums=(({"kick": "x.......x.......", "snare": "....x.......x...", "hat": "..x...x...x...x."},),),
          bass="walking", bass_instruments=("electric bass", "upright bass"),
          comp=((("..x...x...x...x.",), "close"),), staccato=True, comp_instruments=("clean guitar", "piano", "organ"),
          melody_instruments=("trumpet", "trombone", "tenor sax"), melody_rhythms=EIGHTHS + SYNCOPATED,
          dynamics=("medium", "loud")),
    Style("funk", ("funk",), ((95, 115),), modes=("minor",), progressions=("vamp minor", "vamp minor"),
          drums=(({"kick": "x.....x...x..x..", "snare": "....X..o.o..X..o", "hat": "xxxxxxxxxxxxxxxx"},),),
          bass=(("R--8--R.R.5.8.R.",), ("R.RR..8.R..5..7.",)), bass_instruments=("slap bass", "electric bass"),
          comp=((("x.xx.x.xx.x.x.xx",), "shell"),), staccato=True, comp_instruments=("clavinet", "muted guitar"),
          melody_instruments=("brass section", "tenor sax", "synth brass"), melody_rhythms=SYNCOPATED,
          melody_probability=0.5, dynamics=("medium", "loud"), humanise_ms=5),
    Style("disco", ("disco", "dance"), ((110, 130),),
          drums=(({"kick": "x...x...x...x...", "snare": "....x.......x...", "open hat": "..x...x...x...x.",
                   "hat": "x...x...x...x..."},),),
          bass=(("R-8-R-8-R-8-R-8-",),), bass_instruments=("electric bass", "synth bass"),
          comp=((("x-x-x-x-x-x-x-x-",), "close"), (("..x...x...x...x.",), "close")), staccato=True,
          comp_instruments=("muted guitar", "piano", "clean guitar"), melody_instruments=("string ensemble", "synth strings",
                                                                                           "brass section", "flute"),
          melody_rhythms=SYNCOPATED + QUARTERS, pad_instruments=("string ensemble",), dynamics=("medium", "loud"),
          humanise_ms=4),
    Style("house", ("house", "electronic", "dance"), ((118, 130),), progressions=("dance major", "dance minor"),
          drums=((FOUR_ON_THE_FLOOR,), ({**FOUR_ON_THE_FLOOR, "hat": "x.x.x.x.x.x.x.x."},)), kits=("electronic", "808"),
          bass=(("..R-..R-..R-..R-",), ("R--R--R-..R-..R-",)), bass_instruments=("synth bass", "synth bass 2"),
          comp=((("x..x..x...x..x..",), "close"), (("..x...x...x...x.",), "close")), staccato=True,
          comp_instruments=("piano", "organ", "electric piano"), melody_instruments=("saw lead", "square lead"),
          melody_rhythms=SYNCOPATED, melody_probability=0.4, pad_instruments=("warm pad", "polysynth pad"),
          dynamics=("medium", "loud"), humanise_ms=0, extra_tags=("four on the floor",)),
    Style("techno", ("techno", "electronic", "dance"), ((125, 145),), modes=("minor",), progressions=("dance major", "dance minor"),
          drums=(({"kick": "x...x...x...x...", "open hat": "..x...x...x...x.", "hat": "xxxxxxxxxxxxxxxx"},),
                 ({"kick": "x...x...x...x...", "clap": "....x.......x...", "ride": "..x...x...x...x."},)),
          kits=("808", "electronic"), bass=(("R.RR.RR.R.RR.RR.",), ("..R...R...R...R.",)),
          bass_instruments=("synth bass", "synth bass 2"), comp=((("x..x..x...x.....",), "close"),), staccato=True,
          comp_instruments=("polysynth pad", "saw lead", "synth brass"), melody_probability=0.0,
          pad_instruments=("sweep pad", "halo pad"), dynamics=("medium", "loud"), humanise_ms=0,
          extra_tags=("four on the floor",)),
    Style("drum and bass", ("drum and bass", "electronic"), ((160, 180),), modes=("minor",),
          progressions=("dance major", "dance minor"), bars_per_chord=2,
          drums=(({"kick": "x.........x.....", "snare": "....x..o.o..x...", "hat": "x.x.x.x.x.x.x.x."},
                  {"kick": "x.x.......x.....", "snare": "....x.......x..o", "hat": "x.x.x.x.x.x.x.xx"}),),
          kits=("standard", "electronic"), bass=(("R-------R---5---",), ("R---------R-----",)),
          bass_instruments=("synth bass", "synth bass 2"), comp=((("x---------------",), "close"),),
          comp_instruments=("warm pad", "halo pad", "string ensemble"), melody_instruments=("electric piano", "saw lead"),
          melody_rhythms=SPARSE + QUARTERS, melody_probability=0.5, dynamics=("medium", "loud"), humanise_ms=0,
          extra_tags=("breakbeat",)),
    Style("hip hop", ("hip hop",), ((80, 100),), swing=(0.5, 0.6), modes=("minor",), progressions=("dance major", "two chord minor"),
          drums=(({"kick": "x......xx.x.....", "snare": "....x.......x...", "hat": "x.x.x.x.x.x.x.x."},),
                 ({"kick": "x.x.......x..x..", "clap": "....x.......x...", "hat": "xxxxxxxxxxxxxxxx"},)),
          kits=("808", "standard"), bass=(("R------RR-R-....",), ("R-------..R-5---",)),
          bass_instruments=("synth bass", "electric bass"), comp=((("x-------x-------",), "close"),),
          comp_instruments=("electric piano", "piano", "string ensemble"), melody_instruments=("flute", "vibraphone", "piano"),
          melody_rhythms=SPARSE + QUARTERS, melody_probability=0.5, dynamics=("medium", "loud"), humanise_ms=3),
    Style("slow waltz", ("waltz",), ((84, 90),), meter=3,     # WDSF slow waltz: 28-30 bars of 3/4 a minute
          progressions=("oom-pah major", "oom-pah minor"), bass=(("R-----------",),),
          bass_instruments=("contrabass", "upright bass", "piano"),
          comp=((("....x---x---",), "close"),), comp_instruments=("string ensemble", "piano", "accordion", "harp"),
          melody_instruments=("violin", "flute", "accordion", "clarinet", "piano"), melody_rhythms=WALTZ_LINES,
          melody_probability=1.0, dynamics=("soft", "medium")),
    Style("viennese waltz", ("waltz",), ((174, 180),), meter=3,  # WDSF Viennese waltz: 58-60 bars a minute
          progressions=("oom-pah major", "oom-pah minor"), bass=(("R-----------",), ("R-----------", "5-----------")),
          bass_instruments=("contrabass", "tuba"), comp=((("....x...x...",), "close"),), staccato=True,
          comp_instruments=("string ensemble", "pizzicato strings", "accordion"),
          melody_instruments=("violin", "flute", "clarinet"), melody_rhythms=WALTZ_LINES, melody_probability=1.0,
          extra_tags=("orchestral",)),
    Style("march", ("march",), ((112, 124),),  # quick time is 120 steps a minute (US Army FM 3-21.5)
          modes=("major",), progressions=("oom-pah major", "oom-pah minor"),
          drums=(({"snare": "X.xxx.x.X.xxx.x.", "bass drum": "x.......x......."},),), kits=("orchestra", "standard"),
          bass=(("R-------5-------",),), bass_instruments=("tuba",), comp=((("....x.......x...",), "close"),), staccato=True,
          comp_instruments=("french horn", "trombone"), melody_instruments=("trumpet", "piccolo", "clarinet"),
          melody_rhythms=QUARTERS + EIGHTHS, melody_probability=1.0, dynamics=("medium", "loud"), ensemble=("marching band",)),
    Style("polka", ("polka",), ((110, 135),), modes=("major",), progressions=("oom-pah major", "oom-pah minor"),
          drums=(({"kick": "x.......x.......", "snare": "....x.......x..."},),), bass=(("R-------5-------",),),
          bass_instruments=("tuba",), comp=((("....x.......x...",), "close"),), staccato=True,
          comp_instruments=("accordion",), melody_instruments=("clarinet", "trumpet", "accordion"),
          melody_rhythms=EIGHTHS, melody_probability=1.0, dynamics=("medium", "loud")),
    Style("tango", ("tango",), ((124, 132),), modes=("minor",),  # WDSF tango: 31-33 bars a minute
          progressions=("oom-pah major", "oom-pah minor"), bass=(("R--5R-5-R--5R-5-",),),  # the habanera rhythm
          bass_instruments=("upright bass", "contrabass"), comp=((("X...x...X...x...",), "close"),), staccato=True,
          comp_instruments=("piano", "bandoneon"), melody_instruments=("bandoneon", "violin"),
          melody_rhythms=QUARTERS + SYNCOPATED, melody_probability=1.0),
    Style("country", ("country",), ((100, 130),), modes=("major",),
          drums=(({"kick": "x.......x.......", "snare": "....x.......x...", "hat": "x.x.x.x.x.x.x.x."},),),
          kits=("brush", "standard"), bass=(("R-------5-------",),), bass_instruments=("electric bass", "upright bass"),
          comp=((("x---x-x-x---x-x-",), "close"),), comp_instruments=("steel guitar",), comp_center=57,
          melody_instruments=("fiddle", "banjo", "harmonica", "clean guitar"), melody_rhythms=EIGHTHS),
    Style("folk", ("folk",), ((80, 120),), bass=(("R-------5-------",),), bass_instruments=("upright bass",),
          comp=((("x-x-x-x-x-x-x-x-",), "close"), (("x---x---x---x---",), "close")),
          comp_instruments=("steel guitar", "nylon guitar"), comp_center=57,
          melody_instruments=("fiddle", "flute", "whistle", "accordion", "harmonica", "banjo", "recorder"),
          melody_rhythms=EIGHTHS + QUARTERS, melody_probability=1.0, dynamics=("soft", "medium"), extra_tags=("acoustic",)),
    Style("ambient", ("ambient",), ((60, 78),), progressions=("ambient major", "ambient minor"), bars_per_chord=2,
          bass=(("R---------------",),), bass_instruments=("synth bass", "fretless bass"),
          comp=((("x---------------",), "spread"),), comp_instruments=("warm pad", "halo pad", "new age pad", "bowed pad",
                                                                        "choir pad", "slow strings"),
          melody_instruments=("celesta", "vibraphone", "piano", "kalimba", "electric piano"), melody_rhythms=SPARSE,
          melody_probability=0.6, dynamics=("soft", "medium"), humanise_ms=0),
    Style("baroque", ("baroque", "classical"), ((80, 120),), progressions=("baroque major", "baroque minor"),
          bass=(("R-5-8-5-R-3-5-3-",), ("R-8-R-8-5-8-5-8-",)), bass_instruments=("cello", "harpsichord", "bassoon"),
          comp=((("x---x---x---x---",), "close"),), comp_instruments=("harpsichord",), comp_center=64,
          melody_instruments=("violin", "flute", "oboe", "recorder", "harpsichord", "trumpet"),
          melody_rhythms=SIXTEENTHS + EIGHTHS, melody_probability=1.0, dynamics=("soft", "medium")),
    Style("classical piano", ("classical",), ((70, 140),), progressions=("pop major", "pop minor"),
          bass=(), bass_instruments=(), arpeggio=("x-x-x-x-x-x-x-x-", (0, 2, 1, 2)),   # Alberti bass
          comp_instruments=("piano",), comp_center=52, melody_instruments=("piano",), melody_rhythms=EIGHTHS + QUARTERS,
          melody_probability=1.0),
    Style("lullaby", ("lullaby",), ((60, 76),), meter=3, modes=("major",), progressions=("oom-pah major", "oom-pah minor"),
          bass=(), bass_instruments=(), arpeggio=("x---x---x---", (0, 1, 2)),
          comp_instruments=("harp", "nylon guitar", "piano", "celesta"), comp_center=55,
          melody_instruments=("music box", "celesta", "glockenspiel", "flute", "piano", "harp"),
          melody_rhythms=("x-------x---", "x---x---x---", "x-----------"), melody_probability=1.0,
          dynamics=("soft",), humanise_ms=10),
)}
