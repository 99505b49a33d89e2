"""Which word vectors the corpus model's word branch reads, chosen on the training corpus alone.

    python -m mre.training.choose_word_branch --model models/corpus.mre --corpus corpus/train \\
        --branches glove minilm minilm-pca50 minilm-wd0.001 --seeds 0 1 --validation-unseen random brass

Reads the decoded inputs `make model` cached and trains the corpus model's head (as
`make model` does: musicnn branch on both taggers' features, hinge loss, 40 epochs, early
stopping on the validation loss) once per word branch and training seed, on one split of
clips and tags (split seed 0, the held-out tags of training/data/held_out_tags.txt unseen),
with seen tags kept out as validation-unseen words: a seeded 15 % of them (``random``, as
training/choose_backbone.py), or every seen tag of one instrument family (``brass``,
``woodwinds``, ``mallets``: the way the held-out words keep a whole family out). Printed per
run, tag-retrieval ROC-AUC of the trained space alone (macro over tags):

- on the validation clips: the seen tags, and the validation-unseen tags (what chooses);
- on the test clips: the held-out tags (reported, never chosen on).

Word branches: ``glove`` (the shipped model's GloVe 6B 50-d phrase vectors); ``minilm``
(all-MiniLM-L6-v2's vector of the whole tag text, 384-d: "bossa nova" is one sentence, not a
mean of two words); ``minilm-pcaK`` (those vectors projected on the K first principal axes of
the MiniLM vectors of the shipped tag vocabulary and the taggers' labels: a word list fixed
before any corpus, no labels or audio); ``minilm-wdX`` and ``glove-wdX`` (weight decay X on
the word projection's weight: the directions no training tag spans keep only their random
start otherwise); ``glove+minilm`` (both together: the GloVe phrase vector and the MiniLM vector,
each scaled to unit length, concatenated in that order, 50 + 384 inputs), with ``-pcaK``
(the MiniLM part projected as ``minilm-pcaK`` before its scaling) and ``-wW`` (the MiniLM
part multiplied by W after its scaling: ``glove+minilm-pca50-w0.5``).

How a validation-unseen word is read on the same trained heads (``--unseen-reading``, see
`unseen_matrix`; ``--grid`` adds ConSE's neighbour count, temperature and neighbour similarity
in a grid), the heads of the seeds scored together (``--ensemble``), and single seen tags'
figures (``--show-words``) are the other questions this script answers (MODEL_CARD.md).
"""
from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from mre.training.corpus.held_out import FAMILY_WORDS

VALIDATION_UNSEEN_FRACTION = 0.15  # as training/choose_backbone.py
SPLIT_SEED = 0  # the clips' and tags' split, the same for every run (make model's seed)
_BRANCH_RE = re.compile(r"^(glove|minilm)(?:-pca(\d+)|-wd([0-9.e-]+))?$")
_CONCAT_RE = re.compile(r"^glove\+minilm(?:-pca(\d+))?(?:-w([0-9.]+))?$")


class SentencePhrases:
    """Word-space stand-in for training: a phrase's vector is MiniLM's vector of the whole text,
    optionally projected on principal axes (`basis` [K, 384] around `centre`)."""

    def __init__(self, encoder, basis: np.ndarray | None = None, centre: np.ndarray | None = None,
                 vectors_id: str = "minilm-l6-v2-sentence"):
        self.encoder, self.basis, self.centre = encoder, basis, centre
        self.vectors_id = vectors_id
        self._cache: dict[str, np.ndarray] = {}

    @property
    def dim(self) -> int:
        return self.encoder.dim if self.basis is None else len(self.basis)

    def _encode(self, texts: Sequence[str]) -> None:
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if new:
            vectors = self.encoder.encode(new)
            if self.basis is not None:
                vectors = (vectors - self.centre) @ self.basis.T
            self._cache.update(zip(new, vectors.astype(np.float32)))

    def phrase_vector(self, text: str):
        from mre.embedder.words.space import PhraseVector

        self._encode([text])
        return PhraseVector(text, [text], [], {}, self._cache[text])

    def phrase_matrix(self, texts: Sequence[str]) -> np.ndarray:
        self._encode(texts)
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


class ConcatPhrases:
    """Word-space stand-in for training: a phrase's vector is its vectors in several word spaces,
    each scaled to unit length, multiplied by its part's weight and concatenated in order."""

    def __init__(self, parts: Sequence, weights: Sequence[float], vectors_id: str):
        if len(parts) != len(weights):
            raise ValueError("one weight per part")
        self.parts, self.weights, self.vectors_id = list(parts), [float(w) for w in weights], vectors_id

    @property
    def dim(self) -> int:
        return sum(part.dim for part in self.parts)

    @staticmethod
    def _unit(rows: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(rows, axis=-1, keepdims=True)
        return rows / np.where(norms > 0, norms, 1.0)

    def phrase_vector(self, text: str):
        from mre.embedder.words.space import PhraseVector

        phrases = [part.phrase_vector(text) for part in self.parts]
        first = phrases[0]  # the words used and ignored: the first part's reading (GloVe's)
        vector = None
        if all(phrase.vector is not None for phrase in phrases):
            vector = np.concatenate([w * self._unit(np.asarray(phrase.vector, np.float32))
                                     for w, phrase in zip(self.weights, phrases)]).astype(np.float32)
        return PhraseVector(text, first.tokens_used, first.ignored, first.suggestions, vector)

    def phrase_matrix(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.hstack([w * self._unit(np.asarray(part.phrase_matrix(texts), np.float32))
                          for w, part in zip(self.weights, self.parts)]).astype(np.float32)


def principal_axes(encoder, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The K first principal axes of MiniLM's vectors of the shipped tag vocabulary and the taggers' labels."""
    from mre.embedder.words.labels import MSD_LABELS, MTT_LABELS
    from mre.embedder.words.vocabulary import load_tag_vocabulary

    texts = sorted({t.lower() for t in [*MSD_LABELS, *MTT_LABELS, *(tag.tag for tag in load_tag_vocabulary())]})
    vectors = encoder.encode(texts).astype(np.float64)
    centre = vectors.mean(axis=0)
    _, _, axes = np.linalg.svd(vectors - centre, full_matrices=False)
    return axes[:k].astype(np.float32), centre.astype(np.float32)


def held_out_family() -> set[str]:
    from mre.training.corpus.held_out import held_out_tags

    return {held_out_tags()[0]}


def validation_words(seen: list[str], kept_out: str) -> list[str]:
    """Seen tags kept out of training as validation-unseen words: a seeded fraction (as
    make model's label reading), or the seen tags of one instrument family."""
    from mre.training.corpus.held_out import family_tags

    if kept_out == "random":
        rng = np.random.default_rng(SPLIT_SEED + 1)
        return sorted(str(t) for t in rng.choice(seen, size=round(VALIDATION_UNSEEN_FRACTION * len(seen)), replace=False))
    return [t for t in family_tags(kept_out) if t in set(seen)]


def word_branch(name: str, glove):
    """(word space, word-branch weight decay) for a branch name."""
    concat = _CONCAT_RE.match(name)
    if concat is not None:
        pca, weight = concat.groups()
        minilm, _ = word_branch(f"minilm-pca{pca}" if pca else "minilm", glove)
        return ConcatPhrases([glove, minilm], [1.0, float(weight or 1.0)], f"{glove.vectors_id}+{minilm.vectors_id}"
                             + (f"-w{weight}" if weight else "")), 0.0
    match = _BRANCH_RE.match(name)
    if match is None:
        raise SystemExit(f"unknown word branch {name!r}: glove, glove-wdX, minilm, minilm-pcaK, minilm-wdX "
                         "or glove+minilm[-pcaK][-wW]")
    kind, pca, decay = match.groups()
    if kind == "glove":
        if pca:
            raise SystemExit("glove takes no -pca")
        return glove, float(decay or 0.0)
    from mre.embedder.words.minilm import load_minilm

    encoder = load_minilm()
    if pca:
        basis, centre = principal_axes(encoder, int(pca))
        return SentencePhrases(encoder, basis, centre, f"minilm-l6-v2-sentence-pca{pca}"), 0.0
    return SentencePhrases(encoder), float(decay or 0.0)


_GRID_RE = re.compile(r"^conse-(glove|minilm|mix)-k(\d+)-t([0-9.]+)$")


_SIMILARITY_SPACES: dict[str, object] = {}


def _similarity_space(name: str, glove):
    """The word vectors whose cosine picks a word's nearest seen tags: GloVe phrase vectors,
    MiniLM's vectors of the whole text, or both (each unit, concatenated: the mean of the two cosines)."""
    if name == "glove":
        return glove
    if "minilm" not in _SIMILARITY_SPACES:
        _SIMILARITY_SPACES["minilm"], _ = word_branch("minilm", glove)
        _SIMILARITY_SPACES["mix"] = ConcatPhrases([glove, _SIMILARITY_SPACES["minilm"]], [1.0, 1.0], "glove+minilm")
    return _SIMILARITY_SPACES[name]


def unseen_matrix(model, words, tags: list[str], seen: list[str], reading: str,
                  train_vectors: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Unit rows of tags in a trained model's space: ``direct`` through its word projection;
    ``conse``: read through the seen tags' rows as the corpus model reads a word it never learnt
    (scoring.nearest_seen_mean, with the label reading's neighbours and temperature);
    ``both``: the unit mean of the two; ``conse-SIM-kK-tT``: conse with K neighbours at
    temperature T, picked by SIM's cosine (glove, minilm or mix: the mean of the two);
    ``conse-cal``: conse with each seen tag's row divided by the spread of its scores over
    `train_vectors` (the training clips), so that each neighbour's scores count in its own units."""
    from mre.embedder.models.scoring import nearest_seen_mean
    from mre.embedder.models.zeroshot import NEAREST_LABELS, SIMILARITY_TEMPERATURE

    direct, kept = model.tag_matrix(tags)
    if reading == "direct" or not kept:
        return direct, kept
    seen_rows, seen_kept = model.tag_matrix(seen)
    grid = _GRID_RE.match(reading)
    if grid is not None:
        space = _similarity_space(grid.group(1), words)
        conse = nearest_seen_mean(space.phrase_matrix(kept), space.phrase_matrix(seen_kept), seen_rows,
                                  int(grid.group(2)), float(grid.group(3)))
        return (conse / np.linalg.norm(conse, axis=1, keepdims=True)).astype(np.float32), kept
    if reading == "conse-cal":
        seen_rows = seen_rows / np.std(train_vectors @ seen_rows.T, axis=0)[:, None]
    conse = nearest_seen_mean(words.phrase_matrix(kept), words.phrase_matrix(seen_kept), seen_rows,
                              NEAREST_LABELS, SIMILARITY_TEMPERATURE)
    conse /= np.linalg.norm(conse, axis=1, keepdims=True)  # a tag's AUC does not see the length; "both" does
    if reading == "both":
        conse = conse + direct
        conse /= np.linalg.norm(conse, axis=1, keepdims=True)
    return conse.astype(np.float32), kept


def print_ensembles(members: dict[tuple, list], prepared, valid_rows: np.ndarray) -> None:
    """Validation ROC-AUC of heads of different seeds scored together: a clip's score for a word
    is the sum over the heads of the cosine of the clip's and the word's rows in that head's space."""
    from mre.training.loop import _label_matrix
    from mre.training.metrics import tag_retrieval_auc

    for (name, label, reading), runs in members.items():
        if len(runs) < 2:
            continue
        singles = []
        for _, kept, vectors, matrix in runs:
            singles.append(np.nanmean(tag_retrieval_auc(_label_matrix(prepared, kept)[valid_rows],
                                                        vectors @ matrix.T, kept).roc_auc))
        for size in sorted({2, len(runs)}):
            kept = runs[0][1]
            scores = sum(vectors @ matrix.T for _, _, vectors, matrix in runs[:size])
            auc = np.nanmean(tag_retrieval_auc(_label_matrix(prepared, kept)[valid_rows], scores, kept).roc_auc)
            seeds = " ".join(str(run[0]) for run in runs[:size])
            print(f"{name:16s} ensemble of seeds {seeds}: valid {label} {reading} {auc:.3f} "
                  f"(single heads' mean {np.mean(singles[:size]):.3f})", flush=True)


def main(argv: list[str] | None = None) -> None:
    from mre.training.metrics import tag_retrieval_auc
    from mre.training.run import _table_tracks
    from mre.embedder.models.paper import ModelConfig
    from mre.training.loop import TrainSettings, _label_matrix, track_vectors, train
    from mre.training.inputs import add_teacher_tags, assign_splits, prepare_inputs, split_tags, tag_vocabulary
    from mre.embedder.words.space import WordSpace, WordVectorError
    from mre.training.corpus.held_out import HELD_OUT_FILE

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/corpus.mre"))
    parser.add_argument("--corpus", type=Path, default=Path("corpus/train"))
    parser.add_argument("--branches", nargs="+", default=["glove", "minilm"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (the split stays seed 0)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--negatives", type=int, default=1,
                        help="sampled negative tags per positive in the hinge loss (make model: 1, as the paper)")
    parser.add_argument("--validation-unseen", nargs="+", default=["random"],
                        choices=("random", *(f for f in FAMILY_WORDS if f not in held_out_family())),
                        help="seen tags kept out of training and scored on the validation clips: a seeded 15 %% "
                             "(random) or every seen tag of an instrument family (as the held-out rule keeps one)")
    parser.add_argument("--teacher-tags", type=float, default=None, metavar="THRESHOLD",
                        help="also train on the musicnn taggers' labels whose probability on a clip reaches "
                             "THRESHOLD (labels that are corpus tags, held-out or validation-unseen words left out)")
    parser.add_argument("--teacher-drop", nargs="*", default=[], metavar="LABEL",
                        help="with --teacher-tags: labels never given (e.g. the voice labels, on a corpus that "
                             "tags voices itself)")
    parser.add_argument("--unseen-reading", nargs="+", default=["direct"],
                        help="how an unseen word's trained part is read: its own vector through the word "
                             "projection (direct), the learnt vectors of its nearest seen tags (conse), both, "
                             "or conse-SIM-kK-tT (K neighbours by SIM = glove, minilm or mix, temperature T)")
    parser.add_argument("--grid", action="store_true",
                        help="add every conse-SIM-kK-tT reading of K in 3 5 8 12 20, T in 0.02 0.05 0.1 0.2, "
                             "SIM in glove minilm mix, on the validation-unseen words only (held-out words "
                             "are printed for the other readings)")
    parser.add_argument("--show-words", nargs="*", default=[], metavar="TAG",
                        help="seen tags whose validation ROC-AUC is printed one by one (and the seen "
                             "figure without them)")
    parser.add_argument("--ensemble", action="store_true",
                        help="also score the heads of the training seeds together (the sum of each head's "
                             "cosines): the first two seeds, and all of them")
    args = parser.parse_args(argv)
    for reading in args.unseen_reading:
        if reading not in ("direct", "conse", "both", "conse-cal") and not _GRID_RE.match(reading):
            parser.error(f"--unseen-reading {reading!r}: direct, conse, both or conse-SIM-kK-tT")
    grid = [f"conse-{sim}-k{k}-t{t}" for sim in ("glove", "minilm", "mix") for k in (3, 5, 8, 12, 20)
            for t in ("0.02", "0.05", "0.1", "0.2")] if args.grid else []
    import torch

    torch.set_num_threads(1)  # as make model: a head this small gains nothing from a thread team
    glove = WordSpace.load()
    config = ModelConfig(audio_branch="musicnn", backbone="msd+mtt")
    tracks = _table_tracks(str(args.corpus / "tracks.csv"), glove, [])
    prepared = prepare_inputs(tracks, config, cache=args.model.with_name(args.model.name + ".inputs"))
    prepared.tracks = assign_splits(prepared.tracks, SPLIT_SEED)
    vocabulary, _ = tag_vocabulary(prepared.tracks, glove)
    seen, held_out, _ = split_tags(vocabulary, SPLIT_SEED, unseen_file=HELD_OUT_FILE)
    splits = np.array([t.split for t in prepared.tracks])
    rows = {split: np.flatnonzero(splits == split) for split in ("train", "valid", "test")}
    try:
        branches = {name: word_branch(name, glove) for name in args.branches}
    except WordVectorError as error:  # MiniLM's package missing or unreadable: one line
        raise SystemExit(f"error: {error}") from None
    scratch = Path(tempfile.mkdtemp(prefix="choose-word-"))  # the runs' model files, removed at the end
    corpus_tags = [list(t.tags) for t in prepared.tracks]
    for kept_out in args.validation_unseen:
        validation_unseen = validation_words(seen, kept_out)
        train_seen = corpus_seen = [t for t in seen if t not in set(validation_unseen)]
        if args.teacher_tags is not None:
            taught = add_teacher_tags(prepared, glove, [*vocabulary, *validation_unseen, *held_out, *args.teacher_drop],
                                      args.teacher_tags, base_tags=corpus_tags)
            print(f"teacher tags at {args.teacher_tags}: {len(taught)} labels train beside the corpus tags: "
                  + ", ".join(taught), flush=True)
            train_seen = train_seen + taught
        print(f"validation-unseen words: {kept_out} ({len(validation_unseen)}: {', '.join(validation_unseen)}); "
              f"{len(train_seen)} training tags, {len(held_out)} held out; "
              f"{len(rows['valid'])} valid and {len(rows['test'])} test clips", flush=True)
        members: dict[tuple, list] = {}  # the valid clips' vectors and the words' rows of each seed's head
        for name, seed in [(name, seed) for name in args.branches for seed in args.seeds]:
            words, decay = branches[name]
            started = time.monotonic()
            result = train(prepared, words, train_seen, validation_unseen + held_out,
                           config=ModelConfig(audio_branch="musicnn", backbone="msd+mtt", word_dim=words.dim),
                           settings=TrainSettings(seed=seed, epochs=args.epochs, word_weight_decay=decay,
                                                  negatives=args.negatives),
                           out=scratch / f"{name}-{seed}.mre", fingerprint=name,
                           show_progress=False, log=lambda line: None)
            figures = []
            train_vectors = (track_vectors(result.model.network, prepared.inputs, prepared.owner, rows["train"], "cpu")
                             if "conse-cal" in args.unseen_reading else None)
            for split, label, tags in (("valid", "seen", corpus_seen), ("valid", "validation-unseen", validation_unseen),
                                       ("test", "held-out", held_out)):
                vectors = track_vectors(result.model.network, prepared.inputs, prepared.owner, rows[split], "cpu")
                readings = args.unseen_reading + (grid if label == "validation-unseen" else [])
                for reading in (["direct"] if label == "seen" else readings):
                    matrix, kept = unseen_matrix(result.model, words, tags, train_seen, reading, train_vectors)
                    auc = tag_retrieval_auc(_label_matrix(prepared, kept)[rows[split]], vectors @ matrix.T, kept).roc_auc
                    if split == "valid" and reading in ("direct", "conse"):
                        members.setdefault((name, label, reading), []).append((seed, kept, vectors, matrix))
                    name_of = "" if len(readings) == 1 or label == "seen" else f" {reading}"
                    figures.append(f"{split} {label}{name_of} {np.nanmean(auc):.3f}")
                    if label == "seen" and args.show_words:
                        shown = {t: a for t, a in zip(kept, auc) if t in set(args.show_words)}
                        rest = [a for t, a in zip(kept, auc) if t not in shown]
                        figures.append(f"seen without them {np.nanmean(rest):.3f}, "
                                       + ", ".join(f"{t} {a:.3f}" for t, a in shown.items()))
                    if label == "held-out":
                        figures.append("bossa nova " + ", ".join(f"{a:.3f}" for t, a in zip(kept, auc) if t == "bossa nova"))
            print(f"{name:16s} seed {seed}: best epoch {result.best_epoch:2d}, " + ", ".join(figures)
                  + f" ({time.monotonic() - started:.0f} s)", flush=True)
        if args.ensemble:
            print_ensembles(members, prepared, rows["valid"])
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
