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


@pytest.fixture(scope="module")
def instrument_folders(tmp_path_factory):
    """Folder tags two of which are musicnn-mtt labels (piano, guitar) and one that is not (calm)."""
    root = tmp_path_factory.mktemp("instruments")
    for folder, make in (("piano", _piano), ("guitar", _band), ("calm", _piano)):
        (root / folder).mkdir()
        for i in range(2):
            sf.write(root / folder / f"{folder}{i}.wav", make(40 + i), 16000)
    return root


def test_a_tagger_is_the_supervised_row_on_the_tags_among_its_labels(cli, instrument_folders, tmp_path):
    args = ("bench", "quality", "--dataset", "folders", "--root", instrument_folders, "--out", tmp_path, "--workers", "0",
            "--model", "musicnn-mtt", "--model", "mre-zs-musicnn")
    report = json.loads(cli(*args, "--json").stdout)["models"]
    tagger, zero_shot = report
    assert tagger["kind"] == "supervised" and zero_shot["kind"] == "zero-shot"
    assert set(tagger["per_tag"]) == {"piano", "guitar"}  # calm is no musicnn-mtt label
    assert tagger["dropped_tags"] == ["calm"] and "musicnn-mtt" in tagger["drop_reasons"]["calm"]
    assert any("excluded from its macro figures" in note and "piano" in note for note in tagger["notes"])
    assert set(zero_shot["per_tag"]) == {"piano", "guitar", "calm"}
    printed = cli(*args).stdout
    table = printed[printed.index("Side by side"):].splitlines()
    assert any(line.startswith("musicnn-mtt") and "supervised" in line and "2 of 3" in line for line in table)
    assert any(line.startswith("mre-zs-musicnn") and "zero-shot" in line and "3 of 3" in line for line in table)
    assert any(line.lstrip().startswith("on musicnn-mtt's tags") and "2 of 3" in line for line in table)
    assert sum(line.startswith("paper Table 1") for line in table) == 4  # the paper's rows beside


def test_a_tagger_matches_tags_by_the_word_layers_tokens():
    from mre.benchmarks.quality_run import tagger_columns
    from mre.embedder.models.registry import MSD_LABELS
    from mre.embedder.words.space import WordSpace, load_word_vectors

    words = WordSpace(load_word_vectors(None))
    columns = tagger_columns(list(MSD_LABELS), ["hip hop", "Hip-Hop", "hiphop", "mellow", "female vocalists", "calm"],
                             words)
    hip_hop = MSD_LABELS.index("Hip-Hop")
    assert columns == {"hip hop": hip_hop, "Hip-Hop": hip_hop, "hiphop": hip_hop, "mellow": MSD_LABELS.index("Mellow"),
                       "female vocalists": MSD_LABELS.index("female vocalists")}


def test_a_tagger_with_none_of_the_tags_is_one_line(cli, tmp_path):
    root = tmp_path / "moods"
    (root / "tender").mkdir(parents=True)
    sf.write(root / "tender" / "t.wav", _piano(1), 16000)
    result = cli("bench", "quality", "--dataset", "folders", "--root", root, "--model", "musicnn-mtt", "--out", tmp_path)
    assert result.exit_code != 0 and result.stderr.startswith("Error: ") and "musicnn-mtt" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_per_track_predictions_from_the_dataset_tags_and_the_vocabulary(cli, instrument_folders, tmp_path):
    import csv

    result = cli("bench", "quality", "--dataset", "folders", "--root", instrument_folders, "--out", tmp_path,
                 "--workers", "0", "--threshold", "0.1")
    assert result.exit_code == 0, result.output
    assert "Per-track predictions, tags scoring 0.1 or more" in result.stdout
    assert "    dataset:" in result.stdout and "    vocabulary:" in result.stdout
    with open(tmp_path / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and set(rows[0]) == {"path", "source", "tag", "score"}
    assert {r["source"] for r in rows} == {"dataset", "vocabulary"}
    assert all(float(r["score"]) >= 0.1 for r in rows)
    assert {r["tag"] for r in rows if r["source"] == "dataset"} <= {"piano", "guitar", "calm"}
    per_track = {}
    for r in rows:
        per_track.setdefault((r["path"], r["source"]), []).append(float(r["score"]))
    assert all(scores == sorted(scores, reverse=True) for scores in per_track.values())  # best first
    assert json.loads((tmp_path / "quality.json").read_text())["predictions"]["threshold"] == 0.1
    # threshold 0: every dataset tag of every track
    cli("bench", "quality", "--dataset", "folders", "--root", instrument_folders, "--out", tmp_path / "all",
        "--workers", "0", "--threshold", "0")
    with open(tmp_path / "all" / "predictions.csv", newline="") as handle:
        assert sum(r["source"] == "dataset" for r in csv.DictReader(handle)) == 6 * 3


def test_a_tag_with_a_word_the_word_vectors_lack_is_skipped_and_named(cli, tmp_path):
    """Tags are scored as `mre tags` scores them (models.tag_space): "qzxvj metal" is not scored
    as "metal" under another name, it is left out and the report says so."""
    root = tmp_path / "gtzan"
    for genre, make in (("classical", _piano), ("metal", _band), ("qzxvj metal", _band)):
        (root / "genres" / genre).mkdir(parents=True)
        for i in range(2):
            sf.write(root / "genres" / genre / f"{genre}.{i:05d}.wav", make(i), 16000)
    result = cli("bench", "quality", "--dataset", "gtzan", "--root", root, "--json", "--workers", "0")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["per_tag"]) == {"classical", "metal"}
    assert report["dropped_tags"] == ["qzxvj metal"] and "word vectors" in report["drop_reasons"]["qzxvj metal"]
    assert any('"qzxvj metal"' in note and "2 track(s) are left out" in note for note in report["notes"])
    assert report["n_tracks"] == 4  # a track of a skipped class counts neither as right nor as wrong


def test_speed_sizes_that_are_not_whole_numbers_are_one_line_before_anything_runs(cli):
    for sizes in ("abc", "0", "1e5", ""):
        result = cli("bench", "speed", "--sizes", sizes)
        assert result.exit_code == 2 and "whole numbers of vectors separated by commas" in result.output, result.output
