"""Real libraries and real machines: odd file names, kills, full disks, damaged stores."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from mre.benchmarks.reliability import group_members

LATIN1_NAME = os.fsdecode(b"latin1-caf\xe9.wav")  # a name that is not UTF-8, as Python holds it


def _tone(path: Path, seconds: float = 3.0, rate: int = 16000, hz: float = 440.0) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * hz * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t)), rate)
    return path


@pytest.fixture(scope="module")
def odd_names(tmp_path_factory):
    """A library with a Latin-1 name, a broken file under another Latin-1 name, and a newline."""
    root = tmp_path_factory.mktemp("odd-names")
    _tone(root / "good.wav")
    _tone(root / "tmp-latin1.wav", hz=220.0).rename(root / LATIN1_NAME)  # soundfile cannot write such a name
    _tone(root / "new\nline.wav", hz=330.0)
    (root / os.fsdecode(b"broken-\xff.mp3")).write_bytes(b"not audio at all\n")
    store = tmp_path_factory.mktemp("odd-store")
    return root, store


def test_a_name_that_is_not_utf8_is_indexed_and_served(cli, odd_names):
    root, store = odd_names
    result = cli("index", root, "--store", store, "--workers", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("indexed 3,"), result.stdout
    assert "broken-\\xff.mp3" in result.stdout and "new\\nline.wav" not in result.stdout

    generation = store / "generations" / (store / "CURRENT").read_text().strip()
    tracks = pq.read_table(generation / "tracks.parquet")
    stored = dict(zip(tracks.column("path").to_pylist(), tracks.column("path_bytes").to_pylist()))
    latin1 = os.path.join(os.fsencode(root), b"latin1-caf\xe9.wav")
    assert stored[latin1.decode("utf-8", "backslashreplace")] == latin1  # lossless: the raw bytes are kept
    assert stored[str(root / "good.wav")] is None
    skipped = pq.read_table(generation / "skipped.parquet").to_pylist()
    assert [r["path_bytes"] for r in skipped] == [os.path.join(os.fsencode(root), b"broken-\xff.mp3")]

    hits = json.loads(cli("query", "flute", "--store", store, "--json").stdout)
    escaped = [h for h in hits if h.get("path_escaped")]
    assert len(hits) == 3 and len(escaped) == 1
    assert escaped[0]["path"].endswith("latin1-caf\\xe9.wav") and escaped[0]["path_escaped"] == "backslashreplace"

    table = cli("query", "flute", "--store", store)
    assert table.exit_code == 0 and len(table.stdout.strip().splitlines()) == 3, table.stdout  # the newline is escaped
    assert "new\\nline.wav" in table.stdout

    target = str(root / LATIN1_NAME)
    for args in (("tags", target, "-k", "2"), ("similar", target), ("info", target),
                 ("info", str(root) + "/latin1-caf\\xe9.wav")):  # also as the output spelled it
        result = cli(*args, "--store", store, "--json")
        assert result.exit_code == 0, (args, result.output)
        assert json.loads(result.stdout)

    again = cli("index", root, "--store", store, "--workers", "1")
    assert again.exit_code == 0 and again.stdout.startswith("indexed 0, unchanged 3, removed 0, skipped 1"), again.stdout


# ---------------------------------------------------------------------------- kills

@pytest.fixture(scope="module")
def long_library(tmp_path_factory):
    """Enough audio to be mid-decode seconds after the start: a few short tracks, then long ones."""
    root = tmp_path_factory.mktemp("long-library")
    for i in range(4):
        _tone(root / f"a-short-{i}.wav", seconds=3.0, hz=200.0 + 50 * i)
    for i in range(12):
        _tone(root / f"b-long-{i:02d}.wav", seconds=40.0, rate=44100, hz=150.0 + 20 * i)
    return root


# `mre index` as a user runs it, except that it saves staged work only on its way out and
# touches a marker once two tracks are finished: the signal then finds work to save.
_INDEX_WITH_MARKER = """
import pathlib, signal, sys
import mre.indexer.pipeline as pipeline

# Ctrl-C as in a terminal: a test run started in the background (`make test &`) hands its
# children SIGINT ignored, and Python then installs no KeyboardInterrupt for it
signal.signal(signal.SIGINT, signal.default_int_handler)

marker = pathlib.Path(sys.argv.pop())
pipeline.FLUSH_SECONDS = 1e9
embed_tracks = pipeline.embed_tracks

def marked(*args, **kwargs):
    for number, track in enumerate(embed_tracks(*args, **kwargs), 1):
        yield track
        if number == 2:
            marker.touch()

pipeline.embed_tracks = marked
from mre.cli.main import main
sys.argv[0] = "mre"
main()
"""


def _start_index(library: Path, store: Path):
    import subprocess
    import sys
    import time

    marker = store.parent / "two-tracks-done"
    process = subprocess.Popen([sys.executable, "-c", _INDEX_WITH_MARKER, "index", str(library), "--store", str(store),
                                "--workers", "1", str(marker)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None and not marker.exists():
        time.sleep(0.1)
    assert process.poll() is None and marker.exists(), process.communicate()
    assert any("forkserver" in cmd for _, cmd in group_members(process.pid))  # mid-decode: the server runs
    return process


def _assert_nothing_left(pgid: int, grace: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + grace
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert group_members(pgid) == []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("signal_name, status, word", [("SIGTERM", 143, "terminated"), ("SIGINT", 130, "interrupted")])
def test_sigterm_and_sigint_save_finished_work_and_leave_no_process(long_library, tmp_path, signal_name, status, word):
    import signal

    store = tmp_path / "store"
    process = _start_index(long_library, store)
    process.send_signal(getattr(signal, signal_name))
    stdout, stderr = process.communicate(timeout=60)  # returns: no helper holds the pipes
    assert process.returncode == status, stderr
    last = stderr.decode().strip().splitlines()[-1]
    assert last.startswith(f"{word}: the tracks finished so far are saved"), stderr
    assert "Traceback" not in stderr.decode()
    _assert_nothing_left(process.pid)
    staged = sorted((store / "staging").rglob("part-*.parquet"))
    assert sum(pq.read_metadata(part).num_rows for part in staged) >= 2  # the two finished tracks at least
    assert not (store / "CURRENT").exists()  # nothing half-committed


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_kill_9_leaves_no_decode_server_or_worker(long_library, tmp_path):
    import signal

    process = _start_index(long_library, tmp_path / "store")
    helpers = [pid for pid, _ in group_members(process.pid) if pid != process.pid]
    assert helpers  # the decode server, its worker and the resource tracker
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)  # returns: no helper holds the pipes
    _assert_nothing_left(process.pid)


def _signal_ignored(pid: int, sig: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    masks = [line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")]
    return bool(masks) and bool(int(masks[0], 16) & (1 << (sig - 1)))


def _maps_torch(pid: int) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


_INDEX_AS_IN_A_TERMINAL = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as _INDEX_WITH_MARKER says
from mre.cli.main import main
sys.argv[0] = "mre"
main()
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_ctrl_c_while_the_decode_server_imports_torch_is_one_line(long_library, tmp_path):
    """Ctrl-C reaches the terminal's whole process group, the decode server too. The server
    ignores it from before its heavy imports: `mre` alone answers, in one line."""
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen([sys.executable, "-c", _INDEX_AS_IN_A_TERMINAL, "index", str(long_library),
                                "--store", str(tmp_path / "store"), "--workers", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    server, shielded = None, False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if server is None:
            server = next((pid for pid, cmd in group_members(process.pid) if "forkserver" in cmd), None)
        elif _signal_ignored(server, signal.SIGINT):
            shielded = not _maps_torch(server)  # still before torch: its import is what Ctrl-C used to break
            break
        time.sleep(0.002)
    try:
        assert shielded, "the decode server took Ctrl-C until after it had imported torch"
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert "Traceback" not in stderr.decode(), stderr.decode()
    assert process.returncode == 130, stderr.decode()
    assert stderr.decode().strip().splitlines()[-1].startswith("interrupted:"), stderr.decode()
    _assert_nothing_left(process.pid)


def test_a_signal_while_a_worker_starts_takes_effect_once_it_is_up():
    """What the decode pool's start and shutdown are wrapped in: the signal waits for the step,
    then reaches the handler that was in place (or is dropped, when asked); an ignored signal
    stays ignored."""
    import signal

    from mre.embedder.lifetime import signals_held

    steps = []
    earlier = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with signals_held():
                os.kill(os.getpid(), signal.SIGINT)
                steps.append("the step ran to its end")
            steps.append("not reached")
        assert steps == ["the step ran to its end"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

        with signals_held(deliver=False):  # a step of work that already ends: the signal is dropped
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, earlier)


# ---------------------------------------------------------------------------- full disk

@pytest.fixture()
def small_filesystem(tmp_path):
    """A 96 KB tmpfs (room for the staged tracks, not for a generation) and a way to grow it;
    None where mounting is not allowed (not root, or no tmpfs)."""
    import subprocess

    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        yield None
        return

    def grow():
        subprocess.run(["mount", "-o", "remount,size=8m", str(mount)], check=True)

    yield mount, grow
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_full_disk_is_one_line_leaves_nothing_half_written_and_the_next_run_completes(
        cli, small_filesystem, tmp_path, monkeypatch):
    library = tmp_path / "library"
    library.mkdir()
    for i in range(3):
        _tone(library / f"t{i}.wav", hz=300.0 + 100 * i)
    if small_filesystem is not None:  # a real full disk
        mount, grow = small_filesystem
        store = mount / "store"
    else:  # simulated: every write of an index file fails as on a full disk
        import errno

        import faiss

        store = tmp_path / "store"
        real_write_index = faiss.write_index

        def no_space(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(faiss, "write_index", no_space)

        def grow():
            monkeypatch.setattr(faiss, "write_index", real_write_index)

    full = cli("index", library, "--store", store, "--workers", "1")
    assert full.exit_code == 1
    message = full.stderr.strip().splitlines()[-1]
    assert message.startswith("Error: no space left on ") and "writing the new index generation" in message, full.stderr
    assert "free up ~" in message and message.endswith("and run again")
    generations = store / "generations"
    assert not [p for p in generations.iterdir()] if generations.exists() else True  # no .writing-* folder
    assert not list(store.rglob("*.tmp"))
    assert not (store / "CURRENT").exists()

    grow()
    again = cli("index", library, "--store", store, "--workers", "1")
    assert again.exit_code == 0, again.output
    assert "resumed: 3 tracks" in again.stdout  # the staged tracks were kept, not embedded again
    assert json.loads(cli("query", "flute", "--store", store, "--json").stdout)


# ---------------------------------------------------------------------------- queries

def test_a_lone_negation_ranks_least_like_it(cli, store):
    result = cli("query", "--store", store, "--json", "-k", "50", "--", "-piano")
    assert result.exit_code == 0, result.output
    plain = json.loads(cli("query", "piano", "--store", store, "--json", "-k", "50").stdout)
    negated = json.loads(result.stdout)
    assert [h["path"] for h in negated] == [h["path"] for h in plain][::-1]
    shown = cli("query", "--store", store, "--", "-piano")
    assert "query → piano -1.00" in shown.stderr
    assert "query → no vocals +1.00" in cli("query", "no vocals", "--store", store).stderr  # a "no X" label stays one


# ---------------------------------------------------------------------------- damaged stores

def _live_generation(store: Path) -> Path:
    return store / "generations" / (store / "CURRENT").read_text().strip()


def test_a_damaged_store_is_said_with_how_to_recover(cli, store, music_library, tmp_path):
    import shutil

    import faiss

    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    assert cli("index", music_library, "--store", copy, "--index-spec", "Flat").exit_code == 0  # a second generation
    generation = _live_generation(copy)
    meta = json.loads((generation / "meta.json").read_text())
    assert set(meta["files"]) == {"tracks.parquet", "audio.faiss", "tags.parquet", "tags.faiss", "skipped.parquet"}

    # another store's index copied in: fewer vectors of the same width
    other = faiss.IndexFlatIP(meta["audio_index"]["dim"])
    other.add(np.random.default_rng(0).standard_normal((3, other.d)).astype(np.float32))
    faiss.write_index(other, str(generation / "audio.faiss"))
    for args in (("query", "piano"), ("query", "calm"), ("similar", music_library / "piano_a.wav"),
                 ("tags", music_library / "piano_a.wav")):
        result = cli(*args, "--store", copy)
        assert result.exit_code == 1, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "is damaged: audio.faiss" in lines[0], result.stderr
        assert f"`mre index {music_library} --store {copy}` rebuilds it" in lines[0]
        assert "switch back to the previous generation" in lines[0]

    # an older store (no checksums recorded): a missing index is still said, and so are counts
    del meta["files"]
    (generation / "meta.json").write_text(json.dumps(meta))
    result = cli("query", "piano", "--store", copy)
    assert result.exit_code == 1 and "audio.faiss holds 3 vectors, meta.json says 8" in result.stderr, result.stderr
    (generation / "audio.faiss").unlink()
    result = cli("similar", music_library / "piano_a.wav", "--store", copy)
    assert result.exit_code == 1 and "audio.faiss is missing" in result.stderr, result.stderr

    # and `mre index` rebuilds it, reusing the stored vectors
    rebuilt = cli("index", music_library, "--store", copy)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "indexed 0, unchanged 8" in rebuilt.stdout and "damaged (audio.faiss is missing)" in rebuilt.stdout
    assert cli("query", "piano", "--store", copy).exit_code == 0


# ---------------------------------------------------------------------------- smaller things

def test_a_truncated_mp3_is_skipped_with_what_the_decoder_said(tmp_path):
    from mre.embedder.audio.decode import AudioError, load_audio
    from mre.embedder.runner import _decode_one

    whole = tmp_path / "whole.mp3"
    t = np.arange(4 * 44100) / 44100
    sf.write(whole, 0.3 * np.sin(2 * np.pi * 440 * t), 44100, format="MP3")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.3)])
    assert load_audio(whole, 16000)[1].duration == pytest.approx(4.0, abs=0.05)
    with pytest.raises(AudioError, match=r"truncated: the header declares 4.0 s of audio, the file decodes to 1.\d s"):
        load_audio(cut, 16000)
    decoded = _decode_one((str(cut), 16000, None, None, ()))
    assert decoded.error.startswith("truncated:") and "\n" not in decoded.error
    assert "(decoder: " in decoded.error  # libmpg123's own warning, attached to this file


def test_a_folder_with_nothing_to_index_is_one_line(cli, tmp_path):
    (tmp_path / "music").mkdir()
    (tmp_path / "music" / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    result = cli("index", tmp_path / "music", "--store", tmp_path / "store")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no audio files under ") and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "store" / "CURRENT").exists()


def test_messages_give_a_reason_and_do_not_echo_a_wall_of_text(cli, store, tmp_path):
    (tmp_path / "folder.mp3").mkdir()
    result = cli("tags", tmp_path / "folder.mp3", tmp_path / "missing.wav", "--store", store)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: {tmp_path / 'folder.mp3'}: a folder, not an audio file (mre index PATH indexes a folder)",
        f"Error: {tmp_path / 'missing.wav'}: no such file, and no track of the store has this path or id"]
    wall = " ".join(f"zqxw{i}" for i in range(2000))
    for text in (wall, "zqx" * 3400):
        result = cli("query", text, "--store", store)
        assert result.exit_code == 1 and len(result.stderr) < 600, result.stderr
    mixed = cli("query", "piano " + wall, "--store", store, "-k", "1")
    assert mixed.exit_code == 0 and len(mixed.stderr.splitlines()) <= 8, mixed.stderr


def test_a_signal_during_a_flush_leaves_the_rows_for_the_flush_that_saves_them(monkeypatch):
    """SIGTERM can land while a part of staged rows is being built; the rows must stay whole, so
    that the flush on the way out stages them (it used to find their vectors gone, end in a
    traceback and lose the tracks of that part)."""
    import mre.indexer.pipeline as pipeline

    dim = 4
    rows = [{name: None for name in pipeline._staged_schema(dim).names} for _ in range(2)]
    for number, row in enumerate(rows):
        row.update(path=f"/music/{number}.wav", vector=np.full(dim, number, np.float32))
    build_column, calls = pipeline.optional_vectors_column, []

    def interrupted_once(*args):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return build_column(*args)

    monkeypatch.setattr(pipeline, "optional_vectors_column", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        pipeline.staged_table(rows, dim)
    table = pipeline.staged_table(rows, dim)
    assert table.column("path").to_pylist() == ["/music/0.wav", "/music/1.wav"]
    assert table.column("vector").to_pylist() == [[0.0] * dim, [1.0] * dim]
