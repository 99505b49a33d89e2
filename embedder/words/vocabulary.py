"""The music tag vocabulary for song → words: the shipped list or a user's own file."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

SHIPPED_VOCABULARY = "tag_vocabulary.csv"
# Place names (cities, countries, regions) stay in the shipped file but are not offered by
# default: a place's word vector is about geography, so song → word put "lebanon" or "congo"
# on any acoustic guitar track. Pass the shipped file as --vocab to use them anyway.
DEFAULT_EXCLUDED_CATEGORIES = frozenset({"place"})
CUSTOM_CATEGORY = "custom"


class TagVocabularyError(ValueError):
    """A tag vocabulary file that cannot be read; the message is one line for the user."""


@dataclass(frozen=True)
class VocabularyTag:
    tag: str
    category: str


def _parse(text: str, source: str) -> list[VocabularyTag]:
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise TagVocabularyError(f"tag vocabulary {source} has no tags")
    header = [name.strip().lower() for name in next(csv.reader([lines[0]]))]
    tags: list[VocabularyTag] = []
    if "tag" in header:
        # CSV with a tag column (and optionally a category column).
        rows = csv.DictReader(io.StringIO("\n".join(lines[1:])), fieldnames=header)
        for row in rows:
            tag = " ".join((row.get("tag") or "").lower().split())
            category = " ".join((row.get("category") or "").lower().split()) or CUSTOM_CATEGORY
            if tag:
                tags.append(VocabularyTag(tag, category))
    else:
        # Plain text, one tag per line.
        tags = [VocabularyTag(" ".join(line.lower().split()), CUSTOM_CATEGORY) for line in lines]
    # Duplicates removed, first occurrence (and its category) kept, order kept.
    unique: dict[str, VocabularyTag] = {}
    for vocabulary_tag in tags:
        unique.setdefault(vocabulary_tag.tag, vocabulary_tag)
    if not unique:
        raise TagVocabularyError(f"tag vocabulary {source} has a tag column but no tags")
    return list(unique.values())


def load_tag_vocabulary(path: str | Path | None = None) -> list[VocabularyTag]:
    """The tags song → word queries choose from.

    Args:
        path: None for the shipped vocabulary (embedder/words/data/tag_vocabulary.csv) without its
            place names (see DEFAULT_EXCLUDED_CATEGORIES); else a CSV
            with a ``tag`` column (optional ``category``) or a text file with one tag per line
            (category "custom"). Tags are lowercased; duplicates removed, order kept.

    Raises:
        TagVocabularyError: the file is missing, unreadable or has no tags.
    """
    if path is None:
        text = resources.files("mre.embedder.words").joinpath("data", SHIPPED_VOCABULARY).read_text(encoding="utf-8")
        return [t for t in _parse(text, SHIPPED_VOCABULARY) if t.category not in DEFAULT_EXCLUDED_CATEGORIES]
    source = Path(path).expanduser()
    try:
        text = source.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TagVocabularyError(f"tag vocabulary file not found: {source}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TagVocabularyError(f"cannot read tag vocabulary {source}: {exc}") from None
    return _parse(text, str(source))
