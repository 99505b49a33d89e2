"""Which taggers' features the corpus model's head reads, chosen on the training corpus alone.

    python -m mre.training.choose_backbone --model models/corpus.mre --corpus corpus/train

Reads the decoded inputs `make model` cached (both taggers' penultimate features, 400 per
patch: the MSD tagger's 200 first), trains the head on MSD's features alone and on both, with
a further 15 % of the seen tags (by seed) kept out as validation-unseen words, and prints the
validation clips' tag-retrieval ROC-AUC on seen and on those validation-unseen tags. The
held-out tags and the held-out SoundFont play no part.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

VALIDATION_UNSEEN_FRACTION = 0.15


def main(argv: list[str] | None = None) -> None:
    from mre.training.metrics import tag_retrieval_auc
    from mre.training.run import _table_tracks
    from mre.embedder.models.paper import BACKBONE_FEATURES, ModelConfig
    from mre.training.loop import TrainSettings, _label_matrix, track_vectors, train
    from mre.training.inputs import assign_splits, prepare_inputs, split_tags, tag_vocabulary
    from mre.embedder.words.space import WordSpace
    from mre.training.corpus.held_out import HELD_OUT_FILE

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/corpus.mre"))
    parser.add_argument("--corpus", type=Path, default=Path("corpus/train"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, nargs="+", default=[40],
                        help="epoch caps to compare (early stopping on the validation loss, patience 6, in each)")
    args = parser.parse_args(argv)
    import torch

    # a head this small gains nothing from a thread team, which stalls on a shared CPU (README, "Indexing")
    torch.set_num_threads(1)
    words = WordSpace.load()
    config = ModelConfig(audio_branch="musicnn", backbone="msd+mtt")
    tracks = _table_tracks(str(args.corpus / "tracks.csv"), words, [])
    prepared = prepare_inputs(tracks, config, cache=args.model.with_name(args.model.name + ".inputs"))
    prepared.tracks = assign_splits(prepared.tracks, args.seed)
    vocabulary, _ = tag_vocabulary(prepared.tracks, words)
    seen, _, _ = split_tags(vocabulary, args.seed, unseen_file=HELD_OUT_FILE)
    rng = np.random.default_rng(args.seed + 1)
    validation_unseen = sorted(str(t) for t in rng.choice(seen, size=round(VALIDATION_UNSEEN_FRACTION * len(seen)), replace=False))
    train_seen = [t for t in seen if t not in set(validation_unseen)]
    valid_rows = np.flatnonzero(np.array([t.split for t in prepared.tracks]) == "valid")
    for backbone, epochs in [(b, e) for b in ("msd", "msd+mtt") for e in args.epochs]:
        width = BACKBONE_FEATURES * (1 if backbone == "msd" else 2)
        inputs = np.asarray(prepared.inputs[:, :width])
        result = train(replace(prepared, inputs=inputs), words, train_seen, validation_unseen,
                       config=ModelConfig(audio_branch="musicnn", backbone=backbone, word_dim=words.dim),
                       settings=TrainSettings(seed=args.seed, epochs=epochs), out=Path(f"/tmp/choose-{backbone.replace('+', '-')}.mre"),
                       fingerprint=backbone, show_progress=False, log=lambda line: None)
        vectors = track_vectors(result.model.network, inputs, prepared.owner, valid_rows, "cpu")
        row = []
        for name, tags in (("seen", train_seen), ("validation-unseen", validation_unseen)):
            matrix, kept = result.model.tag_matrix(tags)
            labels = _label_matrix(prepared, kept)[valid_rows]
            auc = tag_retrieval_auc(labels, vectors @ matrix.T, kept).roc_auc
            row.append(f"{name} {np.nanmean(auc):.3f}")
        print(f"{backbone:8s} at most {epochs:3d} epochs, best {result.best_epoch:3d}: valid clips, ROC-AUC "
              + ", ".join(row), flush=True)


if __name__ == "__main__":
    main()
