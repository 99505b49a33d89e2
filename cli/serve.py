"""`mre serve`: a local web page to search by words, listen, and see the library as a map."""
from __future__ import annotations

from pathlib import Path

import click

from mre.cli.options import one_line_errors, store_option


@click.command()
@store_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Any other than this machine's loopback makes the library readable "
                   "by anyone who can reach that address.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default web browser.")
@one_line_errors
def serve(store, host, port, open_browser):
    """A local web page: search by words, listen, and see the library as a map.

    Read-only: GET and HEAD only, audio only by track id, and only this machine can reach it
    unless --host says otherwise. A re-index while it runs is picked up without a restart.

    \b
    Example:
        mre serve --open
        mre serve --store ~/music-store --port 9000
    """
    # starlette, uvicorn, numpy and the Library load here only: other commands never pay for them
    import threading
    import webbrowser

    from mre.retrieval.library import default_store_path
    from mre.retrieval.serve.server import is_loopback, listening_socket, make_server, open_live, url_of

    store_path = Path(store).expanduser() if store else default_store_path()
    if not is_loopback(host):
        click.echo(f"warning: listening on {host}: the library is readable by anyone who can reach that address",
                   err=True)
    sock = listening_socket(host, port)  # first: a port in use is said before the store loads
    try:
        live = open_live(store_path)
    except BaseException:
        sock.close()
        raise
    url = url_of(sock, host)
    server = make_server(live, sock, host)
    tracks = len(live.view().library)
    click.echo(f"serving {tracks} tracks of {store_path} at {url} (Ctrl-C stops)")
    if open_browser:
        def open_when_started():
            while not server.started and not server.should_exit:
                threading.Event().wait(0.05)
            if server.started:
                webbrowser.open(url)

        threading.Thread(target=open_when_started, daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn stops on Ctrl-C, then raises it again: stopping is how a server ends, not an error
    finally:
        sock.close()
    click.echo("stopped", err=True)
