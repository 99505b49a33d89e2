"""How the corpus model reads a phrase that holds a label word and other words, chosen on the
training corpus's validation clips.

    python -m mre.training.choose_phrase_reading --work models --corpus corpus/train

A query phrase that is neither a label nor a tag the model learnt, but holds a label word
("tender piano", "distorted guitar"), can be read three ways: ``split`` around its labels (the
labels' one-hots and the other words' trained reading, averaged), ``whole`` through the seen tags
nearest the whole phrase (as a word the model never learnt), or ``both`` (the mean of the two).
A compound ("synth brass": a sound, not synth and brass) asks for the whole; a conjunction
("calm piano": calm and piano) for the split.

Reads what `make model` leaves in WORK: the validation model (``validation.npz`` and
``validation.mre``: the head trained with a seeded 15 % of the seen tags kept out as
validation-unseen words) and the cached decoded inputs. On its validation clips (track
vectors as indexing makes them, no musical attributes), tag-retrieval ROC-AUC, macro:

- compounds: the validation-unseen tags that hold a label word and other words;
- conjunctions: "U L" for each validation-unseen tag U that holds no label word and each label
  word L that is a corpus tag, positives the clips tagged with both (at least MIN_PAIR_CLIPS);
- the same with U a tag the validation model learnt ("calm piano").

With ``--keep-out TAG...`` it trains its own validation model (make model's recipe and seed, those
tags kept out instead) in a scratch folder, for phrases the validation model cannot judge: the
seen tags made only of label words ("acoustic guitar", "electronic drums", "classical guitar")
as compounds, and "L1 L2" pairs of label words as conjunctions.

The held-out words, the held-out SoundFont and the demo library are not used.
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

MIN_PAIR_CLIPS = 10  # clips with both tags (and as many without) for a pair's AUC
READINGS = ("split", "whole", "both")


def train_validation_model(work: Path, corpus: Path, kept_out: list[str], scratch: Path):
    """(validation.npz, validation.mre) of a head trained as make model's, with `kept_out` unseen."""
    from mre.embedder.models.paper import ModelConfig
    from mre.training.loop import TrainSettings, train
    from mre.training.model_build import export_weights, seen_and_unseen, work_inputs

    words, prepared = work_inputs(corpus, work)
    config = ModelConfig(audio_branch="musicnn", backbone="msd+mtt", word_dim=words.dim)
    seen, unseen = seen_and_unseen(prepared, words)
    missing = sorted(set(kept_out) - set(seen))
    if missing:
        raise SystemExit(f"error: --keep-out {', '.join(missing)}: not a seen tag of this corpus")
    train_seen = [t for t in seen if t not in set(kept_out)]
    result = train(prepared, words, train_seen, unseen + list(kept_out), config=config, settings=TrainSettings(seed=0),
                   out=scratch / "validation.mre", fingerprint="phrase-validation", show_progress=False,
                   log=lambda line: None)
    export_weights(result.model.network, prepared, words, train_seen, unseen + list(kept_out),
                   scratch / "validation.npz", {"validation_unseen": list(kept_out)})
    return scratch


def readings(model, text: str) -> dict[str, np.ndarray]:
    """The three readings of a phrase by a CorpusZeroShotModel, computed apart from the model's
    own choice: split from its segments, whole as a phrase the model never learnt."""
    from mre.embedder.models.base import QueryVector

    query = QueryVector(text, np.zeros(0))
    parts = []
    for kind, seq in model._segments(list(model.words.tokens(text))):
        part = model._label_vector(seq) if kind == "label" else model._word_part(" ".join(seq), query)
        if part is not None:
            parts.append(part)
    split = np.mean(parts, axis=0)
    whole = model._word_part(text, query, note=False)
    mixed = whole.copy()
    mixed[-1] = split[-1]  # as the model: the phrase keeps its parts' offset (no ranking changes with it)
    return {"split": split, "whole": whole, "both": (split + mixed) / 2}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("models"), help="make model's work folder")
    parser.add_argument("--corpus", type=Path, default=Path("corpus/train"))
    parser.add_argument("--keep-out", nargs="+", default=[], metavar="TAG",
                        help="train a validation model with these seen tags kept out (rather than read make "
                             "model's), and score the label-only phrases among them and pairs of label words")
    args = parser.parse_args(argv)
    for name in ("validation.npz", "validation.mre", "corpus.mre.inputs.json"):
        if not (args.work / name).is_file():
            raise SystemExit(f"error: {args.work / name} is missing: run `make model` first")

    if not args.keep_out:
        study(args, args.work)
        return
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="phrase-reading-"))
    try:
        study(args, train_validation_model(args.work, args.corpus, args.keep_out, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def study(args, model_folder: Path) -> None:
    """Print the table of the three readings on the validation model in `model_folder`."""
    from mre.embedder.models.corpus_model import CorpusZeroShotModel
    from mre.embedder.models.trained import load_trained_model
    from mre.training.loop import _label_matrix
    from mre.training.metrics import tag_retrieval_auc
    from mre.training.model_build import validation_vectors, work_inputs

    words, prepared = work_inputs(args.corpus, args.work)
    model = CorpusZeroShotModel(path=model_folder / "validation.npz", word_space=words)
    network = load_trained_model(model_folder / "validation.mre", word_space=words).network
    valid, vectors = validation_vectors(network, prepared, model.scale)
    vectors = vectors.astype(np.float64)

    with np.load(model_folder / "validation.npz") as arrays:
        provenance = str(arrays["provenance"])
    validation_unseen = json.loads(provenance).get("validation_unseen", [])
    tags = sorted({t for track in prepared.tracks for t in track.tags})
    truth = _label_matrix(prepared, tags)[valid]
    column = {t: i for i, t in enumerate(tags)}

    def has_label(tag: str) -> bool:
        return any(kind == "label" for kind, _ in model._segments(list(model.words.tokens(tag))))

    def holds_both(tag: str) -> bool:
        kinds = {kind for kind, _ in model._segments(list(model.words.tokens(tag)))}
        return kinds == {"label", "words"}

    def labels_only(tag: str) -> bool:
        segments = list(model._segments(list(model.words.tokens(tag))))
        return len(segments) >= 2 and all(kind == "label" for kind, _ in segments)

    compound_kind = labels_only if args.keep_out else holds_both
    compounds = [t for t in validation_unseen if compound_kind(t) and not model.is_label_query(t)]
    labels = [t for t in tags if model.is_label_query(t)]

    def pairs_of(words_list: list[str]) -> list[tuple[str, str, np.ndarray]]:
        out = []
        for word, label in itertools.product(words_list, labels):
            both = truth[:, column[word]] & truth[:, column[label]]
            if MIN_PAIR_CLIPS <= both.sum() <= len(valid) - MIN_PAIR_CLIPS:
                out.append((word, label, both))
        return out

    def macro(texts: list[str], positives: np.ndarray, reading: str) -> float:
        matrix = np.stack([readings(model, text)[reading] for text in texts]).astype(np.float64)
        auc = tag_retrieval_auc(positives, vectors @ matrix.T, texts).roc_auc
        return float(np.nanmean(auc))

    rows = []
    if compounds:
        rows.append((f"compounds ({len(compounds)}: {', '.join(compounds)})", compounds,
                     truth[:, [column[t] for t in compounds]]))
    if args.keep_out:
        conjunctions = [("two labels", [t for t in labels if t in column])]
    else:
        conjunctions = [("a word the model never learnt + a label",
                         [t for t in validation_unseen if t in column and not has_label(t)]),
                        ("a word the model learnt + a label",
                         [t for t in model.seen_words if t in column and not has_label(t) and not model.is_label_query(t)])]
    for kind, words_list in conjunctions:
        pairs = pairs_of(words_list)
        if args.keep_out:  # each pair of labels once, not with itself
            pairs = [(a, b, both) for a, b, both in pairs if a < b]
        if pairs:
            rows.append((f"conjunctions, {kind} ({len(pairs)} pairs)",
                         [f"{word} {label}" for word, label, _ in pairs], np.stack([p[2] for p in pairs], axis=1)))
    print(f"phrases that hold a label word, {len(valid)} validation clips, tag-retrieval ROC-AUC (macro):")
    print(f"  {'':66s} " + " ".join(f"{r:>6s}" for r in READINGS))
    for name, texts, positives in rows:
        print(f"  {name[:66]:66s} " + " ".join(f"{macro(texts, positives, r):6.3f}" for r in READINGS), flush=True)


if __name__ == "__main__":
    main()
