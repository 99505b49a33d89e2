"""Real libraries and real machines: odd file names, kills, full disks, damaged stores."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

LATIN1_NAME = os.fsdecode(b"latin1-caf\xe9.wav")  # a name that is not UTF-8, as Python holds it


def _tone(path: Path, seconds: float = 3.0, rate: int = 16000, hz: float = 440.0) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * hz * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t)), rate)
    return path


@pytest.fixture(scope="module")
def odd_names(tmp_path_factory):
    """A library with a Latin-1 name, a broken file under another Latin-1 name, and a newline."""
    root = tmp_path_factory.mktemp("odd-names")
    _tone(root / "good.wav")
    _tone(root / "tmp-latin1.wav", hz=220.0).rename(root / LATIN1_NAME)  # soundfile cannot write such a name
    _tone(root / "new\nline.wav", hz=330.0)
    (root / os.fsdecode(b"broken-\xff.mp3")).write_bytes(b"not audio at all\n")
    store = tmp_path_factory.mktemp("odd-store")
    return root, store


def test_a_name_that_is_not_utf8_is_indexed_and_served(cli, odd_names):
    root, store = odd_names
    result = cli("index", root, "--store", store, "--workers", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("indexed 3,"), result.stdout
    assert "broken-\\xff.mp3" in result.stdout and "new\\nline.wav" not in result.stdout

    generation = store / "generations" / (store / "CURRENT").read_text().strip()
    tracks = pq.read_table(generation / "tracks.parquet")
    stored = dict(zip(tracks.column("path").to_pylist(), tracks.column("path_bytes").to_pylist()))
    latin1 = os.path.join(os.fsencode(root), b"latin1-caf\xe9.wav")
    assert stored[latin1.decode("utf-8", "backslashreplace")] == latin1  # lossless: the raw bytes are kept
    assert stored[str(root / "good.wav")] is None
    skipped = pq.read_table(generation / "skipped.parquet").to_pylist()
    assert [r["path_bytes"] for r in skipped] == [os.path.join(os.fsencode(root), b"broken-\xff.mp3")]

    hits = json.loads(cli("query", "flute", "--store", store, "--json").stdout)
    escaped = [h for h in hits if h.get("path_escaped")]
    assert len(hits) == 3 and len(escaped) == 1
    assert escaped[0]["path"].endswith("latin1-caf\\xe9.wav") and escaped[0]["path_escaped"] == "backslashreplace"

    table = cli("query", "flute", "--store", store)
    assert table.exit_code == 0 and len(table.stdout.strip().splitlines()) == 3, table.stdout  # the newline is escaped
    assert "new\\nline.wav" in table.stdout

    target = str(root / LATIN1_NAME)
    for args in (("tags", target, "-k", "2"), ("similar", target), ("info", target),
                 ("info", str(root) + "/latin1-caf\\xe9.wav")):  # also as the output spelled it
        result = cli(*args, "--store", store, "--json")
        assert result.exit_code == 0, (args, result.output)
        assert json.loads(result.stdout)

    again = cli("index", root, "--store", store, "--workers", "1")
    assert again.exit_code == 0 and again.stdout.startswith("indexed 0, unchanged 3, removed 0, skipped 1"), again.stdout
