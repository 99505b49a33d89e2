"""The dataset readers on tiny generated copies of the MTAT, GTZAN and tracks-table layouts."""

import csv

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from mre.training.datasets import DatasetError, read_gtzan, read_mtat, read_table, read_tracks_table

SAMPLE_RATE = 16000


def _write_tone(path, frequency, fmt=None, seconds=0.25):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    sf.write(path, (0.2 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), SAMPLE_RATE, format=fmt)


class FakeWordSpace:
    """Only what the readers ask of a word space: ``has(word)``."""

    def __init__(self, words):
        self.words = set(words)

    def has(self, word):
        return word in self.words


# MTAT's header spells tags lower-case with spaces ("no vocals"); 4 of them here + paths.
MTAT_TAGS = ["guitar", "no vocals", "harpsichordz", "rock", "sitar", "opera"]
# (hex folder, tags) per clip; frequencies: guitar 5, no vocals 4, harpsichordz 3, rock 2, sitar 1, opera 0
MTAT_CLIPS = [
    ("0", {"guitar", "no vocals", "harpsichordz"}),
    ("5", {"guitar", "rock"}),
    ("b", {"guitar", "no vocals"}),
    ("c", {"guitar", "harpsichordz", "sitar"}),
    ("d", {"guitar", "no vocals", "rock"}),
    ("f", {"no vocals", "harpsichordz"}),
    ("e", set()),
]


def make_mtat(root, quote_cells=False, skip_audio_of=()):
    header = ["clip_id"] + MTAT_TAGS + ["mp3_path"]
    lines = []
    for clip_id, (folder, tags) in enumerate(MTAT_CLIPS):
        relative = f"{folder}/artist-album-{clip_id:02d}-title-0-29.mp3"
        if clip_id not in skip_audio_of:
            _write_tone(root / relative, 220 + 40 * clip_id, fmt="MP3")
        lines.append([str(clip_id)] + [str(int(t in tags)) for t in MTAT_TAGS] + [relative])
    quoting = csv.QUOTE_ALL if quote_cells else csv.QUOTE_MINIMAL
    with open(root / "annotations_final.csv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=quoting)
        writer.writerow(header)
        writer.writerows(lines)
    return root


@pytest.mark.parametrize("quote_cells", [False, True])
def test_mtat_top_n_splits_and_labels(tmp_path, quote_cells):
    dataset = read_mtat(make_mtat(tmp_path, quote_cells), top_n=4)
    assert dataset.tags == ["guitar", "no vocals", "harpsichordz", "rock"]
    assert [t.split for t in dataset.tracks] == ["train", "train", "train", "valid", "test", "test", "test"]
    assert not dataset.single_label and dataset.missing_audio == []
    assert dataset.labels.shape == (7, 4)
    np.testing.assert_array_equal(dataset.labels[:, 0], [1, 1, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(dataset.labels[4], [1, 1, 0, 1])
    assert not dataset.labels[6].any()  # a clip with no top tag stays, as a negative
    assert dataset.tracks[0].path == tmp_path / "0" / "artist-album-00-title-0-29.mp3"
    audio, rate = sf.read(dataset.tracks[0].path)
    assert rate == SAMPLE_RATE and audio.size > 0
    np.testing.assert_array_equal(dataset.split_indices("test"), [4, 5, 6])
    test_only = dataset.subset("test")
    assert [t.split for t in test_only.tracks] == ["test"] * 3
    np.testing.assert_array_equal(test_only.labels, dataset.labels[4:])


def test_mtat_drops_tags_without_word_vectors_and_keeps_known_phrases(tmp_path):
    words = FakeWordSpace({"guitar", "no", "vocals", "rock", "sitar"})
    dataset = read_mtat(make_mtat(tmp_path), word_space=words, top_n=5)
    assert dataset.tags == ["guitar", "no vocals", "rock", "sitar"]
    assert dataset.dropped_tags == ["harpsichordz"]
    assert dataset.drop_reasons["harpsichordz"] == "no word vector"
    assert dataset.labels.shape == (7, 4)


def test_mtat_missing_audio_is_reported_not_fatal(tmp_path):
    dataset = read_mtat(make_mtat(tmp_path, skip_audio_of=(2, 5)), top_n=3)
    assert len(dataset.tracks) == 5
    assert [p.name for p in dataset.missing_audio] == ["artist-album-02-title-0-29.mp3", "artist-album-05-title-0-29.mp3"]
    assert dataset.labels.shape == (5, 3)


def test_mtat_wrong_layout_says_which_file(tmp_path):
    with pytest.raises(DatasetError, match="annotations_final.csv"):
        read_mtat(tmp_path)
    (tmp_path / "annotations_final.csv").write_text("clip_id,guitar,mp3_path\n1,0,0/a.mp3\n")
    (tmp_path / "0").mkdir()
    with pytest.raises(DatasetError, match="tab-separated"):
        read_mtat(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        read_mtat(tmp_path / "nowhere")


GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]


def make_gtzan(root, per_genre=3):
    for g, genre in enumerate(GENRES):
        for n in range(per_genre):
            _write_tone(root / "genres" / genre / f"{genre}.{n:05d}.wav", 110 * (g + 1) + n)
    return root


def test_gtzan_with_split_lists(tmp_path):
    root = make_gtzan(tmp_path / "gtzan")
    lists = tmp_path / "splits"
    lists.mkdir()
    (lists / "train_filtered.txt").write_text("".join(f"{g}/{g}.00000.wav\n" for g in GENRES))
    (lists / "valid_filtered.txt").write_text("genres/jazz/jazz.00001.wav\n")
    (lists / "test_filtered.txt").write_text("blues/blues.00002.wav\nrock/rock.00002.wav\nrock/rock.00009.wav\n")
    dataset = read_gtzan(root, split_dir=lists)
    assert dataset.tags == GENRES and dataset.single_label
    assert len(dataset.tracks) == 13
    assert [p.name for p in dataset.missing_audio] == ["rock.00009.wav"]
    test_rows = dataset.split_indices("test")
    assert [dataset.tags[c] for c in dataset.class_indices()[test_rows]] == ["blues", "rock"]
    assert dataset.labels.sum(axis=1).tolist() == [1] * 13
    valid = dataset.tracks[dataset.split_indices("valid")[0]]
    assert valid.path == root / "genres" / "jazz" / "jazz.00001.wav"


def test_gtzan_without_split_lists_is_one_unsplit_set(tmp_path):
    dataset = read_gtzan(make_gtzan(tmp_path, per_genre=1))
    assert len(dataset.tracks) == 10 and dataset.splits == [""]
    with pytest.raises(DatasetError, match="no tracks in split 'test'"):
        dataset.split_indices("test")


def test_gtzan_wrong_layout(tmp_path):
    with pytest.raises(DatasetError, match="genres"):
        read_gtzan(tmp_path)
    make_gtzan(tmp_path, per_genre=1)
    with pytest.raises(DatasetError, match="test_filtered.txt"):
        read_gtzan(tmp_path, split_dir=tmp_path)
    for name in ("train_filtered.txt", "valid_filtered.txt", "test_filtered.txt"):
        (tmp_path / name).write_text("polka/polka.00000.wav\n")
    with pytest.raises(DatasetError, match="polka"):
        read_gtzan(tmp_path)


def _table_rows(root):
    rows = [
        ("audio/a.ogg", "rock|guitar", "train"),
        ("audio/b.ogg", "rock", "train"),
        ("audio/c.ogg", "jazz|piano|rock", "test"),
        ("audio/d.ogg", " piano | zzzq ", "test"),
        ("audio/gone.ogg", "jazz", "test"),
    ]
    for path, _, _ in rows[:4]:
        _write_tone(root / path, 300, fmt="OGG")
    return rows


def test_table_csv_with_split_and_word_filter(tmp_path):
    rows = _table_rows(tmp_path)
    with open(tmp_path / "tracks.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "tags", "split"])
        writer.writerows(rows)
    dataset = read_table(tmp_path, word_space=FakeWordSpace({"rock", "jazz", "piano", "guitar"}))
    # by number of tracks in the table (missing audio included), then by name
    assert dataset.tags == ["rock", "jazz", "piano", "guitar"]
    assert dataset.dropped_tags == ["zzzq"]
    assert [t.split for t in dataset.tracks] == ["train", "train", "test", "test"]
    assert [p.name for p in dataset.missing_audio] == ["gone.ogg"]
    np.testing.assert_array_equal(dataset.labels[2], [1, 1, 1, 0])
    np.testing.assert_array_equal(dataset.labels[3], [0, 0, 1, 0])


def test_table_parquet_without_split_and_top_n(tmp_path):
    rows = _table_rows(tmp_path)
    table = pa.table({"path": [r[0] for r in rows], "tags": [r[1] for r in rows]})
    pq.write_table(table, tmp_path / "msd_lastfm.parquet")
    dataset = read_tracks_table(tmp_path / "msd_lastfm.parquet", top_n=2)
    assert dataset.tags == ["rock", "jazz"]  # jazz and piano: 2 tracks each, jazz first by name
    assert set(dataset.dropped_tags) == {"piano", "guitar", "zzzq"}
    assert dataset.splits == [""]
    assert dataset.tracks[0].path == tmp_path / "audio" / "a.ogg"


def test_table_wrong_layout(tmp_path):
    with pytest.raises(DatasetError, match="tracks.csv"):
        read_table(tmp_path)
    (tmp_path / "tracks.csv").write_text("file,labels\na.ogg,rock\n")
    with pytest.raises(DatasetError, match="lacks column"):
        read_table(tmp_path)
    (tmp_path / "tracks.csv").write_bytes("path,tags\na.ogg,caf\u00e9 rock\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"tracks.csv is not UTF-8 text \(byte 0xe9 at offset 19\)"):
        read_table(tmp_path)


def test_a_spreadsheets_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    rows = _table_rows(tmp_path)
    text = "path,tags,split\n" + "".join(f"{p},{t},{s}\n" for p, t, s in rows)
    (tmp_path / "tracks.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    dataset = read_table(tmp_path, word_space=FakeWordSpace({"rock", "jazz", "piano", "guitar"}))
    assert dataset.tags == ["rock", "jazz", "piano", "guitar"] and len(dataset.tracks) == 4
