"""Stores for the `mre serve` tests, made from the session's indexed store without embedding
anything again: its rows are re-pointed at a private copy of the library (so files can vanish
or be renamed) and committed with the store's own writer as a new store."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa

from mre.indexer.paths import PATH_BYTES, stored_path, table_paths
from mre.indexer.store import Store, track_id_for

# one file of the copy gets a Latin-1 name, as from an old disk: not UTF-8
LATIN1_NAME = b"caf\xe9 piano_a.wav"


def derived_store(source_store: Path, source_library: Path, root: Path, latin1: bool = True) -> tuple[Path, Path]:
    """(store, library) under `root`: a copy of the library's indexed files and a store of them."""
    library, store = root / "library", root / "store"
    with Store(source_store).live() as generation:
        tracks, tags, skipped = generation.tracks(), generation.tags(), generation.skipped()
        vectors, tag_vectors, meta = generation.track_vectors(), generation.tag_vectors(), dict(generation.meta)
    paths = []
    for old in table_paths(tracks):
        relative = Path(old).relative_to(source_library)
        new = library / relative
        if latin1 and relative.name == "piano_a.wav":
            new = Path(os.fsdecode(os.fsencode(library) + b"/" + LATIN1_NAME))
        new.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(old, new)
        paths.append(str(new))
    pairs = [stored_path(p) for p in paths]
    tracks = tracks.set_column(tracks.column_names.index("path"), "path", pa.array([t for t, _ in pairs], pa.string()))
    tracks = tracks.set_column(tracks.column_names.index(PATH_BYTES), PATH_BYTES, pa.array([b for _, b in pairs], pa.binary()))
    tracks = tracks.set_column(tracks.column_names.index("track_id"), "track_id",
                               pa.array([track_id_for(p) for p in paths], pa.string()))
    meta["library_roots"] = [str(library)]
    Store(store).commit(tracks, vectors, tags, tag_vectors, skipped, meta)
    return store, library


def recommit_without(store: Path, track_id: str) -> str:
    """Commit a new generation of `store` without one track (a re-index after a file was
    removed); returns the new generation's id."""
    with Store(store).live() as generation:
        tracks = generation.tracks()
        keep = [row for row, tid in enumerate(tracks.column("track_id").to_pylist()) if tid != track_id]
        vectors = generation.track_vectors()[keep]
        args = (tracks.take(pa.array(keep)), vectors, generation.tags(), generation.tag_vectors(),
                generation.skipped(), dict(generation.meta))
    with Store(store).commit(*args) as new:
        return new.id


def duplicates_store(root: Path) -> tuple[Path, Path]:
    """(store, library) under `root`: one generated track with three of its copies (an MP3, a
    22 kHz mono FLAC, a trimmed FLAC) and another track, indexed (which fingerprints them)."""
    from click.testing import CliRunner

    from mre.benchmarks.variants import write_variants
    from mre.cli.main import main
    from test_duplicates import SAMPLE_RATE, _track

    library, store = root / "library", root / "store"
    write_variants(_track("piano", 0), SAMPLE_RATE, library, "piano0", which=("mp3_128", "mono_22k", "trimmed"))
    write_variants(_track("techno", 1), SAMPLE_RATE, library, "techno1", which=())
    result = CliRunner().invoke(main, ["index", str(library), "--store", str(store), "--workers", "1"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return store, library
