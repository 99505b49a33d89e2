"""How much of the label reading a word that is not a label keeps, judged on a SoundFont the head never heard.

    python -m mre.training.choose_label_reading --work models --corpus corpus/train

`make model` chooses the label-reading weights (mre.training.model_build.choose_label_reading)
on validation clips rendered with the SoundFonts that trained the head. The model is used on
music no corpus SoundFont rendered, where the trained space is weaker and the taggers' labels,
learnt from recordings, are not. This study leaves each training SoundFont out in turn: make
model's validation head (the same validation-unseen words and settings) is trained on the
train-split clips of the other SoundFonts, and scored on every train- or valid-split clip
rendered with the one left out (the test split stays untouched). For each fold it prints the
label-reading table of make model's step (learnt words and validation-unseen words that are not
labels; no musical attributes) and, for the validation-unseen words, ``union``: one ConSE over
the labels and the seen tags together (a label neighbour weighs its log-odds, a seen tag its
learnt row). `--same-soundfont` also prints make model's own table (validation clips of every
SoundFont) for comparison. `--variants` compares ways of training the head on the same folds
instead (fewer clips, input dropout or noise on its standardised features; label reading 0),
over `--seeds`.

The held-out words, the held-out SoundFont and the demo library are not used.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from mre.training.model_build import LABEL_READING_GRID, MIN_VALID_POSITIVES

UNION = "union"


def soundfont_of_tracks(corpus: Path, tracks) -> list[str]:
    """The SoundFont each prepared track was rendered with, from the corpus table."""
    out = [row.get("soundfont", "") if row else "" for row, _ in _table_rows(corpus, tracks)]
    if not all(out):
        raise SystemExit(f"error: {corpus / 'tracks.csv'} does not name a SoundFont for every clip")
    return out


def clip_numbers(corpus: Path, tracks) -> np.ndarray:
    """Each prepared track's row in the corpus table: its clip index, as the builder writes clips in
    order (a corpus of N clips of a seed is the first N clips of any larger one of that seed)."""
    return np.array([number for _, number in _table_rows(corpus, tracks)])


def _table_rows(corpus: Path, tracks) -> list[tuple[dict | None, int]]:
    with open(corpus / "tracks.csv", newline="") as handle:
        by_path = {str((corpus / row["path"]).resolve()): (row, number)
                   for number, row in enumerate(csv.DictReader(handle))}
    return [by_path.get(str(Path(t.path).resolve()), (None, -1)) for t in tracks]


def union_reading(model, word_vector: np.ndarray, k: int, temperature: float) -> np.ndarray:
    """A word's label and trained parts read through its k nearest among the labels and the seen
    tags together (GloVe cosine, softmax at `temperature`): a label neighbour puts its weight on
    its label log-odds, a seen tag on its learnt row (both are on the label log-odds' scale)."""
    from mre.embedder.models.scoring import nearest_seen_mean

    label_vectors, _ = model._labels_in_word_space()
    keep = np.flatnonzero(np.linalg.norm(label_vectors, axis=1) > 0)
    model.seen_reading(word_vector)  # fills the seen tags' word vectors and rows
    seen_vectors, seen_rows = model._seen_space
    rows = np.zeros((len(keep) + len(seen_rows), model.label_dim + model.trained_dim), np.float32)
    rows[np.arange(len(keep)), keep] = 1.0
    rows[len(keep):, model.label_dim:] = seen_rows
    candidates = np.concatenate([label_vectors[keep], seen_vectors], axis=0)
    return nearest_seen_mean(word_vector, candidates, rows, k, temperature)[0]


class _UnionReading:
    """A CorpusZeroShotModel whose words it never learnt are read by `union_reading`."""

    def __init__(self, model):
        from mre.embedder.models.zeroshot import NEAREST_LABELS, SIMILARITY_TEMPERATURE

        self.model, self.k, self.temperature = model, NEAREST_LABELS, SIMILARITY_TEMPERATURE
        self.original = model._word_part

    def __enter__(self):
        model = self.model

        def word_part(phrase_text, query, note=True):
            out = self.original(phrase_text, query, note)
            if out is None or tuple(model.words.tokens(phrase_text)) in model._learnt():
                return out
            read = union_reading(model, model.words.phrase_vector(phrase_text).vector, self.k, self.temperature)
            out[:model.output_dim] = read
            return out

        model._word_part = word_part
        return model

    def __exit__(self, *exc):
        self.model._word_part = self.original


def fold_table(prepared, words, seen, unseen, validation_unseen, config, settings, scratch: Path,
               train_rows: np.ndarray | None, score_rows: np.ndarray, name: str) -> dict:
    """Train the validation head (on the clips of `train_rows` only, when given: their train split
    trains, their valid split stops it early), score `score_rows`."""
    from mre.embedder.models.corpus_model import CorpusZeroShotModel
    from mre.embedder.models.zeroshot import logit
    from mre.training.inputs import LabelledTrack
    from mre.training.loop import _label_matrix, track_vectors, train
    from mre.training.metrics import tag_retrieval_auc
    from mre.training.model_build import export_weights

    original = prepared.tracks
    if train_rows is not None:  # the other clips take no part in training or early stopping
        inside = set(int(i) for i in train_rows)
        prepared.tracks = [t if i in inside else LabelledTrack(t.path, t.tags, "outside")
                           for i, t in enumerate(original)]
    try:
        train_seen = [t for t in seen if t not in set(validation_unseen)]
        result = train(prepared, words, train_seen, unseen + validation_unseen, config=config, settings=settings,
                       out=scratch / f"{name}.mre", fingerprint=f"label-reading-{name}", show_progress=False,
                       log=lambda line: None)
        export_weights(result.model.network, prepared, words, train_seen, unseen + validation_unseen,
                       scratch / f"{name}.npz", {"validation_unseen": validation_unseen})
    finally:
        prepared.tracks = original
    model = CorpusZeroShotModel(path=scratch / f"{name}.npz", word_space=words)
    embeddings = track_vectors(result.model.network, prepared.inputs, prepared.owner, score_rows, "cpu")
    vectors = np.concatenate([logit(prepared.teacher_probabilities[score_rows]), model.scale * embeddings,
                              np.ones((len(score_rows), 1))], axis=1).astype(np.float64)

    def scored(tags: list[str]) -> list[str]:
        counts = _label_matrix(prepared, tags)[score_rows].sum(axis=0)
        return [t for t, n in zip(tags, counts) if MIN_VALID_POSITIVES <= n <= len(score_rows) - MIN_VALID_POSITIVES
                and not model.is_label_query(t)]

    groups = {"learnt": scored(train_seen), "other": scored(validation_unseen)}

    def macro(tags: list[str]) -> float:
        matrix, kept = model.tag_matrix(tags)
        if not kept:  # a fold with no scorable word (a tiny corpus)
            return float("nan")
        auc = tag_retrieval_auc(_label_matrix(prepared, kept)[score_rows], vectors @ matrix.T.astype(np.float64),
                                kept).roc_auc
        return float(np.mean(auc[np.isfinite(auc)])) if np.isfinite(auc).any() else float("nan")

    table = {}
    for weight in LABEL_READING_GRID:
        model.label_reading = (weight, weight)
        table[str(weight)] = {group: macro(tags) for group, tags in groups.items()}
    model.label_reading = (0.0, 0.0)
    with _UnionReading(model):
        table[UNION] = {"other": macro(groups["other"])}
    return {"clips": int(len(score_rows)), "words": groups, "best_epoch": result.best_epoch, "table": table}


def variant_settings(variant: str, seed: int):
    """TrainSettings of a training variant: base, clips-N (base settings; `variant_rows` keeps fewer
    clips), dropout-P or noise-S (ValueError otherwise)."""
    from mre.training.loop import TrainSettings

    kind, _, value = variant.partition("-")
    if variant == "base" or kind == "clips" and value.isdigit() and int(value) > 0:
        return TrainSettings(seed=seed)
    if kind not in ("dropout", "noise"):
        raise ValueError(variant)
    return TrainSettings(seed=seed, **{"input_dropout" if kind == "dropout" else "input_noise": float(value)})


def variant_rows(variant: str, train_rows: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """The fold's training clips a variant trains on: clips-N keeps those among the corpus's first N
    clips (a smaller corpus of the same seed), every other variant all of them."""
    kind, _, value = variant.partition("-")
    return train_rows[numbers[train_rows] < int(value)] if kind == "clips" else train_rows


def compare_variants(variants, seeds, folds, prepared, words, seen, unseen, validation_unseen, config,
                     scratch: Path, numbers: np.ndarray) -> dict:
    """Each variant × seed × SoundFont left out, scored with label reading 0; prints each run and
    each variant's mean over its runs."""
    results: dict[str, list] = {}
    for variant in variants:
        for seed in seeds:
            for index, (font, train_rows, score_rows) in enumerate(folds):
                result = fold_table(prepared, words, seen, unseen, validation_unseen, config,
                                    variant_settings(variant, seed), scratch,
                                    variant_rows(variant, train_rows, numbers), score_rows, f"fold{index}")
                row = result["table"]["0.0"]
                results.setdefault(variant, []).append({"seed": seed, "left_out": font, **row,
                                                        "best_epoch": result["best_epoch"]})
                print(f"{variant:12s} seed {seed} {font} left out: learnt {row['learnt']:.3f}, "
                      f"validation-unseen {row['other']:.3f} (best epoch {result['best_epoch']})", flush=True)
    print(f"mean over {len(seeds)} seeds x {len(folds)} SoundFonts left out (label reading 0):")
    for variant, runs in results.items():
        print(f"  {variant:12s} learnt {np.mean([r['learnt'] for r in runs]):.3f}, "
              f"validation-unseen {np.mean([r['other'] for r in runs]):.3f}")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("models"), help="make model's work folder (its cached inputs)")
    parser.add_argument("--corpus", type=Path, default=Path("corpus/train"))
    parser.add_argument("--seed", type=int, default=0, help="make model's seed")
    parser.add_argument("--same-soundfont", action="store_true",
                        help="also print make model's own table (its validation clips, every SoundFont)")
    parser.add_argument("--json", type=Path, default=None, help="write the tables here")
    parser.add_argument("--variants", nargs="+", default=None, metavar="VARIANT",
                        help="instead of the label-reading table: compare training variants on the folds (label "
                             "reading 0): base, clips-N (train on the corpus's first N clips only: a smaller "
                             "corpus), dropout-P (input dropout P on the head's standardised features), "
                             "noise-S (Gaussian noise of S standard deviations on them)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="with --variants: training seeds (default: --seed)")
    parser.add_argument("--backbone", choices=("msd+mtt", "msd+mtt-pooled"), default="msd+mtt",
                        help="the head's input: the taggers' penultimate features (make model's, from its cache "
                             "in --work) or their pooled back-end vectors (decoded into --work on first use; give "
                             "it a folder of its own)")
    args = parser.parse_args(argv)
    for variant in args.variants or []:
        try:
            variant_settings(variant, 0)
        except ValueError:
            parser.error(f"--variants {variant!r}: base, clips-N, dropout-P or noise-S")
    if args.backbone == "msd+mtt" and not (args.work / "corpus.mre.inputs.json").is_file():
        raise SystemExit(f"error: {args.work / 'corpus.mre.inputs.json'} is missing: run `make model` first")
    if args.backbone != "msd+mtt" and (args.work / "corpus.mre").exists():
        raise SystemExit(f"error: {args.work} holds make model's cached inputs; --backbone {args.backbone} "
                         f"needs a work folder of its own")
    import torch

    from mre.embedder.models.paper import ModelConfig
    from mre.training.model_build import seen_and_unseen, validation_unseen_words, work_inputs

    torch.set_num_threads(1)  # as make model
    words, prepared = work_inputs(args.corpus, args.work, args.seed, backbone=args.backbone, workers=1)
    config = ModelConfig(audio_branch="musicnn", backbone=args.backbone, word_dim=words.dim)
    seen, unseen = seen_and_unseen(prepared, words, args.seed)
    validation_unseen = validation_unseen_words(seen, args.seed)
    settings = variant_settings("base", args.seed)
    splits = np.array([t.split for t in prepared.tracks])
    fonts = np.array(soundfont_of_tracks(args.corpus, prepared.tracks))
    if len(set(fonts)) < 2:
        raise SystemExit(f"error: {args.corpus} was rendered with one SoundFont; leaving one out needs two or more")
    print(f"validation-unseen words ({len(validation_unseen)}): {', '.join(validation_unseen)}", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="label-reading-"))
    results = {}
    try:
        folds = [(font, np.flatnonzero(fonts != font),
                  np.flatnonzero((fonts == font) & (splits != "test"))) for font in sorted(set(fonts))]
        if args.variants:
            results = compare_variants(args.variants, args.seeds or [args.seed], folds, prepared, words, seen, unseen,
                                       validation_unseen, config, scratch, clip_numbers(args.corpus, prepared.tracks))
            folds = []
        if args.same_soundfont:
            folds.insert(0, ("every SoundFont (make model's)", None, np.flatnonzero(splits == "valid")))
        for index, (font, train_rows, score_rows) in enumerate(folds):
            result = fold_table(prepared, words, seen, unseen, validation_unseen, config, settings, scratch,
                                train_rows, score_rows, f"fold{index}")
            results[font] = result
            print(f"scored on {font}: {result['clips']} clips, {len(result['words']['learnt'])} learnt and "
                  f"{len(result['words']['other'])} validation-unseen words (best epoch {result['best_epoch']})")
            for reading, row in result["table"].items():
                name = f"weight {float(reading):4.2f}" if reading != UNION else "union ConSE"
                print(f"  {name}: " + ", ".join(f"{group} {value:.3f}" for group, value in row.items()), flush=True)
        across = [r for font, r in results.items() if not font.startswith("every")]
        if len(across) > 1 and not args.variants:
            print(f"mean over the {len(across)} SoundFonts left out:")
            for reading in across[0]["table"]:
                name = f"weight {float(reading):4.2f}" if reading != UNION else "union ConSE"
                print(f"  {name}: " + ", ".join(
                    f"{group} {np.mean([r['table'][reading][group] for r in across]):.3f}"
                    for group in across[0]["table"][reading]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
