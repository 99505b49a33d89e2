"""`/api/duplicates`: the report of `mre duplicates --json`, made in the background, with each
file's track id for the page's players; 503 saying how to install fpcalc when it is needed."""
from __future__ import annotations

import json
import shutil
import time

from test_serve import get_json, request

from mre.indexer import fingerprints
from mre.retrieval.serve.server import ServerThread


def report_of(server, query: str = "") -> dict:
    """The 200 answer, asking again while it says 202 (fingerprints or matching in progress)."""
    deadline = time.monotonic() + 60
    while True:
        status, headers, body = request(server, "/api/duplicates" + query)
        assert status in (200, 202), body
        assert headers["x-mre-generation"]
        if status == 200:
            return json.loads(body)
        progress = json.loads(body)
        assert progress["pending"] and 0 <= progress["fingerprinted"] <= progress["to_fingerprint"]
        assert time.monotonic() < deadline, progress
        time.sleep(0.2)


def test_the_api_answers_what_the_cli_prints_and_ids_play_each_copy(duplicates_store, cli):
    store, library = duplicates_store
    with ServerThread(store) as server:
        answer = report_of(server)
        assert report_of(server, "?min_score=0.3") == answer   # made once per generation, then kept
        track_ids = answer.pop("track_ids")
        printed = cli("duplicates", "--store", store, "--json")
        assert printed.exit_code == 0, printed.output
        assert answer == json.loads(printed.stdout)
        [group] = answer["groups"]
        assert len(group["files"]) == 4 and group["keep"].endswith("piano0.wav")
        # each id is the file's own: /audio/ID serves exactly its bytes' length
        for file, track_id in zip(group["files"], track_ids[0]):
            status, headers, _ = request(server, f"/audio/{track_id}", method="HEAD")
            assert status == 200 and int(headers["content-length"]) == file["size"]
        for bad in ("2", "-0.1", "nan", "x"):
            status, _, body = request(server, f"/api/duplicates?min_score={bad}")
            assert status == 400 and "min_score" in json.loads(body)["error"]
        # POST and the like stay refused: the view only reports
        assert request(server, "/api/duplicates", method="DELETE")[0] == 405


def test_missing_fingerprints_are_computed_and_cached(duplicates_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(duplicates_store[0], store)
    fingerprints.cache_path(store).unlink()   # a store made before the cache
    with ServerThread(store) as server:
        answer = report_of(server)
        assert answer["computed"] == 5 and len(answer["groups"]) == 1
        assert get_json(server, "/api/map")["tracks"]["track_id"]   # other requests answer meanwhile
    assert len(fingerprints.load_cache(store)) == 5


def test_without_fpcalc_it_is_503_saying_how_to_install_it(duplicates_store, tmp_path, monkeypatch):
    store = tmp_path / "store"
    shutil.copytree(duplicates_store[0], store)
    fingerprints.cache_path(store).unlink()
    monkeypatch.setattr(fingerprints, "fpcalc_path", lambda: None)
    with ServerThread(store) as server:
        status, _, body = request(server, "/api/duplicates")
    error = json.loads(body)["error"]
    assert status == 503 and "\n" not in error
    assert "apt-get install libchromaprint-tools" in error and "brew install chromaprint" in error
