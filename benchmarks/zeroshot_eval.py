"""How well the default zero-shot model retrieves generated clips by words, against ConSE.

    python -m mre.benchmarks.zeroshot_eval [--n-per-group 8] [--seed 0] [--json OUT] [--word-vectors minilm|FILE]

The clips come from `mre.benchmarks.synth` (known instruments, drums, tempo, loudness, mode,
and mood words derived from those). Three figures, measured in one run:

1. label words (queries spelled like a tagger label, e.g. "piano"): retrieval ROC-AUC of the
   query against the AUC of that label's own mean probability — they should be equal;
2. words no tagger has as a label (e.g. "percussion", "fiddle"): our query scoring against
   ConSE (Norouzi et al. 2014) — the track embedded as the probability-weighted mean of its
   top-T labels' word vectors, scored by cosine with the query — as the baseline;
3. negation: "no drums" must rank tracks without drums first;
4. mood words with and without the attribute dimensions (tempo, mode, loudness,
   onset density, brightness standardised over the set, each pole weight counted in standard
   deviations of the query's label evidence over the set), and the label words with them.

The word→truth pairs below were fixed before any figure was looked at; this set measures,
it is not for tuning.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mre.training.metrics import roc_auc
from mre.benchmarks.synth import evaluation_set, render, write_wav
from mre.embedder.runner import embed_files
from mre.embedder.audio.attributes import extract_attributes
from mre.embedder.models.zeroshot import ATTRIBUTE_COLUMNS, ZeroShotTaggerModel
from mre.embedder.models.scoring import query_scores_with_attributes, standardised_columns

# Query words that equal a tagger label, each with the ground-truth tag it should find.
LABEL_QUERIES = {"piano": "piano", "guitar": "guitar", "strings": "strings", "violin": "violin",
                 "flute": "flute", "drums": "drums", "synth": "synth", "vocal": "vocal",
                 "fast": "fast", "slow": "slow", "loud": "loud", "quiet": "quiet",
                 "sad": "sad", "happy": "happy"}
# Words that are no tagger label (neither MSD's nor MTT's 50), with their ground truth.
UNSEEN_QUERIES = {"percussion": "drums", "fiddle": "violin", "orchestra": "strings", "synthesizer": "synth",
                  "singer": "vocal", "keyboard": "piano", "organ": "organ", "bass": "bass",
                  "calm": "calm", "energetic": "energetic", "tender": "tender", "pianist": "piano"}
# Mood words with the ground-truth mood they should find; fixed before measuring.
MOOD_QUERIES = {"calm": "calm", "peaceful": "calm", "relaxing": "calm", "energetic": "energetic",
                "upbeat": "energetic", "lively": "energetic", "sad": "sad", "melancholy": "sad", "gloomy": "sad",
                "tender": "tender", "gentle": "tender", "happy": "happy", "cheerful": "happy", "joyful": "happy"}
CONSE_TOP_T = 10  # Norouzi et al. use the top T = 10 labels


@dataclass
class ZeroShotFigures:
    label_query_auc: dict[str, float]
    label_probability_auc: dict[str, float]
    unseen_auc: dict[str, float]
    unseen_conse_auc: dict[str, float]
    negation_auc: float
    n_clips: int
    seconds: float
    mood_auc: dict[str, float]                 # with the attribute dimensions
    mood_auc_without_attributes: dict[str, float]
    label_query_auc_with_attributes: dict[str, float]

    def macro(self, table: dict[str, float]) -> float:
        values = [v for v in table.values() if np.isfinite(v)]
        return float(np.mean(values)) if values else float("nan")

    def as_dict(self) -> dict:
        return {**self.__dict__,
                "macro": {"label_query": self.macro(self.label_query_auc),
                          "label_probability": self.macro(self.label_probability_auc),
                          "unseen": self.macro(self.unseen_auc), "unseen_conse": self.macro(self.unseen_conse_auc),
                "mood": self.macro(self.mood_auc), "mood_without_attributes": self.macro(self.mood_auc_without_attributes),
                "label_query_with_attributes": self.macro(self.label_query_auc_with_attributes)}}


def conse_scores(model: ZeroShotTaggerModel, probabilities: np.ndarray, word: str) -> np.ndarray:
    """ConSE: cosine between the query vector and each track's top-T label-vector mixture."""
    label_vectors, _ = model._labels_in_word_space()
    top = np.argsort(-probabilities, axis=1)[:, :CONSE_TOP_T]
    weights = np.take_along_axis(probabilities, top, axis=1)
    embedded = np.einsum("nt,ntd->nd", weights, label_vectors[top]) / weights.sum(axis=1, keepdims=True)
    embedded /= np.maximum(np.linalg.norm(embedded, axis=1, keepdims=True), 1e-12)
    query = model.words.phrase_vector(word).vector
    return embedded @ (query / np.linalg.norm(query))


def run(n_per_group: int = 8, seed: int = 0, model: ZeroShotTaggerModel | None = None) -> ZeroShotFigures:
    started = time.monotonic()
    model = model or ZeroShotTaggerModel()
    clips = evaluation_set(n_per_group, seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        paths = [str(write_wav(Path(folder) / f"clip{i:04d}.wav", render(spec), 16000)) for i, (spec, _) in enumerate(clips)]
        tracks = list(embed_files(paths, model, device="cpu", workers=0, analyse=extract_attributes))
    probabilities = np.stack([t.patch_mean for t in tracks])
    vectors = np.stack([model.track_vector(p) for p in probabilities])
    truth = [tags for _, tags in clips]

    def has(tag: str) -> np.ndarray:
        return np.array([tag in tags for tags in truth])

    label_query, label_probability = {}, {}
    for word, tag in LABEL_QUERIES.items():
        columns = [j for j, label in enumerate(model.labels) if label.lower() == word]
        label_query[word] = roc_auc(has(tag), vectors @ model.query_vector(word).vector)
        # the label's own probability (mean over the taggers that have it)
        label_probability[word] = roc_auc(has(tag), probabilities[:, columns].mean(axis=1))
    unseen, unseen_conse = {}, {}
    for word, tag in UNSEEN_QUERIES.items():
        unseen[word] = roc_auc(has(tag), vectors @ model.query_vector(word).vector)
        unseen_conse[word] = roc_auc(has(tag), conse_scores(model, probabilities, word))
    negation = roc_auc(~has("drums"), vectors @ model.query_vector("no drums").vector)

    # attributes standardised over the set, as a store standardises them over its tracks
    z = standardised_columns([t.extras.as_dict() for t in tracks], ATTRIBUTE_COLUMNS)

    def with_attributes(word: str) -> np.ndarray:
        query = model.query_vector(word)
        return query_scores_with_attributes(vectors @ query.vector, query.attribute_weights, z)

    mood = {word: roc_auc(has(tag), with_attributes(word)) for word, tag in MOOD_QUERIES.items()}
    mood_plain = {word: roc_auc(has(tag), vectors @ model.query_vector(word).vector) for word, tag in MOOD_QUERIES.items()}
    label_with = {word: roc_auc(has(tag), with_attributes(word)) for word, tag in LABEL_QUERIES.items()}
    return ZeroShotFigures(label_query, label_probability, unseen, unseen_conse, negation, len(clips),
                           time.monotonic() - started, mood, mood_plain, label_with)


def format_figures(figures: ZeroShotFigures) -> str:
    lines = [f"zero-shot retrieval on {figures.n_clips} generated clips ({figures.seconds:.1f} s)", "",
             f"{'label word':<14}{'query AUC':>10}{'label p AUC':>13}{'diff':>8}"]
    for word in figures.label_query_auc:
        q, p = figures.label_query_auc[word], figures.label_probability_auc[word]
        lines.append(f"{word:<14}{q:>10.3f}{p:>13.3f}{q - p:>+8.3f}")
    lines += ["", f"{'unseen word':<14}{'ours AUC':>10}{'ConSE AUC':>11}{'ours/ConSE':>12}"]
    for word in figures.unseen_auc:
        ours, conse = figures.unseen_auc[word], figures.unseen_conse_auc[word]
        lines.append(f"{word:<14}{ours:>10.3f}{conse:>11.3f}{ours / conse:>12.2f}")
    m = figures.as_dict()["macro"]
    lines += ["", f"macro: label query {m['label_query']:.3f} vs label probability {m['label_probability']:.3f}; "
                  f"unseen words {m['unseen']:.3f} vs ConSE {m['unseen_conse']:.3f} "
                  f"(ratio {m['unseen'] / m['unseen_conse']:.2f}); chance 0.500",
              f"negation: 'no drums' ranks drum-less clips first with AUC {figures.negation_auc:.3f}",
              "", f"{'mood word':<14}{'with attr':>10}{'without':>9}{'ratio':>8}"]
    for word in figures.mood_auc:
        a, b = figures.mood_auc[word], figures.mood_auc_without_attributes[word]
        lines.append(f"{word:<14}{a:>10.3f}{b:>9.3f}{a / b:>8.2f}")
    lines.append(f"macro: mood words {m['mood']:.3f} with attributes vs {m['mood_without_attributes']:.3f} without; "
                 f"label words {m['label_query_with_attributes']:.3f} with vs {m['label_query']:.3f} without")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-per-group", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--word-vectors", default=None,
                        help='"minilm" or a word-vector file (default: the bundled GloVe 6B 50-d)')
    args = parser.parse_args(argv)
    model = ZeroShotTaggerModel(word_vectors=args.word_vectors)
    print(f"word vectors: {model.word_vectors_id}")
    figures = run(args.n_per_group, args.seed, model=model)
    print(format_figures(figures))
    if args.json:
        args.json.write_text(json.dumps(figures.as_dict(), indent=2))


if __name__ == "__main__":
    main()
