"""`mre train` end to end: read the tracks (a table, or a folder tagged by the musicnn teacher),
split tracks and tags, train the paper's model, then evaluate it the way the paper does.

The evaluation, on the test split: tag-retrieval ROC-AUC per tag (macro over seen tags and
over unseen tags, which training never saw), annotation ROC-AUC per test track (macro), and
the training curve. Printed, and saved as `OUT.eval.json` and `OUT.eval.png` beside the model.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from mre.training.datasets import DatasetError, read_tracks_table
from mre.training.metrics import NO_MATPLOTLIB, annotation_auc, tag_retrieval_auc
from mre.util.atomic import write_text_atomic
from mre.embedder.audio.decode import AUDIO_EXTENSIONS, audio_files_under
from mre.embedder.models.paper import ModelConfig
from mre.training.loop import TrainResult, TrainSettings, train
from mre.training.inputs import (TRAIN_MAX_PATCHES, TRAIN_MAX_SECONDS, LabelledTrack, TrainingDataError,
                                 add_teacher_tags, assign_splits, fingerprint, prepare_inputs, read_tag_list,
                                 split_tags, tag_vocabulary, teacher_tags)
from mre.embedder.words.space import WordSpace

TEACHERS = ("musicnn",)
# Both taggers learnt from sparse tags (MTT clips carry ~3 of their 50 tags), so their
# probabilities rarely approach 1 for a label that applies; 0.15 gives a track about as many
# tags as the two tag sets' annotators gave, where 0.5 would leave most tracks with none.
DEFAULT_TEACHER_THRESHOLD = 0.15


@dataclass
class DataOptions:
    tracks_table: str | None = None       # CSV/Parquet with path, tags (|-separated), optional split
    library: str | None = None            # a folder to tag with the teacher
    teacher: str | None = None
    teacher_threshold: float = DEFAULT_TEACHER_THRESHOLD
    unseen_tags_file: str | None = None
    unseen_fraction: float = 0.25
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    max_seconds: float | None = TRAIN_MAX_SECONDS
    max_patches: int = TRAIN_MAX_PATCHES


@dataclass
class TrainingReport:
    model_file: str
    model_id: str
    seen_tag_retrieval_auc: float | None
    unseen_tag_retrieval_auc: float | None
    annotation_auc: float | None
    per_tag: dict[str, float | None]
    seen_tags: list[str]
    unseen_tags: list[str]
    history: list[dict]
    best_epoch: int
    stopped_early: bool
    resumed_from: int | None
    tracks: dict[str, int]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def _finite(value) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def _library_tracks(folder: str) -> list[LabelledTrack]:
    root = Path(folder)
    if not root.is_dir():
        raise TrainingDataError(f"--library {folder} is not a folder")
    paths = audio_files_under(root)
    if not paths:
        raise TrainingDataError(f"no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) under {folder}")
    return [LabelledTrack(str(p), []) for p in paths]


def _table_tracks(table: str, words: WordSpace, notes: list[str]) -> list[LabelledTrack]:
    try:
        dataset = read_tracks_table(table, word_space=words)
    except DatasetError as error:
        raise TrainingDataError(str(error)) from None
    if dataset.dropped_tags:
        notes.append(f"{len(dataset.dropped_tags)} tag(s) have no word vector and are left out: "
                     + ", ".join(dataset.dropped_tags[:8]))
    if dataset.missing_audio:
        notes.append(f"{len(dataset.missing_audio)} track(s) in the table have no audio file (first: {dataset.missing_audio[0]})")
    return [LabelledTrack(str(ref.path), [dataset.tags[j] for j in np.flatnonzero(row)], ref.split)
            for ref, row in zip(dataset.tracks, dataset.labels)]


def evaluate(result: TrainResult, model_file: str, notes: list[str]) -> TrainingReport:
    """The paper's zero-shot figures on the test split."""
    tag_vectors, kept = result.model.tag_matrix(result.tags)
    labels = result.test_labels[:, [result.tags.index(t) for t in kept]]
    scores = result.test_track_vectors @ tag_vectors.T
    per_tag = tag_retrieval_auc(labels, scores, kept)
    by_tag = {tag: _finite(v) for tag, v in zip(kept, per_tag.roc_auc)}

    def macro(tags: list[str]) -> float | None:
        values = [by_tag[t] for t in tags if by_tag.get(t) is not None]
        return float(np.mean(values)) if values else None

    annotation = annotation_auc(labels, scores) if len(labels) else float("nan")
    if per_tag.skipped:
        notes.append(f"{len(per_tag.skipped)} tag(s) have no positive (or no negative) test track and are left "
                     "out of the macros")
    splits = result.model.info.get("training", {}).get("tracks", {})
    return TrainingReport(model_file, result.model.model_id, macro(result.seen_tags), macro(result.unseen_tags),
                          _finite(annotation), by_tag, result.seen_tags, result.unseen_tags, result.history,
                          result.best_epoch, result.stopped_early, result.resumed_from, splits, notes)


def write_report(report: TrainingReport, out: str | Path) -> list[Path]:
    """OUT.eval.json and OUT.eval.png (training curve; per-tag AUC, seen and unseen)."""
    out = Path(out)
    json_path = out.with_name(out.name + ".eval.json")
    write_text_atomic(json_path, json.dumps(report.to_json(), indent=2) + "\n")
    written = [json_path]
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:
        report.notes.append(NO_MATPLOTLIB)
        return written
    figure, (curve, bars) = plt.subplots(1, 2, figsize=(12, 4.5))
    epochs = [h["epoch"] for h in report.history]
    curve.plot(epochs, [h["train_loss"] for h in report.history], label="train")
    curve.plot(epochs, [h["valid_loss"] for h in report.history], label="valid")
    curve.axvline(report.best_epoch, color="grey", linestyle=":", label=f"best (epoch {report.best_epoch})")
    curve.set(xlabel="epoch", ylabel="hinge loss", title="training curve")
    curve.legend()
    ordered = [t for t in report.seen_tags + report.unseen_tags if report.per_tag.get(t) is not None]
    values = [report.per_tag[t] for t in ordered]
    colours = ["tab:blue" if t in set(report.seen_tags) else "tab:orange" for t in ordered]
    bars.bar(range(len(ordered)), values, color=colours)
    bars.axhline(0.5, color="grey", linestyle=":")
    bars.set(ylim=(0, 1), ylabel="ROC-AUC", title="tag retrieval on test tracks: seen (blue), unseen (orange)")
    if len(ordered) <= 40:
        bars.set_xticks(range(len(ordered)), ordered, rotation=90, fontsize=7)
    figure.tight_layout()
    png_path = out.with_name(out.name + ".eval.png")
    figure.savefig(png_path, dpi=110)
    plt.close(figure)
    return written + [png_path]


def format_report(report: TrainingReport) -> str:
    def figure(value):
        return "–" if value is None else f"{value:.3f}"

    lines = [
        f"model {report.model_file} ({report.model_id}), best epoch {report.best_epoch}"
        + (", stopped early" if report.stopped_early else ""),
        f"tracks: {report.tracks.get('train', 0)} train, {report.tracks.get('valid', 0)} valid, "
        f"{report.tracks.get('test', 0)} test; tags: {len(report.seen_tags)} seen, {len(report.unseen_tags)} unseen",
        f"tag retrieval ROC-AUC (test tracks): seen {figure(report.seen_tag_retrieval_auc)}, "
        f"unseen {figure(report.unseen_tag_retrieval_auc)}",
        f"annotation ROC-AUC (test tracks, all tags): {figure(report.annotation_auc)}",
    ]
    return "\n".join(lines + [f"note: {note}" for note in report.notes])


def run_training(data: DataOptions, config: ModelConfig, settings: TrainSettings, out: str | Path, *,
                 word_vectors: str | None = None, words: WordSpace | None = None, resume: bool = False,
                 device: str = "cpu", workers: int = 0, show_progress: bool | None = None,
                 log: Callable[[str], None] = print) -> tuple[TrainingReport, list[Path]]:
    """Everything `mre train` does; returns the evaluation and the files written beside the model."""
    if (data.tracks_table is None) == (data.library is None):
        raise TrainingDataError("give either --tracks TABLE or --teacher musicnn --library DIR")
    if data.library is not None and data.teacher not in TEACHERS:
        raise TrainingDataError("--library needs --teacher musicnn: an untagged folder gets its tags from the teacher")
    words = words or WordSpace.load(word_vectors)
    config.word_dim = words.dim
    notes: list[str] = []
    if data.tracks_table is not None:
        tracks = _table_tracks(data.tracks_table, words, notes)
    else:
        tracks = _library_tracks(data.library)
    if not tracks:
        raise TrainingDataError("no tracks with audio to train on")
    cache = Path(out).with_name(Path(out).name + ".inputs")
    # the musicnn branch runs the taggers anyway: their probabilities come with its inputs, and a
    # table's decoded inputs cached without the teacher stay valid with it
    teacher = data.library is not None or (data.teacher is not None and config.audio_branch != "musicnn")

    def announce(reused: bool) -> None:
        if reused:
            log(f"reusing the decoded inputs in {cache}.npy (same files and settings)")
        else:
            log(f"decoding {len(tracks)} tracks" + (" and tagging them with the musicnn teacher" if teacher else ""))

    progress = _progress_bar(len(tracks), show_progress, log)
    prepared = prepare_inputs(tracks, config, teacher=teacher, workers=workers, max_seconds=data.max_seconds,
                              max_patches=data.max_patches, device=device, progress=progress, cache=cache,
                              announce=announce)
    progress(None, None)
    if prepared.skipped:
        notes.append(f"{len(prepared.skipped)} file(s) could not be decoded and were left out "
                     f"(first: {prepared.skipped[0][0]}: {prepared.skipped[0][1]})")
    if data.library is not None:
        # "no vocals" and the like: a mean of word vectors cannot carry a negation, so such labels
        # would teach the opposite of what they say
        labels = [label if not label.startswith("no ") else None for label in prepared.teacher_labels]
        usable = [i for i, label in enumerate(labels) if label is not None]
        assigned = teacher_tags(prepared.teacher_probabilities[:, usable], [labels[i] for i in usable],
                                data.teacher_threshold)
        for track, tags in zip(prepared.tracks, assigned):
            track.tags = tags
        used = {tag for tags in assigned for tag in tags}
        notes.append(f"teacher: {len(used)} labels reach {data.teacher_threshold}, "
                     f"{np.mean([len(tags) for tags in assigned]):.1f} per track")
        untagged = sum(not tags for tags in assigned)
        if untagged:
            notes.append(f"{untagged} track(s) got no teacher label at {data.teacher_threshold}: they serve as "
                         "negatives only")
    elif data.teacher is not None:
        # a table's own tags stand; the teacher's labels join them where the table names no such word
        own = {tag for track in prepared.tracks for tag in track.tags}
        kept_unseen = read_tag_list(data.unseen_tags_file) if data.unseen_tags_file else []
        given = add_teacher_tags(prepared, words, [*own, *kept_unseen], data.teacher_threshold)
        notes.append(f"teacher: {len(given)} labels that the table does not name reach {data.teacher_threshold} "
                     f"and train beside its tags" + (f" ({', '.join(given[:12])}{', …' if len(given) > 12 else ''})"
                                                     if given else ""))
    vocabulary, no_vector = tag_vocabulary(prepared.tracks, words)
    if no_vector:
        notes.append(f"{len(no_vector)} tag(s) have no word vector and are left out: {', '.join(no_vector[:8])}")
    seen, unseen, split_notes = split_tags(vocabulary, settings.seed, data.unseen_fraction, data.unseen_tags_file)
    notes += split_notes
    prepared.tracks = assign_splits(prepared.tracks, settings.seed, data.valid_fraction, data.test_fraction)
    stamp = fingerprint(prepared.tracks, {"frontend": config.frontend, "branch": config.audio_branch,
                                          "max_seconds": data.max_seconds, "max_patches": data.max_patches,
                                          "teacher": data.teacher, "threshold": data.teacher_threshold})
    log(f"training on {sum(t.split == 'train' for t in prepared.tracks)} tracks ({len(prepared.inputs)} patches "
        f"in all), {len(seen)} seen tags; {len(unseen)} unseen tags held out")
    result = train(prepared, words, seen, unseen, config=config, settings=settings, out=out, fingerprint=stamp,
                   word_vectors_path=word_vectors, resume=resume, device=device, show_progress=show_progress, log=log)
    report = evaluate(result, str(out), notes)
    written = write_report(report, out)
    return report, [Path(out), *written]


def _progress_bar(total: int, show: bool | None, log: Callable[[str], None]):
    import time

    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="decoding", unit="track", disable=not show if show is not None else None)
    last_line = [time.monotonic()]

    def update(done, _total):
        if done is None:
            bar.close()
            return
        bar.n = done
        bar.refresh()
        # no terminal and not silenced: a plain line every 30 s instead of a bar
        if bar.disable and show is None and time.monotonic() - last_line[0] >= 30:
            last_line[0] = time.monotonic()
            log(f"decoding: {done}/{total} tracks")

    return update
