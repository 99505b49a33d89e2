"""The library as a map: every track and a set of tag words in one 2-D plane of the shared space.

The default model's track vectors are label log-odds and its tag (and query) vectors are
weights over the same labels, so a track's score for a word is `weights · log-odds`. The
plane is the first two principal axes of the tracks (PCA, numpy SVD), fitted on the tracks
alone so the words do not pull the plane towards themselves.

A tag row is a direction in label space, not a place: a track scores high for the tag the
further it lies along that direction. So a word is drawn as a biplot arrow tip would be: its
unit-length row projected onto the two axes (no centring: directions have no origin) and
placed from the tracks' centre, all words scaled by one common factor so that the longest
reaches the 95th percentile of the tracks' distance from the centre. One factor for all
keeps their relative lengths: a word the plane shows poorly sits near the centre, honestly,
instead of being pushed out to the rim like the rest.

With `umap` installed (and up to UMAP_MAX_TRACKS tracks) the tracks are laid out by UMAP instead (non-linear: directions mean
nothing there), and a word sits at the mean position of the tracks that score highest for it.
"""
from __future__ import annotations

import numpy as np

# How many tag words the map shows: the ones that are most often among the tracks' own top
# tags (the words that describe this library), up to this many.
MAP_WORDS = 40
# UMAP places a word at the mean of its best-scoring tracks: this share of the library, at least 3.
UMAP_WORD_SHARE = 0.05
# "auto" uses UMAP up to this many tracks: beyond, it takes minutes on a laptop's CPU, PCA a second.
UMAP_MAX_TRACKS = 20_000
# Attributes the page can colour the map by (and shows when hovering), besides a word's scores.
MAP_ATTRIBUTES = ("bpm", "duration", "loudness_db", "brightness", "percussiveness", "onset_density", "mode_strength")


def pca_axes(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean [d], the first two principal axes [2, d]) of the rows of `vectors`.

    The SVD of the d×d scatter matrix gives the same axes as that of the centred data, at a
    cost that does not grow with the number of tracks beyond one matrix product."""
    mean = vectors.mean(axis=0, dtype=np.float64)
    centred = vectors.astype(np.float64) - mean
    scatter = centred.T @ centred
    axes, _, _ = np.linalg.svd(scatter)
    axes = axes[:, :2].T
    # an SVD's signs are arbitrary; fix them so the same store always draws the same way round
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    axes *= np.where(signs == 0, 1.0, signs)[:, None]
    if axes.shape[0] < 2:  # a one-label space: a line, drawn flat
        axes = np.vstack([axes, np.zeros((2 - axes.shape[0], vectors.shape[1]))])
    return mean, axes


def word_points(track_xy: np.ndarray, tag_rows: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Tag rows as biplot points around the tracks' centre (see the module's docstring)."""
    if not len(tag_rows):
        return np.zeros((0, 2))
    norms = np.linalg.norm(tag_rows, axis=1, keepdims=True)
    directions = (tag_rows / np.where(norms > 0, norms, 1.0)) @ axes.T
    centre = track_xy.mean(axis=0) if len(track_xy) else np.zeros(2)
    reach = float(np.percentile(np.linalg.norm(track_xy - centre, axis=1), 95)) if len(track_xy) else 1.0
    longest = float(np.linalg.norm(directions, axis=1).max())
    scale = (reach or 1.0) / longest if longest > 0 else 0.0
    return centre + directions * scale


def chosen_words(top_tags: list[list[str] | None], tag_names: list[str], limit: int = MAP_WORDS) -> list[int]:
    """Rows of the tag table to draw: the tags most often among the tracks' top tags."""
    row_of = {name: row for row, name in enumerate(tag_names)}
    counts: dict[str, int] = {}
    for tags in top_tags:
        for tag in tags or []:
            if tag in row_of:
                counts[tag] = counts.get(tag, 0) + 1
    ranked = sorted(counts, key=lambda tag: (-counts[tag], tag))[:limit]
    return [row_of[tag] for tag in ranked]


def project(track_vectors: np.ndarray, tag_rows: np.ndarray, method: str = "auto") -> tuple[str, np.ndarray, np.ndarray]:
    """(method used, track points [n, 2], word points [m, 2]). method: "pca", "umap", or
    "auto" (UMAP when the package is installed, for 10 to UMAP_MAX_TRACKS tracks)."""
    vectors = np.asarray(track_vectors, dtype=np.float32)
    tag_rows = np.asarray(tag_rows, dtype=np.float64).reshape(-1, vectors.shape[1] if vectors.ndim == 2 else 0)
    if len(vectors) == 0:
        return "pca", np.zeros((0, 2)), np.zeros((len(tag_rows), 2))
    if method == "umap" or (method == "auto" and 10 <= len(vectors) <= UMAP_MAX_TRACKS):
        try:
            import umap  # optional; large (numba), so never a requirement
        except ImportError:
            if method == "umap":
                raise
        else:
            return "umap", *_umap(umap, vectors, tag_rows)
    mean, axes = pca_axes(vectors)
    track_xy = (vectors.astype(np.float64) - mean) @ axes.T
    return "pca", track_xy, word_points(track_xy, tag_rows, axes)


def _umap(umap, vectors: np.ndarray, tag_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(vectors) - 1), random_state=0)
    track_xy = np.asarray(reducer.fit_transform(vectors), dtype=np.float64)
    best = max(3, int(round(UMAP_WORD_SHARE * len(vectors))))
    scores = tag_rows @ vectors.T.astype(np.float64)  # [words, tracks]
    top = np.argsort(-scores, axis=1)[:, :best]
    return track_xy, track_xy[top].mean(axis=1) if len(tag_rows) else np.zeros((0, 2))
