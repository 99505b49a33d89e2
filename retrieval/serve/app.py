"""`mre serve`'s routes: one page, a JSON API that answers as the CLI's --json does, the audio.

Read-only and local by design:
- GET and HEAD only; any other method is 405 before routing;
- a Host header that is not this server's own name and port is 400 (a page on another site
  could otherwise point a name of its own at 127.0.0.1 and read the library: DNS rebinding);
- no CORS headers, so other sites' pages cannot read the answers either;
- audio only as /audio/{track_id}, the id checked against a strict pattern and looked up in
  the store: no route takes a path, so no request names a file the store does not list.
"""
from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from mre.indexer.paths import printable_path
from mre.retrieval.filters import Filters
from mre.retrieval.library import LibraryError, UnknownTargetError
from mre.retrieval.serve.live import LiveLibrary, json_bytes

STATIC = Path(__file__).with_name("static")
# A track id as the indexer makes them (tables.track_id_for): 16 lowercase hex digits. Anything
# else is not looked up at all.
TRACK_ID = re.compile(r"[0-9a-f]{16}")
MAX_K = 500
ALLOWED_METHODS = ("GET", "HEAD")
# What a browser may do with the page: its own scripts, styles and audio, nothing from elsewhere.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
AUDIO_TYPES = {".wav": "audio/wav", ".wave": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg",
               ".oga": "audio/ogg", ".opus": "audio/ogg", ".mp3": "audio/mpeg", ".m4a": "audio/mp4",
               ".aif": "audio/aiff", ".aiff": "audio/aiff", ".aifc": "audio/aiff", ".wv": "audio/x-wavpack"}
PAGE_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
              "/app.js": ("app.js", "text/javascript; charset=utf-8"),
              "/style.css": ("style.css", "text/css; charset=utf-8")}


def allowed_hosts(host: str, port: int) -> set[str]:
    """The Host header values this server answers: its loopback names and the bound host, with the port."""
    names = {"localhost", "127.0.0.1", "[::1]"}
    names.add(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    if host in ("0.0.0.0", "::", ""):  # every interface: the machine's own names reach it too
        import socket

        names.update({socket.gethostname(), socket.getfqdn()})
    out = {f"{name.lower()}:{port}" for name in names}
    if port == 80:  # a browser leaves out the default port
        out.update(name.lower() for name in names)
    return out


class Guard:
    """ASGI middleware: methods other than GET/HEAD are 405, unknown Host headers 400, and every
    answer carries the security headers."""

    def __init__(self, app, hosts: set[str]):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            if scope["type"] == "websocket":  # nothing here speaks websocket
                await send({"type": "websocket.close", "code": 1008})
                return
            return await self.app(scope, receive, send)
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
        if host not in self.hosts:
            return await _plain(400, "unknown Host header: mre serve answers only its own address\n")(scope, receive, send)
        if scope["method"] not in ALLOWED_METHODS:
            return await _plain(405, "mre serve is read-only: GET and HEAD only\n",
                                {"allow": ", ".join(ALLOWED_METHODS)})(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  *((k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items())]}
            await send(message)

        await self.app(scope, receive, with_headers)


def _plain(status: int, text: str, headers: dict | None = None) -> Response:
    return Response(text, status_code=status, media_type="text/plain; charset=utf-8", headers=headers)


def _json(value, status: int = 200, generation: str | None = None, raw: bytes | None = None) -> Response:
    headers = {"cache-control": "no-store"}
    if generation:
        headers["x-mre-generation"] = generation  # the page reloads its map when this changes
    return Response(raw if raw is not None else json_bytes(value), status_code=status,
                    media_type="application/json", headers=headers)


def _error(status: int, message: str, generation: str | None = None) -> Response:
    return _json({"error": message}, status, generation)


def _k(request: Request, default: int = 10) -> int:
    text = request.query_params.get("k", str(default))
    if not re.fullmatch(r"\d+", text) or not text.strip("0"):
        raise LibraryError(f"k is a whole number of at least 1, got {text!r}")
    digits = text.lstrip("0")
    return MAX_K if len(digits) > len(str(MAX_K)) else min(int(digits), MAX_K)  # any larger k: the most shown


def _filters(request: Request) -> Filters:
    params = request.query_params

    def number(name):
        text = params.get(name) or None
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            raise LibraryError(f"{name} is a number of seconds, got {text!r}") from None
        if value < 0 or value != value:
            raise LibraryError(f"{name} is a number of seconds, got {text!r}")
        return value

    return Filters.from_options(bpm=params.get("bpm") or None, key=params.get("key") or None,
                                mode=params.get("mode") or None, min_duration=number("min_duration"),
                                max_duration=number("max_duration"))


def create_app(live: LiveLibrary, host: str = "127.0.0.1", port: int = 8765):
    """The ASGI app over a LiveLibrary, answering Host headers of `host` and the loopback names at `port`."""

    def page(request: Request) -> Response:
        name, media_type = PAGE_FILES[request.url.path]
        return Response((STATIC / name).read_bytes(), media_type=media_type, headers={"cache-control": "no-cache"})

    def on_view(work):
        """Run `work(view)` on the current generation; user errors are one-line JSON."""
        view = live.view()
        try:
            with view.lock:  # one search at a time per generation: FAISS and the caches are not shared-safe
                return work(view)
        except UnknownTargetError as error:
            return _error(404, error.reason, view.generation)
        except (LibraryError, ValueError) as error:
            return _error(400, str(error).strip().splitlines()[0], view.generation)

    def known_id(view, request: Request) -> str | None:
        track_id = request.path_params["track_id"]
        return track_id if TRACK_ID.fullmatch(track_id) and view.library.track_path(track_id) is not None else None

    def query(request: Request) -> Response:
        text = request.query_params.get("q", "")

        def work(view):
            result = view.library.search(text, _k(request), _filters(request))
            hits = [hit.as_dict() for hit in result.hits]  # exactly the array `mre query --json` prints
            facts = view.facts()
            return _json({"query": text, "hits": hits, "matched_labels": result.matched_labels,
                          "related_labels": [[label, round(float(weight), 4)] for label, weight in result.related_labels],
                          "ignored": result.ignored, "messages": result.messages,
                          "attributes": {hit["track_id"]: facts.get(hit["track_id"], {}) for hit in hits},
                          "generation": view.generation}, generation=view.generation)

        return on_view(work)

    def by_track(make):
        """A route over one track id: 404 unless it is one of the store's, then `make(view, id)`."""

        def endpoint(request: Request) -> Response:
            def work(view):
                track_id = known_id(view, request)
                if track_id is None:
                    return _error(404, "no track of the store has this id", view.generation)
                return _json(make(view, track_id, request), generation=view.generation)

            return on_view(work)

        return endpoint

    # the arrays `mre tags ID --json`, `mre similar ID --json` and `mre info ID --json` print
    tags = by_track(lambda view, track_id, request: [view.library.tags(track_id, _k(request)).as_dict()])
    similar = by_track(lambda view, track_id, request: [hit.as_dict() for hit in
                                                         view.library.similar(track_id, _k(request), _filters(request))])
    info = by_track(lambda view, track_id, request: view.library.info([track_id]))

    def scores(request: Request) -> Response:
        text = request.query_params.get("q", "")

        def work(view):
            values = view.library.scores(text)
            return _json({"query": text, "generation": view.generation,
                          "scores": [round(float(v), 4) for v in values]}, generation=view.generation)

        return on_view(work)

    def map_data(request: Request) -> Response:
        view = live.view()
        body, zipped = view.map_json()
        response = _json(None, generation=view.generation, raw=body)
        if "gzip" in request.headers.get("accept-encoding", ""):
            response = _json(None, generation=view.generation, raw=zipped)
            response.headers["content-encoding"] = "gzip"
            response.headers["vary"] = "accept-encoding"
        return response

    def duplicates(request: Request) -> Response:
        from mre.indexer.fingerprint_match import DEFAULT_MIN_SCORE
        from mre.retrieval.serve.duplicates import FpcalcMissing

        view = live.view()
        text = request.query_params.get("min_score") or str(DEFAULT_MIN_SCORE)
        try:
            min_score = float(text)
        except ValueError:
            min_score = math.nan
        if not 0.0 <= min_score <= 1.0:
            return _error(400, f"min_score is a number from 0 to 1, got {text!r}", view.generation)
        try:
            work = view.duplicates(round(min_score, 4))
        except FpcalcMissing as error:
            return _error(503, str(error), view.generation)
        status, value = work.answer()
        return _json(value, status, view.generation)

    def audio(request: Request) -> Response:
        view = live.view()
        track_id = request.path_params["track_id"]
        path = view.library.track_path(track_id) if TRACK_ID.fullmatch(track_id) else None
        if path is None:
            return _plain(404, "no track of the store has this id\n")
        try:
            status = os.stat(path)
        except OSError:
            return _plain(404, f"the file of this track is gone since it was indexed: {printable_path(path)}\n")
        if not stat.S_ISREG(status.st_mode):
            return _plain(404, "the file of this track is no longer a regular file\n")
        # FileResponse answers Range requests with 206 and the slice's own Content-Length;
        # the path is the str of the raw name (surrogateescape), which opens non-UTF-8 names as they are
        return FileResponse(path, stat_result=status, media_type=AUDIO_TYPES.get(Path(path).suffix.lower(),
                                                                                 "application/octet-stream"),
                            headers={"cache-control": "no-cache"})

    # plain functions: Starlette runs them in its thread pool, off the event loop
    routes = [Route(path, page, methods=["GET"]) for path in PAGE_FILES]
    routes += [
        Route("/api/query", query, methods=["GET"]),
        Route("/api/scores", scores, methods=["GET"]),
        Route("/api/map", map_data, methods=["GET"]),
        Route("/api/tags/{track_id}", tags, methods=["GET"]),
        Route("/api/similar/{track_id}", similar, methods=["GET"]),
        Route("/api/info/{track_id}", info, methods=["GET"]),
        Route("/api/duplicates", duplicates, methods=["GET"]),
        Route("/audio/{track_id}", audio, methods=["GET"]),
    ]
    return Guard(Starlette(routes=routes), allowed_hosts(host, port))
