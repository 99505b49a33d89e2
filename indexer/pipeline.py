"""`mre index`: scan → diff against the live generation → embed what changed → commit.

Work is resumable: finished tracks (and files that failed, with the reason) are appended to
the store's staging area in whole Parquet parts every few seconds, so a run killed or
interrupted leaves the live generation untouched and the next run embeds only what is
missing. Removal is scoped to the scanned root: indexing ~/Music/a and then ~/Music/b into
one store keeps both.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from mre.embedder.attributes import ATTRIBUTE_NAMES, TrackAttributes, extract_attributes
from mre.embedder.audio import AUDIO_EXTENSIONS
from mre.embedder.models import load_model
from mre.embedder.runner import DEFAULT_MAX_SECONDS, embed_files
from mre.embedder.word_vectors import word_vectors_reference
from mre.embedder.words import load_tag_vocabulary
from mre.indexer.diff import diff_library
from mre.indexer.scan import FileEntry, is_under, scan_library
from mre.indexer.store import Store, track_id_for, tracks_schema, vectors_from_column

# staged parts are flushed this often so an interruption loses at most this much work
FLUSH_SECONDS = 10.0
TOP_TAGS_PER_TRACK = 5

STAGED_COLUMNS = ("path", "size", "mtime_ns", "duration", "sample_rate", "channels", "format", "vector", "error")


@dataclass
class IndexSummary:
    store: str
    generation: str | None
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    resumed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    audio_seconds: float = 0.0
    committed: bool = False
    total: int = 0
    model_change: str | None = None   # "old → new" when the store was made with another model
    reembedded_elsewhere: int = 0     # tracks under the store's other roots embedded again with the new model

    def lines(self) -> list[str]:
        speed = f", {self.audio_seconds / self.seconds:.0f}× realtime" if self.seconds > 0 and self.audio_seconds else ""
        head = (f"indexed {self.indexed}, unchanged {self.unchanged}, removed {self.removed}, "
                f"skipped {len(self.skipped)} — {self.total} tracks in the store "
                f"({self.seconds:.1f} s{speed})")
        out = [head]
        if self.model_change:
            out.append(f"model changed ({self.model_change}): every track in the store was embedded again")
        if self.reembedded_elsewhere:
            out.append(f"{self.reembedded_elsewhere} of them are under other folders of the store: embedded again "
                       "with the new model, so nothing indexed is lost")
        if self.resumed:
            out.append(f"resumed: {self.resumed} tracks came from an interrupted earlier run")
        for path, reason in self.skipped[:20]:
            out.append(f"  skipped {path}: {reason}")
        if len(self.skipped) > 20:
            out.append(f"  … and {len(self.skipped) - 20} more (see skipped.parquet in the store)")
        if not self.committed:
            out.append("nothing changed: the live index is already up to date")
        return out


# musical attributes (issue 6), one column each, measured in the decode worker on the same samples
ATTRIBUTE_FIELDS = [pa.field(name, pa.string() if name in ("key", "mode") else pa.float64()) for name in ATTRIBUTE_NAMES]


def full_tracks_schema(dim: int) -> pa.Schema:
    """The store's tracks table: the store's own columns plus the attribute columns."""
    schema = tracks_schema(dim)
    for attribute_field in ATTRIBUTE_FIELDS:
        schema = schema.append(attribute_field)
    return schema


def _staged_schema(dim: int) -> pa.Schema:
    return pa.schema([
        ("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()),
        ("duration", pa.float64()), ("sample_rate", pa.int32()), ("channels", pa.int32()),
        ("format", pa.string()), ("vector", pa.list_(pa.float32(), dim)), ("error", pa.string()),
        *ATTRIBUTE_FIELDS,
    ])


def _attribute_values(extras) -> dict:
    """Attribute columns of one track; nulls when the analysis failed (the track still counts)."""
    if isinstance(extras, TrackAttributes):
        return extras.as_dict()
    return {name: None for name in ATTRIBUTE_NAMES}


def index_library(root: str | Path, store: Store, **options) -> IndexSummary:
    """Bring the store up to date with the audio files under `root` (options: see `_index`).

    Holds the store's write lock for the whole run: a second `mre index` on the same store
    fails at once with a clear message instead of interleaving its work.
    """
    with store.lock():
        return _index(root, store, **options)


def _index(
    root: str | Path,
    store: Store,
    *,
    model_name: str | None = None,
    device: str = "auto",
    workers: int | None = None,
    batch_size: int = 64,
    index_spec: str | None = None,
    vocabulary: str | None = None,
    word_vectors: str | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    progress=None,
) -> IndexSummary:
    """progress: a callable `(done, total, path)` called per finished track (the CLI draws a bar)."""
    started = time.monotonic()
    root_path = str(Path(root).expanduser().resolve())
    if not os.path.exists(root_path):
        raise FileNotFoundError(f"no such file or folder: {root}")
    # the device ("auto" looks for a GPU through torch) is resolved where audio is embedded:
    # an unchanged library is scanned and compared without importing torch
    model = load_model(model_name, device=device, word_vectors=word_vectors)
    live = store.live()
    live_tracks = live.tracks() if live is not None else None
    model_changed = live is not None and (live.meta.get("model_id") != model.model_id
                                          or not set(ATTRIBUTE_NAMES) <= set(live_tracks.column_names))
    if model_changed:
        if live.meta.get("model_id") != model.model_id:
            summary_model_change = f"{live.meta.get('model_id')} → {model.model_id}"
        else:
            summary_model_change = "the tracks table predates the attribute columns"
        # A different model: every vector must be made again, the other roots' tracks too, so a
        # model change loses nothing already indexed (a file gone since then counts as removed).
        reembed_elsewhere, gone_elsewhere = _entries_still_there(
            p for p in live_tracks.column("path").to_pylist() if not is_under(p, root_path))
        live_tracks = None
    else:
        summary_model_change, reembed_elsewhere, gone_elsewhere = None, [], 0

    scan = scan_library(root_path, AUDIO_EXTENSIONS)
    in_root = None
    if live_tracks is not None and live_tracks.num_rows:
        paths = live_tracks.column("path").to_pylist()
        mask = np.array([is_under(p, root_path) for p in paths], dtype=bool)
        in_root = live_tracks.filter(pa.array(mask))
        outside = live_tracks.filter(pa.array(~mask))
    else:
        outside = None
    diff = diff_library(scan.files, in_root)

    # files that failed before and have not changed since are not tried again
    previously_skipped = {}
    live_skipped = live.skipped().to_pylist() if live is not None else []
    if not model_changed:
        for row in live_skipped:
            previously_skipped[(row["path"], row.get("size"), row.get("mtime_ns"))] = row["reason"]
    # the skips recorded under the store's other folders stay on record (this run did not look there)
    skipped_elsewhere = [row for row in live_skipped if not is_under(row["path"], root_path)]
    to_embed, carried_skips = [], []
    for entry in list(diff.new) + list(diff.changed) + reembed_elsewhere:
        reason = previously_skipped.get((entry.path, entry.size, entry.mtime_ns))
        if reason is not None:
            carried_skips.append((entry, reason))
        else:
            to_embed.append(entry)

    # staging key: one area per model, so an interrupted run with another model is not mixed in
    staging = store.staging(model.model_id.replace("@", "-"))
    done_keys = staging.done_keys()
    resumed = sum(1 for e in to_embed if (e.path, e.size, e.mtime_ns) in done_keys)
    remaining = [e for e in to_embed if (e.path, e.size, e.mtime_ns) not in done_keys]

    summary = IndexSummary(store=str(store.root), generation=live.id if live else None,
                           unchanged=len(diff.unchanged), removed=len(diff.removed) + gone_elsewhere, resumed=resumed,
                           model_change=summary_model_change, reembedded_elsewhere=len(reembed_elsewhere))
    schema = _staged_schema(model.dim)
    buffer: list[dict] = []
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal last_flush
        if buffer:
            staging.append(pa.Table.from_pylist(buffer, schema=schema))
            buffer.clear()
        last_flush = time.monotonic()

    entries = {e.path: e for e in remaining}
    done = 0
    try:
        for track in embed_files([e.path for e in remaining], model, device=device, batch_size=batch_size,
                                 workers=workers, max_seconds=max_seconds, analyse=extract_attributes):
            entry = entries[track.path]
            info = track.info
            row = {"path": entry.path, "size": entry.size, "mtime_ns": entry.mtime_ns,
                   "duration": info.duration if info else None, "sample_rate": info.sample_rate if info else None,
                   "channels": info.channels if info else None, "format": info.format if info else None,
                   "vector": None, "error": track.error, **_attribute_values(track.extras)}
            if track.error is None:
                if track.patch_mean is None:
                    row["error"] = "no audio to analyse"
                else:
                    vector = model.track_vector(track.patch_mean)
                    if not np.all(np.isfinite(vector)):
                        row["error"] = "the model produced non-finite values"
                    else:
                        row["vector"] = vector.tolist()
            buffer.append(row)
            done += 1
            summary.audio_seconds += track.analysed_seconds
            if progress is not None:
                progress(done, len(remaining), track.path)
            if time.monotonic() - last_flush > FLUSH_SECONDS:
                flush()
    finally:
        # on Ctrl-C or any error, what was finished is kept for the next run
        flush()

    staged = staging.rows()
    staged = staged.filter(pa.compute.is_in(staged.column("path"), value_set=pa.array([e.path for e in to_embed], pa.string()))) \
        if staged.num_rows else staged
    ok = staged.filter(pa.compute.is_null(staged.column("error"))) if staged.num_rows else staged
    failed = staged.filter(pa.compute.is_valid(staged.column("error"))) if staged.num_rows else staged

    summary.indexed = ok.num_rows
    # size and mtime are kept with each skip so an unchanged bad file is not tried again
    skipped_rows = ([{"path": r["path"], "reason": r["error"], "size": r["size"], "mtime_ns": r["mtime_ns"]}
                     for r in failed.to_pylist()]
                    + [{"path": e.path, "reason": reason, "size": e.size, "mtime_ns": e.mtime_ns}
                       for e, reason in carried_skips]
                    + [{"path": s.path, "reason": s.reason, "size": None, "mtime_ns": None} for s in scan.errors])
    summary.skipped = [(row["path"], row["reason"]) for row in skipped_rows]
    nothing_changed = (live is not None and not model_changed and summary.indexed == 0 and summary.removed == 0
                       and not failed.num_rows and index_spec is None and vocabulary is None
                       and live.meta.get("word_vectors") == model.word_vectors_id
                       and len(skipped_rows) == len(live_skipped) - len(skipped_elsewhere))
    if nothing_changed:
        summary.total = live.tracks().num_rows
        summary.generation = live.id
        summary.seconds = time.monotonic() - started
        staging.clear()
        return summary

    tracks = _assemble_tracks(model, live_tracks, diff, ok, outside)
    tags_table, tag_vectors = _tag_table(model, vocabulary)
    track_vectors = vectors_from_column(tracks.column("vector"), "tracks").reshape(tracks.num_rows, model.dim)
    tracks = _with_top_tags(tracks, track_vectors, tags_table, tag_vectors)
    skipped_table = pa.Table.from_pylist(skipped_rows + skipped_elsewhere, schema=pa.schema(
        [("path", pa.string()), ("reason", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64())]))
    meta = {
        **model.describe(),
        "library_roots": sorted(set((live.meta.get("library_roots", []) if live else []) + [root_path])),
        "index_counts": {"skipped": len(skipped_rows) + len(skipped_elsewhere)},  # under all the store's roots
        "word_vectors_path": word_vectors_reference(word_vectors),
        "vocabulary": vocabulary or "builtin",
        "max_seconds": max_seconds,
    }
    generation = store.commit(tracks, track_vectors, tags_table, tag_vectors, skipped_table, meta, index_spec=index_spec)
    staging.clear()
    summary.committed = True
    summary.generation = generation.id
    summary.total = tracks.num_rows
    summary.seconds = time.monotonic() - started
    return summary


def _entries_still_there(paths) -> tuple[list[FileEntry], int]:
    """(FileEntry of each path that is still a file, how many are not)."""
    entries, gone = [], 0
    for path in paths:
        try:
            status = os.stat(path)
        except OSError:
            gone += 1
            continue
        entries.append(FileEntry(path, status.st_size, status.st_mtime_ns))
    return entries, gone


def _assemble_tracks(model, live_tracks, diff, ok: pa.Table, outside) -> pa.Table:
    """Unchanged live rows (vectors reused) + rows outside the scanned root + newly embedded rows."""
    schema = full_tracks_schema(model.dim)
    parts = []
    if live_tracks is not None and outside is not None and outside.num_rows:
        parts.append(outside.select(schema.names).cast(schema))
    if len(diff.unchanged_rows):
        # unchanged rows index into the in-root live table passed to diff_library: vectors reused
        parts.append(diff.live.take(pa.array(diff.unchanged_rows)).select(schema.names).cast(schema))
    if ok.num_rows:
        rows = ok.to_pylist()
        for row in rows:
            row["track_id"] = track_id_for(row["path"])
            row["model_id"] = model.model_id
            row["top_tags"] = []
        parts.append(pa.Table.from_pylist(rows, schema=schema))
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts).combine_chunks()


def _tag_table(model, vocabulary: str | None) -> tuple[pa.Table, np.ndarray]:
    vocab = load_tag_vocabulary(vocabulary)
    category = {v.tag: v.category for v in vocab}
    matrix, kept = model.tag_matrix([v.tag for v in vocab])
    table = pa.table({"tag": pa.array(kept, pa.string()), "category": pa.array([category[t] for t in kept], pa.string())})
    return table, matrix


def _with_top_tags(tracks: pa.Table, track_vectors: np.ndarray, tags: pa.Table, tag_vectors: np.ndarray) -> pa.Table:
    if not tracks.num_rows or not tags.num_rows:
        return tracks
    names = np.array(tags.column("tag").to_pylist(), dtype=object)
    scores = track_vectors @ tag_vectors.T
    top = np.argsort(-scores, axis=1)[:, :TOP_TAGS_PER_TRACK]
    column = pa.array([list(names[row]) for row in top], pa.list_(pa.string()))
    return tracks.set_column(tracks.schema.get_field_index("top_tags"), "top_tags", column)
