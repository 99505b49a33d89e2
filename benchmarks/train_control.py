"""The paper's control for `mre train`: real word vectors against random ones, on held-out tags.

Trains the two-branch model on generated sound scenes (`synth_scenes`: five sources, four
words each, one word per source held out), once with GloVe and once with random vectors for
the same words, for each audio branch (the paper's CNN from scratch, and the head on the
frozen musicnn tagger). Prints seen- and unseen-tag retrieval ROC-AUC on the test tracks; the
random-vector run is the baseline the GloVe figure is a ratio against.

    python -m mre.benchmarks.train_control [--tracks 120] [--epochs 20]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors

from mre.benchmarks.synth_scenes import SOURCE_WORDS, UNSEEN_WORDS, write_scene_library
from mre.training.run import DataOptions, run_training
from mre.embedder.models.paper import ModelConfig
from mre.training.loop import TrainSettings
from mre.embedder.words.space import WordSpace


def random_word_space(words: list[str], dim: int, seed: int = 1) -> WordSpace:
    vectors = KeyedVectors(dim)
    vectors.add_vectors(words, np.random.default_rng(seed).standard_normal((len(words), dim)).astype(np.float32))
    return WordSpace(vectors, f"random-{seed}")


def run(n_tracks: int = 120, epochs: int = 20, seed: int = 0) -> list[dict]:
    glove = WordSpace.load()
    vocabulary = sorted({word for words in SOURCE_WORDS.values() for word in words})
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        write_scene_library(folder, n_tracks=n_tracks, seconds=6.0, seed=seed)
        (folder / "unseen.txt").write_text("\n".join(UNSEEN_WORDS))
        data = DataOptions(tracks_table=str(folder / "tracks.csv"), unseen_tags_file=str(folder / "unseen.txt"),
                           valid_fraction=0.15, test_fraction=0.3)
        for branch in ("paper", "musicnn"):
            for name, words in (("glove", glove), ("random", random_word_space(vocabulary, glove.dim))):
                started = time.monotonic()
                report, _ = run_training(replace(data), ModelConfig(audio_branch=branch),
                                         TrainSettings(epochs=epochs, seed=seed), folder / f"{branch}-{name}.mre",
                                         words=words, show_progress=False, log=lambda line: None)
                rows.append({"branch": branch, "words": name, "seen": report.seen_tag_retrieval_auc,
                             "unseen": report.unseen_tag_retrieval_auc, "best_epoch": report.best_epoch,
                             "seconds": round(time.monotonic() - started, 1)})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = run(args.tracks, args.epochs, args.seed)
    print(f"{'audio branch':14}{'word vectors':14}{'seen AUC':>10}{'unseen AUC':>12}{'best epoch':>12}{'seconds':>9}")
    for row in rows:
        print(f"{row['branch']:14}{row['words']:14}{row['seen']:>10.3f}{row['unseen']:>12.3f}"
              f"{row['best_epoch']:>12}{row['seconds']:>9}")
    for branch in ("paper", "musicnn"):
        glove, random = (next(r for r in rows if r["branch"] == branch and r["words"] == w) for w in ("glove", "random"))
        print(f"{branch}: unseen-tag AUC with GloVe = {glove['unseen'] / random['unseen']:.2f}× random word vectors; "
              f"above chance: {glove['unseen'] - 0.5:+.3f} vs {random['unseen'] - 0.5:+.3f}")


if __name__ == "__main__":
    main()
