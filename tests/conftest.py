"""Shared fixtures: a per-session word-vector cache and a small generated music library."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Tests never touch the user's cache or data dirs; the GloVe conversion happens once per run."""
    if "MRE_CACHE_DIR" not in os.environ:
        os.environ["MRE_CACHE_DIR"] = str(tmp_path_factory.mktemp("mre-cache"))
    os.environ.pop("MRE_STORE", None)
    yield


def _clip(kind: str, seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """Small, distinct generated clips (the synth module makes the musical ones)."""
    from mre.benchmarks.synth import ClipSpec, render

    specs = {
        "piano": ClipSpec(bpm=70, tonic="C", mode="major", instruments=("piano",), drums="none", loudness_db=-24, seconds=seconds, seed=seed),
        "band": ClipSpec(bpm=140, tonic="E", mode="minor", instruments=("guitar", "bass"), drums="rock", loudness_db=-12, seconds=seconds, seed=seed),
        "strings": ClipSpec(bpm=80, tonic="A", mode="minor", instruments=("strings", "violin"), drums="none", loudness_db=-22, seconds=seconds, seed=seed),
        "techno": ClipSpec(bpm=128, tonic="F#", mode="minor", instruments=("synth", "bass"), drums="four_on_the_floor", loudness_db=-11, seconds=seconds, seed=seed),
    }
    return render(specs[kind], sample_rate)


@pytest.fixture(scope="session")
def music_library(tmp_path_factory) -> Path:
    """A folder of 8 generated tracks in several formats and rates, one nested, plus bad files."""
    root = tmp_path_factory.mktemp("library")
    (root / "nested" / "deeper").mkdir(parents=True)
    kinds = ["piano", "band", "strings", "techno"]
    layout = [("piano_a.wav", 16000, "WAV"), ("band_a.flac", 44100, "FLAC"), ("strings_a.ogg", 22050, "OGG"),
              ("techno_a.wav", 48000, "WAV"), ("nested/piano_b.flac", 22050, "FLAC"),
              ("nested/band_b.wav", 8000, "WAV"), ("nested/deeper/strings_b.wav", 16000, "WAV"),
              ("nested/deeper/techno_b.flac", 16000, "FLAC")]
    for i, (name, rate, fmt) in enumerate(layout):
        kind = next(k for k in kinds if Path(name).name.startswith(k))
        audio = _clip(kind, 7.0, rate, seed=i)
        if "techno_a" in name:
            audio = np.stack([audio, audio * 0.8], axis=1)  # one stereo file
        sf.write(root / name, audio, rate, format=fmt)
    (root / "empty.wav").write_bytes(b"")
    (root / "notes.mp3").write_text("this is not audio\n")
    good = root / "piano_a.wav"
    (root / "truncated.wav").write_bytes(good.read_bytes()[:60])
    (root / "cover.jpg").write_bytes(b"\xff\xd8\xff")  # not audio by extension: not scanned
    return root


@pytest.fixture()
def one_faiss_thread():
    """FAISS's OpenMP threads spin against other processes on a shared 2-core machine
    (index building took 10x longer); one thread keeps these tests quick and steady."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@pytest.fixture()
def cli():
    """Run `mre ...` in-process; returns click's Result (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from mre.cli.main import main

    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return run


@pytest.fixture(scope="session")
def store(tmp_path_factory, music_library):
    """One indexed store shared by the read-only tests below."""
    from click.testing import CliRunner

    from mre.cli.main import main

    store = tmp_path_factory.mktemp("store")
    result = CliRunner().invoke(main, ["index", str(music_library), "--store", str(store), "--workers", "1"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return store


@pytest.fixture(scope="session")
def duplicates_store(tmp_path_factory):
    """(store, library) of one generated track, three copies of it and another track, indexed
    and fingerprinted; for `mre serve`'s duplicates view. Needs fpcalc."""
    from mre.indexer.fingerprints import fpcalc_path

    if fpcalc_path() is None:
        pytest.skip("fpcalc is not installed (apt-get install libchromaprint-tools); CI installs it")
    from serve_stores import duplicates_store as make

    return make(tmp_path_factory.mktemp("duplicates"))
