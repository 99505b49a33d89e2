"""How much a negated term weighs in a query ("piano no drums"), chosen on the training corpus's validation clips.

    python -m mre.training.choose_negation_weight --work models --corpus corpus/train

A query's vector is the weighted mean of its terms, a negated term subtracting; its weight
beside a positive term's 1 is the models' `negated_weight`. This study reads what `make model`
leaves in WORK (the validation model: the head with a seeded 15 % of the seen tags kept out, and
the cached decoded inputs) and scores queries "X no Y" on its validation clips (vectors as
indexing makes them, no musical attributes): X and Y are tags the validation model learnt or
tagger labels that are corpus tags, sharing no word; positives are the clips tagged X and not Y,
the pair kept when at least MIN_PAIR_CLIPS clips have X without Y and as many have both. Each
weight of WEIGHTS is scored for mre-zs-corpus (the validation model), for mre-zs-musicnn (the
label log-odds of the same clips) and for the validation head read as `mre train`'s models are
(its own query vectors on its unit embeddings): tag-retrieval ROC-AUC and PR-AUC, macro over the pairs; also each
pair's X alone, for what the negation adds.

The held-out words, the held-out SoundFont and the demo library are not used.
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

MIN_PAIR_CLIPS = 10
WEIGHTS = (0.25, 0.5, 0.75, 1.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("models"), help="make model's work folder")
    parser.add_argument("--corpus", type=Path, default=Path("corpus/train"))
    args = parser.parse_args(argv)
    for name in ("validation.npz", "validation.mre", "corpus.mre.inputs.json"):
        if not (args.work / name).is_file():
            raise SystemExit(f"error: {args.work / name} is missing: run `make model` first")
    from mre.embedder.models.corpus_model import CorpusZeroShotModel
    from mre.embedder.models.trained import load_trained_model
    from mre.embedder.models.zeroshot import ZeroShotTaggerModel
    from mre.training.loop import _label_matrix
    from mre.training.metrics import tag_retrieval_auc
    from mre.training.model_build import validation_vectors, work_inputs

    words, prepared = work_inputs(args.corpus, args.work)
    corpus_model = CorpusZeroShotModel(path=args.work / "validation.npz", word_space=words)
    trained = load_trained_model(args.work / "validation.mre", word_space=words)  # as `mre train` writes them
    valid, vectors = validation_vectors(trained.network, prepared, corpus_model.scale)
    vectors = vectors.astype(np.float64)
    trained_columns = slice(corpus_model.label_dim, corpus_model.output_dim)  # scale · its unit embedding
    musicnn = ZeroShotTaggerModel()  # its vectors: the label log-odds, the corpus model's first columns
    assert musicnn.dim == corpus_model.label_dim

    tags = sorted({t for track in prepared.tracks for t in track.tags})
    truth = _label_matrix(prepared, tags)[valid]
    column = {t: i for i, t in enumerate(tags)}
    usable = [t for t in tags if t in set(corpus_model.seen_words) or corpus_model.is_label_query(t)]
    pairs = []
    for x, y in itertools.permutations(usable, 2):
        if set(x.split()) & set(y.split()):
            continue
        with_x = truth[:, column[x]]
        without_y = with_x & ~truth[:, column[y]]
        if without_y.sum() >= MIN_PAIR_CLIPS and (with_x & truth[:, column[y]]).sum() >= MIN_PAIR_CLIPS:
            pairs.append((x, y, without_y))
    if not pairs:
        raise SystemExit("error: no pair of tags has enough validation clips with and without the second")
    positives = np.stack([p[2] for p in pairs], axis=1)

    def macro(model, texts: list[str], columns: slice) -> str:
        """ROC-AUC and PR-AUC (average precision, which weighs the top of the ranking), macro."""
        matrix = np.stack([model.query_vector(text).vector for text in texts]).astype(np.float64)
        result = tag_retrieval_auc(positives, vectors[:, columns] @ matrix.T, texts)
        return f"{np.nanmean(result.roc_auc):.3f} / {np.nanmean(result.pr_auc):.3f}"

    queries = [f"{x} no {y}" for x, y, _ in pairs]
    print(f'"X no Y" on {len(valid)} validation clips: {len(pairs)} pairs of {len(usable)} tags; '
          "tag-retrieval ROC-AUC and PR-AUC, macro (positives: clips with X and without Y)")
    models = ((corpus_model, slice(None)), (musicnn, slice(0, musicnn.dim)), (trained, trained_columns))
    print(f"  {'negated term weight':22s} {'mre-zs-corpus':>15s} {'mre-zs-musicnn':>15s} {'mre train model':>15s}"
          "   (ROC-AUC / PR-AUC)")
    print(f"  {'X alone':22s} " + " ".join(f"{macro(model, [x for x, _, _ in pairs], columns):>15s}"
                                           for model, columns in models))
    for weight in WEIGHTS:
        for model, _ in models:
            model.negated_weight = weight
        print(f"  {weight:<22g} " + " ".join(f"{macro(model, queries, columns):>15s}" for model, columns in models),
              flush=True)


if __name__ == "__main__":
    main()
