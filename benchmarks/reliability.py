"""Random kills of `mre index`: does the store stay whole, does anything keep running, is work kept?

    python -m mre.benchmarks.reliability [--kills 20] [--tracks 10] [--seconds 6] [--seed 0]

Each round starts `mre index` on a generated library — into an empty store (first index) or
into the store of the previous round after changing some of its files (re-index) — and sends
SIGKILL or SIGTERM at a random moment between start-up and commit. Then it checks:

- whole store: no live generation yet, or the live one passes every check of its files
  against its meta.json (sizes, sha256 of every file, row counts) — never a mix;
- processes left: any process of the run's process group still alive 3 s after the kill
  (the decode server, its workers, the resource tracker);
- resumed: a second, uninterrupted run reports as resumed every track the killed run had
  saved in the staging area, so finished work is not redone.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GRACE_SECONDS = 3.0


def write_library(root: Path, tracks: int, seconds: float, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(tracks):
        paths.append(_write_track(root / f"track{i:03d}.wav", seconds, rng))
    return paths


def _write_track(path: Path, seconds: float, rng) -> Path:
    import soundfile as sf

    rate = 22050
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.2 * np.sin(2 * np.pi * rng.uniform(100, 900) * t) + 0.03 * rng.standard_normal(len(t))
    sf.write(path, tone.astype(np.float32), rate)
    return path


def group_members(pgid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every live (not zombie) process in process group ``pgid``, from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append((int(entry), cmdline[:120]))
    return members


def _index_command(library: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "mre.cli.main", "index", str(library), "--store", str(store), "--workers", "1"]


def _run(library: Path, store: Path) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run(_index_command(library, store), capture_output=True, text=True, errors="replace")
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def staged_rows(store: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(part).num_rows for part in (store / "staging").rglob("part-*.parquet"))


def store_is_whole(store: Path) -> bool:
    from mre.indexer.store import GENERATION_FILES, Store, StoreError

    try:
        generation = Store(store).live()
    except StoreError:
        return False
    if generation is None:
        return True  # nothing committed: the kill came first, nothing half-visible either
    with generation:
        return generation.damage(hash_files=GENERATION_FILES, strict=True) is None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--tracks", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each generated track")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    np_rng = np.random.default_rng(args.seed)

    with tempfile.TemporaryDirectory(prefix="mre-reliability-") as folder:
        library, store = Path(folder) / "library", Path(folder) / "store"
        paths = write_library(library, args.tracks, args.seconds, args.seed)
        status, output, baseline = _run(library, store)
        if status != 0:
            print(f"the uninterrupted baseline run failed:\n{output}", file=sys.stderr)
            return 1
        print(f"baseline: {args.tracks} tracks of {args.seconds:.0f} s indexed in {baseline:.1f} s")

        whole = left_processes = with_staged = resumed_fully = 0
        for round_number in range(args.kills):
            reindex = round_number % 2 == 1
            if reindex:  # a re-index: half of the files changed since the store was made
                for path in rng.sample(paths, max(1, len(paths) // 2)):
                    _write_track(path, args.seconds, np_rng)
            else:
                shutil.rmtree(store, ignore_errors=True)
            kill_signal = rng.choice([signal.SIGKILL, signal.SIGTERM])
            delay = rng.uniform(0.5, 0.85 * baseline)  # from start-up to the commit, rarely after the end
            process = subprocess.Popen(_index_command(library, store), stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(delay)
            if process.poll() is None:
                process.send_signal(kill_signal)
            process.wait()
            deadline = time.monotonic() + GRACE_SECONDS
            while group_members(process.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            survivors = group_members(process.pid)
            if survivors:
                left_processes += 1
                for pid in survivors:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            whole_now = store_is_whole(store)
            whole += whole_now
            staged = staged_rows(store)
            status, output, _ = _run(library, store)
            resumed = int(match.group(1)) if (match := re.search(r"resumed: (\d+) tracks", output)) else 0
            if staged:
                with_staged += 1
                resumed_fully += resumed >= staged
            print(f"round {round_number + 1:2d}: {'re-index' if reindex else 'index   '} "
                  f"{signal.Signals(kill_signal).name:7s} after {delay:4.1f} s (exit {process.returncode:4d}): "
                  f"store {'whole' if whole_now else 'DAMAGED'}, "
                  f"{len(survivors)} processes left, {staged} tracks staged, {resumed} resumed; "
                  f"the next run exits {status}")

    print(f"{args.kills} kills: {whole} left a whole store, {left_processes} left processes running, "
          f"{resumed_fully} of the {with_staged} that had saved work resumed it without redoing it")
    return 0 if whole == args.kills and left_processes == 0 and resumed_fully == with_staged else 1


if __name__ == "__main__":
    sys.exit(main())
