"""training.choose_word_branch's readings of a word the head never learnt, on a stand-in model
(its tag rows are the word vectors themselves), so the readings can be checked by hand."""
from __future__ import annotations

import numpy as np
import pytest

from mre.training.choose_word_branch import main, unseen_matrix


class _Words:
    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors

    def phrase_matrix(self, texts):
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)


class _Model:
    def __init__(self, words: _Words):
        self.words = words

    def tag_matrix(self, tags):
        rows = self.words.phrase_matrix(tags)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True), list(tags)


def _setting():
    rng = np.random.default_rng(0)
    words = _Words({name: rng.standard_normal(6) for name in ("a", "b", "c", "d", "new")})
    return _Model(words), words


def test_the_grid_cell_of_the_shipped_settings_is_the_shipped_reading():
    model, words = _setting()
    shipped, kept = unseen_matrix(model, words, ["new"], ["a", "b", "c", "d"], "conse")
    cell, _ = unseen_matrix(model, words, ["new"], ["a", "b", "c", "d"], "conse-glove-k8-t0.05")
    assert kept == ["new"]
    np.testing.assert_allclose(cell, shipped, rtol=0, atol=1e-6)


def test_one_neighbour_reads_a_word_as_its_nearest_seen_tag():
    model, words = _setting()
    seen = ["a", "b", "c", "d"]
    reading, _ = unseen_matrix(model, words, ["new"], seen, "conse-glove-k1-t0.05")
    rows, _ = model.tag_matrix(seen)
    unit_new = words.vectors["new"] / np.linalg.norm(words.vectors["new"])
    nearest = int(np.argmax(rows @ unit_new))
    np.testing.assert_allclose(reading[0], rows[nearest], rtol=0, atol=1e-6)


def test_calibrated_reading_divides_each_neighbour_by_the_spread_of_its_scores():
    eye = np.eye(6)
    words = _Words({"a": eye[0], "b": eye[1], "c": -eye[0], "d": -eye[1], "new": eye[0] + eye[1]})
    model, seen = _Model(words), ["a", "b", "c", "d"]
    # training clips on which "a" scores with ten times the spread of "b"
    rng = np.random.default_rng(1)
    clips = np.zeros((200, 6))
    clips[:, 0], clips[:, 1] = 10 * rng.standard_normal(200), rng.standard_normal(200)
    plain, _ = unseen_matrix(model, words, ["new"], seen, "conse", clips)
    calibrated, _ = unseen_matrix(model, words, ["new"], seen, "conse-cal", clips)
    # float32 rounding of unit rows is ~1e-7, well inside these tolerances
    np.testing.assert_allclose(plain[0, :2], [2 ** -0.5] * 2, atol=1e-6)  # a and b equally near: equal weights
    assert np.linalg.norm(calibrated[0]) == pytest.approx(1.0, abs=1e-6)
    spread = clips[:, :2].std(axis=0)
    expected = (1 / spread) / np.linalg.norm(1 / spread)  # each neighbour in units of its own spread
    np.testing.assert_allclose(calibrated[0, :2], expected, atol=1e-5)


def test_an_unknown_reading_is_one_line_from_the_parser(capsys):
    with pytest.raises(SystemExit):
        main(["--unseen-reading", "conse-glove-k8"])
    assert "direct, conse, both or conse-SIM-kK-tT" in capsys.readouterr().err
