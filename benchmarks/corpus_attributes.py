"""Tempo, key and mode of `mre info` on a held-out rendered corpus, against the fixed rules.

    python -m mre.benchmarks.corpus_attributes [--held-out corpus/heldout] [--clips 600] [--seed 20190] [--json OUT]

The held-out set is rendered through MuseScore General (the SoundFont no training corpus
contains, `mre corpus build --held-out-evaluation`) with a seed the training corpus does not
use, on first use; its tracks table holds each clip's exact tempo, key and mode. Measured
in the same run on the same audio:

- **shipped**: `extract_attributes`, with the learned decisions in use (key profiles, tempo
  octave; `mre corpus attributes`, trained on FluidR3_GM and TimGM6mb renders);
- **fixed rules**: the same analysis with Krumhansl & Kessler's profiles and the
  prior-weighted autocorrelation peak (what `mre info` did before the learned decisions);
- **naive prior**: 120 BPM and C major for every clip (chance level).

Tempo is scored as in MIREX: within 4 % of the true tempo; octave-tolerant within 4 % of
half, the same or double; and also allowing a third or triple (triple meter). A clip without a
detected pulse counts as wrong. Keys are scored on clips with a key and a mode (blues and
power-chord clips claim none): tonic and mode exact, mode alone, and the MIREX weighted score
(fifth 0.5, relative 0.3, parallel 0.2).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from mre.benchmarks.attribute_eval import fixed_rules, mirex_key_score
from mre.embedder.audio import attributes as A
from mre.training.corpus.build import HELD_OUT_CLIPS, HELD_OUT_SEED

SAMPLE_RATE = 16000
TOLERANCE = 0.04
OCTAVES = (0.5, 1.0, 2.0)
OCTAVES_AND_THIRDS = (1.0 / 3.0, 0.5, 1.0, 2.0, 3.0)
METHODS = ("shipped", "fixed rules", "naive prior")


def within(estimate: float, truth: float, factors=(1.0,)) -> bool:
    return estimate > 0 and any(abs(estimate / (truth * f) - 1.0) <= TOLERANCE for f in factors)


def estimates(y: np.ndarray) -> tuple[dict, float]:
    """{method: (bpm, tonic, mode)} for one clip, and the shipped extractor's seconds."""
    start = time.perf_counter()
    shipped = A.extract_attributes(y, SAMPLE_RATE)
    seconds = time.perf_counter() - start
    return {"shipped": (shipped.bpm, shipped.key, shipped.mode), "fixed rules": fixed_rules(y, SAMPLE_RATE),
            "naive prior": (A.PRIOR_BPM, "C", "major")}, seconds


def score(rows: list[dict], method: str) -> dict:
    tempo = [within(r[method][0], r["bpm"]) for r in rows]
    octave = [within(r[method][0], r["bpm"], OCTAVES) for r in rows]
    thirds = [within(r[method][0], r["bpm"], OCTAVES_AND_THIRDS) for r in rows]
    keyed = [r for r in rows if r["key"] and r["mode"]]
    by_kind = defaultdict(list)
    for r, hit in zip(rows, tempo):
        by_kind[r["kind"] + (" with drums" if r["drums"] else "")].append(hit)
    return {
        "tempo_accuracy": float(np.mean(tempo)),
        "tempo_octave_tolerant": float(np.mean(octave)),
        "tempo_octave_or_third_tolerant": float(np.mean(thirds)),
        "no_pulse": float(np.mean([r[method][0] <= 0 for r in rows])),
        "tempo_accuracy_by_kind": {kind: float(np.mean(hits)) for kind, hits in sorted(by_kind.items())},
        "key_accuracy": float(np.mean([r[method][1:] == (r["key"], r["mode"]) for r in keyed])),
        "mode_accuracy": float(np.mean([r[method][2] == r["mode"] for r in keyed])),
        "key_mirex_score": float(np.mean([mirex_key_score(*r[method][1:], r["key"], r["mode"]) for r in keyed])),
        "keyed_clips": len(keyed),
    }


def ensure_held_out(folder: Path, clips: int, seed: int, workers: int) -> dict:
    """The held-out set's manifest (rendered, or rendered again, unless the folder holds it)."""
    from mre.training.corpus.build import held_out_set

    try:
        return held_out_set(folder, clips, seed, workers)
    except ValueError as error:
        raise SystemExit(str(error)) from None


def main(argv: list[str] | None = None) -> dict:
    from tqdm import tqdm

    from mre.embedder.audio.decode import load_audio
    from mre.util.progress import redraw_every

    parser = argparse.ArgumentParser(prog="python -m mre.benchmarks.corpus_attributes", description=__doc__.split("\n")[0])
    parser.add_argument("--held-out", type=Path, default=Path("corpus/heldout"))
    parser.add_argument("--clips", type=int, default=HELD_OUT_CLIPS, help="clips to render when the folder holds no set (default: the set corpus_eval measures)")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    manifest = ensure_held_out(args.held_out, args.clips, args.seed, args.workers)
    with open(args.held_out / "tracks.csv", newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    rows, seconds = [], []
    for row, clip in tqdm(list(zip(table, manifest["clips"])), unit="clip", file=sys.stderr, desc="analysing",
                          **redraw_every()):
        y, _ = load_audio(str(args.held_out / row["path"]), SAMPLE_RATE)
        found, took = estimates(y)
        seconds.append(took)
        rows.append({"bpm": float(row["bpm"]), "key": row["key"], "mode": row["mode"], "kind": clip["kind"],
                     "drums": any(p["role"] == "drums" for p in clip["parts"]), **found})
    report = {"clips": len(rows), "seed": manifest["seed"], "soundfonts": [f["name"] for f in manifest["soundfonts"]],
              "learned_in_use": sorted(A._learned()), "seconds_per_clip": float(np.mean(seconds)),
              "methods": {method: score(rows, method) for method in METHODS}}
    _print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _print(report: dict) -> None:
    print(f"{report['clips']} held-out clips (seed {report['seed']}, {', '.join(report['soundfonts'])}); "
          f"learned decisions in use: {', '.join(report['learned_in_use']) or 'none'}")
    methods = report["methods"]
    rows = [("tempo within 4 %", "tempo_accuracy"), ("  or 1/2, 2x (octave-tolerant)", "tempo_octave_tolerant"),
            ("  or 1/3, 1/2, 2x, 3x", "tempo_octave_or_third_tolerant"), ("  no pulse found", "no_pulse"),
            ("key right (tonic and mode)", "key_accuracy"), ("mode right", "mode_accuracy"),
            ("key, MIREX weighted", "key_mirex_score")]
    print(f"{'':34}" + "".join(f"{m:>13}" for m in METHODS) + f"{'shipped/fixed':>15}{'shipped-fixed':>15}")
    for label, key in rows:
        ours, fixed = methods["shipped"][key], methods["fixed rules"][key]
        ratio = f"{ours / fixed:15.2f}" if fixed else f"{'-':>15}"
        print(f"{label:34}" + "".join(f"{methods[m][key]:13.3f}" for m in METHODS) + ratio + f"{ours - fixed:+15.3f}")
    for kind in methods["shipped"]["tempo_accuracy_by_kind"]:
        print(f"{'  tempo, ' + kind:34}" + "".join(f"{methods[m]['tempo_accuracy_by_kind'][kind]:13.3f}" for m in METHODS))
    print(f"keys scored on {methods['shipped']['keyed_clips']} clips with a key and a mode; "
          f"shipped extractor {report['seconds_per_clip'] * 1000:.1f} ms per clip (all attributes)")


if __name__ == "__main__":
    main()
