"""Learn `mre info`'s key profiles and tempo-octave decision from a rendered corpus.

    mre corpus attributes --corpus corpus/attributes     # writes embedder/audio/data/attribute_model.json

Every clip of `mre corpus build` knows its tempo, key and mode exactly (they are what was
played), so the estimators in mre.embedder.audio.attributes can learn two decisions from it:

- **key profiles**: the mean chroma of the training clips (each standardised, rotated so the
  labelled tonic comes first), one profile per mode, instead of Krumhansl & Kessler's
  listener ratings, which describe notes and not the overtones this chroma also holds;
- **tempo octave**: a conditional logit over half, the same and double the fixed rule's tempo
  (features: `attributes.octave_features`), fitted by Newton's method with an L2 penalty.

Fitted on the corpus's `train` split. Each decision is chosen on the `valid` split (the
learned profiles' weight against Krumhansl & Kessler's; the octave features and penalty),
among the options that lose at most 2 % to the fixed rule on a check set the caller gives
(`mre corpus attributes` gives attribute_eval's synthetic clips: other timbres, uniform
tempi; the check that a decision learned music, not the generator),
and used only where it beats the fixed rule on `valid` (the file records every figure).
The `test` split and held-out evaluation sets (MuseScore General, `--held-out-evaluation`)
are never read: a corpus marked held-out is refused.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from mre.embedder.audio import attributes as A

SAMPLE_RATE = 16000           # what the indexer and `mre info` decode to
TEMPO_TOLERANCE = 0.04        # MIREX: within 4 % of the true tempo
PENALTIES = (1e-3, 1e-2, 1e-1, 1.0)
# octave decision features tried (columns of attributes.OCTAVE_FEATURES): the tempo prior and
# the autocorrelation at the beat; and those with the autocorrelation at twice and half the beat
FEATURE_SETS = ((0, 1, 2), (0, 1, 2, 3, 4))
PROFILE_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)   # share of the learned profile; 0 is Krumhansl & Kessler's
# A learned option may lose at most this share of the synthetic set to the fixed rule (two of
# its 100 clips): the check that a decision learned the music, not the corpus generator.
SYNTHETIC_SLACK = 0.02
SYNTHETIC_PER_GROUP = 20   # the check set `mre corpus attributes` gives: attribute_eval's 5 groups of 20


def clip_features(y: np.ndarray, sample_rate: int) -> dict:
    """What both decisions need from one clip: the fixed rule's tempo and the candidates'
    features, and the chroma."""
    frames = A._Spectrogram(y, sample_rate, frame_seconds=0.032)
    analysis = A.tempo_analysis(A._onset_envelope(frames), frames.frame_rate)
    bpm = analysis[1] if analysis is not None else 0.0
    octave = A.octave_features(analysis[0], bpm, frames.frame_rate) if bpm > 0 else None
    return {"bpm": bpm, "octave": octave, "in_range": A._octave_in_range(bpm) if bpm > 0 else None,
            "chroma": A.chroma_vector(y, sample_rate)}


def corpus_manifest(corpus: Path) -> dict:
    """The corpus's manifest; ValueError for a folder without one or for a held-out evaluation set."""
    manifest_path = corpus / "manifest.json"
    if not manifest_path.is_file():
        raise ValueError(f"{corpus} holds no corpus (no manifest.json); build one with mre corpus build")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("held_out_evaluation"):
        raise ValueError(f"{corpus} is a held-out evaluation set: it measures, it never trains")
    return manifest


def read_corpus(corpus: Path, splits=("train", "valid"), progress: bool = True) -> list[dict]:
    """Rows of the corpus's tracks table in `splits`, each with its clip_features (the table's
    bpm column renamed bpm_true: `bpm` is the fixed rule's estimate)."""
    from tqdm import tqdm

    from mre.embedder.audio.decode import load_audio
    from mre.util.progress import redraw_every

    corpus_manifest(corpus)
    with open(corpus / "tracks.csv", newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] in splits]
    for row in tqdm(rows, unit="clip", file=sys.stderr, disable=not progress, desc="analysing",
                    **redraw_every()):
        y, _ = load_audio(str(corpus / row["path"]), SAMPLE_RATE)
        row["bpm_true"] = float(row.pop("bpm"))
        row.update(clip_features(y, SAMPLE_RATE))
    return rows


def within(estimate: float, truth: float) -> bool:
    return estimate > 0 and abs(estimate / truth - 1.0) <= TEMPO_TOLERANCE


# --- key ------------------------------------------------------------------------------------

def learn_profiles(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Mean standardised chroma rotated to the labelled tonic, per mode."""
    sums = {"major": np.zeros(12), "minor": np.zeros(12)}
    counts = {"major": 0, "minor": 0}
    for row in rows:
        chroma = row["chroma"]
        if np.ptp(chroma) <= 0:
            continue
        standard = (chroma - chroma.mean()) / chroma.std()
        sums[row["mode"]] += np.roll(standard, -A.PITCH_CLASSES.index(row["key"]))
        counts[row["mode"]] += 1
    if min(counts.values()) == 0:
        raise ValueError("the training split needs clips in both modes to learn key profiles")
    return sums["major"] / counts["major"], sums["minor"] / counts["minor"]


def key_accuracy(rows: list[dict], profiles) -> float:
    hits = [A.estimate_key(row["chroma"], profiles)[:2] == (row["key"], row["mode"]) for row in rows]
    return float(np.mean(hits)) if hits else 0.0


# --- tempo octave ---------------------------------------------------------------------------

def fit_conditional_logit(features: np.ndarray, chosen: np.ndarray, penalty: float, iterations: int = 50):
    """Weights w maximising sum log softmax(features[n] @ w)[chosen[n]] - penalty * n/2 * |w|^2,
    on features standardised to zero mean and unit spread; returns (w, mean, scale)."""
    flat = features.reshape(-1, features.shape[-1])
    mean, scale = flat.mean(axis=0), flat.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = (features - mean) / scale
    n, k, d = z.shape
    target = np.eye(k)[chosen]
    w = np.zeros(d)
    for _ in range(iterations):
        scores = z @ w
        p = np.exp(scores - scores.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        gradient = np.einsum("nk,nkd->d", target - p, z) - penalty * n * w
        expected = np.einsum("nk,nkd->nd", p, z)
        hessian = (np.einsum("nk,nkd,nke->de", p, z, z) - expected.T @ expected) + penalty * n * np.eye(d)
        step = np.linalg.solve(hessian, gradient)
        w += step
        if np.abs(step).max() < 1e-10:
            break
    return w, mean, scale


def octave_choice(row: dict, decision) -> float:
    """The tempo a decision gives for a clip: the fixed rule's (decision None) or a learned one's."""
    if row["bpm"] <= 0 or decision is None:
        return row["bpm"]
    columns, (w, mean, scale) = decision
    scores = A.octave_scores(row["octave"][:, columns], row["in_range"], w, mean, scale)
    return row["bpm"] * A.OCTAVE_FACTORS[int(np.argmax(scores))]


def tempo_accuracy(rows: list[dict], decision) -> float:
    return float(np.mean([within(octave_choice(row, decision), row["bpm_true"]) for row in rows]))


def check_rows(clips, progress: bool = True) -> list[dict]:
    """Rows like read_corpus's from (waveform, sample rate, tonic, mode, bpm) tuples: the check
    set that training measures every option on besides the validation split."""
    from tqdm import tqdm

    from mre.util.progress import redraw_every

    return [{"key": tonic, "mode": mode, "bpm_true": float(bpm), **clip_features(y, sample_rate)}
            for y, sample_rate, tonic, mode, bpm in tqdm(clips, unit="clip", file=sys.stderr, disable=not progress,
                                                         desc="check set", **redraw_every())]


def _choose(options: list[dict], fixed: dict) -> dict:
    """The option best on the validation split among those that lose at most SYNTHETIC_SLACK
    of the check set to the fixed rule; ties go to the earlier (simpler) option."""
    allowed = [o for o in options if o["synthetic"] >= fixed["synthetic"] - SYNTHETIC_SLACK]
    return max(allowed, key=lambda o: o["valid"], default=fixed)


def train(rows: list[dict], synthetic: list[dict]) -> dict:
    """Both decisions from read_corpus rows: fitted on `train`, chosen on `valid` and the check
    set `synthetic` (check_rows)."""
    fit_rows = [r for r in rows if r["split"] == "train"]
    valid_rows = [r for r in rows if r["split"] == "valid"]
    keyed = lambda rs: [r for r in rs if r["key"] and r["mode"]]
    if not keyed(fit_rows) or not keyed(valid_rows):
        raise ValueError("the corpus needs keyed clips in both its train and valid splits")

    # key: Krumhansl & Kessler's profiles blended with the learned ones, both standardised
    learned = learn_profiles(keyed(fit_rows))
    standard = lambda p: (p - p.mean()) / p.std()
    key_options = []
    for weight in PROFILE_WEIGHTS:
        profiles = tuple((1 - weight) * standard(kk) + weight * standard(lp)
                         for kk, lp in zip((A.MAJOR_PROFILE, A.MINOR_PROFILE), learned))
        key_options.append({"weight": weight, "profiles": profiles, "valid": key_accuracy(keyed(valid_rows), profiles),
                            "synthetic": key_accuracy(synthetic, profiles)})
    key = _choose(key_options[1:], key_options[0])

    # tempo octave: a training example is a clip with a pulse where one candidate is within 4 % of the truth
    examples = []
    for row in fit_rows:
        if row["bpm"] > 0:
            right = [within(row["bpm"] * f, row["bpm_true"]) and ok for f, ok in zip(A.OCTAVE_FACTORS, row["in_range"])]
            if any(right):
                examples.append((row["octave"], right.index(True)))
    features = np.stack([e[0] for e in examples])
    chosen = np.array([e[1] for e in examples])
    fixed_tempo = {"decision": None, "valid": tempo_accuracy(valid_rows, None), "synthetic": tempo_accuracy(synthetic, None)}
    tempo_options = []
    for columns in FEATURE_SETS:
        for penalty in PENALTIES[::-1]:       # strongest penalty first: it wins ties
            decision = (list(columns), fit_conditional_logit(features[:, :, columns], chosen, penalty))
            tempo_options.append({"decision": decision, "penalty": penalty, "valid": tempo_accuracy(valid_rows, decision),
                                  "synthetic": tempo_accuracy(synthetic, decision)})
    tempo = _choose(tempo_options, fixed_tempo)

    round_list = lambda values: [float(f"{v:.6g}") for v in values]
    figures = lambda option: {"valid": round(option["valid"], 4), "synthetic": round(option["synthetic"], 4)}
    model = {
        "key_profiles": {
            "use": key is not key_options[0] and key["valid"] > key_options[0]["valid"],
            "learned_weight": key["weight"],
            "major": round_list(key["profiles"][0]), "minor": round_list(key["profiles"][1]),
            "key_accuracy": {"krumhansl_kessler": figures(key_options[0]),
                             **{f"learned weight {o['weight']:g}": figures(o) for o in key_options[1:]}},
            "valid_clips": len(keyed(valid_rows)), "train_clips": len(keyed(fit_rows)),
        },
        "tempo_octave": {"use": False, "factors": list(A.OCTAVE_FACTORS), "features": list(A.OCTAVE_FEATURES),
                         "tempo_accuracy": {"fixed_rule": figures(fixed_tempo),
                                            **{f"{[A.OCTAVE_FEATURES[c] for c in o['decision'][0]]} penalty {o['penalty']:g}":
                                               figures(o) for o in tempo_options}},
                         "valid_clips": len(valid_rows), "train_examples": len(examples)},
        "synthetic_clips": len(synthetic),
    }
    if tempo is not fixed_tempo and tempo["valid"] > fixed_tempo["valid"]:
        columns, (w, mean, scale) = tempo["decision"]
        model["tempo_octave"].update({"use": True, "columns": columns, "weights": round_list(w), "mean": round_list(mean),
                                      "scale": round_list(scale), "penalty": tempo["penalty"],
                                      "chosen": figures(tempo)})
    return model


def write_model(corpus: Path, out: Path, synthetic: list[dict], progress: bool = True) -> dict:
    """Learn both decisions from `corpus` (checked on `synthetic`), write them to `out`, return them."""
    manifest = corpus_manifest(corpus)
    model = train(read_corpus(corpus, progress=progress), synthetic)
    model = {
        "about": "learned by mre corpus attributes (mre.training.attribute_model); read by mre.embedder.audio.attributes",
        "corpus": {"seed": manifest.get("seed"), "clips": len(manifest.get("clips", [])), "seconds": manifest.get("seconds"),
                   "soundfonts": [{"name": f["name"], "sha256": f["sha256"]} for f in manifest.get("soundfonts", [])]},
        **model,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
    return model


def summary(model: dict) -> list[str]:
    """What was measured and chosen, as printed lines."""
    key, tempo = model["key_profiles"], model["tempo_octave"]
    lines = [f"key right, validation split / check set ({key['valid_clips']} / {model['synthetic_clips']} clips):"]
    lines += [f"  {name:48} {f['valid']:.3f} / {f['synthetic']:.3f}" for name, f in key["key_accuracy"].items()]
    lines.append(f"  -> {'learned weight ' + format(key['learned_weight'], 'g') if key['use'] else 'Krumhansl-Kessler'}")
    lines.append(f"tempo within 4 %, validation split / check set ({tempo['valid_clips']} / {model['synthetic_clips']} clips):")
    lines += [f"  {name:88} {f['valid']:.3f} / {f['synthetic']:.3f}" for name, f in tempo["tempo_accuracy"].items()]
    chosen = f"learned octave, columns {tempo['columns']} penalty {tempo['penalty']:g}" if tempo["use"] else "fixed rule"
    lines.append(f"  -> {chosen}")
    return lines
