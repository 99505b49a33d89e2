"""Per-track predictions of a quality run, as the paper's annotation examples (Tables 2–3):
every tag whose score reaches a threshold, once from the dataset's own tags and once from
the full tag vocabulary, written to a CSV, with a few tracks printed.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mre.embedder.models.tag_space import best_tags
from mre.util.atomic import atomic_file

# The default of `mre bench quality --threshold`, on the 0–1 scores of mre-zs-musicnn and the
# taggers: where `mre train`'s teacher takes a tagger label as a track's tag. The taggers learnt
# from sparse tags, so most tags of a track score near 0 and one that applies stands out.
# Measured on the demo library's 28 tracks: musicnn-msd keeps 2.5 of its 50 labels per track,
# mre-zs-musicnn 30 of its 1,228 vocabulary tags (many of them variants of the labels that
# apply: guitar, acoustic guitar, slide guitar), and no mood folder tag reaches it with either
# model (median 0.02): mood words rank tracks above chance but borrow from rarely-on labels.
DEFAULT_THRESHOLD = 0.15
SOURCES = ("dataset", "vocabulary")


@dataclass
class Predictions:
    """Scores as users see them (0–1 for the zero-shot model and the taggers), per source:
    source → (tag names, scores [tracks, tags])."""

    paths: list[str]
    true_tags: list[list[str]]
    threshold: float
    by_source: dict[str, tuple[list[str], np.ndarray]]

    def predicted(self, source: str, track: int) -> list[dict]:
        names, scores = self.by_source[source]
        return best_tags(names, scores[track], k=None, threshold=self.threshold)

    def best(self, source: str, track: int) -> dict:
        """The best-scoring tag of a track from one source, whatever its score."""
        names, scores = self.by_source[source]
        return best_tags(names, scores[track], k=1)[0]

    def mean_per_track(self) -> dict[str, float]:
        """How many tags a track gets on average, per source."""
        return {source: float(np.mean([len(self.predicted(source, i)) for i in range(len(self.paths))]))
                if self.paths else 0.0 for source in self.by_source}


def write_predictions(predictions: Predictions, path: Path) -> Path:
    """predictions.csv: path, source (dataset|vocabulary), tag, score; per track best first."""
    with atomic_file(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "source", "tag", "score"])
        for i, track in enumerate(predictions.paths):
            for source in predictions.by_source:
                for entry in predictions.predicted(source, i):
                    writer.writerow([track, source, entry["tag"], f"{entry['score']:.6f}"])
    return path


def example_tracks(predictions: Predictions, dataset_tags: list[str], n: int = 3) -> list[int]:
    """The first track of each of the n most frequent dataset tags (not picked for looking good)."""
    chosen: list[int] = []
    for tag in dataset_tags:
        first = next((i for i, tags in enumerate(predictions.true_tags) if tag in tags and i not in chosen), None)
        if first is not None:
            chosen.append(first)
        if len(chosen) == n:
            return chosen
    return chosen + [i for i in range(len(predictions.paths)) if i not in chosen][:n - len(chosen)]


def format_examples(predictions: Predictions, dataset_tags: list[str], root: Path | None = None, n: int = 3,
                    shown: int = 6, file: Path | None = None) -> str:
    """A few tracks as the paper's annotation tables: true tags, then the predicted ones per source."""
    where = f"; every track in {file}" if file else ""
    lines = [f"Per-track predictions, tags scoring {predictions.threshold:g} or more{where}:"]
    for i in example_tracks(predictions, dataset_tags, n):
        path = Path(predictions.paths[i])
        name = path.relative_to(root) if root is not None and path.is_relative_to(root) else path
        lines.append(f"  {name}  (true: {', '.join(predictions.true_tags[i]) or 'none'})")
        for source in predictions.by_source:
            tags = predictions.predicted(source, i)
            if tags:
                listed = ", ".join(f"{t['tag']} {t['score']:.3f}" for t in tags[:shown])
            else:
                best = predictions.best(source, i)
                listed = f"none (best: {best['tag']} {best['score']:.3f})"
            more = f" (+{len(tags) - shown} more)" if len(tags) > shown else ""
            lines.append(f"    {source + ':':12}{listed}{more}")
    return "\n".join(lines)
