"""The corpus job: N clips rendered to audio files, a tracks table, and a manifest.

    build_corpus("corpus", clips=5000, seed=0, soundfonts=["/usr/share/sounds/sf2/FluidR3_GM.sf2"])

writes
    corpus/audio/000/000000.flac ...   mono clips
    corpus/tracks.csv                  path, tags (|-separated), split, style, bpm, key, mode, seconds, soundfont
                                       — the table `mre train --tracks` reads
    corpus/manifest.json               seed, counts per tag/style/split, SoundFonts (sha256), the held-out
                                       flag, render speed, and every clip's variation

Clip i depends only on (seed, i) and the options, never on the worker that made it or on
N, so the same command gives the same table and the same audio, and a larger corpus with
the same seed extends a smaller one.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mre.training.corpus.arrangements import catalogue, make_arrangement
from mre.training.corpus.render import Renderer, SoundFontGap, check_soundfont, draw_variation, is_held_out, sha256
from mre.util.atomic import write_text_atomic

FORMATS = {"flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS")}
COLUMNS = ("path", "tags", "split", "style", "bpm", "key", "mode", "seconds", "soundfont")
# train / valid / test, the 80/10/10 split `mre train` makes when a table has none
SPLIT_FRACTIONS = (("train", 0.8), ("valid", 0.1), ("test", 0.1))
MANIFEST_VERSION = 1
# Held-out evaluation sets: the training corpus is seed 0, and clips depend on (seed, index) only.
HELD_OUT_SEED = 20190
HELD_OUT_CLIPS = 600


@dataclass(frozen=True)
class CorpusOptions:
    out: Path
    clips: int
    seed: int
    soundfonts: tuple[Path, ...]
    seconds: float = 10.0
    length_jitter: float = 0.15
    sample_rate: int = 22050
    audio_format: str = "flac"
    held_out_evaluation: bool = False


def bundled_soundfont() -> Path:
    """TimGM6mb (GPL-2, ~6 MB), shipped inside the pretty_midi package: a GM SoundFont that needs no system package."""
    try:
        import pretty_midi
    except ImportError:
        raise ValueError("the bundled SoundFont comes with pretty-midi: pip install pretty-midi") from None
    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def resolve_soundfonts(names, held_out_evaluation: bool) -> tuple[Path, ...]:
    """--soundfont values: files, or "timgm6mb" for the copy pretty_midi ships. Held-out fonts refused for training."""
    if not names:
        raise ValueError("give at least one --soundfont (e.g. /usr/share/sounds/sf2/FluidR3_GM.sf2, or timgm6mb)")
    paths = [bundled_soundfont() if str(n).lower() == "timgm6mb" else Path(n) for n in names]
    return tuple(check_soundfont(p, held_out_evaluation) for p in paths)


def split_of(seed: int, index: int) -> str:
    draw = np.random.default_rng([seed, index, 3]).random()
    total = 0.0
    for name, fraction in SPLIT_FRACTIONS:
        total += fraction
        if draw < total:
            return name
    return SPLIT_FRACTIONS[-1][0]


def audio_path(index: int, audio_format: str) -> str:
    return f"audio/{index // 1000:03d}/{index:06d}.{audio_format}"


_renderer: Renderer | None = None
_options: CorpusOptions | None = None


def _start_worker(options: CorpusOptions) -> None:
    global _renderer, _options
    _options = options
    _renderer = Renderer(list(options.soundfonts), options.sample_rate)


def _start_pool_worker(options: CorpusOptions, owner_pid: int, owner_start_time: str | None) -> None:
    """A render process: Ctrl-C and SIGTERM are the builder's to handle (a Ctrl-C that reached
    the workers could kill one holding the task queue's lock, and the others then waited on it
    for ever, the builder with them), and it ends with the builder."""
    from mre.embedder import lifetime

    lifetime.init_worker(owner_pid, owner_start_time)
    _start_worker(options)


class UnrenderableClip(ValueError):
    """No SoundFont given plays every part of a clip (with one SoundFont there is no other to
    try); the message is the last SoundFont's gap ("clip 61 (folk): the SoundFont plays whistle
    silent")."""


def render_with_fallback(renderer: Renderer, arrangement, variation: dict, n_fonts: int) -> tuple:
    """Render with the drawn SoundFont; where it lacks a part's sound, with the next one in the
    order given (the same one every time: the corpus stays a function of its seed). Returns the
    audio, what was used and the variation with the SoundFont that played it."""
    drawn = variation["soundfont"]
    gaps = []
    for step in range(n_fonts):
        tried = variation | {"soundfont": (drawn + step) % n_fonts}
        try:
            audio, used, _ = renderer.render(arrangement, tried)
        except SoundFontGap as gap:
            gaps.append(str(gap))
            continue
        if step:
            used["fallback_from"] = drawn
        return audio, used, tried
    raise UnrenderableClip(gaps[-1])


def render_clip(index: int) -> dict:
    """Make, render and write clip `index`; returns its table row and manifest entry, or (no
    SoundFont given plays one of its parts) ``{"skipped": {index, style, reason}}``: a clip left
    out and recorded, not a build stopped (a 3,000-clip build through TimGM6mb alone stopped at
    clip 2,914 and kept none)."""
    import soundfile as sf

    options, renderer = _options, _renderer
    arrangement = make_arrangement(options.seed, index, options.seconds)
    variation = draw_variation(arrangement, len(options.soundfonts), options.seconds, options.length_jitter)
    try:
        audio, used, variation = render_with_fallback(renderer, arrangement, variation, len(options.soundfonts))
    except UnrenderableClip as gap:
        return {"skipped": {"index": index, "style": arrangement.style, "reason": str(gap)}}
    relative = audio_path(index, options.audio_format)
    target = options.out / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    container, subtype = FORMATS[options.audio_format]
    sf.write(target, audio, options.sample_rate, format=container, subtype=subtype)
    font = options.soundfonts[variation["soundfont"]].name
    row = {"path": relative, "tags": "|".join(arrangement.tags), "split": split_of(options.seed, index),
           "style": arrangement.style, "bpm": f"{arrangement.bpm:g}", "key": arrangement.key, "mode": arrangement.mode,
           "seconds": f"{len(audio) / options.sample_rate:.3f}", "soundfont": font}
    entry = {"path": relative, "kind": arrangement.kind, "style": arrangement.style, "tags": arrangement.tags,
             "meter": arrangement.meter, "swing": arrangement.swing, "dynamics": arrangement.dynamics,
             "parts": [{"instrument": p.instrument, "role": p.role, "notes": len(p.notes)} for p in arrangement.parts],
             "variation": variation | {"soundfont": font}, "rendered": used}
    return {"row": row, "entry": entry, "seconds": len(audio) / options.sample_rate}


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise ValueError(f"--out {out} is not empty and holds no corpus; choose an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)


# the modules that make a clip's music, tags and sound: a corpus made by other code is not "this corpus"
GENERATOR_MODULES = ("arrangements", "music", "styles", "instruments", "render", "effects")


def generator_fingerprint(folder: Path | None = None) -> str:
    """sha256 over the generator modules' code, docstrings and comments left out (an edit of the
    prose does not make a corpus stale; an edit of the code does)."""
    import ast

    digest = hashlib.sha256()
    folder = Path(__file__).resolve().parent if folder is None else Path(folder)
    for name in GENERATOR_MODULES:
        tree = ast.parse((folder / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        digest.update(name.encode() + ast.dump(tree).encode())
    return digest.hexdigest()


def _options_record(options: CorpusOptions) -> dict:
    """What decides a corpus's clips, as its manifest records it."""
    return {"version": MANIFEST_VERSION, "generator": generator_fingerprint(), "seed": options.seed,
            "clip_count": options.clips, "seconds": options.seconds,
            "length_jitter": options.length_jitter, "sample_rate": options.sample_rate,
            "audio_format": options.audio_format, "held_out_evaluation": options.held_out_evaluation}


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256(path)


def _font_sha256(path: Path) -> str:
    """A SoundFont's sha256, hashed once per file version: a build compares and records it
    several times (FluidR3_GM is 148 MB)."""
    stat = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def _same_corpus(manifest: dict, options: CorpusOptions, *, clip_count: bool = True) -> bool:
    """Whether a manifest's clips are the ones `options` make: the same options (the clip count
    left out unless `clip_count`), generator code and SoundFont files, in order."""
    if any(manifest.get(key) != value for key, value in _options_record(options).items()
           if clip_count or key != "clip_count"):
        return False
    return [(f.get("name"), f.get("sha256")) for f in manifest.get("soundfonts", [])] == \
        [(p.name, _font_sha256(p)) for p in options.soundfonts]


def already_built(options: CorpusOptions) -> dict | None:
    """The manifest of OUT when it holds this very corpus, complete (same options, generator code
    and SoundFont files, every clip on disk): a second `make model` reuses it instead of
    rendering again."""
    manifest = read_manifest(Path(options.out))
    if manifest is None or not _same_corpus(manifest, options):
        return None
    return manifest if _complete(manifest, Path(options.out)) else None


def _complete(manifest: dict, out: Path) -> bool:
    """Whether a manifest accounts for each of its clip_count clips (listed, or skipped: no
    SoundFont given plays it) and each listed clip's file is in OUT."""
    clips = manifest.get("clips", [])
    return len(clips) + len(manifest.get("skipped_clips", [])) == manifest.get("clip_count") and \
        all((out / c["path"]).is_file() for c in clips)


def read_manifest(out: Path) -> dict | None:
    """The manifest.json in OUT, or None when there is none or it does not read as one."""
    try:
        manifest = json.loads((Path(out) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def reusable_clips(options: CorpusOptions) -> dict[int, dict]:
    """Clips of the corpus in OUT that this build would render the same, by index: a clip depends
    on the seed, its index, the other options, the generator code and the SoundFont files, not on
    how many clips there are, so a corpus grown or cut to another clip count keeps the clips it
    shares with the one there. Each comes back as render_clip's result, read from the table, the
    manifest and the file's header; a clip whose file is gone is left out (rendered again)."""
    import soundfile as sf

    out = Path(options.out)
    manifest = read_manifest(out)
    if manifest is None or not _same_corpus(manifest, options, clip_count=False):
        return {}
    try:
        with open(out / "tracks.csv", newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError:
        return {}
    listed = {row.get("path"): (row, entry) for row, entry in zip(rows, manifest.get("clips", []))
              if row.get("path") == entry.get("path")}
    reused = {}
    for index in range(options.clips):
        path = audio_path(index, options.audio_format)
        if path not in listed:
            continue
        row, entry = listed[path]
        try:
            info = sf.info(str(out / path))
        except (OSError, RuntimeError):  # gone or unreadable: rendered again
            continue
        reused[index] = {"row": {column: row.get(column, "") for column in COLUMNS}, "entry": entry,
                         "seconds": info.frames / info.samplerate}
    return reused


def build_corpus(options: CorpusOptions, workers: int = 1, progress: bool = False, log=None) -> dict:
    """Render the corpus; returns the manifest (also written to OUT/manifest.json). When OUT
    already holds this corpus complete, nothing is rendered and its manifest comes back with
    "reused": True; when it holds part of it (the same corpus with another clip count), only the
    clips it lacks are rendered ("reused_clips" in the manifest's render record)."""
    if options.clips < 1:
        raise ValueError("--clips must be at least 1")
    if not 1.0 <= options.seconds <= 600.0:
        raise ValueError("--seconds must be between 1 and 600")
    if options.audio_format not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}")
    for font in options.soundfonts:
        check_soundfont(font, options.held_out_evaluation)
    out = Path(options.out)
    existing = already_built(options)
    if existing is not None:
        return existing | {"reused": True}
    _prepare_out(out)
    options = CorpusOptions(**{**options.__dict__, "out": out})
    kept = reusable_clips(options)
    # Until this build's manifest is written, the folder says it holds the clips kept and no
    # others: files rendered before an interruption are never taken for another corpus's clips.
    _write_table_and_manifest(options, [kept[i] for i in sorted(kept)], {"incomplete": True})
    todo = [index for index in range(options.clips) if index not in kept]
    from tqdm import tqdm

    from mre.util.progress import redraw_every

    bar = tqdm(total=options.clips, initial=len(kept), unit="clip", file=sys.stderr, disable=not progress,
               dynamic_ncols=True, **redraw_every())
    started = time.perf_counter()
    rendered = {}
    try:
        if todo and workers <= 1:
            _start_worker(options)
            for index in todo:
                rendered[index] = render_clip(index)
                bar.update()
        elif todo:
            import os
            from concurrent.futures import ProcessPoolExecutor

            from mre.embedder import lifetime

            pool = ProcessPoolExecutor(workers, initializer=_start_pool_worker,
                                       initargs=(options, os.getpid(), lifetime.process_start_time(os.getpid())))
            try:
                for index, result in zip(todo, pool.map(render_clip, todo, chunksize=4)):
                    rendered[index] = result
                    bar.update()
            finally:
                # interrupted: clips not started are not rendered; a second signal waits for the
                # shutdown (cut short, it left the workers waiting for ever, and the builder with them)
                with lifetime.signals_held():
                    pool.shutdown(wait=True, cancel_futures=True)
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM, which `mre corpus build` turns into it): the clips rendered so far
        # join the ones kept in the folder's interim manifest, and the next build keeps them all
        bar.close()
        done = kept | rendered
        _write_table_and_manifest(options, [done[i] for i in sorted(done)], {"incomplete": True})
        raise
    bar.close()
    wall = time.perf_counter() - started
    audio_seconds = sum(r.get("seconds", 0.0) for r in rendered.values())
    results = [kept[index] if index in kept else rendered[index] for index in range(options.clips)]
    render = {"audio_seconds": round(sum(r.get("seconds", 0.0) for r in results), 1), "wall_seconds": round(wall, 2),
              "speed_x_realtime": round(audio_seconds / wall, 1) if wall > 0 and todo else None,
              "workers": workers, "reused_clips": len(kept)}
    manifest = _write_table_and_manifest(options, results, render)
    listed = {r["row"]["path"] for r in results if "row" in r}
    # clips of an earlier corpus here, or rendered before an interruption, that this one does not
    # list: not left to be indexed or trained on by mistake
    for stale in _clip_files(out) - listed:
        (out / stale).unlink(missing_ok=True)
    return manifest


def _clip_files(out: Path) -> set[str]:
    """Files under OUT/audio named as the builder names clips."""
    pattern = re.compile(r"^\d{6}\.(" + "|".join(map(re.escape, FORMATS)) + r")$")
    return {str(p.relative_to(out)) for p in (out / "audio").glob("*/*") if pattern.match(p.name)}


def _write_table_and_manifest(options: CorpusOptions, results: list[dict], render: dict) -> dict:
    """OUT's tracks.csv and manifest.json for these clips (render_clip's results, in order), the
    manifest last; a manifest listing fewer clips and skipped clips than its clip_count is a
    build in progress or interrupted, never a complete corpus."""
    out = Path(options.out)
    skipped = [r["skipped"] for r in results if "skipped" in r]
    results = [r for r in results if "skipped" not in r]
    rows = [r["row"] for r in results]
    with open(out / "tracks.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    tag_counts = Counter(tag for r in rows for tag in r["tags"].split("|"))
    manifest = {
        "purpose": "held-out evaluation" if options.held_out_evaluation else "training",
        **_options_record(options),
        "soundfonts": [{"name": p.name, "sha256": _font_sha256(p), "held_out": is_held_out(p),
                        "clips": sum(r["soundfont"] == p.name for r in rows)} for p in options.soundfonts],
        "tag_vocabulary_size": len(tag_counts),
        "counts": {"tags": dict(sorted(tag_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
                   "styles": dict(sorted(Counter(r["style"] for r in rows).items())),
                   "splits": dict(sorted(Counter(r["split"] for r in rows).items()))},
        "render": render,
        "catalogue": catalogue(),
        **({"skipped_clips": skipped} if skipped else {}),  # absent when none: earlier manifests stay as they were
        "clips": [r["entry"] for r in results],
    }
    write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return manifest


def held_out_soundfont() -> Path:
    """MuseScore General as Debian's musescore-general-soundfont installs it."""
    for folder in ("/usr/share/sounds/sf3", "/usr/share/sounds/sf2"):
        for name in ("MuseScore_General_Full", "MuseScore_General"):
            for suffix in (".sf3", ".sf2"):
                if (Path(folder) / (name + suffix)).is_file():
                    return Path(folder) / (name + suffix)
    raise ValueError("MuseScore General is not installed (apt-get install musescore-general-soundfont)")


def held_out_set(folder: Path, clips: int = HELD_OUT_CLIPS, seed: int = HELD_OUT_SEED, workers: int = 1,
                 progress: bool = True) -> dict:
    """The manifest of the held-out evaluation set in FOLDER.

    An empty folder gets ``clips`` clips of ``seed`` rendered through MuseScore General alone. A
    set already there is measured as it is (its own clips, seed and SoundFonts), unless other
    generator code made it: then it is rendered again with its own options, so a benchmark
    measures what a fresh checkout renders, not clips an older generator left. A training
    corpus there is refused, not overwritten. Raises ValueError with a one-line reason.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        fonts = resolve_soundfonts([str(held_out_soundfont())], held_out_evaluation=True)
        return build_corpus(CorpusOptions(out=folder, clips=clips, seed=seed, soundfonts=fonts,
                                          held_out_evaluation=True), workers=workers, progress=progress)
    if not manifest.get("held_out_evaluation"):
        raise ValueError(f"{folder} is a training corpus, not a held-out evaluation set")
    if manifest.get("generator") == generator_fingerprint() and _complete(manifest, folder):
        return manifest
    font = held_out_soundfont()
    if [(f.get("name"), f.get("sha256")) for f in manifest.get("soundfonts", [])] != [(font.name, _font_sha256(font))]:
        raise ValueError(f"{folder} is incomplete or was rendered by other generator code, through SoundFonts not "
                         f"found here; render it again (mre corpus build --held-out-evaluation --out {folder} ...) "
                         "or remove it")
    defaults = CorpusOptions(out=folder, clips=clips, seed=seed, soundfonts=())
    options = CorpusOptions(
        out=folder, clips=int(manifest.get("clip_count") or len(manifest.get("clips", [])) or clips),
        seed=int(manifest.get("seed", seed)), soundfonts=(check_soundfont(font, True),),
        seconds=float(manifest.get("seconds", defaults.seconds)),
        length_jitter=float(manifest.get("length_jitter", defaults.length_jitter)),
        sample_rate=int(manifest.get("sample_rate", defaults.sample_rate)),
        audio_format=str(manifest.get("audio_format", defaults.audio_format)), held_out_evaluation=True)
    return build_corpus(options, workers=workers, progress=progress)
