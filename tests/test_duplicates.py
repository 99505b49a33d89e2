"""`mre duplicates`: copies across formats, bitrates, masters and trims are grouped; different
tracks, speed changes and medleys are not; fingerprints are computed once per file."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from mre.indexer import fingerprint_match as match
from mre.indexer import fingerprints

pytestmark = pytest.mark.skipif(fingerprints.fpcalc_path() is None,
                                reason="fpcalc is not installed (apt-get install libchromaprint-tools); CI installs it")

SAMPLE_RATE = 44100
SECONDS = 24.0
STYLES = {
    "piano": dict(bpm=70, tonic="C", mode="major", instruments=("piano",), drums="none", loudness_db=-24),
    "band": dict(bpm=140, tonic="E", mode="minor", instruments=("guitar", "bass"), drums="rock", loudness_db=-12),
    "techno": dict(bpm=128, tonic="F#", mode="minor", instruments=("synth", "bass"), drums="four_on_the_floor",
                   loudness_db=-11),
}


def _track(style: str, seed: int) -> np.ndarray:
    """One track of a style. The seed also moves tempo (±8 %) and tonic: with only a new seed
    the synth plays the same chords at the same tempo with the same sounds (two techno seeds
    scored 0.97), which is one recording to any fingerprint, not two songs of one style."""
    from mre.benchmarks.synth import NOTE_NAMES, ClipSpec, render

    spec = dict(STYLES[style])
    spec["bpm"] = spec["bpm"] * (1.0 + 0.08 * (seed - 0.5))
    spec["tonic"] = NOTE_NAMES[(NOTE_NAMES.index(spec["tonic"]) + 5 * seed) % 12]
    return render(ClipSpec(**spec, seconds=SECONDS, seed=seed), SAMPLE_RATE)


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """{(style, seed): {variant: path}}: 3 styles × 2 tracks, each with its 7 variants."""
    from mre.benchmarks.variants import write_variants

    root = tmp_path_factory.mktemp("variants")
    return {(style, seed): write_variants(_track(style, seed), SAMPLE_RATE, root / style, f"{style}{seed}", seed=seed)
            for style in STYLES for seed in (0, 1)}


@pytest.fixture(scope="module")
def fingerprinted(variants):
    files = [(track, name, str(path)) for track, written in variants.items() for name, path in written.items()]
    keys = [(path, os.stat(path).st_size, os.stat(path).st_mtime_ns) for _, _, path in files]
    found = fingerprints.fingerprint_many(keys, fingerprints.fpcalc_path(), workers=2)
    assert [f.error for f in found if f.error] == []
    return files, found


def _groups(found, extra_pairs=None):
    matrix = match.FingerprintMatrix([f.items for f in found])
    a, b = match.candidate_pairs(np.array([f.duration for f in found]))
    scored = match.score_pairs(matrix, a, b)
    return match.group_matches(matrix, scored), scored


def test_every_variant_is_found_and_different_tracks_never_grouped(fingerprinted):
    files, found = fingerprinted
    groups, scored = _groups(found)
    labelled = [sorted((files[m][0], files[m][1]) for m in group) for group in groups]
    for group in labelled:
        assert len({track for track, _ in group}) == 1, f"different tracks grouped: {group}"
    by_track = {}
    for group in labelled:
        by_track.setdefault(group[0][0], []).append({name for _, name in group})
    expected = {"original", "flac", "mp3_128", "mp3_80", "mono_22k", "remaster", "trimmed"}
    for track in {f[0] for f in files}:
        # exactly one group per track, holding the original and all 6 variants (recall 1.0),
        # and not the 2 % speed change: another recording
        assert by_track.get(track) == [expected], (track, by_track.get(track))


def test_a_speed_change_drifts_and_is_not_the_same_recording(fingerprinted):
    files, found = fingerprinted
    index = {(f[0], f[1]): row for row, f in enumerate(files)}
    matrix = match.FingerprintMatrix([f.items for f in found])
    tracks = sorted({f[0] for f in files})
    originals = np.array([index[(t, "original")] for t in tracks])
    scored = match.score_pairs(matrix, originals, np.array([index[(t, "speed")] for t in tracks]))
    assert np.all(np.abs(scored.drift[scored.score > 0]) > match.MAX_DRIFT)
    copies = match.score_pairs(matrix, originals, np.array([index[(t, "trimmed")] for t in tracks]))
    assert np.all(copies.score >= 0.7) and np.all(copies.same_speed)
    # a trimmed copy is shifted against the original (in music that repeats itself exactly, as
    # the synth's loops do, possibly by a whole cycle: either aligns as well)
    assert np.all(copies.offset != 0)


def test_a_medley_cannot_chain_two_songs_into_one_group(variants, tmp_path):
    first, second = variants[("piano", 0)]["original"], variants[("band", 1)]["original"]
    x, rate = sf.read(first)
    y, _ = sf.read(second)
    medley = tmp_path / "medley.wav"
    half = len(x) // 2
    sf.write(medley, np.concatenate([x[:half], y[half:]]), rate)
    keys = [(str(p), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in (first, second, medley)]
    found = fingerprints.fingerprint_many(keys, fingerprints.fpcalc_path(), workers=2)
    matrix = match.FingerprintMatrix([f.items for f in found])
    # whatever the medley matches, a chain through it must not join the two songs
    scored = match.PairScores(np.array([0, 1, 0]), np.array([2, 2, 1]), np.array([0.9, 0.9, 0.0]),
                              np.zeros(3, np.int64), np.full(3, 200), np.zeros(3))
    groups = match.group_matches(matrix, scored)
    assert not any({0, 1} <= set(group) for group in groups)
    measured = match.group_matches(matrix, match.score_pairs(matrix, np.array([0, 1, 0]), np.array([2, 2, 1])))
    assert not any({0, 1} <= set(group) for group in measured)


def test_popcount_fallback_and_identical_fingerprints():
    values = np.random.default_rng(0).integers(0, 2**32, size=1000, dtype=np.uint64).astype(np.uint32)
    table = np.array([bin(int(v)).count("1") for v in values])
    assert np.array_equal(match.popcount32(values), table)
    items = values[:300]
    scored = match.score_pairs(match.FingerprintMatrix([items, items.copy()]), np.array([0]), np.array([1]))
    assert scored.score[0] == 1.0 and scored.offset[0] == 0 and scored.drift[0] == 0


def test_candidates_are_duration_compatible_neighbours():
    durations = np.array([200.0, 190.0, 150.0, 201.0])
    a, b = match.candidate_pairs(durations)
    assert sorted(zip(a.tolist(), b.tolist())) == [(0, 1), (0, 3), (1, 3)]
    vectors = np.array([[1, 0], [0, 1], [1, 0], [1, 0.1]], dtype=np.float32)
    a, b = match.candidate_pairs(durations, vectors, neighbours=1)
    assert (0, 3) in set(zip(a.tolist(), b.tolist()))


@pytest.fixture(scope="module")
def small_library(variants, tmp_path_factory):
    """One track with three of its copies, and another track."""
    root = tmp_path_factory.mktemp("dups") / "library"
    root.mkdir()
    for name in ("original", "mp3_128", "mono_22k", "trimmed"):
        shutil.copy(variants[("piano", 0)][name], root / variants[("piano", 0)][name].name)
    shutil.copy(variants[("techno", 1)]["original"], root / "other.wav")
    return root


def test_cli_reports_groups_caches_fingerprints_and_never_touches_files(cli, small_library, one_faiss_thread):
    store = small_library.parent / "store"   # kept for the next test
    before = {p: p.stat().st_mtime_ns for p in small_library.iterdir()}
    indexed = cli("index", small_library, "--store", store, "--workers", "1")
    assert indexed.exit_code == 0, indexed.output
    assert "fingerprinted 5 files" in indexed.output
    again = cli("index", small_library, "--store", store, "--workers", "1")
    assert "nothing changed" in again.output and "fingerprinted" not in again.output

    result = cli("duplicates", "--store", store, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["computed"] == 0 and report["fingerprinted"] == 5
    [group] = report["groups"]
    names = {os.path.basename(f["path"]): f for f in group["files"]}
    assert set(names) == {"piano0.wav", "piano0.mp3_128.mp3", "piano0.22k.flac", "piano0.trimmed.flac"}
    assert group["keep"].endswith("piano0.wav") and "lossless" in group["keep_reason"]
    assert names["piano0.mp3_128.mp3"]["kind"] == "re-encode"
    assert names["piano0.22k.flac"]["kind"] == "re-encode"
    assert names["piano0.trimmed.flac"]["kind"] == "trimmed or faded"
    assert abs(names["piano0.trimmed.flac"]["offset_seconds"]) > 1.0
    assert 120 <= names["piano0.mp3_128.mp3"]["bitrate_kbps"] <= 136

    text = cli("duplicates", "--store", store)
    assert "group 1: 4 files — keep" in text.stdout and "nothing was deleted or moved" in text.stdout
    assert cli("duplicates", small_library / "other.wav", "--store", store).stdout.startswith("0 groups")
    typo = cli("duplicates", small_library.parent / "libary", "--store", store)  # a path no track is under
    assert typo.exit_code == 1 and typo.output.strip().splitlines()[-1].startswith("Error: no track of the store is under")
    both = cli("duplicates", small_library, small_library.parent / "libary", "--store", store)
    assert both.exit_code == 0 and "group 1: 4 files" in both.stdout
    assert "no track of the store is under" in both.stderr
    assert {p: p.stat().st_mtime_ns for p in small_library.iterdir()} == before


def test_without_fpcalc_indexing_works_and_one_line_says_how_to_get_it(cli, small_library, tmp_path, monkeypatch):
    store = tmp_path / "store"
    shutil.copytree(small_library.parent / "store", store)   # the store the test above indexed
    fingerprints.cache_path(store).unlink()                    # as a store made before the cache
    monkeypatch.setattr(fingerprints, "fpcalc_path", lambda: None)
    indexed = cli("index", small_library, "--store", store, "--workers", "1")
    assert indexed.exit_code == 0 and "nothing changed" in indexed.output
    assert "apt-get install libchromaprint-tools" in indexed.output
    assert not fingerprints.cache_path(store).exists()
    result = cli("duplicates", "--store", store)
    assert result.exit_code == 1
    assert "brew install chromaprint" in result.stderr and "Traceback" not in result.output


def test_unreadable_file_is_skipped_with_its_reason(tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"this is not audio\n" * 100)
    entry = fingerprints.fingerprint((str(bad), bad.stat().st_size, bad.stat().st_mtime_ns), fingerprints.fpcalc_path())
    assert entry.items is None and entry.error.startswith("fpcalc cannot read it")
    gone = fingerprints.fingerprint((str(tmp_path / "gone.wav"), 1, 1), fingerprints.fpcalc_path())
    assert gone.error.startswith("cannot read") and not gone.cached
