"""`mre serve` over HTTP: a real uvicorn on 127.0.0.1 in a thread, asked with http.client,
which sends a path exactly as written (no client-side clean-up of `..` or `%2F`)."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from serve_stores import LATIN1_NAME, derived_store, recommit_without

from mre.retrieval.serve.server import ServerThread


@pytest.fixture(scope="module")
def served(tmp_path_factory, store, music_library):
    """(server, store, library): a server on a private copy of the library and its store."""
    served_store, library = derived_store(store, music_library, tmp_path_factory.mktemp("served"))
    with ServerThread(served_store) as server:
        yield server, served_store, library


def request(server, path: str, method: str = "GET", headers: dict | None = None, host: str | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    if host is not False:
        connection.putheader("Host", host if host is not None else f"127.0.0.1:{server.port}")
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def get_json(server, path: str):
    status, headers, body = request(server, path)
    assert status == 200, body
    return json.loads(body)


def track_ids(server) -> list[str]:
    return get_json(server, "/api/map")["tracks"]["track_id"]


def path_of(served_store, track_id: str) -> str:
    from mre.retrieval import Library

    return Library(served_store).track_path(track_id)


def test_a_byte_range_is_206_with_its_content_range_and_length(served):
    server, served_store, _ = served
    track_id = track_ids(server)[0]
    data = Path(path_of(served_store, track_id)).read_bytes()
    status, headers, body = request(server, f"/audio/{track_id}", headers={"Range": "bytes=100-1099"})
    assert status == 206
    assert headers["content-range"] == f"bytes 100-1099/{len(data)}"
    assert headers["content-length"] == "1000" and body == data[100:1100]
    status, headers, body = request(server, f"/audio/{track_id}", headers={"Range": f"bytes={len(data) - 10}-"})
    assert status == 206 and body == data[-10:] and headers["content-length"] == "10"
    status, headers, body = request(server, f"/audio/{track_id}")
    assert status == 200 and body == data and headers["accept-ranges"] == "bytes"
    assert headers["content-length"] == str(len(data)) and headers["content-type"].startswith("audio/")
    status, headers, body = request(server, f"/audio/{track_id}", method="HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == str(len(data))


@pytest.mark.parametrize("path", [
    "/audio/../..", "/audio/../../etc/passwd", "/audio/..%2F..%2Fetc%2Fpasswd", "/audio/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/audio/..", "/audio/%2Fetc%2Fpasswd", "/audio//etc/passwd", "/audio/0123456789abcdef%2F..",
    "/audio/0000000000000000", "/audio/-1", "/audio/-0000000000000001", "/audio/ABCDEF0123456789",
    "/audio/0123456789abcdef0", "/audio/", "/audio", "/api/info/..%2F..", "/api/tags/-1", "/api/similar/0000000000000000",
    "/static/../../etc/passwd", "/app.js/../../etc/passwd",
])
def test_traversal_attempts_and_unknown_ids_are_404(served, path):
    server = served[0]
    status, _, body = request(server, path)
    assert status == 404, (path, body[:200])
    assert b"root:" not in body


def test_a_known_id_in_another_case_or_with_a_suffix_is_404(served):
    server = served[0]
    track_id = track_ids(server)[0]
    for path in (f"/audio/{track_id.upper()}", f"/audio/{track_id}.wav", f"/audio/{track_id}%00", f"/audio/{track_id}/x"):
        assert request(server, path)[0] == 404, path


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("path", ["/", "/api/query?q=piano", "/audio/0123456789abcdef", "/nowhere"])
def test_other_methods_than_get_and_head_are_405(served, method, path):
    status, headers, _ = request(served[0], path, method=method)
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_a_host_header_other_than_this_servers_is_400(served):
    server = served[0]
    port = server.port
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1", f"localhost.evil:{port}", ""):
        assert request(server, "/api/map", host=host)[0] == 400, host
    assert request(server, "/", host=False)[0] == 400
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        assert request(server, "/", host=host)[0] == 200, host


def test_no_cors_headers_and_a_strict_content_policy(served):
    server = served[0]
    for path in ("/", "/api/map", "/api/query?q=piano", f"/audio/{track_ids(server)[0]}"):
        _, headers, _ = request(server, path, headers={"Origin": "http://evil.example"})
        assert not [name for name in headers if name.startswith("access-control-")], path
        assert "default-src 'self'" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"


def test_the_page_and_its_two_files_are_served(served):
    server = served[0]
    status, headers, body = request(server, "/")
    assert status == 200 and headers["content-type"].startswith("text/html") and b'src="/app.js"' in body
    assert b"https://" not in body and b"http://" not in body  # nothing from elsewhere
    for path, kind in (("/app.js", "text/javascript"), ("/style.css", "text/css")):
        status, headers, body = request(server, path)
        assert status == 200 and headers["content-type"].startswith(kind) and b"http" not in body.replace(b"HTTP ", b"")


def test_api_query_returns_the_same_hits_as_mre_query_json(served, cli):
    server, served_store, _ = served
    for words, options in (("calm piano", ""), ("energetic rock guitar no vocals", ""), ("music", "&mode=minor"),
                           ("drums", "&bpm=100-160")):
        answer = get_json(server, f"/api/query?q={words.replace(' ', '+')}&k=10{options}")
        extra = [part for option in options.strip("&").split("&") if option for part in
                 (f"--{option.split('=')[0]}", option.split("=")[1])]
        printed = cli("query", words, "--store", served_store, "--json", "-k", "10", *extra)
        assert printed.exit_code == 0
        assert answer["hits"] == json.loads(printed.stdout), words
        assert set(answer["attributes"]) == {hit["track_id"] for hit in answer["hits"]}
    answer = get_json(server, "/api/query?q=calm+piano")
    assert answer["related_labels"] and all(isinstance(w, float) for _, w in answer["related_labels"])


def test_tags_similar_and_info_answer_as_the_cli_prints(served, cli):
    server, served_store, _ = served
    track_id = track_ids(server)[1]
    for route, argv in ((f"/api/tags/{track_id}?k=5", ("tags", track_id, "-k", "5")),
                        (f"/api/similar/{track_id}?k=4", ("similar", track_id, "-k", "4")),
                        (f"/api/info/{track_id}", ("info", track_id))):
        printed = cli(*argv, "--store", served_store, "--json")
        assert printed.exit_code == 0
        assert get_json(server, route) == json.loads(printed.stdout), route


def test_user_errors_are_one_line_json(served):
    server = served[0]
    for path, words in (("/api/query?q=", "empty"), ("/api/query?q=piano&bpm=fast", "--bpm"),
                        ("/api/query?q=piano&key=H", "--key"), ("/api/query?q=piano&k=0", "k "),
                        ("/api/query?q=piano&mode=dorian", "--mode")):
        status, headers, body = request(server, path)
        assert status == 400 and headers["content-type"] == "application/json", path
        error = json.loads(body)["error"]
        assert words in error and "\n" not in error
    # a k past what a page shows, however many digits, is the most a page shows
    for k in ("500", "501", "10000000", "9" * 5000, "000020"):
        status, _, body = request(server, f"/api/query?q=piano&k={k}")
        assert status == 200, k
        assert len(json.loads(body)) == min(int(k.lstrip("0")[:7]), 500, len(track_ids(server))), k


def test_a_file_gone_since_indexing_is_404_and_the_server_goes_on(tmp_path, store, music_library):
    served_store, library = derived_store(store, music_library, tmp_path)
    with ServerThread(served_store) as server:
        track_id = track_ids(server)[2]
        os.remove(path_of(served_store, track_id))
        status, _, body = request(server, f"/audio/{track_id}")
        assert status == 404 and b"gone" in body
        assert request(server, f"/audio/{track_ids(server)[3]}")[0] == 200


def test_a_name_that_is_not_utf8_is_served_as_the_file_it_is(served):
    server, served_store, library = served
    raw = os.fsencode(library) + b"/" + LATIN1_NAME
    data = open(raw, "rb").read()
    tracks = get_json(server, "/api/map")["tracks"]
    row = next(i for i, name in enumerate(tracks["name"]) if name.startswith("caf\\xe9"))
    track_id = tracks["track_id"][row]
    status, _, body = request(server, f"/audio/{track_id}")
    assert status == 200 and body == data
    status, _, body = request(server, f"/audio/{track_id}", headers={"Range": "bytes=0-99"})
    assert status == 206 and body == data[:100]
    card = get_json(server, f"/api/info/{track_id}")[0]
    assert card["path"].endswith("caf\\xe9 piano_a.wav") and card["path_escaped"] == "backslashreplace"


def test_a_reindex_is_picked_up_without_a_restart(tmp_path, store, music_library):
    served_store, _ = derived_store(store, music_library, tmp_path)
    with ServerThread(served_store) as server:
        before = get_json(server, "/api/map")
        gone = before["tracks"]["track_id"][0]
        assert request(server, f"/api/info/{gone}")[0] == 200
        new_generation = recommit_without(served_store, gone)
        status, headers, _ = request(server, "/api/query?q=piano")
        assert status == 200 and headers["x-mre-generation"] == new_generation != before["generation"]
        after = get_json(server, "/api/map")
        assert after["generation"] == new_generation and len(after["tracks"]["track_id"]) == len(before["tracks"]["track_id"]) - 1
        assert request(server, f"/api/info/{gone}")[0] == 404 and request(server, f"/audio/{gone}")[0] == 404
        assert gone not in [hit["track_id"] for hit in get_json(server, "/api/query?q=music&k=50")["hits"]]


def test_the_map_holds_every_track_and_the_words_around_them(served):
    server = served[0]
    data = get_json(server, "/api/map")
    tracks, words = data["tracks"], data["words"]
    assert data["method"] in ("pca", "umap") and len(tracks["track_id"]) == 8
    assert 0 < len(words["tag"]) <= 40 and len(words["x"]) == len(words["tag"])
    assert all(len(tracks[column]) == 8 for column in ("x", "y", "name", "bpm", "key", "mode", *data["attributes"]))
    scores = get_json(server, "/api/scores?q=piano")["scores"]
    assert len(scores) == 8 and all(0 <= s <= 1 for s in scores)
    status, headers, body = request(server, "/api/map", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"


def test_pca_places_words_as_biplot_directions_scaled_to_the_track_cloud():
    from mre.retrieval.serve.map import project

    rng = np.random.default_rng(0)
    tracks = rng.normal(size=(500, 6)).astype(np.float32) * np.array([5, 2, 0.1, 0.1, 0.1, 0.1], np.float32) - 3
    words = np.eye(6)[:3]  # the first axis, the second, and one the plane barely shows
    method, track_xy, word_xy = project(tracks, words, method="pca")
    assert method == "pca" and track_xy.shape == (500, 2) and word_xy.shape == (3, 2)
    assert np.allclose(track_xy.mean(axis=0), 0, atol=1e-6)
    reach = np.percentile(np.linalg.norm(track_xy, axis=1), 95)
    lengths = np.linalg.norm(word_xy, axis=1)
    assert lengths.max() == pytest.approx(reach, rel=1e-6)
    assert abs(word_xy[0, 0]) > 0.9 * reach and lengths[2] < 0.05 * reach  # one common scale, not each to the rim
    # the word's direction agrees with the tracks that score high for it
    best = np.argsort(-(tracks @ words[0]))[:20]
    assert np.sign(track_xy[best, 0].mean()) == np.sign(word_xy[0, 0])


def test_umap_is_used_when_installed(monkeypatch):
    import types

    from mre.retrieval.serve.map import project

    class FakeUMAP:
        def __init__(self, **options):
            self.options = options

        def fit_transform(self, vectors):
            return vectors[:, :2] * 10

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    tracks = np.random.default_rng(1).normal(size=(40, 4)).astype(np.float32)
    method, track_xy, word_xy = project(tracks, np.eye(4)[:1])
    assert method == "umap" and np.allclose(track_xy, tracks[:, :2] * 10)
    top = np.argsort(-tracks[:, 0])[:3]
    assert np.allclose(word_xy[0], track_xy[top].mean(axis=0))


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp{,6} write them) listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.append(address)
    return found


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux's /proc/net/tcp")
def test_mre_serve_listens_on_127_0_0_1_by_default_and_stops_on_ctrl_c(served):
    served_store = served[1]
    process = subprocess.Popen([sys.executable, "-m", "mre.cli.main", "serve", "--store", str(served_store), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"at http://127\.0\.0\.1:(\d+)/", line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        port = int(match.group(1))
        assert _listening(port) == ["0100007F"]  # 127.0.0.1, and nothing else
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(f"GET /api/map HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n".encode())
            assert connection.recv(64).startswith(b"HTTP/1.1 200")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_port_in_use_or_a_foreign_host_is_one_line(served, cli):
    server, served_store, _ = served
    busy = cli("serve", "--store", served_store, "--port", str(server.port))
    assert busy.exit_code == 1 and busy.stderr.strip().splitlines() == [
        f"Error: port {server.port} on 127.0.0.1 is in use (another mre serve?); choose another with --port"]
    foreign = cli("serve", "--store", served_store, "--host", "192.0.2.1", "--port", "0")
    lines = foreign.stderr.strip().splitlines()
    assert foreign.exit_code == 1 and len(lines) == 2
    assert lines[0].startswith("warning: listening on 192.0.2.1: the library is readable by anyone")
    assert lines[1] == "Error: 192.0.2.1 is not an address of this machine"
    missing = cli("serve", "--store", served_store.parent / "nothing-here", "--port", "0")
    assert missing.exit_code == 1 and len(missing.stderr.strip().splitlines()) == 1 and "mre index" in missing.stderr


def test_the_served_host_is_also_accepted(served):
    from mre.retrieval.serve.app import allowed_hosts

    hosts = allowed_hosts("192.168.1.5", 8765)
    assert "192.168.1.5:8765" in hosts and "localhost:8765" in hosts and "192.168.1.5" not in hosts
    assert "[fe80::1]:80" in allowed_hosts("fe80::1", 80) and "localhost" in allowed_hosts("127.0.0.1", 80)
