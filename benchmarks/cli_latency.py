"""Whole-process latency of `mre` commands, against starting Python itself.

    python -m mre.benchmarks.cli_latency [--store DIR] [--runs 5] [--json OUT]

Each figure is the median wall time of N runs of a fresh process (output discarded):
`mre --help`; `mre query "calm piano" --store S`; `mre index <demo tracks> --store S` with
nothing changed; and `python -c pass`, measured in the same rounds as the floor, so each
command's ratio says how many bare interpreter starts it costs. The rounds interleave the
commands, so a busy moment on a shared machine weighs on all of them alike.

The store (default ./demo-store) is built from the demo tracks (package
immich-memories-music, extra [demo]) when it is missing, as `make demo` does. One untimed
run of each command comes first: the first query after installing converts the bundled word
vectors into the cache (a few seconds, once), which is not what a user waits for after that.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

QUERY = "calm piano"


def demo_tracks() -> Path:
    try:
        import immich_memories_music
    except ImportError:
        raise SystemExit("the demo tracks need the package immich-memories-music: pip install '.[demo]'") from None
    return Path(immich_memories_music.__file__).parent / "tracks"


def mre_command() -> list[str]:
    """The `mre` console script beside this interpreter, as a user runs it; else `python -m`."""
    script = Path(sys.executable).with_name("mre")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mre.cli.main"]


def commands(store: Path, tracks: Path) -> dict[str, list[str]]:
    mre = mre_command()
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "mre --help": [*mre, "--help"],
        f'mre query "{QUERY}"': [*mre, "query", QUERY, "--store", str(store)],
        "mre index (unchanged)": [*mre, "index", str(tracks), "--store", str(store)],
    }


def run_once(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"{' '.join(argv)} failed: {last}")
    return seconds


def measure(store: Path, runs: int) -> dict:
    tracks = demo_tracks()
    if not (store / "CURRENT").exists():
        print(f"building the demo store in {store} (once)", file=sys.stderr)
        subprocess.run([*mre_command(), "index", str(tracks), "--store", str(store)], check=True)
    argvs = commands(store, tracks)
    for argv in argvs.values():  # untimed: caches, and the files into the page cache
        run_once(argv)
    seconds: dict[str, list[float]] = {name: [] for name in argvs}
    for _ in range(runs):
        for name, argv in argvs.items():
            seconds[name].append(run_once(argv))
    floor = statistics.median(seconds["python -c pass"])
    return {
        "store": str(store),
        "runs": runs,
        "commands": {name: {"median_s": round(statistics.median(times), 4),
                            "ratio_to_python": round(statistics.median(times) / floor, 2),
                            "all_s": [round(t, 4) for t in times]}
                     for name, times in seconds.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("demo-store"))
    parser.add_argument("--runs", type=int, default=5, help="Timed runs of each command (the median is reported).")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    report = measure(args.store, max(1, args.runs))
    print(f"whole-process wall time, median of {report['runs']} runs (store {report['store']})")
    print(f"{'':<28}{'median s':>10}{'× python -c pass':>18}")
    for name, row in report["commands"].items():
        print(f"{name:<28}{row['median_s']:>10.3f}{row['ratio_to_python']:>18.1f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
