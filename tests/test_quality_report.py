"""Quality evaluation and the report files, on tiny datasets with scores of known quality."""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mre.training.datasets import Dataset, DatasetError, TrackRef, read_gtzan
from mre.benchmarks.quality import evaluate, format_table, load_paper_table, write_report

sklearn_metrics = pytest.importorskip("sklearn.metrics")

TAGS = ["guitar", "piano", "rock", "jazz", "dub", "polka"]


def multi_label_dataset(name="mtat", n_tracks=90, with_split=True, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.random((n_tracks, len(TAGS))) < 0.3
    labels[:, 5] = False  # "polka": no track has it, so it cannot be scored
    splits = ["train", "valid", "test"] if with_split else [""]
    tracks = [TrackRef(Path(f"/music/{i:03d}.mp3"), splits[i % len(splits)]) for i in range(n_tracks)]
    return Dataset(name, Path("/music"), tracks, list(TAGS), labels, False, ["harpsichordz"],
                   {"harpsichordz": "no word vector"})


def informative_scores(labels, seed=1, signal=1.5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=labels.shape) + signal * labels


def test_multi_label_figures_match_sklearn_on_the_test_split():
    dataset = multi_label_dataset()
    scores = informative_scores(dataset.labels)
    report = evaluate(dataset, scores, seen_tags={"guitar", "piano", "rock"}, unseen_tags={"jazz", "dub", "polka"})
    test_rows = dataset.split_indices("test")
    y, s = dataset.labels[test_rows], scores[test_rows]
    assert report.n_tracks == len(test_rows) == 30
    assert report.tag_retrieval_auc == pytest.approx(
        sklearn_metrics.roc_auc_score(y[:, :5], s[:, :5], average="macro"), abs=1e-12
    )
    assert report.pr_auc == pytest.approx(
        sklearn_metrics.average_precision_score(y[:, :5], s[:, :5], average="macro"), abs=1e-12
    )
    assert report.tag_retrieval_auc > 0.75  # the scores carry the labels
    document = report.to_json()
    json.dumps(document, allow_nan=False)  # strict JSON: NaN became null
    for key in ("tag_retrieval_auc", "annotation_auc", "per_tag", "pr_auc", "per_tag_pr_auc",
                "n_tracks", "n_tags", "dropped_tags", "seen", "unseen"):
        assert key in document
    assert "accuracy" not in document
    assert set(document["per_tag"]) == {"guitar", "piano", "rock", "jazz", "dub"}
    assert document["skipped_tags"] == ["polka"]
    assert document["dropped_tags"] == ["harpsichordz"]
    assert document["unseen"]["n_tags"] == 2 and document["unseen"]["missing"] == ["polka"]
    expected_unseen = np.mean([sklearn_metrics.roc_auc_score(y[:, j], s[:, j]) for j in (3, 4)])
    assert document["unseen"]["tag_retrieval_auc"] == pytest.approx(expected_unseen, abs=1e-12)


def test_random_scores_sit_near_chance():
    dataset = multi_label_dataset(n_tracks=3000, seed=3)
    report = evaluate(dataset, np.random.default_rng(4).normal(size=dataset.labels.shape))
    assert abs(report.tag_retrieval_auc - 0.5) < 0.05
    assert abs(report.annotation_auc - 0.5) < 0.05


def make_gtzan(root, per_genre=4):
    genres = ["blues", "classical", "jazz", "metal"]
    for genre in genres:
        folder = root / "genres" / genre
        folder.mkdir(parents=True)
        for n in range(per_genre):
            sf.write(folder / f"{genre}.{n:05d}.wav", np.zeros(800, np.float32), 8000)
    for split, take in (("train", range(0, 2)), ("valid", range(2, 3)), ("test", range(3, 4))):
        lines = [f"{g}/{g}.{n:05d}.wav" for g in genres for n in take]
        (root / f"{split}_filtered.txt").write_text("\n".join(lines) + "\n")
    return read_gtzan(root)


def test_single_label_report_files(tmp_path):
    dataset = make_gtzan(tmp_path / "gtzan", per_genre=12)
    dataset_test = dataset.split_indices("test")
    assert len(dataset_test) == 4
    # Scores that pick the true genre for all test tracks but one, which goes to "jazz".
    scores = np.where(dataset.labels, 1.0, 0.0)
    wrong = dataset_test[0]  # a blues track
    scores[wrong, dataset.tags.index("jazz")] = 2.0
    report = evaluate(dataset, scores, model="musicnn-msd")
    assert report.accuracy == pytest.approx(0.75)
    assert report.confusion[0, dataset.tags.index("jazz")] == 1 and report.confusion.trace() == 3

    written = write_report(report, tmp_path / "out")
    names = {p.name for p in written}
    assert {"quality.json", "per_tag.csv", "per_tag_auc.png", "roc_curves.png", "confusion.png"} <= names
    for png in ("per_tag_auc.png", "roc_curves.png", "confusion.png"):
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    document = json.loads((tmp_path / "out" / "quality.json").read_text())
    assert document["accuracy"] == pytest.approx(0.75)
    assert document["model"] == "musicnn-msd" and document["classes"] == dataset.tags
    assert {"tag_retrieval_auc", "annotation_auc", "per_tag", "confusion"} <= set(document)
    with open(tmp_path / "out" / "per_tag.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["tag"] for r in rows] == dataset.tags
    assert float(rows[1]["roc_auc"]) == pytest.approx(document["per_tag"]["classical"])


def test_figures_are_skipped_with_a_note_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    dataset = multi_label_dataset()
    report = evaluate(dataset, informative_scores(dataset.labels))
    written = write_report(report, tmp_path)
    assert sorted(p.name for p in written) == ["per_tag.csv", "quality.json"]
    document = json.loads((tmp_path / "quality.json").read_text())
    assert any("matplotlib is not installed" in note for note in document["notes"])
    # the printed table says it too, in one line with how to get the figures
    note = [line for line in format_table(report).splitlines() if "matplotlib" in line]
    assert len(note) == 1 and "pip install" in note[0]


def test_figures_come_with_a_plain_install_and_no_start_up_pays_for_matplotlib():
    import importlib.metadata
    import subprocess

    requirements = importlib.metadata.requires("music-retrieval-engine")
    assert any(r.startswith("matplotlib") and "extra ==" not in r for r in requirements)
    probe = "import sys; from mre.cli.main import main; print('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_table_puts_the_papers_rows_beside_ours():
    paper = load_paper_table()
    assert paper["source"]["arxiv"] == "1906.08615"
    mtat = evaluate(multi_label_dataset("mtat"), informative_scores(multi_label_dataset().labels))
    table = format_table(mtat)
    line = next(l for l in table.splitlines() if l.startswith("tag-retrieval ROC-AUC"))
    assert f"{mtat.tag_retrieval_auc:.3f}" in line and "0.739" in line and "0.902" in line
    assert "paper zero-shot" in table and "MSD -> MTAT" in table and "arXiv:1906.08615" in table

    gtzan = multi_label_dataset("gtzan")
    gtzan_report = evaluate(gtzan, informative_scores(gtzan.labels))
    assert "0.739" not in format_table(gtzan_report).split("paper:")[0]

    own = multi_label_dataset("my_library")
    own_table = format_table(evaluate(own, informative_scores(own.labels)))
    assert "reports only" in own_table and "0.731" in own_table


def test_gtzan_table_shows_accuracy_beside_the_paper(tmp_path):
    dataset = make_gtzan(tmp_path)
    report = evaluate(dataset, np.where(dataset.labels, 1.0, 0.0))
    line = next(l for l in format_table(report).splitlines() if l.startswith("top-1 accuracy"))
    assert "1.000" in line and "0.731" in line and "0.720" in line


def test_unsplit_dataset_is_evaluated_whole_with_a_note():
    dataset = multi_label_dataset("my_library", with_split=False)
    report = evaluate(dataset, informative_scores(dataset.labels))
    assert report.split is None and report.n_tracks == 90
    assert any("no train/valid/test split" in note for note in report.notes)


def test_scores_of_the_wrong_shape_are_refused():
    dataset = multi_label_dataset()
    with pytest.raises(DatasetError, match=r"expected \(90, 6\)"):
        evaluate(dataset, np.zeros((90, 5)))
    with pytest.raises(DatasetError, match="no tracks in split 'holdout'"):
        evaluate(dataset, np.zeros((90, 6)), split="holdout")
