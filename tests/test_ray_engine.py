"""`mre index --engine ray`: the same store as the local engine, resumable, nothing left running.

One local Ray session (2 CPUs, object store capped, its own session folder) is shared by the
in-process tests; the SIGTERM test runs `mre index --engine ray` in a subprocess, which starts
and stops a private cluster of its own. Every test checks that no Ray process outlives it.

Vectors: both engines run the same model in float32 through the same function
(pipeline.embedded_rows). They are not always bitwise equal: on CPU the model is called on
slices of at most 4 patches per thread, and which patches share a call depends on the
threads and on where Ray's blocks of files cut the stream (here the broken file shifts them);
a convolution on another number of patches may sum in another order (its kernel is chosen by
shape). Measured on the 2-core machine: at most 4.8e-6 on log-odds up to 13.8, i.e. a few
float32 steps (ulp 9.5e-7 at 13.8); where the calls line up the vectors are bitwise equal.
The bound asserted is the engine's promise, 1e-5; every other column must be identical.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (make install adds it)")

N_TRACKS = 50
VECTOR_TOLERANCE = 1e-5  # see the module docstring
OBJECT_STORE_BYTES = 128 * 1024 ** 2


# ---------------------------------------------------------------------------- processes

def _stat(pid: int) -> list[bytes] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:].split()


def _descendants(root: int) -> set[tuple[int, bytes]]:
    """(pid, start time) of every live process below ``root``, from /proc."""
    children: dict[int, list[int]] = {}
    starts = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields and fields[0] not in (b"Z", b"X"):
                children.setdefault(int(fields[1]), []).append(int(entry))
                starts[int(entry)] = fields[19]
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add((child, starts[child]))
            todo.append(child)
    return found


def _alive(processes: set[tuple[int, bytes]]) -> set[tuple[int, bytes]]:
    out = set()
    for pid, start in processes:
        fields = _stat(pid)
        if fields and fields[0] not in (b"Z", b"X") and fields[19] == start:
            out.add((pid, start))
    return out


def _assert_all_ended(processes: set[tuple[int, bytes]], grace: float = 15.0) -> None:
    deadline = time.monotonic() + grace
    while _alive(processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _alive(processes)
    assert not left, [Path(f"/proc/{pid}/cmdline").read_bytes()[:100] for pid, _ in left]


# ---------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """50 generated tracks (4 s each, four kinds in rotation) and one file that is not audio."""
    from mre.benchmarks.engine_speed import generate_library

    root = tmp_path_factory.mktemp("ray-library")
    generate_library(root, N_TRACKS, seconds=4.0)
    (root / "album00" / "broken.wav").write_bytes(b"RIFF not really")
    return root


@pytest.fixture(scope="module")
def local_store(library, tmp_path_factory):
    """The reference: the library indexed by the local engine."""
    from mre.indexer.pipeline import index_library
    from mre.indexer.store import Store

    store = tmp_path_factory.mktemp("local-store")
    summary = index_library(library, Store(store), workers=1)
    assert summary.indexed == N_TRACKS and len(summary.skipped) == 1
    return store


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the in-process tests: 2 CPUs, a capped object store, a private
    session folder; shut down at the end, and every process it started must be gone."""
    temp_dir = tempfile.mkdtemp(prefix="mre-rt-")  # short: Ray's socket paths must fit 107 bytes
    before = _descendants(os.getpid())
    ray.init(num_cpus=2, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False, log_to_driver=False,
             _temp_dir=temp_dir)
    started_by_ray = _descendants(os.getpid()) - before  # gcs_server, raylet, ... (the workers are theirs)
    try:
        yield temp_dir
    finally:
        ray_processes = set(started_by_ray)
        for pid, _ in started_by_ray:
            ray_processes |= _descendants(pid)
        ray.shutdown()
        _assert_all_ended(ray_processes)
        import shutil

        shutil.rmtree(temp_dir, ignore_errors=True)


def _live_tracks(store: Path):
    generation = store / "generations" / (store / "CURRENT").read_text().strip()
    return pq.read_table(generation / "tracks.parquet"), pq.read_table(generation / "skipped.parquet")


def _assert_same_store(store: Path, reference: Path) -> float:
    """Same schema, rows, columns; vectors within the tolerance. Returns the largest difference."""
    tracks, skipped = _live_tracks(store)
    want_tracks, want_skipped = _live_tracks(reference)
    assert tracks.schema == want_tracks.schema
    assert tracks.schema.field("vector").type == want_tracks.schema.field("vector").type  # fixed-size float32 list
    paths = tracks.column("path").to_pylist()
    assert len(set(paths)) == len(paths) == N_TRACKS  # no duplicate, none missing
    assert paths == want_tracks.column("path").to_pylist()
    for name in tracks.column_names:
        if name != "vector":
            assert tracks.column(name).to_pylist() == want_tracks.column(name).to_pylist(), name
    assert skipped.to_pylist() == want_skipped.to_pylist()
    vectors = np.stack(tracks.column("vector").to_numpy(zero_copy_only=False))
    want = np.stack(want_tracks.column("vector").to_numpy(zero_copy_only=False))
    difference = float(np.abs(vectors - want).max())
    assert difference <= VECTOR_TOLERANCE
    return difference


# ---------------------------------------------------------------------------- tests

def test_actor_sizing_leaves_a_cpu_to_ray_data():
    from mre.indexer.ray_engine import RayEngineError, plan_actors

    # 2 CPUs: one one-CPU actor, never two (an actor pool holding every CPU waits forever)
    plan = plan_actors(2, 0)
    assert (plan.actors, plan.cpus_per_actor, plan.device, plan.decode_workers) == (1, 1, "cpu", 0)
    for cpus in range(2, 65):
        plan = plan_actors(cpus, 0)
        assert plan.actors * plan.cpus_per_actor == cpus - 1
    # GPU actors: one GPU each, decode workers on the CPUs left over
    plan = plan_actors(16, 4)
    assert (plan.actors, plan.gpus_per_actor, plan.cpus_per_actor, plan.decode_workers, plan.device) == (4, 1, 3, 2, "cuda")
    with pytest.raises(RayEngineError, match="at least 2"):
        plan_actors(1, 0)


def test_ray_engine_writes_the_local_engines_store(ray_session, library, local_store, tmp_path):
    from mre.indexer.pipeline import index_library
    from mre.indexer.ray_engine import RayEngine
    from mre.indexer.store import Store

    seen = []
    with RayEngine() as engine:
        summary = index_library(library, Store(tmp_path / "store"), engine=engine,
                                progress=lambda done, total, path: seen.append((done, total)))
        assert engine.plan.actors == 1  # on the 2-CPU session
    assert summary.indexed == N_TRACKS and len(summary.skipped) == 1 and summary.audio_seconds > 0
    assert seen == [(n, N_TRACKS + 1) for n in range(1, N_TRACKS + 2)]  # progress per file, as the local engine
    difference = _assert_same_store(tmp_path / "store", local_store)
    print(f"largest vector difference Ray vs local: {difference:.2e}")
    assert ray.is_initialized()  # the shared session was used and left running


def test_the_gpu_actors_batching_on_cpu_gives_the_local_engines_rows(library, local_store):
    """A GPU actor decodes in processes of its own and runs the model on threads; the same
    actor class, called here without Ray on the CPU, makes the local engine's rows."""
    from mre.embedder.runner import default_model_threads
    from mre.indexer.paths import path_columns
    from mre.indexer.pipeline import embedded_rows  # noqa: F401  (what the actor calls)
    from mre.indexer.ray_engine import FILES_PER_BLOCK, _EmbedActor
    from mre.indexer.scan import scan_library
    import pyarrow as pa

    from mre.embedder.audio.decode import AUDIO_EXTENSIONS
    from mre.embedder.models.factory import load_model

    model = load_model(None)
    actor = _EmbedActor(None, None, model.model_id, "cpu", 64, 900.0, 1, default_model_threads())
    files = scan_library(library, AUDIO_EXTENSIONS).files
    texts, raws = path_columns([f.path for f in files])
    table = pa.table({"path": texts, "path_bytes": raws, "size": [f.size for f in files],
                      "mtime_ns": [f.mtime_ns for f in files]})
    rows = pa.concat_tables([actor(table.slice(start, FILES_PER_BLOCK))
                             for start in range(0, table.num_rows, FILES_PER_BLOCK)])
    want, _ = _live_tracks(local_store)
    ok = rows.filter(pa.compute.is_null(rows.column("error")))
    assert ok.column("path").to_pylist() == want.column("path").to_pylist()
    got = np.stack(ok.column("vector").to_numpy(zero_copy_only=False))
    expected = np.stack(want.column("vector").to_numpy(zero_copy_only=False))
    difference = float(np.abs(got - expected).max())
    print(f"largest vector difference actor (decode workers, local threads) vs local: {difference:.2e}")
    assert difference <= VECTOR_TOLERANCE
    assert ok.column("bpm").to_pylist() == want.column("bpm").to_pylist()
    assert rows.num_rows == N_TRACKS + 1 and rows.column("error").null_count == N_TRACKS


# `mre index --engine ray` as a user runs it, except that every finished track is staged at once
# (a part per track), so a SIGTERM right after the first part finds work saved and work to do
_INDEX_FLUSHING_EVERY_TRACK = """
import sys
import mre.embedder.runner as runner
import mre.indexer.pipeline as pipeline

pipeline.FLUSH_SECONDS = 0.0
runner.usable_cores = lambda: 2  # the local cluster of a 2-core machine on any machine: one actor
from mre.cli.main import main
sys.argv[0] = "mre"
main()
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_sigterm_after_the_first_part_then_resume(ray_session, library, local_store, tmp_path):
    from mre.indexer.pipeline import index_library
    from mre.indexer.ray_engine import RayEngine
    from mre.indexer.store import Store

    store = tmp_path / "store"
    session_parent = Path(tempfile.mkdtemp(prefix="mre-rs-"))  # where the subprocess's Ray session folder goes
    env = {**os.environ, "TMPDIR": str(session_parent)}
    process = subprocess.Popen([sys.executable, "-c", _INDEX_FLUSHING_EVERY_TRACK, "index", str(library), "--store",
                                str(store), "--engine", "ray"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None and not list(store.glob("staging/*/part-*.parquet")):
            time.sleep(0.05)
        ray_processes = _descendants(process.pid)
        assert process.poll() is None, process.communicate()
        assert any(b"raylet" in Path(f"/proc/{pid}/cmdline").read_bytes() for pid, _ in _alive(ray_processes))
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)  # returns: no Ray process holds the pipes
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 143, stderr.decode()
    assert stderr.decode().strip().splitlines()[-1].startswith("terminated: the tracks finished so far are saved")
    assert "Traceback" not in stderr.decode()
    _assert_all_ended(ray_processes)
    assert list(session_parent.iterdir()) == []  # the private session folder is removed too
    session_parent.rmdir()
    assert not (store / "CURRENT").exists()  # nothing half-committed
    # each file staged once: the signal waits for a part's write and the buffer's clear (landing
    # between them, it had the flush on the way out stage that part's rows again)
    keys = [key for part in store.glob("staging/*/part-*.parquet")
            for key in zip(*pq.read_table(part, columns=["path", "size", "mtime_ns"]).to_pydict().values())]
    staged = len(set(keys))
    assert 1 <= staged < N_TRACKS + 1 and len(keys) == staged

    with RayEngine() as engine:
        summary = index_library(library, Store(store), engine=engine)
    assert summary.resumed == staged and summary.indexed == N_TRACKS and len(summary.skipped) == 1
    assert not list(store.glob("staging/*"))
    _assert_same_store(store, local_store)  # no duplicate, none missing, the same rows


def test_without_ray_the_option_says_how_to_install(cli, library, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    result = cli("index", library, "--store", tmp_path / "store", "--engine", "ray")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --engine ray needs Ray Data: pip install 'music-retrieval-engine[ray]' (or pip install 'ray[data]')"]
    assert not (tmp_path / "store").exists()


def test_the_stores_own_model_and_precision_reach_the_actors(ray_session, library, tmp_path):
    """Re-indexing with no --model keeps the store's model and precision: the actors must load
    that model (not the default) and run it in that arithmetic."""
    import json
    import shutil

    from mre.indexer.pipeline import index_library
    from mre.indexer.ray_engine import RayEngine
    from mre.indexer.store import Store

    small = tmp_path / "small"
    small.mkdir()
    for path in [p for p in sorted((library / "album00").glob("*.wav")) if p.name != "broken.wav"][:3]:
        shutil.copy(path, small / path.name)
    store = Store(tmp_path / "store")
    first = index_library(small, store, model_name="mre-zs-corpus", precision="bfloat16", workers=0)
    assert first.indexed == 3
    shutil.copy(sorted((library / "album01").glob("*.wav"))[0], small / "added.wav")
    with RayEngine() as engine:
        again = index_library(small, store, engine=engine)
    assert again.indexed == 1 and again.model_change is None
    meta = json.loads((store.root / "generations" / (store.root / "CURRENT").read_text().strip() / "meta.json").read_text())
    assert meta["model_name"] == "mre-zs-corpus" and meta["precision"] == "bfloat16"
