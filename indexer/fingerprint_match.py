"""Which fingerprints are the same recording: candidate pairs, aligned comparison, groups.

Two copies of one recording give fingerprints whose items agree bit for bit except where the
copies differ (encoding noise, EQ) — once aligned: a copy cut 3 s at the start has its items
shifted by ~24. So a pair is compared at the offset where its bits agree best, and scored
by how far above chance they agree there:

    score = 1 − 2·BER,  BER = differing bits / compared bits over the overlap

1 for identical audio, ~0 for unrelated audio (half the bits differ by chance). This is the
bit error rate Chromaprint's own matcher (fingerprint_matcher.cpp) computes over aligned
items; like it, the alignment comes first and the score is taken over the whole overlap,
so a chance agreement of a few seconds cannot make a match.

Comparing every pair of a 10k-track library at ±20 s of offsets would be ~10^11 popcounts,
so the work is cut three ways, all vectorised over many pairs at once:

1. candidates: only pairs whose durations could be one recording's (a trimmed copy is
   shorter by up to ``MAX_TRIM_SECONDS``, a sped-up one by a few percent) and, among those,
   each track's nearest embedding neighbours (a re-encode's vector is within ~0.01 cosine
   of the original's);
2. alignment: every offset is tried on a few probe items from the middle of one fingerprint
   (the middle survives trims and fades at the ends), and pairs whose best probe agreement
   is near chance are dropped;
3. the score: the whole overlap at the best offset (and its two neighbours).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mre.indexer.fingerprints import ITEM_SECONDS

# How much shorter a trimmed copy may be (intros, silences, fades cut off), and how much a
# copy played at another speed (a PAL transfer is 4 % fast); pairs further apart are never compared.
MAX_TRIM_SECONDS = 16.0
MAX_SPEED_DIFFERENCE = 0.03
# Offsets tried: a copy's audio may start this much earlier or later than the other's.
MAX_SHIFT_SECONDS = 20.0
MAX_SHIFT_ITEMS = int(np.ceil(MAX_SHIFT_SECONDS / ITEM_SECONDS))
# Probe items: every PROBE_STRIDE-th of PROBE_COUNT·PROBE_STRIDE items around the middle. 16
# probes are 512 bits: chance agreement is BER 0.5 ± 0.02, a re-encode's below 0.1.
PROBE_COUNT = 16
PROBE_STRIDE = 4
# Alignments (the best local minima of the probes' BER over offsets) compared over the whole overlap.
ALIGNMENT_CANDIDATES = 3
# A pair whose best probe BER is above this is unrelated; the whole overlap is not compared.
PROBE_MAX_BER = 0.42
# Among offsets whose probes agree about as well, the nearest to 0 wins: music that repeats
# itself (a loop, a chorus) agrees almost as well one cycle later, but a copy is rarely shifted.
SHIFT_PENALTY_PER_ITEM = 5e-5
# Speed: the overlap is cut into windows of DRIFT_WINDOW items, each aligned on its own within
# ±DRIFT_REACH items of the pair's offset; a copy played at another speed drifts steadily (2 %
# faster: one item every 50), a copy at the same speed does not. A pair drifting more than
# MAX_DRIFT items per item is another recording (a speed or pitch change), however alike; so
# is one with fewer than DRIFT_MIN_VOTES windows that align, whose speed cannot be told.
DRIFT_WINDOW = 32
DRIFT_REACH = 6
DRIFT_WINDOW_MAX_BER = 0.3     # windows aligned worse than this (fades, noise) do not vote
MAX_DRIFT = 0.008
DRIFT_MIN_VOTES = 3
# Less overlap than this (seconds) is not enough to call two files one recording, nor less
# than this share of the shorter fingerprint: a trimmed copy lies inside the original (fpcalc
# reads each file's first 2 minutes, so a copy cut 20 s at the start still overlaps 83 %),
# while music that repeats itself can align one cycle off over a part of the files.
MIN_OVERLAP_SECONDS = 12.0
MIN_OVERLAP_SHARE = 0.75
DEFAULT_MIN_SCORE = 0.3
# Embedding neighbours per track proposed as candidates (within the duration window).
DEFAULT_NEIGHBOURS = 24
# Pairs scored per vectorised step: bounds memory (a step gathers pairs × offsets × probes items).
_PAIRS_PER_STEP = 1024


def popcount32(values: np.ndarray) -> np.ndarray:
    """Set bits of each uint32 (np.bitwise_count where numpy has it, else a byte table)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(values)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    as_bytes = np.ascontiguousarray(values, dtype=np.uint32).view(np.uint8)
    return table[as_bytes].reshape(*values.shape, 4).sum(axis=-1, dtype=np.uint8)


class FingerprintMatrix:
    """Fingerprints packed into one zero-padded uint32 matrix, with their lengths.

    Each row has ``MAX_SHIFT_ITEMS`` + a probe span of padding on both sides, so a shifted
    read never leaves the row; the padding is masked out by the lengths.
    """

    def __init__(self, fingerprints: list[np.ndarray]):
        self.lengths = np.array([len(f) for f in fingerprints], dtype=np.int64)
        self.pad = MAX_SHIFT_ITEMS + PROBE_COUNT * PROBE_STRIDE + 2
        width = int(self.lengths.max(initial=0)) + 2 * self.pad
        self.items = np.zeros((len(fingerprints), width), dtype=np.uint32)
        for row, items in enumerate(fingerprints):
            self.items[row, self.pad:self.pad + len(items)] = items

    def __len__(self) -> int:
        return len(self.lengths)

    def _read(self, rows: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Items at ``positions`` (item numbers, may be out of range) of ``rows`` (broadcast),
        and whether each position is inside its fingerprint."""
        lengths = self.lengths[rows]
        valid = (positions >= 0) & (positions < lengths)
        clipped = np.clip(positions, -self.pad, self.items.shape[1] - self.pad - 1) + self.pad
        return self.items[rows, clipped], valid


@dataclass
class PairScores:
    """Scores of pairs (a[i], b[i]): ``offset`` items such that a's item j is b's item j + offset."""

    a: np.ndarray
    b: np.ndarray
    score: np.ndarray       # 1 − 2·BER over the overlap; 0 when unrelated or too little overlap
    offset: np.ndarray      # int items
    overlap: np.ndarray     # items compared
    drift: np.ndarray       # items of offset gained per item: ~0 for a copy, 0.02 for one played 2 % slower

    @property
    def same_speed(self) -> np.ndarray:
        return np.abs(self.drift) <= MAX_DRIFT


def score_pairs(matrix: FingerprintMatrix, a: np.ndarray, b: np.ndarray) -> PairScores:
    """Aligned scores of the pairs (a[i], b[i]) of ``matrix`` rows, many pairs per numpy step."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    score = np.zeros(len(a), dtype=np.float64)
    offset = np.zeros(len(a), dtype=np.int64)
    overlap = np.zeros(len(a), dtype=np.int64)
    drift = np.zeros(len(a), dtype=np.float64)
    for start in range(0, len(a), _PAIRS_PER_STEP):
        part = slice(start, start + _PAIRS_PER_STEP)
        score[part], offset[part], overlap[part], drift[part] = _score_step(matrix, a[part], b[part])
    return PairScores(a, b, score, offset, overlap, drift)


def _score_step(matrix: FingerprintMatrix, a: np.ndarray, b: np.ndarray):
    # Probe the shorter fingerprint's middle against every offset in the longer one: a
    # trimmed copy's middle is inside the original.
    swap = matrix.lengths[a] > matrix.lengths[b]
    probe_rows, other_rows = np.where(swap, b, a), np.where(swap, a, b)
    span = PROBE_COUNT * PROBE_STRIDE
    first = np.maximum(matrix.lengths[probe_rows] // 2 - span // 2, 0)
    probe_positions = first[:, None] + PROBE_STRIDE * np.arange(PROBE_COUNT)[None, :]          # [P, J]
    probes, probe_valid = matrix._read(probe_rows[:, None], probe_positions)
    shifts = np.arange(-MAX_SHIFT_ITEMS, MAX_SHIFT_ITEMS + 1)
    other_positions = probe_positions[:, None, :] + shifts[None, :, None]                     # [P, O, J]
    others, other_valid = matrix._read(other_rows[:, None, None], other_positions)
    both = other_valid & probe_valid[:, None, :]
    errors = popcount32(others ^ probes[:, None, :]).astype(np.int32)
    errors[~both] = 0
    compared = both.sum(axis=2)
    # too few probes inside the other fingerprint at this offset: not a usable alignment
    probe_ber = np.where(compared >= PROBE_COUNT // 2, errors.sum(axis=2) / (32.0 * np.maximum(compared, 1)), 1.0)
    penalised = probe_ber + SHIFT_PENALTY_PER_ITEM * np.abs(shifts)[None, :]
    # the few best local minima: music that repeats itself (a loop, a chorus) aligns almost as
    # well a cycle or two off on the probes; the whole overlap tells them apart below
    window = np.lib.stride_tricks.sliding_window_view(
        np.pad(penalised, ((0, 0), (2, 2)), constant_values=np.inf), 5, axis=1).min(axis=2)
    minima = np.where(penalised <= window, penalised, np.inf)
    best = np.argpartition(minima, ALIGNMENT_CANDIDATES - 1, axis=1)[:, :ALIGNMENT_CANDIDATES]   # [P, C]
    best_ber = probe_ber[np.arange(len(a))[:, None], best]
    keep = best_ber.min(axis=1) <= PROBE_MAX_BER

    score = np.zeros(len(a))
    offset = np.zeros(len(a), dtype=np.int64)
    overlap = np.zeros(len(a), dtype=np.int64)
    drift = np.zeros(len(a))
    if keep.any():
        rows = np.flatnonzero(keep)
        # the probes are every PROBE_STRIDE-th item: the true offset may be a neighbour's; and
        # no shift at all is tried too
        tried = [shifts[best[rows, c]] + d for c in range(ALIGNMENT_CANDIDATES) for d in (-1, 0, 1)]
        tried += [np.full(len(rows), d) for d in (-1, 0, 1)]
        measured = [_overlap_ber(matrix, probe_rows[rows], other_rows[rows], shift) for shift in tried]
        bers = np.stack([ber for ber, _ in measured])
        counts = np.stack([count for _, count in measured])
        shifts_tried = np.stack(tried)
        shorter = np.minimum(matrix.lengths[probe_rows[rows]], matrix.lengths[other_rows[rows]])
        too_little = (counts < MIN_OVERLAP_SHARE * shorter) | (counts * ITEM_SECONDS < MIN_OVERLAP_SECONDS)
        pick = np.argmin(bers + SHIFT_PENALTY_PER_ITEM * np.abs(shifts_tried) + too_little, axis=0)
        enough = ~too_little[pick, np.arange(len(rows))]
        columns = np.arange(len(rows))
        ber, count = bers[pick, columns], counts[pick, columns]
        offset[rows] = shifts_tried[pick, columns]
        score[rows] = np.where(enough, np.clip(1.0 - 2.0 * ber, 0.0, 1.0), 0.0)
        overlap[rows] = count
        drift[rows] = _drift(matrix, probe_rows[rows], other_rows[rows], offset[rows])
    # offsets as a → b: a probe of b at shift s means b's j is a's j + s, so a's j is b's j − s
    offset = np.where(swap, -offset, offset)
    drift = np.where(swap, -drift, drift)
    return score, offset, overlap, drift


def _overlap_ber(matrix: FingerprintMatrix, a: np.ndarray, b: np.ndarray, shift: np.ndarray):
    """(BER over the whole overlap, items compared) of a's item j against b's j + shift."""
    width = int(matrix.lengths[a].max(initial=0))
    positions = np.arange(width)[None, :]
    a_items, a_valid = matrix._read(a[:, None], positions)
    b_items, b_valid = matrix._read(b[:, None], positions + shift[:, None])
    both = a_valid & b_valid
    errors = popcount32(a_items ^ b_items).astype(np.int32)
    errors[~both] = 0
    count = both.sum(axis=1)
    return errors.sum(axis=1) / (32.0 * np.maximum(count, 1)), count


def _drift(matrix: FingerprintMatrix, a: np.ndarray, b: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Items of offset gained per item along the overlap: the slope of each window's own best
    offset (least squares over the windows that align well; inf with too few of them)."""
    start = np.maximum(0, -shift)                                  # first overlapping item of a
    end = np.minimum(matrix.lengths[a], matrix.lengths[b] - shift)
    windows = int(max(0, (end - start).max(initial=0)) // DRIFT_WINDOW)
    if windows < DRIFT_MIN_VOTES:
        return np.full(len(a), np.inf)
    reach = np.arange(-DRIFT_REACH, DRIFT_REACH + 1)
    first = start[:, None] + DRIFT_WINDOW * np.arange(windows)[None, :]                       # [P, K]
    inside = first + DRIFT_WINDOW <= end[:, None]
    positions = first[:, :, None] + np.arange(DRIFT_WINDOW)[None, None, :]                    # [P, K, W]
    a_items, _ = matrix._read(a[:, None, None], positions)
    b_positions = positions[:, :, None, :] + (shift[:, None, None, None] + reach[None, None, :, None])
    b_items, b_valid = matrix._read(b[:, None, None, None], b_positions)                       # [P, K, D, W]
    errors = popcount32(b_items ^ a_items[:, :, None, :]).astype(np.int32)
    errors[~b_valid] = 16   # outside b: counts as chance
    ber = errors.sum(axis=3) / (32.0 * DRIFT_WINDOW)                                           # [P, K, D]
    best = np.argmin(ber + SHIFT_PENALTY_PER_ITEM * np.abs(reach), axis=2)
    local = reach[best].astype(np.float64)
    votes = inside & (np.take_along_axis(ber, best[:, :, None], axis=2)[:, :, 0] <= DRIFT_WINDOW_MAX_BER)
    centre = (first + DRIFT_WINDOW / 2).astype(np.float64)
    n = votes.sum(axis=1)
    mean_x = np.where(n > 0, (centre * votes).sum(axis=1) / np.maximum(n, 1), 0.0)
    mean_y = np.where(n > 0, (local * votes).sum(axis=1) / np.maximum(n, 1), 0.0)
    dx = (centre - mean_x[:, None]) * votes
    slope = (dx * (local - mean_y[:, None])).sum(axis=1) / np.maximum((dx * dx).sum(axis=1), 1e-9)
    return np.where(n >= DRIFT_MIN_VOTES, slope, np.inf)


# ---------------------------------------------------------------------------- candidates

def duration_compatible(d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """Whether durations d1 and d2 (broadcast) could be one recording's: a trim or a speed change."""
    return np.abs(d1 - d2) <= MAX_TRIM_SECONDS + MAX_SPEED_DIFFERENCE * np.maximum(d1, d2)


def candidate_pairs(durations: np.ndarray, vectors: np.ndarray | None = None,
                    neighbours: int = DEFAULT_NEIGHBOURS, block: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with a < b: pairs of duration-compatible tracks; with ``vectors``, only each
    track's ``neighbours`` nearest (cosine) among the duration-compatible ones.

    Tracks are sorted by duration, so each block of rows is compared with the one slice of
    the sorted order its window covers: work grows with the window, not the library squared.
    """
    durations = np.asarray(durations, dtype=np.float64)
    n = len(durations)
    order = np.argsort(durations, kind="stable")
    sorted_durations = durations[order]
    if vectors is not None:
        vectors = np.asarray(vectors, dtype=np.float32)[order]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms > 0, norms, 1.0)
    found_a, found_b = [], []
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        low_d, high_d = sorted_durations[rows[0]], sorted_durations[rows[-1]]
        reach = MAX_TRIM_SECONDS + MAX_SPEED_DIFFERENCE * (high_d + MAX_TRIM_SECONDS) / (1 - MAX_SPEED_DIFFERENCE)
        lo = int(np.searchsorted(sorted_durations, low_d - reach, side="left"))
        hi = int(np.searchsorted(sorted_durations, high_d + reach, side="right"))
        columns = np.arange(lo, hi)
        allowed = duration_compatible(sorted_durations[rows][:, None], sorted_durations[columns][None, :])
        allowed &= rows[:, None] != columns[None, :]
        if vectors is not None and neighbours < len(columns) - 1:
            similarity = vectors[rows] @ vectors[columns].T
            similarity[~allowed] = -np.inf
            top = np.argpartition(-similarity, neighbours - 1, axis=1)[:, :neighbours]
            chosen = np.zeros_like(allowed)
            np.put_along_axis(chosen, top, True, axis=1)
            allowed &= chosen
        row_index, column_index = np.nonzero(allowed)
        found_a.append(order[rows[row_index]])
        found_b.append(order[columns[column_index]])
    if not found_a:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a, b = np.concatenate(found_a), np.concatenate(found_b)
    low, high = np.minimum(a, b), np.maximum(a, b)
    pairs = np.unique(np.stack([low, high], axis=1), axis=0) if len(low) else np.zeros((0, 2), np.int64)
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)


# ---------------------------------------------------------------------------- groups

def group_matches(matrix: FingerprintMatrix, scored: PairScores, min_score: float = DEFAULT_MIN_SCORE) -> list[list[int]]:
    """Groups (lists of rows, each sorted) in which every two members match at ``min_score``.

    Confirmed pairs are joined (union-find) into connected components; a component whose
    every pair matches is a group. One that does not — A matches B and B matches C, but A
    is not C: a medley, or a weak link — is split by complete linkage: the strongest pairs
    first, two clusters joined only when every pair across them matches. So two different
    songs are never put together through a third file.
    """
    confirmed = (scored.score >= min_score) & scored.same_speed
    a, b, strength = scored.a[confirmed], scored.b[confirmed], scored.score[confirmed]
    parent = np.arange(len(matrix))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for x, y in zip(a.tolist(), b.tolist()):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    components: dict[int, list[int]] = {}
    for x in np.unique(np.concatenate([a, b])).tolist():
        components.setdefault(find(x), []).append(x)

    # a pair at different speeds counts as not matching
    known = {(int(x), int(y)): float(s) if same else 0.0
             for x, y, s, same in zip(scored.a, scored.b, scored.score, scored.same_speed)}
    known.update({(y, x): s for (x, y), s in list(known.items())})
    # every pair inside a component not scored yet (not proposed as candidates): score it now
    missing = [(x, y) for members in components.values() for i, x in enumerate(members) for y in members[i + 1:]
               if (x, y) not in known]
    if missing:
        extra = score_pairs(matrix, np.array([x for x, _ in missing]), np.array([y for _, y in missing]))
        for x, y, s, same in zip(extra.a.tolist(), extra.b.tolist(), extra.score.tolist(), extra.same_speed.tolist()):
            known[(x, y)] = known[(y, x)] = s if same else 0.0

    groups = []
    for members in components.values():
        if all(known[(x, y)] >= min_score for i, x in enumerate(members) for y in members[i + 1:]):
            groups.append(sorted(members))
            continue
        clusters = {x: [x] for x in members}
        edges = sorted(((known[(x, y)], x, y) for i, x in enumerate(members) for y in members[i + 1:]
                        if known[(x, y)] >= min_score), reverse=True)
        home = {x: x for x in members}
        for _, x, y in edges:
            cx, cy = home[x], home[y]
            if cx == cy:
                continue
            if all(known[(p, q)] >= min_score for p in clusters[cx] for q in clusters[cy]):
                clusters[cx].extend(clusters.pop(cy))
                for member in clusters[cx]:
                    home[member] = cx
        groups.extend(sorted(cluster) for cluster in clusters.values() if len(cluster) > 1)
    return sorted(groups)


def pair_score_lookup(scored: PairScores) -> dict[tuple[int, int], tuple[float, int]]:
    """(row, row) → (score, offset of the first row's items in the second's), both orders."""
    lookup = {}
    for x, y, s, o in zip(scored.a.tolist(), scored.b.tolist(), scored.score.tolist(), scored.offset.tolist()):
        lookup[(x, y)] = (s, o)
        lookup[(y, x)] = (s, -o)
    return lookup
