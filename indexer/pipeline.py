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

from mre.embedder.audio.attributes import ATTRIBUTE_NAMES
from mre.embedder.audio.decode import AUDIO_EXTENSIONS
from mre.embedder.lifetime import signals_held
from mre.embedder.models.factory import DEFAULT_MODEL, load_model
from mre.embedder.models.scoring import label_spread, standardised, tag_attribute_terms
from mre.embedder.runner import DEFAULT_MAX_SECONDS, embed_tracks
from mre.embedder.words.vectors import word_vectors_reference
from mre.embedder.models.tag_space import top_ranked, vocabulary_space
from mre.embedder.words.space import load_tag_vocabulary
from mre.indexer.diff import diff_library
from mre.indexer.index_spec import sparse_lists_note
from mre.indexer.paths import PATH_BYTES, printable_path, stored_path, table_paths, with_path_bytes
from mre.indexer.scan import FileEntry, is_under, scan_library
from mre.indexer.store import Store, track_id_for, tracks_schema, vectors_from_column
from mre.indexer.tables import TOP_TAGS_PER_TRACK, arrow_mask, column_floats, optional_vectors_column

# staged parts are flushed this often so an interruption loses at most this much work
FLUSH_SECONDS = 10.0
# tracks whose top tags are scored and ranked at once (4,096 x 1,300 tags: ~45 MB of float64)
TOP_TAGS_BLOCK = 4096

STAGED_COLUMNS = ("path", PATH_BYTES, "size", "mtime_ns", "duration", "sample_rate", "channels", "format", "vector", "error")


class NothingToIndexError(ValueError):
    """The path holds no audio file to index (one line for the user)."""


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
    kept_model: str | None = None     # no --model, and the store's model is not the default: the store's is kept
    reembedded_elsewhere: int = 0     # tracks under the store's other roots embedded again with the new model
    damage: str | None = None         # what was wrong with the live generation this run replaced
    decoder_warnings: list[tuple[str, str]] = field(default_factory=list)  # (path, what the decoder said) of indexed files
    fingerprint_lines: list[str] = field(default_factory=list)  # what the fingerprint pass for `mre duplicates` did
    index_note: str | None = None     # an explicit --index-spec with too few tracks for its inverted lists

    def lines(self) -> list[str]:
        speed = f", {self.audio_seconds / self.seconds:.0f}× realtime" if self.seconds > 0 and self.audio_seconds else ""
        head = (f"indexed {self.indexed}, unchanged {self.unchanged}, removed {self.removed}, "
                f"skipped {len(self.skipped)} — {self.total} tracks in the store "
                f"({self.seconds:.1f} s{speed})")
        out = [head]
        if self.kept_model:
            out.append(f"kept the store's model {self.kept_model} (the default is {DEFAULT_MODEL}: "
                       f"`mre index PATH --model {DEFAULT_MODEL}` embeds every track in the store again with it)")
        if self.model_change:
            out.append(f"model changed ({self.model_change}): every track in the store was embedded again")
        if self.reembedded_elsewhere:
            out.append(f"{self.reembedded_elsewhere} of them are under other folders of the store: embedded again "
                       "with the new model, so nothing indexed is lost")
        if self.damage:
            out.append(f"the live generation was damaged ({self.damage}): written anew")
        if self.resumed:
            out.append(f"resumed: {self.resumed} tracks came from an interrupted earlier run")
        for path, reason in self.skipped[:20]:
            out.append(f"  skipped {printable_path(path)}: {reason}")
        if len(self.skipped) > 20:
            out.append(f"  … and {len(self.skipped) - 20} more (see skipped.parquet in the store)")
        for path, message in self.decoder_warnings[:20]:
            out.append(f"  indexed {printable_path(path)}, but the decoder said: {message}")
        if len(self.decoder_warnings) > 20:
            out.append(f"  … and {len(self.decoder_warnings) - 20} more files the decoder warned about")
        if self.index_note:
            out.append(self.index_note)
        out.extend(self.fingerprint_lines)
        if not self.committed:
            out.append("nothing changed: the live index is already up to date")
        return out


# musical attributes, one column each, measured in the decode worker on the same samples
ATTRIBUTE_FIELDS = [pa.field(name, pa.string() if name in ("key", "mode") else pa.float64()) for name in ATTRIBUTE_NAMES]


def full_tracks_schema(dim: int) -> pa.Schema:
    """The store's tracks table: the store's own columns plus the attribute columns."""
    schema = tracks_schema(dim)
    for attribute_field in ATTRIBUTE_FIELDS:
        schema = schema.append(attribute_field)
    return schema


def stored_tracks_schema(dim: int) -> pa.Schema:
    """What the pipeline commits: the tracks table plus the raw bytes of names that are not
    UTF-8 (see paths.py), beside the path."""
    return full_tracks_schema(dim).insert(2, pa.field(PATH_BYTES, pa.binary()))


SKIPPED_ROWS_SCHEMA = pa.schema([("path", pa.string()), (PATH_BYTES, pa.binary()), ("reason", pa.string()),
                                 ("size", pa.int64()), ("mtime_ns", pa.int64())])


def _skipped_row(path: str, reason: str, size: int | None, mtime_ns: int | None) -> dict:
    text, raw = stored_path(path)
    return {"path": text, PATH_BYTES: raw, "reason": reason, "size": size, "mtime_ns": mtime_ns}


def _staged_schema(dim: int) -> pa.Schema:
    return pa.schema([
        ("path", pa.string()), (PATH_BYTES, pa.binary()), ("size", pa.int64()), ("mtime_ns", pa.int64()),
        ("duration", pa.float64()), ("sample_rate", pa.int32()), ("channels", pa.int32()),
        ("format", pa.string()), ("vector", pa.list_(pa.float32(), dim)), ("error", pa.string()),
        *ATTRIBUTE_FIELDS,
    ])


def embedded_rows(entries: list[FileEntry], model, *, device="auto", batch_size: int = 64, workers: int | None = None,
                  max_seconds: float | None = DEFAULT_MAX_SECONDS, model_threads: int | None = None,
                  precision: str = "float32"):
    """Decode, analyse and embed ``entries``: (staged row, FinishedTrack) per entry, in order.

    The one embedding call of both engines: the local engine runs it over the whole library,
    each Ray actor (``ray_engine``) over its block of files, so the rows are made the same way.
    The row's ``vector`` is the float32 array (None with an error): ``staged_table`` makes
    the Arrow column.
    """
    for track in embed_tracks([e.path for e in entries], model, device=device, batch_size=batch_size,
                              workers=workers, max_seconds=max_seconds, model_threads=model_threads,
                              precision=precision):
        entry = entries[track.index]
        info = track.info
        path_text, path_raw = stored_path(entry.path)
        row = {"path": path_text, PATH_BYTES: path_raw, "size": entry.size, "mtime_ns": entry.mtime_ns,
               "duration": info.duration if info else None, "sample_rate": info.sample_rate if info else None,
               "channels": info.channels if info else None, "format": info.format if info else None,
               "vector": track.vector, "error": track.error,
               **track.attributes}
        yield row, track


def staged_table(rows: list[dict], dim: int) -> pa.Table:
    """Staged rows as the staging schema's table; the vectors go from numpy to the fixed-size
    list column directly. ``rows`` are left as they were: a signal landing midway (SIGTERM
    during a flush) must leave them whole for the flush that saves them on the way out."""
    schema = _staged_schema(dim)
    at = schema.get_field_index("vector")
    vectors = optional_vectors_column([row["vector"] for row in rows], dim)
    fields = [{name: value for name, value in row.items() if name != "vector"} for row in rows]
    return pa.Table.from_pylist(fields, schema=schema.remove(at)).add_column(at, schema.field(at), vectors)


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
    precision: str | None = None,
    progress=None,
    engine=None,
) -> IndexSummary:
    """progress: a callable `(done, total, path)` called per finished track (the CLI draws a bar).
    precision: the model's arithmetic (runner.PRECISIONS); None keeps the store's (float32 for a new
    store). A store holds vectors of one precision, so asking for another re-embeds it, as a
    model change does.
    engine: where the files are embedded; None runs them here (decode workers + the model in
    this process), a ``ray_engine.RayEngine`` on a Ray cluster. Everything else (scan, diff,
    staging, commit) is the same for both."""
    started = time.monotonic()
    root_path = str(Path(root).expanduser().resolve())
    if not os.path.exists(root_path):
        raise FileNotFoundError(f"no such file or folder: {root}")
    # the device ("auto" looks for a GPU through torch) is resolved where audio is embedded:
    # an unchanged library is scanned and compared without importing torch
    live = store.live()
    kept_model = None
    if model_name is None and live is not None and (live.meta.get("model_file") or live.meta.get("model_name")):
        # no model named: a store keeps the model it was made with (a store of an earlier
        # default is not silently embedded again with a new one)
        model_name = live.meta.get("model_file") or live.meta["model_name"]
        kept_model = model_name if model_name != DEFAULT_MODEL else None
    model = load_model(model_name, device=device, word_vectors=word_vectors)
    damage = live.damage() if live is not None else None
    if damage is not None and damage.split()[0] in ("tracks.parquet", "skipped.parquet"):
        live = None  # its tables cannot be trusted: every file under root is embedded again
    live_tracks = live.tracks() if live is not None else None
    live_precision = live.meta.get("precision", "float32") if live is not None else None
    precision = precision or live_precision or "float32"
    model_changed = live is not None and (live.meta.get("model_id") != model.model_id or live_precision != precision
                                          or not set(ATTRIBUTE_NAMES) <= set(live_tracks.column_names))
    if model_changed:
        if live.meta.get("model_id") != model.model_id:
            summary_model_change = f"{live.meta.get('model_id')} → {model.model_id}"
        elif live_precision != precision:
            summary_model_change = f"{live_precision} → {precision} arithmetic"
        else:
            summary_model_change = "the tracks table predates the attribute columns"
        # A different model: every vector must be made again, the other roots' tracks too, so a
        # model change loses nothing already indexed (a file gone since then counts as removed).
        reembed_elsewhere, gone_elsewhere = _entries_still_there(
            p for p in table_paths(live_tracks) if not is_under(p, root_path))
        live_tracks = None
    else:
        summary_model_change, reembed_elsewhere, gone_elsewhere = None, [], 0

    scan = scan_library(root_path, AUDIO_EXTENSIONS)
    if not scan.files and not any(is_under(p, root_path) for p in (table_paths(live_tracks) if live_tracks is not None else [])):
        # nothing to index and nothing indexed here before (whose removal would be news)
        found = f" ({len(scan.errors)} unreadable: {printable_path(scan.errors[0].path)}: {scan.errors[0].reason})" \
            if scan.errors else ""
        raise NothingToIndexError(f"no audio files under {printable_path(root_path)}{found}; nothing was indexed "
                                  "(looked for .wav, .flac, .ogg, .opus, .mp3, .aiff and the other formats libsndfile reads)")
    in_root = None
    if live_tracks is not None and live_tracks.num_rows:
        paths = table_paths(live_tracks)
        mask = np.array([is_under(p, root_path) for p in paths], dtype=bool)
        in_root = live_tracks.filter(arrow_mask(mask))
        outside = live_tracks.filter(arrow_mask(~mask))
    else:
        outside = None
    diff = diff_library(scan.files, in_root)

    # files that failed before and have not changed since are not tried again
    previously_skipped = {}
    live_skipped_table = live.skipped() if live is not None else None
    live_skipped = live_skipped_table.to_pylist() if live is not None else []
    for row, path in zip(live_skipped, table_paths(live_skipped_table) if live is not None else []):
        row["path"] = path
        row.pop(PATH_BYTES, None)
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
    staging = store.staging(model.model_id.replace("@", "-") + ("" if precision == "float32" else f"-{precision}"))
    done_keys = staging.done_keys()
    resumed = sum(1 for e in to_embed if (e.path, e.size, e.mtime_ns) in done_keys)
    remaining = [e for e in to_embed if (e.path, e.size, e.mtime_ns) not in done_keys]

    summary = IndexSummary(store=str(store.root), generation=live.id if live else None,
                           unchanged=len(diff.unchanged), removed=len(diff.removed) + gone_elsewhere, resumed=resumed,
                           model_change=summary_model_change, reembedded_elsewhere=len(reembed_elsewhere),
                           damage=damage, kept_model=kept_model)
    buffer: list[dict] = []
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal last_flush
        if buffer:
            # emptied only once the part is written, and a signal waits for both (a part is
            # written in milliseconds): cut between the write and the clear, it staged the rows
            # twice. Should a part still hold a file twice, the latest-row rule below undoes it.
            with signals_held():
                staging.append(staged_table(buffer, model.dim))
                buffer.clear()
        last_flush = time.monotonic()

    done = 0
    rows = None
    try:
        if engine is not None:
            rows = engine.embedded_rows(remaining, model, device=device, batch_size=batch_size, max_seconds=max_seconds,
                                        precision=precision, model_name=model_name, word_vectors=word_vectors)
        else:
            rows = embedded_rows(remaining, model, device=device, batch_size=batch_size, workers=workers,
                                 max_seconds=max_seconds, precision=precision)
        for row, track in rows:
            if track.decoder_messages and row["error"] is None:
                summary.decoder_warnings.append((track.path, track.decoder_messages))
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
        if rows is not None:
            rows.close()  # the engine's helpers (decode workers, a Ray cluster) end now

    staged = with_path_bytes(staging.rows())
    if staged.num_rows:
        # one row per file wanted now: the latest, should a part hold a file twice
        wanted = {e.path for e in to_embed}
        latest = {path: number for number, path in enumerate(table_paths(staged)) if path in wanted}
        staged = staged.take(pa.array(sorted(latest.values()), pa.int64()))
    ok = staged.filter(pa.compute.is_null(staged.column("error"))) if staged.num_rows else staged
    failed = staged.filter(pa.compute.is_valid(staged.column("error"))) if staged.num_rows else staged

    summary.indexed = ok.num_rows
    # size and mtime are kept with each skip so an unchanged bad file is not tried again
    skipped_rows = ([{"path": path, "reason": r["error"], "size": r["size"], "mtime_ns": r["mtime_ns"]}
                     for r, path in zip(failed.to_pylist(), table_paths(failed))]
                    + [{"path": e.path, "reason": reason, "size": e.size, "mtime_ns": e.mtime_ns}
                       for e, reason in carried_skips]
                    + [{"path": s.path, "reason": s.reason, "size": None, "mtime_ns": None} for s in scan.errors])
    summary.skipped = [(row["path"], row["reason"]) for row in skipped_rows]
    nothing_changed = (live is not None and damage is None and not model_changed and summary.indexed == 0 and summary.removed == 0
                       and not failed.num_rows and index_spec is None and vocabulary is None
                       and live.meta.get("word_vectors") == model.word_vectors_id
                       and len(skipped_rows) == len(live_skipped) - len(skipped_elsewhere))
    if nothing_changed:
        summary.total = live.tracks().num_rows
        summary.generation = live.id
        staging.clear()
        # only files the fingerprint cache lacks (a store made before it, fpcalc installed since)
        _fingerprint(store, live.tracks(), root_path, workers, summary)
        summary.seconds = time.monotonic() - started
        return summary

    tracks = _assemble_tracks(model, live_tracks, diff, ok, outside)
    tags_table, tag_vectors = _tag_table(model, vocabulary)
    track_vectors = vectors_from_column(tracks.column("vector"), "tracks").reshape(tracks.num_rows, model.dim)
    tracks = with_top_tags(tracks, track_vectors, tags_table, tag_vectors, model)
    skipped_table = pa.Table.from_pylist(
        [_skipped_row(r["path"], r["reason"], r.get("size"), r.get("mtime_ns")) for r in skipped_rows + skipped_elsewhere],
        schema=SKIPPED_ROWS_SCHEMA)
    meta = {
        **model.describe(),
        "library_roots": sorted(set((live.meta.get("library_roots", []) if live else []) + [root_path])),
        "index_counts": {"skipped": len(skipped_rows) + len(skipped_elsewhere)},  # under all the store's roots
        "word_vectors_path": word_vectors_reference(word_vectors),
        "vocabulary": vocabulary or "builtin",
        "max_seconds": max_seconds,
        "precision": precision,
    }
    generation = store.commit(tracks, track_vectors, tags_table, tag_vectors, skipped_table, meta, index_spec=index_spec)
    staging.clear()
    summary.committed = True
    summary.generation = generation.id
    summary.total = tracks.num_rows
    if index_spec is not None:
        summary.index_note = sparse_lists_note(index_spec, tracks.num_rows)
    _fingerprint(store, tracks, root_path, workers, summary)
    summary.seconds = time.monotonic() - started
    return summary


def _fingerprint(store: Store, tracks: pa.Table, root_path: str, workers: int | None, summary: IndexSummary) -> None:
    """Fingerprints for `mre duplicates` of the indexed files under root the cache lacks: a
    separate pass after the commit, so a failure or a missing fpcalc never costs the index.
    Cache entries of files no longer in the store are dropped."""
    from mre.indexer.fingerprints import update_fingerprints

    keys = list(zip(table_paths(tracks), tracks.column("size").to_pylist(), tracks.column("mtime_ns").to_pylist()))
    under_root = [key for key in keys if is_under(key[0], root_path)]
    update = update_fingerprints(store, under_root, keep=set(keys), workers=workers)
    summary.fingerprint_lines = update.lines()


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
    schema = stored_tracks_schema(model.dim)
    parts = []
    if live_tracks is not None and outside is not None and outside.num_rows:
        parts.append(with_path_bytes(outside).select(schema.names).cast(schema))
    if len(diff.unchanged_rows):
        # unchanged rows index into the in-root live table passed to diff_library: vectors reused
        parts.append(with_path_bytes(diff.live.take(pa.array(diff.unchanged_rows))).select(schema.names).cast(schema))
    if ok.num_rows:
        # column by column: the vectors stay one Arrow array from the staging files to the store
        n = ok.num_rows
        added = {"track_id": pa.array([track_id_for(path) for path in table_paths(ok)], pa.string()),
                 "model_id": pa.array([model.model_id] * n, pa.string()),
                 "top_tags": pa.array([[]] * n, pa.list_(pa.string()))}
        parts.append(pa.table([added[f.name] if f.name in added else ok.column(f.name).cast(f.type)
                               if f.name in ok.column_names else pa.nulls(n, f.type) for f in schema], schema=schema))
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts).combine_chunks()


def _tag_table(model, vocabulary: str | None) -> tuple[pa.Table, np.ndarray]:
    """The store's tags: the vocabulary's rows in the model's space, as `mre tags` makes them
    without a store (models.tag_space), with each tag's category."""
    entries = load_tag_vocabulary(vocabulary)
    category = {v.tag: v.category for v in entries}
    space = vocabulary_space(model, vocabulary, entries)
    table = pa.table({"tag": pa.array(space.names, pa.string()),
                      "category": pa.array([category[t] for t in space.names], pa.string())})
    return table, space.matrix


def with_top_tags(tracks: pa.Table, track_vectors: np.ndarray, tags: pa.Table, tag_vectors: np.ndarray,
                  model) -> pa.Table:
    """Every track's best TOP_TAGS_PER_TRACK tags, ranked as `mre tags` ranks them: label
    evidence, plus for a tag that relates to attribute poles ("calm") its weights on the
    track's attributes standardised over the store (scoring.attribute_scores), so a search
    hit lists what `mre tags` says of the track first.

    A block of tracks at a time: the whole [tracks, tags] score matrix and its sort took 5 GB
    more at 200k tracks and 1,300 tags (25 GB at 1M), and the blocks with a partition are 4.5x
    faster (24.7 s -> 5.5 s there)."""
    if not tracks.num_rows or not tags.num_rows:
        return tracks
    names = tags.column("tag").to_pylist()
    columns, weights, spread = tag_attribute_terms(model, names, tag_vectors,
                                                   lambda rows: label_spread(track_vectors, rows))
    related = bool(np.abs(weights).any())
    z = np.stack([standardised(column_floats(tracks, column), column) for column in columns], axis=1) \
        if related else None
    terms = weights.T * spread if related else None  # [columns, tags]: z @ terms is each tag's attribute part
    names = np.array(names, dtype=object)
    rows = []
    for start in range(0, len(track_vectors), TOP_TAGS_BLOCK):
        scores = track_vectors[start:start + TOP_TAGS_BLOCK] @ tag_vectors.T
        if terms is not None:
            scores = scores.astype(np.float64) + z[start:start + TOP_TAGS_BLOCK] @ terms
        top = top_ranked(scores, TOP_TAGS_PER_TRACK)
        rows.extend(list(names[row]) for row in top)
    column = pa.array(rows, pa.list_(pa.string()))
    return tracks.set_column(tracks.schema.get_field_index("top_tags"), "top_tags", column)
