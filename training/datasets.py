"""Readers for the evaluation datasets as users keep them on disk, all into one shape.

- MagnaTagATune (:func:`read_mtat`): ``annotations_final.csv`` and the mp3 folders ``0``–``f``.
- GTZAN (:func:`read_gtzan`): ``genres/<genre>/<genre>.000NN.wav`` plus the fault-filtered
  split list files the user supplies.
- Any tracks table (:func:`read_table`, :func:`read_tracks_table`): CSV or Parquet with
  ``path`` and ``|``-separated ``tags`` (the format ``mre train --tracks`` reads); the
  Million Song Dataset with Last.fm tags comes in this form.

A layout that is wrong raises :class:`DatasetError` naming the file expected and where.
Audio files named by the annotations but absent (or empty) are listed in
``Dataset.missing_audio`` and left out of ``tracks``; they do not stop the benchmark.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np


class DatasetError(ValueError):
    """The dataset's files are not where or what the reader expects."""


class WordLookup(Protocol):
    """What the readers need of a word space (``mre.embedder.words.space.WordSpace`` fits;
    a gensim ``KeyedVectors`` also works through ``in``)."""

    def has(self, word: str) -> bool: ...


@dataclass(frozen=True)
class TrackRef:
    """One audio file of a dataset; ``split`` is "train", "valid", "test" or "" (unsplit)."""

    path: Path
    split: str


@dataclass
class Dataset:
    """Tracks, their tags as a boolean matrix ``labels[track, tag]``, and what was left out.

    single_label: each track has exactly one tag (GTZAN): accuracy is then meaningful.
    dropped_tags: tags not evaluated, with the reason in ``drop_reasons``.
    missing_audio: audio files the annotations name that are missing or empty.
    """

    name: str
    root: Path
    tracks: list[TrackRef]
    tags: list[str]
    labels: np.ndarray
    single_label: bool = False
    dropped_tags: list[str] = field(default_factory=list)
    drop_reasons: dict[str, str] = field(default_factory=dict)
    missing_audio: list[Path] = field(default_factory=list)

    def __post_init__(self):
        if self.labels.shape != (len(self.tracks), len(self.tags)):
            raise DatasetError(
                f"{self.name}: labels {self.labels.shape} do not match {len(self.tracks)} tracks × {len(self.tags)} tags"
            )

    @property
    def splits(self) -> list[str]:
        return sorted({track.split for track in self.tracks})

    def split_indices(self, split: str | None) -> np.ndarray:
        """Row numbers of the tracks in ``split`` (None = all tracks)."""
        if split is None:
            return np.arange(len(self.tracks))
        rows = np.array([i for i, track in enumerate(self.tracks) if track.split == split], dtype=np.int64)
        if rows.size == 0:
            raise DatasetError(f"{self.name}: no tracks in split {split!r}; splits present: {self.splits}")
        return rows

    def subset(self, split: str | None) -> "Dataset":
        """Only the tracks of ``split`` (None = a copy of all), same tags; so a benchmark
        embeds the test tracks alone instead of the whole set."""
        rows = self.split_indices(split)
        return Dataset(self.name, self.root, [self.tracks[i] for i in rows], list(self.tags), self.labels[rows],
                       self.single_label, list(self.dropped_tags), dict(self.drop_reasons), list(self.missing_audio))

    def class_indices(self) -> np.ndarray:
        """For a single-label set, each track's class number (column of its one tag)."""
        if not self.single_label:
            raise DatasetError(f"{self.name} is multi-label; class indices need a single-label set")
        return self.labels.argmax(axis=1)


# ------------------------------------------------------------------------- word vectors


def _word_tokens(word_space, tag: str) -> list[str]:
    if hasattr(word_space, "tokens"):  # WordSpace: the same tokenising as the word branch
        return list(word_space.tokens(tag))
    return re.findall(r"[^\W_]+(?:[-'&][^\W_]+)*", tag.lower())


def tag_has_word_vector(word_space, tag: str) -> bool:
    """True when every token of the tag is in the word space (multiword tags included)."""
    has = word_space.has if hasattr(word_space, "has") else word_space.__contains__
    tokens = _word_tokens(word_space, tag)
    return bool(tokens) and all(has(token) for token in tokens)


def _keep_tags_with_vectors(tags: list[str], word_space, dropped: list[str], reasons: dict[str, str]) -> list[str]:
    if word_space is None:
        return tags
    kept = []
    for tag in tags:
        if tag_has_word_vector(word_space, tag):
            kept.append(tag)
        else:
            dropped.append(tag)
            reasons[tag] = "no word vector"
    return kept


def _label_matrix(track_tags: list[set[str]], tags: list[str]) -> np.ndarray:
    column = {tag: j for j, tag in enumerate(tags)}
    labels = np.zeros((len(track_tags), len(tags)), dtype=bool)
    for i, names in enumerate(track_tags):
        for name in names:
            j = column.get(name)
            if j is not None:
                labels[i, j] = True
    return labels


def _audio_present(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _require_dir(root: str | Path, what: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{what}: dataset folder {root} does not exist")
    return root


# --------------------------------------------------------------------------- MagnaTagATune

# The usual MTAT split by the clips' first hex folder: 0–b train, c valid, d–f test
# (Dieleman & Schrauwen 2014; used by the paper and musicnn).
MTAT_SPLIT_BY_FOLDER = {**{f: "train" for f in "0123456789ab"}, "c": "valid", **{f: "test" for f in "def"}}


def read_mtat(root: str | Path, word_space: WordLookup | None = None, top_n: int = 50) -> Dataset:
    """MagnaTagATune from ``root/annotations_final.csv`` and the mp3 folders ``0``–``f``
    (in ``root`` or ``root/mp3``).

    The annotations are TAB-separated despite the name: ``clip_id``, 188 tag columns of
    "0"/"1" (cells may be quoted), ``mp3_path`` like ``f/artist-album-01-title-0-29.mp3``.
    The ``top_n`` tags by number of clips are kept (ties: file order); of those, tags
    without a word vector in ``word_space`` are dropped and listed (the paper kept 43 of 50
    with GloVe-300). Clips without any kept tag stay in: they are negatives for every tag.
    """
    root = _require_dir(root, "MagnaTagATune")
    annotations = root / "annotations_final.csv"
    if not annotations.is_file():
        raise DatasetError(f"MagnaTagATune: expected the tag annotations at {annotations}")
    audio_root = root / "mp3" if (root / "mp3").is_dir() else root
    if not any((audio_root / folder).is_dir() for folder in MTAT_SPLIT_BY_FOLDER):
        raise DatasetError(f"MagnaTagATune: expected mp3 folders 0–f under {root} (or {root / 'mp3'})")

    with open(annotations, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    if not rows or "mp3_path" not in rows[0] or "clip_id" not in rows[0]:
        raise DatasetError(
            f"MagnaTagATune: {annotations} must be tab-separated with a header "
            "clip_id, tag columns…, mp3_path"
        )
    header = rows[0]
    path_column = header.index("mp3_path")
    tag_columns = [j for j, name in enumerate(header) if name not in ("clip_id", "mp3_path")]
    body = [row for row in rows[1:] if row]
    for line_number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DatasetError(
                f"MagnaTagATune: {annotations} line {line_number} has {len(row)} fields, header has {len(header)}"
            )
    try:
        tag_values = np.array([[int(row[j]) for j in tag_columns] for row in body], dtype=np.int64)
    except ValueError as exc:
        raise DatasetError(f"MagnaTagATune: non-0/1 tag value in {annotations}: {exc}") from None
    tag_values = tag_values.reshape(len(body), len(tag_columns)).astype(bool)

    counts = tag_values.sum(axis=0)
    top_columns = np.argsort(-counts, kind="stable")[:top_n]
    top_tags = [header[tag_columns[j]] for j in top_columns]
    dropped: list[str] = []
    reasons: dict[str, str] = {}
    kept_tags = _keep_tags_with_vectors(top_tags, word_space, dropped, reasons)
    kept_columns = [top_columns[top_tags.index(tag)] for tag in kept_tags]

    tracks, label_rows, missing = [], [], []
    for i, row in enumerate(body):
        relative = row[path_column].strip()
        folder = relative.split("/", 1)[0]
        split = MTAT_SPLIT_BY_FOLDER.get(folder)
        if split is None:
            raise DatasetError(f"MagnaTagATune: mp3_path {relative!r} is not inside a folder 0–f")
        path = audio_root / relative
        if not _audio_present(path):
            missing.append(path)
            continue
        tracks.append(TrackRef(path, split))
        label_rows.append(i)
    labels = tag_values[np.array(label_rows, dtype=np.int64)][:, kept_columns] if label_rows else np.zeros(
        (0, len(kept_tags)), bool
    )
    return Dataset("mtat", root, tracks, kept_tags, labels, False, dropped, reasons, missing)


# ---------------------------------------------------------------------------------- GTZAN

GTZAN_SPLIT_FILES = {"train": "train_filtered.txt", "valid": "valid_filtered.txt", "test": "test_filtered.txt"}


def _gtzan_genres_dir(root: Path) -> Path:
    genres_dir = root / "genres"
    if genres_dir.is_dir():
        return genres_dir
    if root.name == "genres":
        return root
    raise DatasetError(f"GTZAN: expected the genre folders at {genres_dir}/<genre>/<genre>.000NN.wav")


def read_gtzan(root: str | Path, split_dir: str | Path | None = None) -> Dataset:
    """GTZAN from ``root/genres/<genre>/<genre>.000NN.wav``, single-label over the genres.

    The fault-filtered split (Kereliuk et al. 2015, as the paper used it) comes from list
    files the user supplies: ``train_filtered.txt``, ``valid_filtered.txt`` and
    ``test_filtered.txt`` in ``split_dir`` (default: ``root``), one file a line like
    ``blues/blues.00012.wav`` (a leading ``genres/`` is accepted). Without list files
    every audio file under ``genres/`` is one unsplit track (split "").
    """
    root = _require_dir(root, "GTZAN")
    genres_dir = _gtzan_genres_dir(root)
    genres = sorted(p.name for p in genres_dir.iterdir() if p.is_dir())
    if not genres:
        raise DatasetError(f"GTZAN: no genre folders in {genres_dir}")

    list_dir = Path(split_dir) if split_dir is not None else root
    present = {split: list_dir / name for split, name in GTZAN_SPLIT_FILES.items() if (list_dir / name).is_file()}
    if split_dir is not None and len(present) < len(GTZAN_SPLIT_FILES):
        absent = [str(list_dir / name) for split, name in GTZAN_SPLIT_FILES.items() if split not in present]
        raise DatasetError(f"GTZAN: expected split list files {', '.join(absent)}")

    entries: list[tuple[str, str]] = []  # (relative path "genre/file", split)
    if present:
        for split, list_file in present.items():
            for line in list_file.read_text(encoding="utf-8").splitlines():
                name = line.strip().replace("\\", "/")
                if not name:
                    continue
                if name.startswith("genres/"):
                    name = name[len("genres/"):]
                entries.append((name, split))
    else:
        audio = sorted(p for p in genres_dir.glob("*/*") if p.suffix.lower() in (".wav", ".au", ".mp3", ".flac", ".ogg"))
        entries = [(f"{p.parent.name}/{p.name}", "") for p in audio]
        if not entries:
            raise DatasetError(f"GTZAN: no audio files in {genres_dir}/<genre>/")

    genre_column = {genre: j for j, genre in enumerate(genres)}
    tracks, genre_of_track, missing = [], [], []
    for name, split in entries:
        genre = name.split("/", 1)[0]
        if genre not in genre_column or "/" not in name:
            raise DatasetError(f"GTZAN: split entry {name!r} does not start with a genre folder of {genres_dir}")
        path = genres_dir / name
        if not _audio_present(path):
            missing.append(path)
            continue
        tracks.append(TrackRef(path, split))
        genre_of_track.append(genre_column[genre])
    labels = np.zeros((len(tracks), len(genres)), dtype=bool)
    labels[np.arange(len(tracks)), genre_of_track] = True
    return Dataset("gtzan", root, tracks, genres, labels, True, [], {}, missing)


# ---------------------------------------------------------------------------- tracks table


def _read_table_rows(path: Path) -> list[dict[str, str]]:
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several kinds for a bad file
            raise DatasetError(f"tracks table {path} is not a readable Parquet file: {exc}") from None
        columns = table.column_names
        rows = table.to_pylist()
    else:
        # utf-8-sig: a spreadsheet's "CSV UTF-8" starts with a byte-order mark, which would
        # otherwise become part of the first column's name
        try:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                columns = reader.fieldnames or []
                rows = list(reader)
        except UnicodeDecodeError as error:
            raise DatasetError(f"tracks table {path} is not UTF-8 text (byte {error.object[error.start]:#04x} "
                               f"at offset {error.start}): save it as CSV UTF-8") from None
        except csv.Error as error:
            raise DatasetError(f"tracks table {path} is not a readable CSV file: {error}") from None
    missing_columns = [c for c in ("path", "tags") if c not in columns]
    if missing_columns:
        raise DatasetError(f"tracks table {path} lacks column(s) {', '.join(missing_columns)} (needs path, tags)")
    return rows


def split_tags(cell) -> list[str]:
    """A ``tags`` cell → tag names: ``|``-separated, blanks dropped, order kept."""
    if cell is None:
        return []
    return [tag.strip() for tag in str(cell).split("|") if tag.strip()]


def read_tracks_table(
    path: str | Path, word_space: WordLookup | None = None, top_n: int | None = None, name: str | None = None
) -> Dataset:
    """A tracks table (CSV or Parquet): ``path`` (relative to the table's folder, or
    absolute), ``tags`` (``|``-separated), optional ``split``.

    Tags are ordered by number of rows in the table (ties by name; rows whose audio is
    missing count too, so the vocabulary does not shift with a partial download);
    ``top_n`` keeps the most frequent,
    and tags without a word vector in ``word_space`` are dropped and listed.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"expected a tracks table (CSV or Parquet with path, tags) at {path}")
    rows = _read_table_rows(path)
    if not rows:
        raise DatasetError(f"tracks table {path} has no rows")
    folder = path.parent
    counts: Counter[str] = Counter()
    parsed: list[tuple[Path, str, set[str]]] = []
    for row in rows:
        if not row.get("path"):
            raise DatasetError(f"tracks table {path} has a row without a path")
        track_tags = set(split_tags(row.get("tags")))
        counts.update(track_tags)
        split = str(row.get("split") or "").strip().lower()
        parsed.append((folder / str(row["path"]).strip(), split, track_tags))

    ordered = sorted(counts, key=lambda tag: (-counts[tag], tag))
    dropped: list[str] = []
    reasons: dict[str, str] = {}
    if top_n is not None:
        for tag in ordered[top_n:]:
            dropped.append(tag)
            reasons[tag] = f"not in the top {top_n}"
        ordered = ordered[:top_n]
    tags = _keep_tags_with_vectors(ordered, word_space, dropped, reasons)

    tracks, track_tags, missing = [], [], []
    for audio_path, split, names in parsed:
        if not _audio_present(audio_path):
            missing.append(audio_path)
            continue
        tracks.append(TrackRef(audio_path, split))
        track_tags.append(names)
    return Dataset(name or path.stem, folder, tracks, tags, _label_matrix(track_tags, tags), False, dropped, reasons, missing)


def read_table(
    root: str | Path, tracks: str = "tracks.csv", word_space: WordLookup | None = None, top_n: int | None = None
) -> Dataset:
    """Any folder with a tracks table inside it (``root/tracks``); see :func:`read_tracks_table`."""
    root = _require_dir(root, "tracks table")
    return read_tracks_table(root / tracks, word_space=word_space, top_n=top_n, name=root.name)



# -------------------------------------------------------------------------------- folders


def folder_tag(name: str) -> str:
    """A folder name as a tag: "Hip_Hop" and "hip-hop " → "hip hop"."""
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


def read_folders(root: str | Path, word_space: WordLookup | None = None) -> Dataset:
    """A library sorted into folders (``root/jazz/...``, ``root/calm/...``): each audio file is tagged
    with the names of the folders between the root and it. Files directly in the root have no tag
    (they count as negatives for every tag). Unsplit: every track is evaluated.
    """
    from mre.embedder.audio.decode import audio_files_under

    root = _require_dir(root, "folder dataset")
    audio = audio_files_under(root)
    if not audio:
        raise DatasetError(f"no audio files under {root}")
    track_tags = [{folder_tag(part) for part in p.relative_to(root).parts[:-1]} - {""} for p in audio]
    counts = Counter(tag for tags in track_tags for tag in tags)
    if not counts:
        raise DatasetError(f"{root}: the audio files are not in sub-folders, so there are no tags to evaluate")
    dropped: list[str] = []
    reasons: dict[str, str] = {}
    tags = _keep_tags_with_vectors(sorted(counts, key=lambda tag: (-counts[tag], tag)), word_space, dropped, reasons)
    tracks = [TrackRef(p, "") for p in audio]
    return Dataset(root.name, root, tracks, tags, _label_matrix(track_tags, tags), False, dropped, reasons, [])
