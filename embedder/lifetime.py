"""Helper processes that end with the process they work for.

The decode workers are forked by multiprocessing's forkserver ("the decode server"), not by
`mre` itself, and a worker holds the write end of its own task queue, so it never sees an
end of input: when `mre` was killed (kill -9, a SIGTERM that found it mid-decode) the
server, its resource tracker and a worker waited forever, holding the caller's stdout and
stderr (`mre index … | cat` never returned). So:

- the decode server asks the kernel for SIGTERM when the thread that started it exits
  (``prctl(PR_SET_PDEATHSIG)``, Linux), by being imported as the server's first preload,
  and leaves Ctrl-C to `mre` from then on;
- each worker asks for SIGKILL when the server exits, and watches `mre`'s own process in a
  thread (every platform; also catches a server that outlived `mre`);
- with the server and workers gone the resource tracker reads the end of its pipe and exits.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
WATCH_SECONDS = 0.5


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Linux: have the kernel send ``sig`` to this process when its parent exits.

    Returns False where that is not available (the watchdog then has to do). If the parent
    is already gone (it died before this ran), exits at once.
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent == 1 or os.getppid() != parent:
        os._exit(1)
    return True


def process_start_time(pid: int) -> str | None:
    """An identity of a running process beyond its pid (pids are reused): its start time in
    clock ticks on Linux; None when the process is gone, a zombie, or /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (name) ": state is field 3 of stat(5)
    if not fields or fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode("ascii") if len(fields) > 19 else ""


def _alive(pid: int, start_time: str | None) -> bool:
    if start_time is not None or os.path.isdir("/proc"):
        return process_start_time(pid) == start_time
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch_process(pid: int, start_time: str | None, interval: float = WATCH_SECONDS) -> None:
    """End this process (os._exit) as soon as process ``pid`` is gone; a daemon thread."""
    def watch() -> None:
        while _alive(pid, start_time):
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name=f"watch-{pid}", daemon=True).start()


@contextlib.contextmanager
def signals_held(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM), deliver: bool = True):
    """Hold Ctrl-C and SIGTERM over a step that must not be cut in two, then deliver them:
    a worker pool's start or shutdown, a staged part's write with the clearing of its buffer.

    For one: starting a decode worker waits for the decode server to fork it (most of a second
    while the server still imports torch). Interrupted in that wait, the pool never learnt of
    the worker the server then forked: `mre` hung at exit joining it, or the worker, started
    after `mre` had released the pool's queues, printed a traceback. Held, the signal takes
    effect right after the step, through the handler that was in place (``deliver=False``: it is
    dropped, for a step that runs because the work is already ending). Only the main thread can
    set handlers; elsewhere, and for a signal that is ignored, nothing is held.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    earlier = {}
    for sig in signals:
        handler = signal.getsignal(sig)
        if handler is None or handler == signal.SIG_IGN:  # None: set outside Python; leave it be
            continue
        earlier[sig] = signal.signal(sig, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        for sig, handler in earlier.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(received) if deliver else ():
            signal.raise_signal(sig)


def _imported_by_forkserver() -> bool:
    """Whether this import runs in multiprocessing's forkserver, loading its preload modules."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "main" and frame.f_globals.get("__name__") == "multiprocessing.forkserver":
            return True
        frame = frame.f_back
    return False


def init_worker(owner_pid: int, owner_start_time: str | None) -> None:
    """A decode worker's initialiser: die with the server and with `mre`; leave Ctrl-C and
    SIGTERM to `mre` (it saves finished work, then its end ends the workers)."""
    die_with_parent(signal.SIGKILL)
    watch_process(owner_pid, owner_start_time)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


if _imported_by_forkserver():
    # The server is started from the thread that first needs workers (the main thread of
    # `mre index`); should that thread end first, multiprocessing starts a new server.
    die_with_parent(signal.SIGTERM)
    # multiprocessing shields the server from Ctrl-C only once its preloads are imported:
    # a Ctrl-C during them (torch's import, most of a second) printed a traceback from the
    # server under `mre`'s own one-line message. Ctrl-C is `mre`'s to handle; this module is
    # the server's first preload, and its workers ignore Ctrl-C anyway (init_worker).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
