"""Which corpus tags a model must never train on: a fixed list, drawn by a seed before any training.

The rule (after the paper's seen/unseen split, where whole tags are kept from training and
the word vectors alone must carry the model to them), applied to what the generator makes:

- one whole instrument family: a family word the corpus tags with ("brass", "strings",
  "woodwinds", "mallets") is drawn, and held out with every tag of every instrument that
  carries it and every ensemble named after it — a family the model has never heard named;
- three styles: drawn among the styles whose own name is not a musicnn label (a label word
  is answered by the taggers, so holding it out would test nothing new), their names held
  out (other genre words a style carries, e.g. "latin", stay seen).

    python -m mre.training.corpus.held_out            # writes training/data/held_out_tags.txt

The file records the seed and the rule; `mre train --unseen-tags FILE` reads it (lines
starting with # are comments).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mre.training.corpus.arrangements import ENSEMBLES
from mre.training.corpus.instruments import INSTRUMENTS
from mre.training.corpus.styles import STYLES

SEED = 2019  # the paper's year; fixed before the first training run, never changed after
FAMILY_WORDS = ("brass", "strings", "woodwinds", "mallets")
FAMILY_STEMS = {"brass": "brass", "strings": "string", "woodwinds": "woodwind", "mallets": "mallet"}
N_STYLES = 3
HELD_OUT_FILE = Path(__file__).resolve().parents[1] / "data" / "held_out_tags.txt"


def tagger_labels() -> set[str]:
    from mre.embedder.words.labels import MSD_LABELS, MTT_LABELS

    return {label.lower().replace("-", " ") for label in MSD_LABELS + MTT_LABELS}


def held_out_tags(seed: int = SEED) -> tuple[str, list[str], list[str]]:
    """(family word, the family's tags, the drawn styles' names), by the seed."""
    rng = np.random.default_rng(seed)
    family = FAMILY_WORDS[int(rng.integers(len(FAMILY_WORDS)))]
    labels = tagger_labels()
    names = sorted({style.genres[0] for style in STYLES.values() if style.genres[0] not in labels})
    styles = sorted(rng.choice(names, size=N_STYLES, replace=False).tolist())
    return family, family_tags(family), styles


def family_tags(family: str) -> list[str]:
    """A family word's tags: its own, every tag of every instrument that carries it, every tag
    named after it; words a member shares with instruments of other families stay out."""
    family_tags = {family}
    for spec in INSTRUMENTS.values():
        if family in spec.tags:
            family_tags.update(spec.tags)
    # every tag named after the family ("brass ensemble", "string quartet", "synth brass")
    stem = FAMILY_STEMS[family]
    every_tag = {tag for spec in INSTRUMENTS.values() for tag in spec.tags}
    every_tag |= {tag for tags, _, _ in ENSEMBLES.values() for tag in tags}
    every_tag |= {tag for style in STYLES.values() for tag in (*style.genres, *style.ensemble, *style.extra_tags)}
    named = {tag for tag in every_tag if {stem, family} & set(tag.split())}
    family_tags |= named
    # words a family member shares with other families ("bass" of the double bass) stay seen
    shared = {tag for spec in INSTRUMENTS.values() if family not in spec.tags for tag in spec.tags}
    family_tags -= shared - named
    return sorted(family_tags)


def write_held_out_file(path: Path = HELD_OUT_FILE, seed: int = SEED) -> Path:
    family, family_tags, styles = held_out_tags(seed)
    lines = [
        "# Tags no corpus-trained model may train on (mre train --unseen-tags).",
        f"# Drawn by mre.training.corpus.held_out with seed {seed}, before any training:",
        f"# one whole instrument family ({family}: its word, its instruments' tags and ensembles",
        f"# named after it, words shared with other families kept seen) and {N_STYLES} styles whose",
        "# names are not musicnn labels.",
        *family_tags, *styles,
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_held_out_file().read_text(), end="")
