"""`mre bench quality` on tiny generated datasets in the real layouts, `mre bench speed` at tiny sizes."""
from __future__ import annotations

import json

import pytest
import soundfile as sf

from mre.benchmarks.synth import ClipSpec, render


def _piano(seed):
    return render(ClipSpec(bpm=70, tonic="C", mode="major", instruments=("piano",), drums="none", loudness_db=-22,
                           seconds=4.0, seed=seed))


def _band(seed):
    return render(ClipSpec(bpm=150, tonic="E", mode="minor", instruments=("guitar", "bass"), drums="rock",
                           loudness_db=-11, seconds=4.0, seed=seed))


@pytest.fixture(scope="module")
def gtzan_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("gtzan")
    lists = {"train": [], "valid": [], "test": []}
    for genre, make in (("classical", _piano), ("metal", _band)):
        (root / "genres" / genre).mkdir(parents=True)
        for i in range(4):
            name = f"{genre}/{genre}.{i:05d}.wav"
            sf.write(root / "genres" / name, make(i), 16000)
            lists["test" if i < 3 else "train"].append(name)
    for split, names in lists.items():
        (root / f"{split}_filtered.txt").write_text("\n".join(names) + "\n")
    return root


def test_gtzan_quality_json(cli, gtzan_root, tmp_path):
    result = cli("bench", "quality", "--dataset", "gtzan", "--root", gtzan_root, "--json", "--out", tmp_path,
                 "--workers", "0")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"tag_retrieval_auc", "annotation_auc", "per_tag", "accuracy"} <= set(report)
    assert set(report["per_tag"]) == {"classical", "metal"}
    assert report["n_tracks"] == 6  # the test split only
    assert 0.0 <= report["accuracy"] <= 1.0
    assert (tmp_path / "quality.json").exists() and (tmp_path / "per_tag.csv").exists()


def test_table_quality_prints_the_paper_beside(cli, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    rows = ["path,tags"]
    for i in range(3):
        sf.write(root / f"p{i}.wav", _piano(10 + i), 16000)
        sf.write(root / f"b{i}.flac", _band(20 + i), 16000)
        rows += [f"p{i}.wav,piano|quiet", f"b{i}.flac,drums|guitar|loud"]
    (root / "tracks.csv").write_text("\n".join(rows) + "\n")
    result = cli("bench", "quality", "--dataset", "table", "--root", root, "--out", tmp_path / "out", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "paper" in result.stdout.lower()
    data = json.loads((tmp_path / "out" / "quality.json").read_text())
    assert set(data["per_tag"]) == {"piano", "quiet", "drums", "guitar", "loud"}


def test_bad_layout_is_one_line(cli, tmp_path):
    result = cli("bench", "quality", "--dataset", "mtat", "--root", tmp_path)
    assert result.exit_code != 0 and result.stderr.startswith("Error: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_speed_at_tiny_sizes(cli, music_library, tmp_path):
    result = cli("bench", "speed", "--library", music_library, "--sizes", "2000", "--reindex-files", "200",
                 "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["embedding"]["end_to_end_x_realtime"] > 0
    assert report["search"]["sizes"][0]["engine"]["recall_at_10"] >= 0.95
    assert (tmp_path / "speed.json").exists()


def test_folder_quality_scores_mood_words_with_attributes_as_mre_query_does(cli, tmp_path):
    # "calm" and "energetic" are no tagger label: mre query weighs tempo, loudness and onset
    # density for them, and the benchmark must score them the same way, saying so.
    root = tmp_path / "moods"
    for mood, make in (("calm", _piano), ("energetic", _band)):
        (root / mood).mkdir(parents=True)
        for i in range(3):
            sf.write(root / mood / f"{mood}{i}.wav", make(30 + i), 16000)
    result = cli("bench", "quality", "--dataset", "folders", "--root", root, "--json", "--out", tmp_path / "out",
                 "--workers", "0")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    note = next(n for n in report["notes"] if "weigh musical attributes" in n)
    assert "2 of 2 tags" in note and "without them" in note
    assert report["per_tag"] == {"calm": 1.0, "energetic": 1.0}  # tag-retrieval ROC-AUC
