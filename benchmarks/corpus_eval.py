"""The corpus model against the default, on music no training ever heard: a held-out SoundFont and real tracks.

    python -m mre.benchmarks.corpus_eval [--held-out corpus/heldout] [--clips 600] [--seed 20190] [--speed-rounds 2]
                                         [--control models/control.npz] [--json OUT]

1. **Held-out set.** Clips rendered (or reused) through MuseScore General, the SoundFont no
   training corpus may contain, with a seed the training corpus does not use
   (`mre corpus build --held-out-evaluation`). Tag-retrieval ROC-AUC, macro over the tags
   with positive and negative clips, in groups: words of the training vocabulary the taggers
   lack (the trained space answers them), held-out words (training never saw them: the
   strings family and three styles, training/data/held_out_tags.txt), tagger label words
   (both models must rank them as the tagger's probability does), and the paper's control:
   the same training with random word vectors, on the held-out words. The held-out words'
   figure comes with a 95 % interval over resamples of the clips (the words are not resampled).
2. **Demo library** (real music, evaluation only): the mood folders of `immich-memories-music`
   and its acoustic/electronic file names, scored as `mre bench quality` and `mre query`
   score (label evidence plus attribute weights on the tracks' standardised attributes).

Both models are measured from one forward pass of the taggers per clip: the corpus model's
patch outputs carry the default model's label probabilities unchanged, so the default's
track vector is that part's log-odds — the vector `mre index --model mre-zs-musicnn` makes.
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from mre.training.metrics import roc_auc_per_column, tag_retrieval_auc
from mre.benchmarks.quality_run import _with_attributes
from mre.embedder.audio.attributes import extract_attributes
from mre.embedder.models.corpus_model import CorpusZeroShotModel
from mre.embedder.runner import embed_files
from mre.embedder.models.zeroshot import ZeroShotTaggerModel
from mre.training.corpus.build import HELD_OUT_CLIPS, HELD_OUT_SEED

MIN_POSITIVES = 3            # a tag with fewer positive clips gives an AUC of a few pairs
DEMO_MOODS = ("calm", "energetic", "happy", "nostalgic", "tender")
DEMO_SOUNDS = ("acoustic", "electronic")


class _SharedPass:
    """The corpus model's patch outputs with a second head (the control) on the same features."""

    def __init__(self, model: CorpusZeroShotModel, control: CorpusZeroShotModel | None):
        self.model, self.control = model, control
        self.frontend, self.device = model.frontend, model.device
        self.output_dim = model.output_dim + (control.trained_dim if control else 0)

    def patch_outputs(self, mel_patches):
        import torch

        tagger_outputs = [tagger(mel_patches) for tagger in self.model.taggers]
        outputs = self.model.outputs_from(tagger_outputs)
        if self.control is None:
            return outputs
        return torch.cat([outputs, self.control.head_embedding(tagger_outputs)], dim=1)


def embed(paths: list[str], model, control, workers: int | None) -> tuple[list[int], np.ndarray, list[dict]]:
    """(rows that decoded, mean patch outputs, attributes) in one pass over the files."""
    rows, means, attributes = [], [], []
    for row, track in enumerate(embed_files(paths, _SharedPass(model, control), device="cpu", workers=workers,
                                            analyse=extract_attributes)):
        if track.error is None and track.patch_mean is not None:
            rows.append(row)
            means.append(track.patch_mean)
            attributes.append(track.extras.as_dict() if hasattr(track.extras, "as_dict") else {})
    return rows, np.stack(means), attributes


def query_scores(model, track_vectors: np.ndarray, tags: list[str], attributes: list[dict]) -> np.ndarray:
    """[tracks, tags]: each tag as a query, scored as `mre query` scores a store of these tracks."""
    matrix, kept = model.tag_matrix(tags)
    assert kept == tags, f"tags without word vectors: {sorted(set(tags) - set(kept))}"
    weights = [model.attribute_weights(tag) for tag in tags]
    return _with_attributes(track_vectors.astype(np.float64) @ matrix.T.astype(np.float64), weights, attributes)


def macro(labels: np.ndarray, scores: np.ndarray, tags: list[str], group: list[str]) -> tuple[float, dict]:
    columns = [tags.index(t) for t in group]
    result = tag_retrieval_auc(labels[:, columns], scores[:, columns], group)
    per_tag = {t: float(v) for t, v in zip(group, result.roc_auc) if np.isfinite(v)}
    return (float(np.mean(list(per_tag.values()))) if per_tag else float("nan")), per_tag


def held_out_figures(folder: Path, model: CorpusZeroShotModel, old: ZeroShotTaggerModel,
                     control: CorpusZeroShotModel | None, workers: int | None) -> dict:
    with open(folder / "tracks.csv", newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    paths = [str(folder / row["path"]) for row in table]
    started = time.monotonic()
    rows, means, attributes = embed(paths, model, control, workers)
    seconds = time.monotonic() - started
    clip_tags = [set(table[r]["tags"].split("|")) for r in rows]
    counts = {tag: sum(tag in tags for tags in clip_tags) for tag in set().union(*clip_tags)}
    tags = sorted(t for t, n in counts.items() if MIN_POSITIVES <= n <= len(rows) - MIN_POSITIVES)
    labels = np.array([[t in tags_of for t in tags] for tags_of in clip_tags])
    new_vectors = np.stack([model.track_vector(m[:model.output_dim]) for m in means])
    old_vectors = np.stack([old.track_vector(m[:model.label_dim]) for m in means])
    new_scores = query_scores(model, new_vectors, tags, attributes)
    old_scores = query_scores(old, old_vectors, tags, attributes)

    is_label = {t: model.is_label_query(t) for t in tags}
    held_out = set(model.held_out_words)
    groups = {
        "training words (not labels)": [t for t in tags if not is_label[t] and t in set(model.seen_words)],
        "held-out words (not labels)": [t for t in tags if not is_label[t] and t in held_out],
        "held-out words (all)": [t for t in tags if t in held_out],
        "tagger label words": [t for t in tags if is_label[t]],
    }
    figures = {"clips": len(rows), "embed_seconds": round(seconds, 1), "tags": len(tags), "groups": {}}
    for name, group in groups.items():
        old_macro, old_per = macro(labels, old_scores, tags, group)
        new_macro, new_per = macro(labels, new_scores, tags, group)
        figures["groups"][name] = {"n": len(group), "old": old_macro, "new": new_macro,
                                   "per_tag": {t: {"old": old_per.get(t), "new": new_per.get(t)} for t in group}}
    group = groups["held-out words (not labels)"]
    if group:
        columns = [tags.index(t) for t in group]
        figures["groups"]["held-out words (not labels)"]["interval"] = clip_interval(labels[:, columns],
                                                                                    new_scores[:, columns])
    # the taggers' own AUC on their labels: the label column's log-odds, a monotone map of the probability
    label_group = groups["tagger label words"]
    tagger_scores = np.stack([old_vectors[:, np.flatnonzero(old._one_hot(tuple(old.words.tokens(t))))].mean(axis=1)
                              for t in label_group], axis=1) if label_group else np.zeros((len(rows), 0))
    figures["groups"]["tagger label words"]["tagger"] = macro(labels[:, [tags.index(t) for t in label_group]],
                                                              tagger_scores, label_group, label_group)[0]
    group = groups["held-out words (not labels)"]
    if control is not None and group:
        # the paper's control: the trained part alone, random word vectors (attributes left out
        # for both); a held-out word is read as each model reads a word it never learnt
        control_part = means[:, model.output_dim:]
        control_part = control_part / np.linalg.norm(control_part, axis=1, keepdims=True)
        control_scores = control_part @ np.stack([control.seen_reading(control.words.phrase_vector(t).vector)
                                                  for t in group]).T
        trained_part = new_vectors[:, model.label_dim:model.output_dim]
        glove_scores = trained_part @ np.stack([model.seen_reading(model.words.phrase_vector(t).vector) for t in group]).T
        columns = [tags.index(t) for t in group]
        figures["control"] = {"n": len(group),
                              "glove": macro(labels[:, columns], glove_scores, group, group)[0],
                              "random": macro(labels[:, columns], control_scores, group, group)[0]}
    return figures


BOOTSTRAP_RESAMPLES = 2000


def _bootstrap_macros(truth: np.ndarray, score_sets: list[np.ndarray], resamples: int, seed: int) -> np.ndarray:
    """[draws, models]: macro ROC-AUC of each score set over tracks drawn with replacement, the
    same draw for every set. A draw where a tag lacks positives or negatives leaves that tag out
    of every set's macro; a draw where no tag is left is dropped."""
    rng = np.random.default_rng(seed)
    macros = []
    for _ in range(resamples):
        draw = rng.integers(0, len(truth), len(truth))
        aucs = [roc_auc_per_column(truth[draw], scores[draw]) for scores in score_sets]
        kept = np.logical_and.reduce([np.isfinite(auc) for auc in aucs])
        if kept.any():
            macros.append([float(auc[kept].mean()) for auc in aucs])
    return np.asarray(macros)


def paired_interval(truth: np.ndarray, old_scores: np.ndarray, new_scores: np.ndarray,
                    resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """95 % interval of (new − old) macro ROC-AUC over tracks drawn with replacement, the same
    draw for both models (paired): how far a difference on a few dozen tracks is from noise."""
    macros = _bootstrap_macros(truth, [old_scores, new_scores], resamples, seed)
    low, high = np.percentile(macros[:, 1] - macros[:, 0], [2.5, 97.5])
    return float(low), float(high)


def clip_interval(truth: np.ndarray, scores: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                  seed: int = 0) -> tuple[float, float]:
    """95 % interval of one model's macro ROC-AUC over clips drawn with replacement: how much
    of a figure is the choice of clips (the choice of words is not resampled)."""
    low, high = np.percentile(_bootstrap_macros(truth, [scores], resamples, seed)[:, 0], [2.5, 97.5])
    return float(low), float(high)


def demo_figures(model: CorpusZeroShotModel, old: ZeroShotTaggerModel, workers: int | None) -> dict:
    import immich_memories_music

    from mre.embedder.audio.decode import audio_files_under

    root = Path(immich_memories_music.__file__).parent / "tracks"
    paths = [str(p) for p in audio_files_under(root)]
    tags = list(DEMO_MOODS + DEMO_SOUNDS)
    truth = np.array([[Path(p).parent.name == t or f"_{t}_" in Path(p).name for t in tags] for p in paths])
    rows, means, attributes = embed(paths, model, None, workers)
    truth = truth[rows]
    figures = {"tracks": len(rows)}
    mood_scores = {}
    for name, make_vector, scorer in (("old", lambda m: old.track_vector(m[:model.label_dim]), old),
                                      ("new", model.track_vector, model)):
        scores = query_scores(scorer, np.stack([make_vector(m) for m in means]), tags, attributes)
        moods = macro(truth, scores, tags, list(DEMO_MOODS))
        sounds = macro(truth, scores, tags, list(DEMO_SOUNDS))
        figures[name] = {"moods": moods[0], "sounds": sounds[0], "per_tag": moods[1] | sounds[1]}
        mood_scores[name] = scores[:, :len(DEMO_MOODS)]
    figures["moods_interval"] = paired_interval(truth[:, :len(DEMO_MOODS)], mood_scores["old"], mood_scores["new"])
    return figures


def indexing_speed(model: CorpusZeroShotModel, old: ZeroShotTaggerModel, rounds: int, workers: int | None) -> dict:
    """Seconds of audio embedded per second, the demo library as `mre index` embeds it (decoding,
    attributes, mel, model), the two models alternating so that a busy shared CPU slows both alike."""
    import immich_memories_music

    from mre.embedder.audio.decode import audio_files_under

    paths = [str(p) for p in audio_files_under(Path(immich_memories_music.__file__).parent / "tracks")]
    totals = {"old": [0.0, 0.0], "new": [0.0, 0.0]}
    for _ in range(rounds):
        for name, which in (("old", old), ("new", model)):
            started = time.monotonic()
            audio = sum(t.analysed_seconds for t in embed_files(paths, which, device="cpu", workers=workers,
                                                                analyse=extract_attributes))
            totals[name][0] += audio
            totals[name][1] += time.monotonic() - started
    speeds = {name: audio / seconds for name, (audio, seconds) in totals.items()}
    return speeds | {"ratio": speeds["new"] / speeds["old"], "rounds": rounds}


def format_figures(held_out: dict, demo: dict | None) -> str:
    def f(value):
        return "   –  " if value is None or not np.isfinite(value) else f"{value:6.3f}"

    lines = [f"Held-out set: {held_out['clips']} clips rendered through MuseScore General (never trained on), "
             f"{held_out['tags']} tags with ≥ {MIN_POSITIVES} positives; tag-retrieval ROC-AUC, macro:",
             f"  {'words':32s} {'n':>3s}  {'mre-zs-musicnn':>14s}  {'mre-zs-corpus':>13s}"]
    for name, group in held_out["groups"].items():
        lines.append(f"  {name:32s} {group['n']:3d}  {f(group['old']):>14s}  {f(group['new']):>13s}"
                     + (f"   (the taggers' own: {f(group['tagger']).strip()})" if "tagger" in group else ""))
    if "interval" in held_out["groups"].get("held-out words (not labels)", {}):
        low, high = held_out["groups"]["held-out words (not labels)"]["interval"]
        lines.append(f"  held-out words (not labels), mre-zs-corpus: 95 % interval over {BOOTSTRAP_RESAMPLES:,} "
                     f"resamples of the clips {low:.3f} to {high:.3f}")
    if "control" in held_out:
        c = held_out["control"]
        lines.append(f"  paper's control, held-out words (trained space alone, no attributes): GloVe {f(c['glove']).strip()}, "
                     f"random word vectors {f(c['random']).strip()}")
    if demo is not None:
        lines.append(f"Demo library ({demo['tracks']} real tracks; scored as `mre query`, attributes standardised over them):")
        lines.append(f"  {'tags':32s}      {'mre-zs-musicnn':>14s}  {'mre-zs-corpus':>13s}")
        lines.append(f"  {'5 mood folders':32s}      {f(demo['old']['moods']):>14s}  {f(demo['new']['moods']):>13s}")
        lines.append(f"  {'acoustic / electronic':32s}      {f(demo['old']['sounds']):>14s}  {f(demo['new']['sounds']):>13s}")
        low, high = demo["moods_interval"]
        lines.append(f"  mood folders, new − old: {demo['new']['moods'] - demo['old']['moods']:+.3f} (95 % interval over "
                     f"{BOOTSTRAP_RESAMPLES:,} paired resamples of the tracks: {low:+.3f} to {high:+.3f})")
        for tag in DEMO_MOODS + DEMO_SOUNDS:
            lines.append(f"    {tag:30s}      {f(demo['old']['per_tag'].get(tag)):>14s}  {f(demo['new']['per_tag'].get(tag)):>13s}")
    return "\n".join(lines)


def format_goals(held_out: dict, demo: dict | None, speed: dict | None) -> str:
    """The figures against the goals set for a new default, and whether the corpus model
    matches or beats mre-zs-musicnn on every row (the rule for making it the default)."""
    groups = held_out["groups"]
    rows = []  # (what, old, new, goal met, new ≥ old)

    def row(what, old, new, met):
        rows.append((what, old, new, bool(met), old is None or new >= old - 1e-9))

    trained, unseen, labels = (groups["training words (not labels)"], groups["held-out words (not labels)"],
                               groups["tagger label words"])
    row("training words ≥ 0.90", trained["old"], trained["new"], trained["new"] >= 0.90)
    row("held-out words ≥ 0.80 and ≥ old + 0.10", unseen["old"], unseen["new"],
        unseen["new"] >= 0.80 and unseen["new"] >= unseen["old"] + 0.10)
    row("label words within 0.01 of the taggers' own", labels["old"], labels["new"],
        abs(labels["new"] - labels["tagger"]) <= 0.01)
    if demo is not None:
        row("demo moods ≥ 0.70", demo["old"]["moods"], demo["new"]["moods"], demo["new"]["moods"] >= 0.70)
        row("demo acoustic / electronic ≥ 0.95", demo["old"]["sounds"], demo["new"]["sounds"], demo["new"]["sounds"] >= 0.95)
    if speed is not None:
        row("indexing speed ≥ 0.8 × old (ratio)", None, speed["ratio"], speed["ratio"] >= 0.8)
    lines = ["Goals (mre-zs-corpus; old = mre-zs-musicnn):"]
    for what, old, new, met, not_worse in rows:
        before = "" if old is None else f", old {old:.3f}"
        lines.append(f"  {what:44s} {new:6.3f}{before}: goal {'met' if met else 'not met'}"
                     + ("" if not_worse else ", WORSE than the old default"))
    verdict = all(not_worse for *_, not_worse in rows)
    lines.append(f"  matches or beats the old default on every row: {'yes' if verdict else 'no'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--held-out", type=Path, default=Path("corpus/heldout"))
    parser.add_argument("--clips", type=int, default=HELD_OUT_CLIPS)
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    parser.add_argument("--weights", type=Path, default=None, help="corpus model weights (default: the shipped ones)")
    parser.add_argument("--control", type=Path, default=Path("models/control.npz"),
                        help="the control's weights from `make model` (skipped when missing)")
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--speed-rounds", type=int, default=0,
                        help="also time indexing the demo library with both models, alternating, this many rounds")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    model = CorpusZeroShotModel(path=args.weights)
    old = ZeroShotTaggerModel()
    control = None
    if args.control.is_file():
        from mre.training.model_build import random_word_space

        with np.load(args.control) as arrays:
            vocabulary = [str(t) for t in arrays["seen_tags"]] + [str(t) for t in arrays["unseen_tags"]]
        control = CorpusZeroShotModel(path=args.control, word_space=random_word_space(vocabulary, model.words.dim))
    from mre.benchmarks.corpus_attributes import ensure_held_out

    ensure_held_out(args.held_out, args.clips, args.seed, args.workers or 1)
    folder = args.held_out
    held_out = held_out_figures(folder, model, old, control, args.workers)
    demo = None if args.no_demo else demo_figures(model, old, args.workers)
    print(format_figures(held_out, demo))
    speed = indexing_speed(model, old, args.speed_rounds, args.workers) if args.speed_rounds else None
    if speed:
        print(f"Indexing speed (demo library, {speed['rounds']} alternating rounds): mre-zs-musicnn "
              f"{speed['old']:.1f}x realtime, mre-zs-corpus {speed['new']:.1f}x realtime: ratio {speed['ratio']:.2f}")
    print(format_goals(held_out, demo, speed))
    if args.json:
        args.json.write_text(json.dumps({"held_out": held_out, "demo": demo, "speed": speed, "model": model.model_id},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
