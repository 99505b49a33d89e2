"""`mre duplicates`: the same recording kept several times — found, grouped, never touched.

``find_duplicates(store)`` is the API (``mre serve`` can list its ``as_dict()``): it reads the
store's live tracks, fingerprints the files the cache lacks (indexer/fingerprints.py), proposes
candidate pairs from durations and embedding neighbours, confirms them by aligned
fingerprints and groups them (indexer/fingerprint_match.py). Files are only read.

Each group lists its files, the copy to keep first, and how every other copy relates to it:

- **trimmed or faded**: its duration differs from the kept copy's by ``TRIM_SECONDS`` or more
  (an intro or a silence cut, an early fade-out); the fingerprint offset says where it starts;
- **remaster or level change**: same length, but its loudness differs by ``LEVEL_DB`` or more,
  or its fingerprint agrees less than a re-encode's would (score below ``REENCODE_MIN_SCORE``:
  encoders keep the score above ~0.86 down to 80 kbps MP3; EQ and clipping bring it to ~0.75);
- **re-encode**: same length, level and fingerprint, another format, codec, sample rate or
  channel count;
- **same audio**: all of those alike — a plain copy.

The copy to keep: lossless before lossy, then the higher bitrate (for lossless files their
PCM rate, sample rate × channels × bits; for lossy ones the average, size / duration), then
the longer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from mre.indexer import fingerprint_match as match
from mre.indexer.fingerprints import INSTALL_HINT, ITEM_SECONDS, Fingerprint, update_fingerprints
from mre.indexer.paths import printable_path, table_paths
from mre.indexer.scan import is_under
from mre.indexer.store import Store, StoreError

TRIM_SECONDS = 1.0
LEVEL_DB = 1.0
REENCODE_MIN_SCORE = 0.85
# soundfile subtypes of lossy codecs; every other subtype of a readable file is PCM in some container
LOSSY_SUBTYPES = {"VORBIS": "Vorbis", "OPUS": "Opus", "MPEG_LAYER_I": "MPEG layer I", "MPEG_LAYER_II": "MPEG layer II",
                  "MPEG_LAYER_III": "MP3", "ALAW": "A-law", "ULAW": "µ-law", "G721_32": "G.721", "GSM610": "GSM 6.10",
                  "IMA_ADPCM": "IMA ADPCM", "MS_ADPCM": "MS ADPCM", "VOX_ADPCM": "VOX ADPCM", "NMS_ADPCM_16": "NMS ADPCM",
                  "NMS_ADPCM_24": "NMS ADPCM", "NMS_ADPCM_32": "NMS ADPCM", "DWVW_12": "DWVW", "DWVW_16": "DWVW",
                  "DWVW_24": "DWVW", "G723_24": "G.723", "G723_40": "G.723"}
_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64, "ALAC_16": 16,
         "ALAC_20": 20, "ALAC_24": 24, "ALAC_32": 32}


class DuplicatesError(Exception):
    """A one-line problem a user can act on (no store, no fingerprints...)."""


@dataclass
class DuplicateFile:
    path: str
    format: str | None
    codec: str | None            # soundfile's subtype (PCM_16, VORBIS, MPEG_LAYER_III...)
    lossless: bool
    bitrate_kbps: float | None   # lossy: average (size / duration); lossless: PCM rate
    sample_rate: int | None
    channels: int | None
    duration: float | None
    size: int
    loudness_db: float | None
    kind: str = "keep"           # how it relates to the group's first file (that one: "keep")
    score: float = 1.0           # its fingerprint score against the first file
    offset_seconds: float = 0.0  # where its audio starts in the first file's (+: later)

    def as_dict(self) -> dict:
        return {key: (round(value, 3) if isinstance(value, float) else value) for key, value in self.__dict__.items()}

    def describe(self) -> str:
        parts = [self.format or "?"]
        if self.codec:
            parts.append(self.codec)
        if self.bitrate_kbps:
            parts.append(f"{'' if self.lossless else '~'}{self.bitrate_kbps:.0f} kbps")
        if self.sample_rate:
            parts.append(f"{self.sample_rate} Hz")
        if self.channels:
            parts.append({1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels} ch"))
        if self.duration is not None:
            parts.append(f"{self.duration:.1f} s")
        parts.append(_size_text(self.size))
        return ", ".join(parts)


@dataclass
class DuplicateGroup:
    files: list[DuplicateFile]   # the copy to keep first
    keep_reason: str

    @property
    def keep(self) -> DuplicateFile:
        return self.files[0]

    def as_dict(self) -> dict:
        return {"keep": self.keep.path, "keep_reason": self.keep_reason, "files": [f.as_dict() for f in self.files]}


@dataclass
class DuplicateReport:
    groups: list[DuplicateGroup]
    tracks: int                                  # tracks of the store looked at
    fingerprinted: int                           # of them with a fingerprint
    computed: int = 0                            # fingerprints computed by this run
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, why it has no fingerprint)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"groups": [g.as_dict() for g in self.groups], "tracks": self.tracks, "fingerprinted": self.fingerprinted,
                "computed": self.computed, "skipped": [{"path": p, "reason": r} for p, r in self.skipped]}


def find_duplicates(store: Store | str | Path | None = None, paths: list[str] | None = None,
                    min_score: float = match.DEFAULT_MIN_SCORE, workers: int | None = None,
                    progress: Callable[[int, int, str], None] | None = None) -> DuplicateReport:
    """Groups of the store's files that are one recording (``paths``: only groups with a file
    under one of them). Fingerprints the cache lacks are computed and cached."""
    from mre.retrieval.library import default_store_path

    if not isinstance(store, Store):
        store = Store(Path(store).expanduser() if store else default_store_path())
    try:
        generation = store.open_live()
    except StoreError as error:
        raise DuplicatesError(str(error)) from None
    with generation:
        tracks = generation.track_rows()
        vectors = generation.track_vectors()
    keys = list(zip(table_paths(tracks), tracks.column("size").to_pylist(), tracks.column("mtime_ns").to_pylist()))
    wanted = [str(Path(p).expanduser().resolve()) for p in paths] if paths else None
    outside = [root for root in wanted or () if not any(is_under(key[0], root) for key in keys)]
    if outside and len(outside) == len(wanted):  # a typo or an unindexed folder: said before any fingerprinting
        raise DuplicatesError(f"no track of the store is under {printable_path(outside[0])}"
                              f"{' (nor the other paths given)' if len(outside) > 1 else ''}: "
                              f"`mre index PATH --store {store.root}` adds a folder")
    update = update_fingerprints(store, keys, keep=set(keys), workers=workers, progress=progress)
    report = DuplicateReport(groups=[], tracks=len(keys), fingerprinted=0, computed=update.computed)
    report.notes = update.lines() + [f"no track of the store is under {printable_path(root)}" for root in outside]
    rows = [row for row, key in enumerate(keys) if key in update.fingerprints and update.fingerprints[key].items is not None]
    report.skipped = [(key[0], update.fingerprints[key].error) for key in keys
                      if key in update.fingerprints and update.fingerprints[key].items is None]
    report.fingerprinted = len(rows)
    if not rows:
        if update.missing_tool:
            raise DuplicatesError(f"no track of the store has a fingerprint yet, and {INSTALL_HINT}")
        return report
    fingerprints: list[Fingerprint] = [update.fingerprints[keys[row]] for row in rows]
    durations = np.array(tracks.column("duration").to_pylist(), dtype=object)[rows]
    durations = np.array([d if d is not None else f.duration for d, f in zip(durations, fingerprints)], dtype=np.float64)
    matrix = match.FingerprintMatrix([f.items for f in fingerprints])
    a, b = match.candidate_pairs(durations, vectors[rows])
    scored = match.score_pairs(matrix, a, b)
    groups = match.group_matches(matrix, scored, min_score=min_score)
    columns = {name: tracks.column(name).to_pylist() for name in ("duration", "sample_rate", "channels", "format", "size")}
    loudness = tracks.column("loudness_db").to_pylist() if "loudness_db" in tracks.column_names else [None] * len(keys)
    lookup = match.pair_score_lookup(scored)
    for members in groups:
        if wanted and not any(is_under(keys[rows[m]][0], root) for m in members for root in wanted):
            continue
        files = {m: _file(keys[rows[m]][0], {name: values[rows[m]] for name, values in columns.items()},
                          loudness[rows[m]]) for m in members}
        ranked = sorted(members, key=lambda m: (_keep_rank(files[m]), files[m].path))
        keeper = ranked[0]
        missing = [(keeper, m) for m in ranked[1:] if (keeper, m) not in lookup]
        if missing:  # pairs never proposed as candidates (grouping checked them): score them now
            lookup.update(match.pair_score_lookup(match.score_pairs(
                matrix, np.array([x for x, _ in missing]), np.array([y for _, y in missing]))))
        for m in ranked[1:]:
            score, offset = lookup[(keeper, m)]
            copy = files[m]
            copy.score, copy.offset_seconds = round(score, 3), round(-offset * ITEM_SECONDS, 2)
            copy.kind = _kind(files[keeper], copy)
        report.groups.append(DuplicateGroup([files[m] for m in ranked], _keep_reason([files[m] for m in ranked])))
    report.groups.sort(key=lambda g: g.keep.path)
    return report


def _file(path: str, row: dict, loudness: float | None) -> DuplicateFile:
    codec, fmt, lossless, bits = None, row.get("format"), True, None
    try:
        import soundfile

        info = soundfile.info(path)
        codec, fmt = info.subtype, info.format
    except Exception:  # gone or unreadable since it was indexed: the store's facts still say enough
        pass
    if codec is not None:
        lossless = codec not in LOSSY_SUBTYPES
        bits = _BITS.get(codec)
    duration, rate, channels = row.get("duration"), row.get("sample_rate"), row.get("channels")
    if lossless:
        bitrate = rate * channels * bits / 1000.0 if rate and channels and bits else None
    else:
        bitrate = row["size"] * 8 / duration / 1000.0 if duration else None
    return DuplicateFile(path=path, format=fmt, codec=codec, lossless=lossless, bitrate_kbps=bitrate, sample_rate=rate,
                         channels=channels, duration=duration, size=row["size"], loudness_db=loudness)


def _keep_rank(f: DuplicateFile) -> tuple:
    return (not f.lossless, -(f.bitrate_kbps or 0.0), -(f.duration or 0.0))


def _keep_reason(files: list[DuplicateFile]) -> str:
    keep, runner_up = files[0], files[1]
    if keep.lossless and not runner_up.lossless:   # then every other copy is lossy
        return f"lossless ({keep.format} {keep.codec}); the others are lossy"
    kind = "lossless, " if keep.lossless else ""
    if (keep.bitrate_kbps or 0) > (runner_up.bitrate_kbps or 0) + 0.5:
        what = "PCM rate" if keep.lossless else "average bitrate"
        return f"{kind}the highest {what} ({keep.bitrate_kbps:.0f} kbps; next {runner_up.bitrate_kbps or 0:.0f})"
    if (keep.duration or 0) > (runner_up.duration or 0) + 0.05:
        return f"{kind}as good as the next, and the longest ({keep.duration:.1f} s; next {runner_up.duration or 0:.1f} s)"
    return f"{kind}no copy is better by these rules (format, bitrate, length): the first by path"


def _kind(keep: DuplicateFile, copy: DuplicateFile) -> str:
    if keep.duration is not None and copy.duration is not None and abs(keep.duration - copy.duration) >= TRIM_SECONDS:
        return "trimmed or faded"
    if (keep.loudness_db is not None and copy.loudness_db is not None
            and abs(keep.loudness_db - copy.loudness_db) >= LEVEL_DB) or copy.score < REENCODE_MIN_SCORE:
        return "remaster or level change"
    if (keep.format, keep.codec, keep.sample_rate, keep.channels) != (copy.format, copy.codec, copy.sample_rate, copy.channels):
        return "re-encode"
    return "same audio"


def _size_text(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def report_lines(report: DuplicateReport) -> list[str]:
    """The report as text: a block per group, the copy to keep first."""
    out = []
    for number, group in enumerate(report.groups, 1):
        out.append(f"group {number}: {len(group.files)} files — keep {printable_path(group.keep.path)}")
        out.append(f"  why: {group.keep_reason}")
        for f in group.files:
            relation = "keep" if f is group.keep else f"{f.kind}, score {f.score:.2f}" + (
                f", starts {f.offset_seconds:+.1f} s" if abs(f.offset_seconds) >= 0.5 else "")
            out.append(f"  {'*' if f is group.keep else '-'} {printable_path(f.path)}")
            out.append(f"      {f.describe()}  [{relation}]")
    copies = sum(len(g.files) - 1 for g in report.groups)
    out.append(f"{len(report.groups)} groups, {copies} extra copies among {report.fingerprinted} fingerprinted tracks"
               f" (of {report.tracks}); nothing was deleted or moved")
    return out
