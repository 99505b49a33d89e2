"""Words → vectors: query phrases, joined variants, spelling suggestions and negation.

A query like "hip hop no vocals" becomes terms (:func:`parse_query`), each term a phrase whose
vector is the normalised mean of its words' GloVe vectors (:meth:`WordSpace.phrase_vector`).
Words missing from the word vectors are named, with close spellings, and the rest still counts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from mre.embedder.words.spelling import SpellingIndex, edit_distance
from mre.embedder.words.vocabulary import VocabularyTag, load_tag_vocabulary
from mre.embedder.words.vectors import (
    DEFAULT_WORD_VECTORS_ID,
    WordVectorError,
    WordVectors,
    default_cache_dir,
    load_word_vectors,
    word_vectors_id,
)

__all__ = [
    "WordVectorError", "WordVectors", "QueryError", "load_word_vectors", "word_vectors_id", "default_cache_dir",
    "WordSpace", "PhraseVector", "QueryTerm", "parse_query", "format_ignored",
    "VocabularyTag", "load_tag_vocabulary", "STOP_WORDS", "FUNCTION_WORDS", "GENERIC_MUSIC_WORDS",
    "DEFAULT_WORD_VECTORS_ID",
]

# Function words carry no musical meaning; in GloVe they sit near everything, so keeping
# them pulls every phrase toward one generic point. Dropped whenever another word is known.
FUNCTION_WORDS = frozenset({
    "the", "a", "an", "of", "with", "and", "or", "but", "some", "something", "like", "in",
    "for", "to", "that", "is", "it", "very", "kind", "sort", "type", "style",
})
# Words that only say "this is music". Beside two or more specific words they just blur the
# phrase ("sad piano music" → sad, piano). Beside ONE word they are kept: they pick that
# word's musical sense. Measured on GloVe 6B: "house" alone is nearest to office, capitol,
# senate, "house"+"music" to music, studio; likewise "country" (nation → music, popular),
# "trap" (traps, bait → dance, rock, pop), "chamber" (assembly → orchestra, concert).
GENERIC_MUSIC_WORDS = frozenset({"music", "musical", "song", "songs", "track", "tracks", "tune", "tunes"})
STOP_WORDS = FUNCTION_WORDS | GENERIC_MUSIC_WORDS

NEGATION_WORDS = frozenset({"no", "not", "without", "non", "minus", "sans"})
# Words that end a negated span ("no drums but piano"); inside a positive phrase they stay
# part of it, since "drum and bass" or "rhythm and blues" are names.
NEGATION_ENDS = frozenset({"but", "with", "and"})

# A word: letters/digits, with inner hyphens, apostrophes or ampersands kept for lookup
# (GloVe has "hip-hop", "r&b", "'s"); outer punctuation is dropped ("'80s" → "80s").
_WORD_RE = re.compile(r"[^\W_]+(?:[-'&][^\W_]+)*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
# Penn-Treebank-style clitics, which is how GloVe 6B was tokenised ("don't" → "do", "n't").
_CLITIC_RE = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$")

# How many words ahead a joined form may span: "rock and roll" → "rock-and-roll".
_MAX_JOINED_WORDS = 3

# Compounds rarer than this (GloVe 6B rank; files are frequency-ordered) are used together
# with their parts. Measured on GloVe 6B: rare music compounds ("heavy-metal" 239k,
# "trip-hop" 149k) sit among genres while their parts' mean sits near "iron, steel" or
# "tour", but rare place compounds ("south-africa" 349k, "roadtrip" 146k) have vectors
# unrelated to their parts; the joined token plus the parts' mean serves both.
WELL_TRAINED_RANK = 100_000


@dataclass(frozen=True)
class _Compound:
    """A rare compound token ("heavy-metal") with its known parts ("heavy", "metal")."""

    joined: str
    parts: tuple[str, ...]

    def tokens(self) -> list[str]:
        return [self.joined, *self.parts]


# An unknown word written as one ("synthwave", "chillhop", "electroswing") is read as the two
# words it is made of, the split whose parts are most frequent together (the geometric mean of
# their frequencies, as compound splitters do; rank stands in for frequency). Each part at
# least this long and among this many most frequent words, so rare fragments make no
# nonsense split; a word one edit from a known one is a typo and keeps its suggestion instead.
COMPOUND_MIN_PART = 3
COMPOUND_PART_RANK = 50_000


@dataclass(frozen=True)
class _Split:
    """An unknown word read as the known words it is made of ("synthwave" → "synth", "wave")."""

    word: str
    parts: tuple[str, ...]

    def tokens(self) -> list[str]:
        return list(self.parts)


def _split_words(units) -> dict[str, tuple[str, ...]]:
    """The unknown words among `units` read as the words they are made of, with those words."""
    return {unit.word: unit.parts for unit in units if isinstance(unit, _Split)}


@dataclass
class PhraseVector:
    """The vector of one phrase and what went into it.

    tokens_used: vocabulary tokens averaged; ignored: words not in the word vectors;
    suggestions: close known spellings for each ignored word; vector: unit-norm, or None
    when no word of the phrase is known; split: unknown words read as the words they are
    made of ("synthwave" → ("synth", "wave")).
    """

    text: str
    tokens_used: list[str]
    ignored: list[str]
    suggestions: dict[str, list[str]] = field(default_factory=dict)
    vector: np.ndarray | None = None
    split: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class QueryTerm:
    """One part of a query: a phrase and whether the user wants it excluded."""

    text: str
    negated: bool


class QueryError(ValueError):
    """A query that cannot be understood (empty, or a negation with nothing after it)."""


class WordSpace:
    """Phrase lookup over word vectors (any GloVe/word2vec/fastText vectors).

    Args:
        keyed_vectors: the word vectors (:class:`WordVectors`, or gensim's KeyedVectors alike);
            their key order is taken as frequency order (true of GloVe, word2vec and fastText
            files), used for variants and spellings.
        vectors_id: identifier recorded in stores and models (see :func:`word_vectors_id`).
    """

    def __init__(self, keyed_vectors: WordVectors, vectors_id: str = "custom"):
        self.keyed_vectors = keyed_vectors
        self.vectors_id = vectors_id
        self._key_to_index = keyed_vectors.key_to_index
        self._hyphenated_forms: dict[str, str] | None = None  # "hiphop" → "hip-hop" (see _variant)
        self._spelling_index: SpellingIndex | None = None

    @classmethod
    def load(cls, path: str | Path | None = None) -> "WordSpace":
        """Load word vectors (None = default GloVe 6B 50-d) and wrap them."""
        return cls(load_word_vectors(path), word_vectors_id(path))

    @property
    def dim(self) -> int:
        return int(self.keyed_vectors.vector_size)

    def has(self, word: str) -> bool:
        return word in self._key_to_index

    def unit_vector(self, token: str) -> np.ndarray:
        """The token's vector scaled to unit length (float32)."""
        if token not in self._key_to_index:
            raise WordVectorError(f'"{token}" is not in the word vectors ({self.vectors_id})')
        vector = np.asarray(self.keyed_vectors.vectors[self._key_to_index[token]], dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector.copy()

    # ------------------------------------------------------------------ tokens and variants

    def _rank(self, token: str) -> int:
        return self._key_to_index[token]

    def _variant(self, joined: str) -> tuple[str, tuple[str, ...]] | None:
        """A compound written without hyphens ("hiphop") → (its most frequent spelling, its
        parts): ("hip-hop", ("hip", "hop")); None when no hyphenated key joins to it."""
        if self._hyphenated_forms is None:
            # Keys are in frequency order, so the first hyphenated form of a compound wins
            # (reversed: the first is written last). Comprehensions, and the spelling worked out
            # only for the compounds asked for: a loop over all 400k GloVe keys took 0.08 s.
            forms = [key for key in self.keyed_vectors.index_to_key
                     if "-" in key and key.strip("-") == key and "--" not in key]
            self._hyphenated_forms = {form.replace("-", ""): form for form in reversed(forms)}
        form = self._hyphenated_forms.get(joined)
        if form is None:
            return None
        known_joined = self._key_to_index.get(joined)
        spelling = joined if known_joined is not None and known_joined < self._key_to_index[form] else form
        return spelling, tuple(form.split("-"))

    def _compound(self, spelling: str, parts: Sequence[str]) -> str | _Compound:
        """A compound token, alone if it is frequent, else with its parts (see _Compound)."""
        known_parts = tuple(p for p in parts if self.has(p) and p not in FUNCTION_WORDS)
        if self._rank(spelling) < WELL_TRAINED_RANK or not known_parts:
            return spelling
        return _Compound(spelling, known_parts)

    def _known_form(self, word: str) -> str | _Compound | None:
        """word (or its hyphenated/joined spelling) as the word vectors know it, else None."""
        variant = self._variant(word.replace("-", ""))
        if variant is not None:
            return self._compound(*variant)
        return word if self.has(word) else None

    def _joined(self, words: Sequence[str]) -> str | _Compound | None:
        """The single-token form of adjacent words ("hip hop" → "hip-hop"), if known."""
        if words[0] in FUNCTION_WORDS or words[-1] in FUNCTION_WORDS:
            return None  # "the band" must not become "theband"
        if any(not word.isalnum() for word in words):
            return None
        variant = self._variant("".join(words))
        if variant is None:
            return None
        return self._compound(variant[0], words)

    def _split_unknown(self, word: str) -> list[str | _Compound | _Split]:
        """A word as typed: its known form, else without apostrophes, clitics, then its parts."""
        known = self._known_form(word)
        if known is not None:
            return [known]
        if "'" in word:
            known = self._known_form(word.replace("'", ""))
            if known is not None:
                return [known]
            clitic = _CLITIC_RE.match(word)
            if clitic and self.has(clitic.group(2)):
                return self._split_unknown(clitic.group(1)) + [clitic.group(2)]
        parts = [part for part in re.split(r"[-'&]", word) if part]
        if len(parts) > 1:
            return self._resolve(parts)
        split = self._closed_compound(word)
        return [split] if split is not None else [word]  # unknown; phrase_vector reports it

    def _closed_compound(self, word: str) -> _Split | None:
        """An unknown word as two frequent words written together, or None (see COMPOUND_PART_RANK)."""
        if not word.isalpha() or len(word) < 2 * COMPOUND_MIN_PART:
            return None
        best, best_cost = None, None
        for cut in range(COMPOUND_MIN_PART, len(word) - COMPOUND_MIN_PART + 1):
            first, second = word[:cut], word[cut:]
            ranks = [self._key_to_index.get(part) for part in (first, second)]
            if None in ranks or max(ranks) >= COMPOUND_PART_RANK or {first, second} & FUNCTION_WORDS:
                continue
            cost = (ranks[0] + 1) * (ranks[1] + 1)  # the geometric mean of 1/rank, inverted
            if best_cost is None or cost < best_cost:
                best, best_cost = (first, second), cost
        if best is None:
            return None
        if any(edit_distance(word, known) <= 1 for known in self.nearest_spellings(word)):
            return None  # "dubstepp": a typo of "dubstep", not "dubs" + "tepp"
        return _Split(word, best)

    def _resolve(self, words: list[str]) -> list[str | _Compound | _Split]:
        resolved: list[str | _Compound | _Split] = []
        position = 0
        while position < len(words):
            for span in range(min(_MAX_JOINED_WORDS, len(words) - position), 1, -1):
                joined = self._joined(words[position:position + span])
                if joined is not None:
                    resolved.append(joined)
                    position += span
                    break
            else:
                resolved.extend(self._split_unknown(words[position]))
                position += 1
        return resolved

    def _units(self, text: str) -> list[str | _Compound | _Split]:
        return self._resolve(_WORD_RE.findall(text.lower().translate(_APOSTROPHES)))

    def tokens(self, text: str) -> list[str]:
        """Lookup tokens of a phrase: lowercase words, joined variants preferred.

        "hip hop", "hip-hop" and "hiphop" give the same token (the most frequent spelling in
        the word vectors); a rare compound comes with its parts ("heavy metal" → "heavy-metal",
        "heavy", "metal"); a hyphenated word the vectors lack falls back to its parts.
        Tokens not in the word vectors are returned too; :meth:`phrase_vector` reports them.
        """
        tokens: list[str] = []
        for unit in self._units(text):
            tokens.extend([unit] if isinstance(unit, str) else unit.tokens())
        return tokens

    def splits(self, text: str) -> dict[str, tuple[str, ...]]:
        """The unknown words of ``text`` read as the words they are made of ("synthwave" →
        ("synth", "wave"); see COMPOUND_PART_RANK)."""
        return _split_words(self._units(text))

    # ------------------------------------------------------------------------ phrases

    def _unit_vector_of(self, unit: str | _Compound | _Split) -> np.ndarray:
        if isinstance(unit, str):
            return self.unit_vector(unit)
        parts = np.mean([self.unit_vector(part) for part in unit.parts], axis=0)
        parts = parts / np.linalg.norm(parts)
        if isinstance(unit, _Split):  # one word of the phrase, its parts equally
            return parts
        combined = self.unit_vector(unit.joined) + parts
        return combined / np.linalg.norm(combined)

    def phrase_vector(self, text: str) -> PhraseVector:
        """The unit vector of a phrase, with the words it used and ignored."""
        units = self._units(text)
        known = [unit for unit in units if not isinstance(unit, str) or self.has(unit)]
        ignored = list(dict.fromkeys(unit for unit in units if isinstance(unit, str) and not self.has(unit)))
        content = [unit for unit in known if unit not in FUNCTION_WORDS]
        specific = [unit for unit in content if unit not in GENERIC_MUSIC_WORDS]
        if len(specific) >= 2:
            used = specific
        else:
            # "house music" keeps "music" (see GENERIC_MUSIC_WORDS); "music" or "the" alone
            # is still a query.
            used = content or known
        suggestions = {word: self.nearest_spellings(word) for word in ignored}
        split = _split_words(units)
        if not used:
            return PhraseVector(text, [], ignored, suggestions, None, split)
        tokens_used: list[str] = []
        for unit in used:
            tokens_used.extend([unit] if isinstance(unit, str) else unit.tokens())
        # Mean of unit vectors: each word counts equally; GloVe norms grow with word
        # frequency, so a raw mean would let the commonest word dominate the phrase.
        mean = np.mean([self._unit_vector_of(unit) for unit in used], axis=0)
        norm = float(np.linalg.norm(mean))
        vector = (mean / norm).astype(np.float32) if norm > 0 else None
        return PhraseVector(text, tokens_used, ignored, suggestions, vector, split)

    def phrase_matrix(self, texts: Sequence[str]) -> np.ndarray:
        """Unit phrase vectors as rows [len(texts), dim]; every phrase must have a known word."""
        rows = []
        unknown = []
        for text in texts:
            phrase = self.phrase_vector(text)
            if phrase.vector is None:
                unknown.append(text)
            rows.append(phrase.vector)
        if unknown:
            shown = ", ".join(f'"{text}"' for text in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise WordVectorError(f"no word of {shown}{more} is in the word vectors ({self.vectors_id})")
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack(rows).astype(np.float32, copy=False)

    def nearest_spellings(self, word: str, n: int = 3) -> list[str]:
        """Up to n known words spelled close to word, among the ~100k most frequent words."""
        if self._spelling_index is None:
            self._spelling_index = SpellingIndex(self.keyed_vectors.index_to_key)
        return self._spelling_index.nearest(word.lower(), n)


# ---------------------------------------------------------------------------- queries

def shorten(text: str, limit: int = 60) -> str:
    """A user's text quoted back in a message: whole when short, else its start and its length
    (a pasted 10,000-character query must not fill the terminal)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:limit - 1]}… ({len(text)} characters)"


def parse_query(text: str) -> list[QueryTerm]:
    """Split a query into positive and negated terms.

    ``no``, ``not``, ``without``, ``non``, ``minus``, ``sans`` negate the following words up to
    a comma, ``but``, ``with``, ``and`` or the next marker; ``-x`` and ``non-x`` negate the one
    word x. Commas also separate positive terms.

    >>> parse_query("acoustic guitar no vocals")
    [QueryTerm(text='acoustic guitar', negated=False), QueryTerm(text='vocals', negated=True)]
    """
    if not text or not text.strip():
        raise QueryError("the query is empty; give some words, e.g. \"dub reggae\"")
    pieces = re.findall(r"[,;]|[^\s,;]+", text.lower().translate(_APOSTROPHES))
    terms: list[QueryTerm] = []
    words: list[str] = []
    negated = False
    marker = ""

    def close_term() -> None:
        if words:
            terms.append(QueryTerm(" ".join(words), negated))
            words.clear()
        elif negated:
            raise QueryError(f'"{marker}" in the query is not followed by anything to exclude')

    for piece in pieces:
        word = piece.strip(".!?\"()[]{}")
        if not word or word.strip("-") == "":
            continue
        if word in (",", ";"):
            close_term()
            negated = False
        elif word in NEGATION_WORDS:
            if negated or words:
                close_term()
            negated, marker = True, word
        elif negated and word in NEGATION_ENDS:
            close_term()
            negated = False
        elif not words and terms and terms[-1].negated and word in NEGATION_ENDS:
            continue  # "no drums but with piano": the second connective starts nothing
        elif word.startswith("-") or (word.startswith("non-") and len(word) > 4):
            # "-vocals", "non-vocal": search-engine style, binds the one word only.
            if negated or words:
                close_term()
            excluded = word[4:] if word.startswith("non-") else word.lstrip("-")
            terms.append(QueryTerm(excluded, True))
            negated = False
        else:
            words.append(word)
    close_term()
    if not terms:
        raise QueryError(f"the query {shorten(text)!r} has no words to search for")
    return terms


def format_ignored(phrase_vector: PhraseVector) -> str:
    """One line naming the words a phrase ignored, e.g.
    ``ignored "dubstepp" (not in the word vectors; did you mean: dubstep, dubsteps?)``;
    an empty string when nothing was ignored."""
    parts = []
    for word in phrase_vector.ignored[:5]:
        close = phrase_vector.suggestions.get(word) or []
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        parts.append(f'"{shorten(word, 40)}" (not in the word vectors{hint})')
    if len(phrase_vector.ignored) > 5:
        parts.append(f"and {len(phrase_vector.ignored) - 5} more words")
    return f"ignored {', '.join(parts)}" if parts else ""
