"""What `mre train` learns from: labelled tracks, their splits, and their model inputs.

One decoding pass per file gives everything training needs: the student's inputs (log-mel
patches for the paper branch, frozen musicnn features for the pretrained branch) and, with
`--teacher musicnn`, the teacher's tag probabilities. Inputs are kept in memory as float16
(a 3 s, 128-band patch is 48 KB), at most `max_patches` per track, spread evenly over it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from mre.embedder.models.paper import ModelConfig
from mre.embedder.runner import CpuPatchThreads, default_model_threads, patch_stream
from mre.embedder.words.space import WordSpace
from mre.util.atomic import write_text_atomic

SPLITS = ("train", "valid", "test")
# Decoded per file for training: enough for a track's character, bounded for long mixes.
TRAIN_MAX_SECONDS = 120.0
TRAIN_MAX_PATCHES = 16


class TrainingDataError(ValueError):
    """Training data that cannot give a model: one clear line says why."""


@dataclass
class LabelledTrack:
    path: str
    tags: list[str]
    split: str = ""  # train / valid / test, or "" to be assigned by the seed


@dataclass
class PreparedInputs:
    """Model inputs of the tracks that decoded, patch by patch."""

    tracks: list[LabelledTrack]
    inputs: np.ndarray                      # [n_patches, frames, n_mels] or [n_patches, 200 per backbone tagger], float16;
                                            # memory-mapped when prepared with a cache file
    owner: np.ndarray                       # [n_patches] index into tracks
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    teacher_probabilities: np.ndarray | None = None  # [n_tracks, n_labels], mean over the track's patches
    teacher_labels: list[str] = field(default_factory=list)


def _spread(n_available: int, n_wanted: int) -> np.ndarray:
    """Indices of n_wanted patches spread evenly over n_available (all of them when fewer)."""
    if n_available <= n_wanted:
        return np.arange(n_available)
    return np.unique(np.linspace(0, n_available - 1, n_wanted).round().astype(int))


class _TeacherPass:
    """Both taggers on the same patches: [MSD probabilities | MTT probabilities | MSD features | MTT
    features], the features of `layer` (penultimate or pooled, ModelConfig.backbone_layer)."""

    def __init__(self, msd, mtt, layer: str = "penultimate"):
        self.msd, self.mtt, self.layer = msd, mtt, layer

    def patch_outputs(self, patches: torch.Tensor) -> torch.Tensor:
        msd_probabilities, msd_features = self.msd.outputs(patches, self.layer)
        mtt_probabilities, mtt_features = self.mtt.outputs(patches, self.layer)
        return torch.cat([msd_probabilities, mtt_probabilities, msd_features, mtt_features], dim=1)


def _input_settings(config: ModelConfig, teacher: bool, max_seconds, max_patches) -> dict:
    """How prepare_inputs reads each file: the front-end, the branch, the caps."""
    settings = {"frontend": config.frontend, "branch": config.audio_branch, "teacher": teacher,
                "max_seconds": max_seconds, "max_patches": max_patches, "version": 1}
    if config.audio_branch == "musicnn" and config.backbone != "msd":  # keys of earlier caches unchanged
        settings["backbone"] = config.backbone
    return settings


def inputs_key(tracks: Sequence[LabelledTrack], config: ModelConfig, teacher: bool, max_seconds, max_patches) -> str:
    """Names what prepare_inputs makes: the files (path, size, mtime), the front-end, the branch, the caps."""
    return fingerprint([LabelledTrack(t.path, []) for t in tracks],
                       _input_settings(config, teacher, max_seconds, max_patches))


def _file_stamp(path: str) -> str:
    """A file's size and modification time, as `fingerprint` names it ("missing" when it cannot be read)."""
    try:
        stat = os.stat(path)
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


class _EarlierInputs:
    """What a cache made for other files with the same settings holds for the files that did not
    change (same path, size and mtime): their patches and teacher probabilities, copied instead of
    decoded again (a corpus grown by more clips decodes only the new ones)."""

    def __init__(self, cache: Path, settings_key: str):
        self.rows: dict[str, tuple[int, int, int]] = {}  # path -> (first patch, end, track row)
        self.inputs = self.probabilities = None
        try:
            meta = json.loads(cache.with_name(cache.name + ".json").read_text())
            if meta.get("settings") != settings_key or len(meta.get("stamps", [])) != len(meta["tracks"]):
                return
            with np.load(cache.with_name(cache.name + ".npz")) as arrays:
                owner = arrays["owner"]
                self.probabilities = (arrays["teacher_probabilities"] if "teacher_probabilities" in arrays.files
                                      else None)
            self.inputs = np.load(cache.with_name(cache.name + ".npy"), mmap_mode="r")[: meta["n_patches"]]
        except (OSError, ValueError, KeyError, TypeError):
            return
        starts = np.searchsorted(owner, np.arange(len(meta["tracks"]) + 1))
        for row, (path, stamp) in enumerate(zip(meta["tracks"], meta["stamps"])):
            if stamp != "missing" and _file_stamp(path) == stamp:
                self.rows[path] = (int(starts[row]), int(starts[row + 1]), row)


def _load_cached(cache: Path, key: str, tracks: Sequence[LabelledTrack], settings_key: str) -> PreparedInputs | None:
    meta_path, arrays_path, inputs_path = (cache.with_name(cache.name + suffix) for suffix in (".json", ".npz", ".npy"))
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key:
            return None
        with np.load(arrays_path) as arrays:
            owner = arrays["owner"]
            probabilities = arrays["teacher_probabilities"] if "teacher_probabilities" in arrays.files else None
        inputs = np.load(inputs_path, mmap_mode="r")[: meta["n_patches"]]
    except (OSError, ValueError, KeyError):
        return None
    if "stamps" not in meta:  # written before caches named their files one by one: the key vouches for them
        write_text_atomic(meta_path, json.dumps(meta | {"settings": settings_key,
                                                        "stamps": [_file_stamp(path) for path in meta["tracks"]]}))
    by_path = {t.path: t for t in tracks}
    kept = [LabelledTrack(path, list(by_path[path].tags), by_path[path].split) for path in meta["tracks"]]
    return PreparedInputs(kept, inputs, owner, [tuple(s) for s in meta["skipped"]], probabilities,
                          meta["teacher_labels"])


def prepare_inputs(tracks: Sequence[LabelledTrack], config: ModelConfig, *, teacher: bool = False,
                   workers: int = 0, max_seconds: float | None = TRAIN_MAX_SECONDS,
                   max_patches: int = TRAIN_MAX_PATCHES, device: str | torch.device = "cpu",
                   progress: Callable[[int, int], None] | None = None,
                   cache: str | Path | None = None,
                   announce: Callable[[bool], None] | None = None) -> PreparedInputs:
    """Decode each track once and compute the student's inputs (and the teacher's tags if asked).

    cache: a path prefix; the inputs go to CACHE.npy (memory-mapped, so a library larger than
    memory trains), with CACHE.npz/.json beside, and a later call with the same files and
    settings reads them back instead of decoding again (a resumed or re-tuned run).
    announce: called once before the work with True when the cache is reused, False when decoding.
    """
    from mre.embedder.models.registry import get_model_spec
    from mre.embedder.models.zeroshot import ZeroShotTaggerModel

    key = inputs_key(tracks, config, teacher, max_seconds, max_patches)
    settings_key = fingerprint([], _input_settings(config, teacher, max_seconds, max_patches))
    earlier = None
    if cache is not None:
        cache = Path(cache)
        cached = _load_cached(cache, key, tracks, settings_key)
        if cached is not None:
            if announce is not None:
                announce(True)
            return cached
        earlier = _EarlierInputs(cache, settings_key)
    if announce is not None:
        announce(False)
    device = torch.device(device)
    needs_musicnn = teacher or config.audio_branch == "musicnn"
    musicnn_frontend = get_model_spec("musicnn-msd").frontend
    student_frontend = musicnn_frontend if config.audio_branch == "musicnn" else config.frontend_config
    if needs_musicnn and student_frontend.sample_rate != musicnn_frontend.sample_rate:
        raise TrainingDataError(f"the teacher needs {musicnn_frontend.sample_rate} Hz audio; the model's front-end "
                                f"is at {student_frontend.sample_rate} Hz")
    teacher_model = ZeroShotTaggerModel(device=device) if needs_musicnn else None
    teacher_pass = _TeacherPass(*teacher_model.taggers, layer=config.backbone_layer) if needs_musicnn else None
    n_probabilities = len(get_model_spec("musicnn-msd").labels) + len(get_model_spec("musicnn-mtt").labels)
    # on CPU the taggers run as slices on single-threaded threads, as indexing does (see runner)
    threads = CpuPatchThreads(default_model_threads()) if needs_musicnn and device.type == "cpu" else None
    patch_shape = ((config.feature_dim,) if config.audio_branch == "musicnn"
                   else (student_frontend.patch_frames, student_frontend.n_mels))
    capacity = len(tracks) * max_patches
    paths = [track.path for track in tracks]
    copied = {path for path in paths if earlier is not None and path in earlier.rows}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        # written beside the earlier inputs (still read from, and still whole if this run is cut
        # short: the next run copies from them again) and put in their place at the end
        partial = cache.with_name(cache.name + ".partial.npy")
        store = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float16, shape=(capacity, *patch_shape))
    else:
        store = np.empty((capacity, *patch_shape), dtype=np.float16)

    kept, owners, skipped, probabilities = [], [], [], []
    filled = 0
    # one decode per file, the front-ends training needs on its samples: musicnn's (teacher
    # or backbone) first, then the paper branch's own
    frontends = ([musicnn_frontend] if needs_musicnn else []) + ([student_frontend] if config.audio_branch != "musicnn" else [])
    stream = patch_stream([p for p in paths if p not in copied], frontends, workers=workers, max_seconds=max_seconds)
    for index, path in enumerate(paths):
        if progress is not None:
            progress(index + 1, len(paths))
        if path in copied:  # unchanged since the earlier cache: its patches as they were
            first, end, row = earlier.rows[path]
            student = earlier.inputs[first:end]
            store[filled:filled + len(student)] = student
            filled += len(student)
            owners.append(np.full(len(student), len(kept), dtype=np.int64))
            if needs_musicnn:
                probabilities.append(earlier.probabilities[row])
            kept.append(tracks[index])
            continue
        patched = next(stream)
        if patched.patches is None:
            skipped.append((patched.decoded.path, patched.decoded.error or "no audio"))
            continue
        with torch.inference_mode():
            if needs_musicnn:
                patches = torch.from_numpy(patched.patches[0]).to(device)
                chosen = torch.from_numpy(_spread(len(patches), max_patches)).to(device)
                outputs = threads(teacher_pass, patches) if threads else teacher_pass.patch_outputs(patches)
                # the backbone taggers' features, MSD's first (BACKBONES)
                features = outputs[:, n_probabilities:n_probabilities + config.feature_dim]
                merged = outputs[:, :n_probabilities] @ teacher_model._merge(outputs)
                probabilities.append(merged.mean(dim=0).cpu().numpy())
            if config.audio_branch == "musicnn":
                student = features[chosen]
            else:
                mel_patches = patched.patches[-1]
                student = torch.from_numpy(mel_patches[_spread(len(mel_patches), max_patches)])
        store[filled:filled + len(student)] = student.to(torch.float16).cpu().numpy()
        filled += len(student)
        owners.append(np.full(len(student), len(kept), dtype=np.int64))
        kept.append(tracks[index])
    stream.close()
    if threads is not None:
        threads.close()
    if not kept:
        first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise TrainingDataError(f"none of the {len(paths)} tracks could be decoded{first}")
    owner = np.concatenate(owners)
    teacher_probabilities = np.stack(probabilities) if probabilities else None
    labels = list(teacher_model.labels) if teacher_model is not None else []
    if cache is not None:
        store.flush()
        del store
        earlier = None  # its memory map closed before its file is replaced
        cache.with_name(cache.name + ".json").unlink(missing_ok=True)  # incomplete until rewritten below
        os.replace(partial, cache.with_name(cache.name + ".npy"))
        arrays = {"owner": owner} | ({"teacher_probabilities": teacher_probabilities} if probabilities else {})
        np.savez(cache.with_name(cache.name + ".npz"), **arrays)
        # the .json last: it is what says the cache is complete
        meta = {"key": key, "n_patches": filled, "tracks": [t.path for t in kept],
                "skipped": [list(s) for s in skipped], "teacher_labels": labels,
                "settings": settings_key, "stamps": [_file_stamp(t.path) for t in kept]}
        write_text_atomic(cache.with_name(cache.name + ".json"), json.dumps(meta))
        inputs = np.load(cache.with_name(cache.name + ".npy"), mmap_mode="r")[:filled]
    else:
        inputs = store[:filled]
    return PreparedInputs(kept, inputs, owner, skipped, teacher_probabilities, labels)


def teacher_tags(probabilities: np.ndarray, labels: Sequence[str], threshold: float) -> list[list[str]]:
    """Per track, the teacher's labels whose mean probability reaches the threshold, most probable first."""
    out = []
    for row in probabilities:
        order = np.argsort(-row)
        out.append([labels[i] for i in order if row[i] >= threshold])
    return out


def add_teacher_tags(prepared: PreparedInputs, words, excluded: Sequence[str], threshold: float,
                     base_tags: Sequence[Sequence[str]] | None = None) -> list[str]:
    """Give each track, beside its own tags (or base_tags), the teacher's labels that reach the
    threshold on it; returns the labels given. Left out: a label with a negation ("no vocals": a
    mean of word vectors cannot carry it), a label without a word vector, and a label that reads
    as a word of `excluded` (the tracks' own tags, whose exact judgement stands, and words that
    must stay unseen)."""
    if prepared.teacher_probabilities is None:
        raise TrainingDataError("the teacher's tags need the musicnn taggers' probabilities of every track")

    def tokens(text: str) -> tuple[str, ...]:
        return tuple(words.tokens(text))

    excluded_tokens = {tokens(t) for t in excluded}
    usable = [i for i, label in enumerate(prepared.teacher_labels)
              if not label.lower().startswith("no ") and tokens(label) not in excluded_tokens
              and words.phrase_vector(label).vector is not None]
    names = [prepared.teacher_labels[i].lower() for i in usable]
    assigned = teacher_tags(prepared.teacher_probabilities[:, usable], names, threshold)
    own = base_tags if base_tags is not None else [list(t.tags) for t in prepared.tracks]
    for track, tags, extra in zip(prepared.tracks, own, assigned):
        track.tags = list(tags) + [t for t in extra if t not in tags]
    return sorted({t for extra in assigned for t in extra})


def assign_splits(tracks: list[LabelledTrack], seed: int, valid_fraction: float = 0.1,
                  test_fraction: float = 0.1) -> list[LabelledTrack]:
    """Tracks with a split keep it; with none given anywhere, split by the seed (≥ 1 valid and test track)."""
    given = [t.split for t in tracks if t.split]
    unknown = sorted({s for s in given if s not in SPLITS})
    if unknown:
        raise TrainingDataError(f"unknown split value(s) {', '.join(unknown)}: use train, valid or test")
    if given:
        if len(given) != len(tracks):
            raise TrainingDataError(f"{len(tracks) - len(given)} tracks have no split while others do; "
                                    "give every track one, or none to split by --seed")
        return tracks
    if len(tracks) < 3:
        raise TrainingDataError(f"{len(tracks)} tracks are too few to split into train, valid and test")
    order = np.random.default_rng(seed).permutation(len(tracks))
    n_test = max(1, round(test_fraction * len(tracks)))
    n_valid = max(1, round(valid_fraction * len(tracks)))
    split_of = {}
    for rank, row in enumerate(order):
        split_of[row] = "test" if rank < n_test else "valid" if rank < n_test + n_valid else "train"
    return [LabelledTrack(t.path, t.tags, split_of[i]) for i, t in enumerate(tracks)]


def tag_vocabulary(tracks: Sequence[LabelledTrack], words: WordSpace) -> tuple[list[str], list[str]]:
    """Tags the tracks use that have word vectors (most used first), and those that have none."""
    counts: dict[str, int] = {}
    for track in tracks:
        for tag in dict.fromkeys(track.tags):
            counts[tag] = counts.get(tag, 0) + 1
    ordered = sorted(counts, key=lambda tag: (-counts[tag], tag))
    known = [tag for tag in ordered if words.phrase_vector(tag).vector is not None]
    return known, [tag for tag in ordered if tag not in set(known)]


def read_tag_list(path: str | Path) -> list[str]:
    """Tags one per line, lower-cased; blank lines and # comments skipped."""
    listed = [line.strip().lower() for line in Path(path).read_text().splitlines()]
    return [tag for tag in listed if tag and not tag.startswith("#")]


def split_tags(vocabulary: list[str], seed: int, unseen_fraction: float = 0.25,
               unseen_file: str | Path | None = None) -> tuple[list[str], list[str], list[str]]:
    """(seen, unseen, notes): unseen from a file (one tag per line) or a seeded random fraction."""
    notes = []
    if unseen_file is not None:
        listed = read_tag_list(unseen_file)
        absent = [tag for tag in listed if tag not in vocabulary]
        if absent:
            notes.append(f"{len(absent)} unseen tag(s) from {unseen_file} are not in the training data: "
                         + ", ".join(absent[:8]))
        unseen = [tag for tag in vocabulary if tag in set(listed)]
    else:
        if not 0 <= unseen_fraction < 1:
            raise TrainingDataError(f"--unseen-fraction must be in [0, 1), got {unseen_fraction}")
        n_unseen = int(round(unseen_fraction * len(vocabulary)))
        chosen = set(np.random.default_rng(seed).permutation(len(vocabulary))[:n_unseen].tolist())
        unseen = [tag for i, tag in enumerate(vocabulary) if i in chosen]
    seen = [tag for tag in vocabulary if tag not in set(unseen)]
    if len(seen) < 2:
        raise TrainingDataError(f"only {len(seen)} seen tag(s) left for training; the hinge loss needs a tag a "
                                "track has and one it has not")
    return seen, unseen, notes


def fingerprint(tracks: Sequence[LabelledTrack], settings: dict) -> str:
    """Names the training data (files by path, size and mtime; their tags and splits) and how it was read."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for track in sorted(tracks, key=lambda t: t.path):
        digest.update(f"{track.path}\0{_file_stamp(track.path)}\0{'|'.join(sorted(track.tags))}\0{track.split}\n".encode())
    return digest.hexdigest()
