"""Close spellings of an unknown word among the frequent words of a word-vector vocabulary.

difflib over 100k words takes about a second per word, too slow for a CLI hint. Instead a
character-bigram inverted index picks the few dozen words sharing the most bigrams with the
query (Dice coefficient), and only those are compared by edit distance.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

# GloVe, word2vec and fastText files list words by falling frequency; the rarer tail is
# mostly typos and junk, which would be poor suggestions.
SEARCHED_WORDS = 100_000
_CANDIDATES = 64


def _bigrams(word: str) -> set[str]:
    padded = f"^{word}$"  # boundary marks make first and last letters count
    return {padded[i:i + 2] for i in range(len(padded) - 1)}


def edit_distance(first: str, second: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions, transpositions."""
    rows = len(first) + 1
    columns = len(second) + 1
    table = [[0] * columns for _ in range(rows)]
    for i in range(rows):
        table[i][0] = i
    for j in range(columns):
        table[0][j] = j
    for i in range(1, rows):
        for j in range(1, columns):
            cost = 0 if first[i - 1] == second[j - 1] else 1
            table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and first[i - 1] == second[j - 2] and first[i - 2] == second[j - 1]:
                table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
    return table[-1][-1]


class SpellingIndex:
    """Bigram index over the first SEARCHED_WORDS words (only words containing a letter)."""

    def __init__(self, words_by_frequency: Sequence[str], searched_words: int = SEARCHED_WORDS):
        self.words = [word for word in words_by_frequency[:searched_words] if any(c.isalpha() for c in word)]
        bigram_ids: dict[str, int] = {}
        owners: list[int] = []
        bigram_of_entry: list[int] = []
        bigram_counts = np.empty(len(self.words), dtype=np.int32)
        for word_id, word in enumerate(self.words):
            grams = _bigrams(word)
            bigram_counts[word_id] = len(grams)
            for gram in grams:
                bigram_of_entry.append(bigram_ids.setdefault(gram, len(bigram_ids)))
                owners.append(word_id)
        order = np.argsort(np.asarray(bigram_of_entry, dtype=np.int32), kind="stable")
        self._owners = np.asarray(owners, dtype=np.int32)[order]
        sorted_bigrams = np.asarray(bigram_of_entry, dtype=np.int32)[order]
        # Postings of bigram b are owners[starts[b]:starts[b + 1]].
        self._starts = np.searchsorted(sorted_bigrams, np.arange(len(bigram_ids) + 1))
        self._bigram_ids = bigram_ids
        self._bigram_counts = bigram_counts

    def nearest(self, word: str, n: int = 3) -> list[str]:
        """Up to n words within a small edit distance of word, closest then most frequent."""
        if n <= 0 or not word or not self.words:
            return []
        grams = [self._bigram_ids[g] for g in _bigrams(word) if g in self._bigram_ids]
        if not grams:
            return []
        postings = np.concatenate([self._owners[self._starts[g]:self._starts[g + 1]] for g in grams])
        shared = np.bincount(postings, minlength=len(self.words))
        dice = 2.0 * shared / (len(_bigrams(word)) + self._bigram_counts)
        count = min(_CANDIDATES, len(self.words))
        candidates = np.argpartition(-dice, count - 1)[:count]
        # A third of the letters may be wrong ("dubstepp" → "dubstep"), at least one.
        allowed = max(1, len(word) // 3)
        scored = []
        for word_id in candidates:
            candidate = self.words[word_id]
            if candidate == word or dice[word_id] == 0:
                continue
            distance = edit_distance(word, candidate)
            if distance <= allowed:
                # Ties: more shared bigrams first ("pianno" → "pianos" before "pitino"), then frequency.
                scored.append((distance, -round(float(dice[word_id]), 3), int(word_id), candidate))
        scored.sort()
        return [candidate for *_, candidate in scored[:n]]
