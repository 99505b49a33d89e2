"""Library scan and the incremental diff against the live tracks table."""

import os

import pyarrow as pa
import pytest

from mre.indexer.diff import DiffError, diff_library
from mre.indexer.scan import FileEntry, is_under, scan_library

AUDIO = {".wav", ".flac", ".ogg", ".mp3"}


def write(path, data=b"RIFF"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture()
def library(tmp_path):
    root = tmp_path / "library"
    write(root / "b.wav", b"x" * 10)
    write(root / "A.FLAC", b"y" * 20)  # extension case does not matter
    write(root / "album" / "01 intro.ogg")
    write(root / "album" / "deep" / "track.mp3")
    write(root / "album" / "cover.jpg")  # not audio
    write(root / "notes.txt")
    write(root / ".hidden.wav")  # hidden file
    write(root / ".cache" / "inside.wav")  # hidden folder
    (root / "album" / "loop").symlink_to(root, target_is_directory=True)  # a link loop
    (root / "dead.wav").symlink_to(tmp_path / "gone.wav")  # a broken link
    return root


def test_scan_finds_audio_recursively_sorted_and_skips_the_rest(library):
    result = scan_library(library, AUDIO)
    root = os.path.realpath(library)
    assert [f.path for f in result.files] == [
        f"{root}/A.FLAC", f"{root}/album/01 intro.ogg", f"{root}/album/deep/track.mp3", f"{root}/b.wav"]
    assert {f.path: f.size for f in result.files}[f"{root}/b.wav"] == 10
    assert all(f.mtime_ns > 0 for f in result.files)
    assert [(e.path, e.reason) for e in result.errors] == [(f"{root}/dead.wav", "broken symbolic link")]


def test_scan_accepts_extensions_in_any_spelling_and_a_single_file(library):
    assert len(scan_library(library, ["WAV", "flac"]).files) == 2
    single = scan_library(library / "b.wav", AUDIO)
    assert [f.path for f in single.files] == [os.path.realpath(library / "b.wav")]
    assert scan_library(library / "notes.txt", AUDIO).errors[0].reason == "not an audio file extension"
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        scan_library(library / "missing", AUDIO)


def test_linked_folder_outside_the_tree_is_followed_once(tmp_path, library):
    elsewhere = write(tmp_path / "elsewhere" / "linked.flac").parent
    (library / "linked").symlink_to(elsewhere, target_is_directory=True)
    (library / "linked-again").symlink_to(elsewhere, target_is_directory=True)
    paths = [f.path for f in scan_library(library, AUDIO).files]
    assert paths.count(os.path.realpath(elsewhere / "linked.flac")) == 1


def test_unreadable_folder_is_recorded_not_raised(library, monkeypatch):
    locked = os.path.realpath(library / "album" / "deep")
    real_scandir = os.scandir

    def scandir(path):  # chmod 0 would not stop root, so refuse the way the kernel would
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr("mre.indexer.scan.os.scandir", scandir)
    result = scan_library(library, AUDIO)
    assert (locked, "cannot read folder: Permission denied") in [(e.path, e.reason) for e in result.errors]
    assert len(result.files) == 3


def test_scan_of_many_folders(tmp_path):
    # 2,500 files; how fast a 10k scan is, is measured by benchmarks/reindex_speed.py
    # (a timing assert here would fail on a loaded CI machine, not on a slow scan)
    root = tmp_path / "big"
    for folder in range(50):
        (root / f"artist{folder:03d}").mkdir(parents=True)
        for track in range(50):
            os.close(os.open(root / f"artist{folder:03d}" / f"{track:03d}.wav", os.O_CREAT | os.O_WRONLY, 0o644))
    result = scan_library(root, AUDIO)
    assert len(result.files) == 2_500 and not result.errors


def live_table(entries):
    return pa.table({
        "path": [e.path for e in entries],
        "size": pa.array([e.size for e in entries], pa.int64()),
        "mtime_ns": pa.array([e.mtime_ns for e in entries], pa.int64()),
        "vector": [[float(i), 0.0] for i in range(len(entries))],
    })


def test_diff_sorts_files_into_new_changed_unchanged_removed():
    kept = FileEntry("/m/kept.wav", 10, 100)
    edited_before = FileEntry("/m/edited.wav", 10, 100)
    touched_before = FileEntry("/m/touched.wav", 10, 100)
    gone = FileEntry("/m/gone.wav", 10, 100)
    live = live_table([gone, kept, edited_before, touched_before])
    scanned = [FileEntry("/m/edited.wav", 12, 100), kept, FileEntry("/m/new.wav", 5, 5),
               FileEntry("/m/touched.wav", 10, 101)]
    diff = diff_library(scanned, live)
    assert [e.path for e in diff.new] == ["/m/new.wav"]
    assert [e.path for e in diff.changed] == ["/m/edited.wav", "/m/touched.wav"]
    assert diff.unchanged == [kept] and diff.unchanged_rows.tolist() == [1]
    assert diff.unchanged_table.column("vector").to_pylist() == [[1.0, 0.0]]  # vector reused
    assert diff.removed == ["/m/gone.wav"] and diff.removed_rows.tolist() == [0]
    assert diff.summary() == {"new": 1, "changed": 2, "unchanged": 1, "removed": 1}


def test_diff_without_a_live_generation_makes_everything_new():
    files = [FileEntry("/m/a.wav", 1, 1)]
    assert diff_library(files, None).new == files
    with pytest.raises(DiffError, match="lacks column"):
        diff_library(files, pa.table({"path": ["/m/a.wav"]}))


def test_diff_of_an_unchanged_ten_thousand_file_library():
    files = [FileEntry(f"/music/artist{i // 100:03d}/{i % 100:03d}.wav", 1000 + i, 10**18 + i) for i in range(10_000)]
    live = live_table(files[::-1])
    diff = diff_library(files, live)  # its speed: benchmarks/reindex_speed.py
    assert len(diff.unchanged) == 10_000 and not diff.new and not diff.changed and not diff.removed


def test_is_under():
    assert is_under("/music/a/b.wav", "/music/a") and is_under("/music/a", "/music/a")
    assert not is_under("/music/ab/c.wav", "/music/a") and is_under("/x.wav", "/")


def test_reindex_benchmark_finds_every_file_unchanged():
    from mre.benchmarks.reindex_speed import run

    report = run(n_files=150, dim=8, repeats=1, echo=None)
    assert report["best"]["unchanged"] == 150 and report["meets_goal"]
