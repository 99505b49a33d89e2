"""PNG figures of a quality report: per-tag AUC bars, ROC curves, a confusion matrix.

matplotlib is imported here, only when figures are drawn (no command's start-up pays for
it), with the Agg backend so no display is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mre.training.metrics import NO_MATPLOTLIB, roc_curve

# Past this many tags a bar per tag is unreadable (MSD has 1,126 in GloVe): show the
# best and worst halves of this many instead.
MAX_BARS = 60
# ROC curves of the best, median and worst scored tags, plus one between: enough to see
# the spread without a tangle of lines.
N_ROC_TAGS = 4
GROUP_COLOURS = {"seen": "tab:blue", "unseen": "tab:orange", "": "tab:gray"}


def write_figures(report, out_dir: Path) -> tuple[list[Path], list[str]]:
    """Draw the report's figures into ``out_dir``; return (paths written, notes)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        return [], [NO_MATPLOTLIB]

    scored = [j for j in range(len(report.tags)) if np.isfinite(report.per_tag.roc_auc[j])]
    if not scored:
        return [], ["figures skipped: no tag has both positive and negative tracks in this split"]
    written = [_per_tag_bars(plt, Patch, report, scored, out_dir / "per_tag_auc.png"),
               _roc_curves(plt, report, scored, out_dir / "roc_curves.png")]
    if report.single_label and report.confusion is not None:
        written.append(_confusion(plt, report, out_dir / "confusion.png"))
    return written, []


def _title(report, what: str) -> str:
    model = f" — {report.model}" if report.model else ""
    split = report.split if report.split is not None else "all tracks"
    return f"{what}: {report.dataset} ({split}){model}"


def _per_tag_bars(plt, Patch, report, scored: list[int], path: Path) -> Path:
    auc = report.per_tag.roc_auc
    order = sorted(scored, key=lambda j: auc[j])
    shown_note = ""
    if len(order) > MAX_BARS:
        half = MAX_BARS // 2
        shown_note = f" ({half} worst and {half} best of {len(order)} tags)"
        order = order[:half] + order[-half:]
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.22 * len(order)))
    colours = [GROUP_COLOURS[report.tag_group(report.tags[j])] for j in order]
    ax.barh(range(len(order)), [auc[j] for j in order], color=colours)
    ax.set_yticks(range(len(order)), [report.tags[j] for j in order], fontsize=8)
    handles = [ax.axvline(0.5, color="black", linestyle=":", linewidth=1, label="chance"),
               ax.axvline(report.tag_retrieval_auc, color="tab:red", linestyle="--", linewidth=1,
                          label=f"macro {report.tag_retrieval_auc:.3f}")]
    for group in ("seen", "unseen"):
        if any(report.tag_group(report.tags[j]) == group for j in order):
            handles.append(Patch(color=GROUP_COLOURS[group], label=f"{group} tags"))
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(order) - 0.4)
    ax.set_xlabel("tag-retrieval ROC-AUC")
    ax.set_title(_title(report, "Per-tag ROC-AUC") + shown_note, fontsize=9)
    # outside the axes: bars reach up to 1.0 and a legend inside would hide them
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _roc_curves(plt, report, scored: list[int], path: Path) -> Path:
    ranked = sorted(scored, key=lambda j: report.per_tag.roc_auc[j], reverse=True)
    picks = sorted({ranked[round(q * (len(ranked) - 1))] for q in np.linspace(0, 1, N_ROC_TAGS)},
                   key=lambda j: -report.per_tag.roc_auc[j])
    fig, ax = plt.subplots(figsize=(5, 5))
    for j in picks:
        fpr, tpr = roc_curve(report.labels[:, j], report.scores[:, j])
        ax.plot(fpr, tpr, label=f"{report.tags[j]} ({report.per_tag.roc_auc[j]:.3f})")
    ax.plot([0, 1], [0, 1], color="black", linestyle=":", linewidth=1)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(_title(report, "ROC, best to worst tags"), fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _confusion(plt, report, path: Path) -> Path:
    counts = report.confusion
    n = len(report.tags)
    fig, ax = plt.subplots(figsize=(1.5 + 0.55 * n, 1.2 + 0.5 * n))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(n), report.tags, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), report.tags, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = counts.max() / 2 if counts.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if counts[i, j] > threshold else "black")
    ax.set_title(_title(report, f"Confusion, accuracy {report.accuracy:.3f}"), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
