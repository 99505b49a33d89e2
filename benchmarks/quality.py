"""Model-agnostic quality evaluation: scores in, the paper's figures out.

Any model that gives a score for every (track, tag) pair — cosine between track and tag
vectors in our engine — is evaluated the way the paper does (Choi et al. 2019,
arXiv:1906.08615): tag-retrieval ROC-AUC and PR-AUC per tag and macro, annotation ROC-AUC
per track, top-1 accuracy by the best-scoring class for single-label sets (GTZAN), and the
seen/unseen breakdown of the zero-shot split. :func:`format_table` puts the paper's Table 1
figures beside ours, labelled as the paper's; :func:`write_report` writes JSON, CSV and PNGs.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mre.training.datasets import Dataset, DatasetError
from mre.util.atomic import atomic_file, write_text_atomic
from mre.benchmarks.quality_predictions import Predictions, write_predictions
from mre.training.metrics import PerTagResult, annotation_auc, confusion_matrix, seen_unseen_breakdown, tag_retrieval_auc, top1_accuracy

PAPER_TABLE_PATH = Path(__file__).parent / "data" / "paper_table1.json"


@dataclass
class QualityReport:
    """Figures of one model on one dataset split. NaN = not defined (see ``notes``)."""

    dataset: str
    split: str | None
    tags: list[str]
    single_label: bool
    per_tag: PerTagResult
    annotation_auc: float
    labels: np.ndarray  # [n_tracks, n_tags] of the evaluated split, kept for the ROC plots
    scores: np.ndarray
    accuracy: float | None = None
    confusion: np.ndarray | None = None
    seen_unseen: dict | None = None
    seen_tags: set[str] = field(default_factory=set)
    unseen_tags: set[str] = field(default_factory=set)
    dropped_tags: list[str] = field(default_factory=list)
    drop_reasons: dict[str, str] = field(default_factory=dict)
    n_missing_audio: int = 0
    model: str | None = None
    notes: list[str] = field(default_factory=list)
    supervised: bool = False  # a tagger scoring the tags among its own labels (the paper's supervised row)
    predictions: Predictions | None = None  # per-track tags above a threshold, written as predictions.csv

    @property
    def n_tracks(self) -> int:
        return int(self.labels.shape[0])

    @property
    def tag_retrieval_auc(self) -> float:
        return self.per_tag.macro_roc_auc

    @property
    def pr_auc(self) -> float:
        return self.per_tag.macro_pr_auc

    def tag_group(self, tag: str) -> str:
        return "seen" if tag in self.seen_tags else "unseen" if tag in self.unseen_tags else ""

    def to_json(self) -> dict:
        """A JSON-ready dict (NaN written as null): macros, per-tag figures, what was left out.

        Keys: dataset, split, model, kind ("zero-shot", or "supervised": a tagger, whose
        per_tag are the dataset tags it covers), n_tracks, n_tags, tag_retrieval_auc, pr_auc,
        annotation_auc, per_tag (tag → ROC-AUC), per_tag_pr_auc, skipped_tags,
        dropped_tags, drop_reasons, n_missing_audio, notes; single-label sets add accuracy,
        classes and confusion; a seen/unseen split adds seen and unseen (each:
        tag_retrieval_auc, pr_auc, n_tags, missing); per-track predictions add predictions
        (threshold, mean tags per track by source).
        """
        report = {
            "dataset": self.dataset,
            "split": self.split,
            "model": self.model,
            "kind": "supervised" if self.supervised else "zero-shot",
            "n_tracks": self.n_tracks,
            "n_tags": len(self.tags),
            "tag_retrieval_auc": _finite_or_none(self.tag_retrieval_auc),
            "pr_auc": _finite_or_none(self.pr_auc),
            "annotation_auc": _finite_or_none(self.annotation_auc),
            "per_tag": self.per_tag.roc_auc_by_tag(),
            "per_tag_pr_auc": self.per_tag.pr_auc_by_tag(),
            "skipped_tags": list(self.per_tag.skipped),
            "dropped_tags": list(self.dropped_tags),
            "drop_reasons": dict(self.drop_reasons),
            "n_missing_audio": self.n_missing_audio,
        }
        if self.single_label:
            report["accuracy"] = _finite_or_none(self.accuracy)
            report["classes"] = list(self.tags)
            report["confusion"] = self.confusion.tolist()
        if self.seen_unseen is not None:
            for group, figures in self.seen_unseen.items():
                report[group] = {key: _finite_or_none(value) if isinstance(value, float) else value
                                 for key, value in figures.items()}
        if self.predictions is not None:
            report["predictions"] = {"threshold": self.predictions.threshold,
                                     "mean_tags_per_track": self.predictions.mean_per_track()}
        report["notes"] = list(self.notes)
        return report


def _finite_or_none(value):
    return None if value is None or not math.isfinite(value) else float(value)


def evaluate(
    dataset: Dataset,
    track_scores: np.ndarray,
    seen_tags=None,
    unseen_tags=None,
    split: str | None = "test",
    model: str | None = None,
) -> QualityReport:
    """Evaluate scores for every (track, tag) of ``dataset`` on one split.

    track_scores: ``[len(dataset.tracks), len(dataset.tags)]``, higher = more relevant
        (e.g. cosine between track and tag vectors); rows and columns in dataset order.
    seen_tags, unseen_tags: the model's zero-shot split, for the seen/unseen breakdown.
    split: "test" by default; None = all tracks. A dataset without any split (a table
        with no ``split`` column, GTZAN without list files) is evaluated whole, with a note.
    model: a name for the report (model id or file).
    """
    scores = np.asarray(track_scores, dtype=np.float64)
    expected = (len(dataset.tracks), len(dataset.tags))
    if scores.shape != expected:
        raise DatasetError(
            f"{dataset.name}: scores have shape {scores.shape}, expected {expected} (tracks × tags)"
        )
    if not np.isfinite(scores).all():
        raise DatasetError(f"{dataset.name}: scores contain NaN or infinity")
    notes: list[str] = []
    if split is not None and dataset.splits == [""]:
        notes.append(f"{dataset.name} has no train/valid/test split: all {len(dataset.tracks)} tracks evaluated")
        split = None
    rows = dataset.split_indices(split)
    labels, split_scores = dataset.labels[rows], scores[rows]

    per_tag = tag_retrieval_auc(labels, split_scores, dataset.tags)
    if per_tag.skipped:
        notes.append(
            f"{len(per_tag.skipped)} tag(s) have only one class in this split and are left out of the macros"
        )
    report = QualityReport(
        dataset=dataset.name,
        split=split,
        tags=list(dataset.tags),
        single_label=dataset.single_label,
        per_tag=per_tag,
        annotation_auc=annotation_auc(labels, split_scores),
        labels=labels,
        scores=split_scores,
        dropped_tags=list(dataset.dropped_tags),
        drop_reasons=dict(dataset.drop_reasons),
        n_missing_audio=len(dataset.missing_audio),
        model=model,
        notes=notes,
    )
    if dataset.missing_audio:
        notes.append(f"{len(dataset.missing_audio)} audio file(s) named by the dataset are missing or empty")
    if dataset.single_label:
        true_class = labels.argmax(axis=1)
        report.accuracy = top1_accuracy(true_class, split_scores)
        report.confusion = confusion_matrix(true_class, split_scores.argmax(axis=1), len(dataset.tags))
    if seen_tags is not None or unseen_tags is not None:
        report.seen_tags, report.unseen_tags = set(seen_tags or ()), set(unseen_tags or ())
        by_roc = seen_unseen_breakdown(per_tag.roc_auc_by_tag(), report.seen_tags, report.unseen_tags)
        by_pr = seen_unseen_breakdown(per_tag.pr_auc_by_tag(), report.seen_tags, report.unseen_tags)
        report.seen_unseen = {
            group: {
                "tag_retrieval_auc": by_roc[group]["macro"],
                "pr_auc": by_pr[group]["macro"],
                "n_tags": by_roc[group]["n_tags"],
                "missing": by_roc[group]["missing"],
            }
            for group in ("seen", "unseen")
        }
    return report


# ------------------------------------------------------------------------------ the table


def load_paper_table() -> dict:
    """The paper's Table 1 rows with their source (benchmarks/data/paper_table1.json)."""
    return json.loads(PAPER_TABLE_PATH.read_text(encoding="utf-8"))


def _figure(value) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _drop_summary(report: QualityReport) -> str:
    reasons = Counter(report.drop_reasons.get(tag, "unknown reason") for tag in report.dropped_tags)
    return ", ".join(f"{count} {reason}" for reason, count in reasons.most_common())


def format_table(report: QualityReport) -> str:
    """The report as a text table; rows the paper reports for this dataset get the
    paper's zero-shot and supervised figures beside ours, labelled as the paper's."""
    paper = load_paper_table()
    paper_rows = {row["metric"]: row for row in paper["rows"] if row["dataset"] == report.dataset}
    split = report.split if report.split is not None else "all tracks"
    lines = [
        f"Quality on {report.dataset} ({split}: {report.n_tracks} tracks, {len(report.tags)} tags"
        + (f"; {len(report.dropped_tags)} more dropped: {_drop_summary(report)}" if report.dropped_tags else "")
        + ")" + (f" — model {report.model}" if report.model else "")
        + (" (supervised: its own labels)" if report.supervised else ""),
    ]
    rows = [("tag_retrieval_auc", "tag-retrieval ROC-AUC (macro)", report.tag_retrieval_auc),
            ("pr_auc", "tag-retrieval PR-AUC (macro)", report.pr_auc),
            ("annotation_auc", "annotation ROC-AUC (macro)", report.annotation_auc)]
    if report.single_label:
        rows.append(("accuracy", "top-1 accuracy", report.accuracy))
    if report.seen_unseen:
        for group, figures in report.seen_unseen.items():
            if not figures["n_tags"]:
                continue  # none of this dataset's tags is in that group of the model's split
            rows.append((f"{group}_auc", f"  {group} tags ROC-AUC ({figures['n_tags']} tags)",
                         figures["tag_retrieval_auc"]))
    header = f"{'':34}{'this run':>10}{'paper zero-shot':>17}{'paper supervised':>18}"
    lines += [header, "-" * len(header)]
    for metric, label, value in rows:
        paper_row = paper_rows.get(metric)
        zero_shot = _figure(paper_row["zero_shot"]) if paper_row else ""
        supervised = _figure(paper_row["supervised"]) if paper_row else ""
        lines.append(f"{label:34}{_figure(value):>10}{zero_shot:>17}{supervised:>18}")
    source = paper["source"]
    citation = f"{source['authors'][0]} et al. {source['year']}, arXiv:{source['arxiv']}, {source['table']}"
    if paper_rows:
        for row in paper_rows.values():
            lines.append(f"paper: {row['transfer']}, {row['evaluation']} ({citation})")
    else:
        lines.append(f"paper ({citation}) reports only: "
                     + "; ".join(f"{r['transfer']} {r['metric_label']} {r['zero_shot']:.3f} zero-shot, "
                                 f"{r['supervised']:.3f} supervised" for r in paper["rows"]))
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)


def _macro_over(values: dict, tags: list[str]) -> float:
    finite = [values[t] for t in tags if values.get(t) is not None and math.isfinite(values[t])]
    return float(np.mean(finite)) if finite else float("nan")


def format_comparison(reports: list[QualityReport], names: list[str]) -> str:
    """Several models on the same tracks as one table: a tagger as the supervised row beside
    the zero-shot rows, then the paper's Table 1 rows. Each row's macros are over the tags it
    scores; a zero-shot row is repeated on a supervised row's tags, so like meets like."""
    total = len(reports[0].tags) + len(reports[0].dropped_tags)
    header = f"{'':34}{'kind':<12}{'tags':>9}{'ROC-AUC':>9}{'PR-AUC':>9}{'annot.':>9}{'top-1':>8}"
    lines = [f"Side by side on {reports[0].dataset} ({reports[0].n_tracks} tracks; tag-retrieval ROC-AUC and PR-AUC "
             "macro over each row's tags, annotation ROC-AUC, top-1 accuracy):", header, "-" * len(header)]

    def row(label, kind, n_tags, roc, pr, annotation, accuracy=None):
        tags = f"{n_tags} of {total}" if isinstance(n_tags, int) else n_tags
        lines.append(f"{label[:33]:34}{kind:<12}{tags:>9}{_figure(roc):>9}{_figure(pr):>9}{_figure(annotation):>9}"
                     f"{_figure(accuracy) if accuracy is not None else '':>8}".rstrip())

    supervised = [(name, r) for name, r in zip(names, reports) if r.supervised]
    for name, report in zip(names, reports):
        row(name, "supervised" if report.supervised else "zero-shot", len(report.tags), report.tag_retrieval_auc,
            report.pr_auc, report.annotation_auc, report.accuracy if report.single_label else None)
        if report.supervised:
            continue
        for tagger, covered in supervised:
            tags = [t for t in covered.tags if t in report.tags]
            if tags and tags != report.tags:
                columns = [report.tags.index(t) for t in tags]
                row(f"  on {tagger}'s tags", "", len(tags), _macro_over(report.per_tag.roc_auc_by_tag(), tags),
                    _macro_over(report.per_tag.pr_auc_by_tag(), tags),
                    annotation_auc(report.labels[:, columns], report.scores[:, columns]))
    paper = load_paper_table()
    source = paper["source"]
    for paper_row in paper["rows"]:
        for kind in ("zero_shot", "supervised"):
            value = paper_row[kind]
            is_accuracy = paper_row["metric"] == "accuracy"
            row(f"paper {source['table']}, {paper_row['transfer']}", kind.replace("_", "-"), "",
                None if is_accuracy else value, None, None, value if is_accuracy else None)
    lines.append(f"paper: {source['authors'][0]} et al. {source['year']}, arXiv:{source['arxiv']}; "
                 + "; ".join(f"{r['transfer']}: {r['evaluation']}" for r in paper["rows"]))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the files


def write_report(report: QualityReport, out_dir: str | Path) -> list[Path]:
    """Write ``quality.json``, ``per_tag.csv``, ``predictions.csv`` (when the report has
    per-track predictions) and PNG figures into ``out_dir``; return
    the paths written. Without matplotlib the figures are skipped and the report's notes say so."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    per_tag_csv = out_dir / "per_tag.csv"
    positives = report.labels.sum(axis=0)
    with atomic_file(per_tag_csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tag", "roc_auc", "pr_auc", "n_positive", "group"])
        for j, tag in enumerate(report.tags):
            writer.writerow([tag, _csv_figure(report.per_tag.roc_auc[j]), _csv_figure(report.per_tag.pr_auc[j]),
                             int(positives[j]), report.tag_group(tag)])
    written.append(per_tag_csv)
    if report.predictions is not None:
        written.append(write_predictions(report.predictions, out_dir / "predictions.csv"))

    from mre.benchmarks.quality_figures import write_figures  # matplotlib only when figures are drawn

    figures, figure_notes = write_figures(report, out_dir)
    written += figures
    report.notes += figure_notes  # printed with the table too, not only kept in the JSON
    document = report.to_json()
    document["files"] = [p.name for p in written]
    quality_json = out_dir / "quality.json"
    write_text_atomic(quality_json, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return [quality_json] + written


def _csv_figure(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.6f}"
