"""The listening socket and uvicorn around the app: in the foreground (`mre serve`) or in a
thread (tests, the latency benchmark)."""
from __future__ import annotations

import errno
import ipaddress
import socket
import threading
import time
from pathlib import Path

from mre.retrieval.library import LibraryError

WARM_UP_QUERY = "calm piano"


class ServeError(LibraryError):
    """A one-line reason the server cannot start (port in use, unknown host...)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket on host:port (port 0: any free port), or a one-line ServeError.

    Bound here rather than by uvicorn so that a port in use is one line, and so the real port
    is known before the app is made (its Host check needs it)."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ServeError(f"cannot listen on {host!r}: {error.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise ServeError(f"port {port} on {host} is in use (another mre serve?); choose another with --port") from None
        if error.errno == errno.EADDRNOTAVAIL:
            raise ServeError(f"{host} is not an address of this machine") from None
        if error.errno == errno.EACCES:
            raise ServeError(f"not allowed to listen on port {port} (ports below 1024 need privileges)") from None
        raise ServeError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = host if is_loopback(host) or host not in ("0.0.0.0", "::") else "127.0.0.1"
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    return f"http://{shown}:{port}/"


def open_live(store: Path, warm_up: bool = True):
    """The store's LiveLibrary, with one query run so the first visitor does not pay for the word vectors."""
    from mre.retrieval.serve.live import LiveLibrary

    live = LiveLibrary(store)
    if warm_up and len(live.view().library):
        try:
            live.view().library.search(WARM_UP_QUERY, 1)
        except LibraryError:
            pass  # a model whose words lack these: the first real query warms up instead
    return live


def make_server(live, sock: socket.socket, host: str):
    """A uvicorn Server for the app over `live`, to run on `sock`."""
    import uvicorn

    from mre.retrieval.serve.app import create_app

    app = create_app(live, host=host, port=sock.getsockname()[1])
    config = uvicorn.Config(app, host=host, port=sock.getsockname()[1], log_level="warning", access_log=False,
                            lifespan="off", server_header=False, proxy_headers=False, ws="none")
    return uvicorn.Server(config)


class ServerThread:
    """A server on 127.0.0.1 (or `host`) in a daemon thread: `with ServerThread(store) as s: s.url`."""

    def __init__(self, store: Path, host: str = "127.0.0.1", port: int = 0, live=None):
        self.live = live or open_live(Path(store), warm_up=False)
        self.sock = listening_socket(host, port)
        self.url = url_of(self.sock, host)
        self.port = self.sock.getsockname()[1]
        self.server = make_server(self.live, self.sock, host)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.server.started:
            raise ServeError("the server did not start")
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
