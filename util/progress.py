"""How often a progress bar redraws: often on a terminal, rarely into a log file."""
from __future__ import annotations

import sys

# Into a file or pipe every redraw is kept; one line each half minute still shows a long job
# moving without burying the figures that follow.
LOG_INTERVAL_SECONDS = 30.0


def redraw_every(stream=None) -> dict:
    """tqdm's interval arguments for a bar written to `stream` (standard error by default): the
    least and the most time between redraws, both the same into a log (tqdm's monitor would
    otherwise redraw every 10 s)."""
    interval = redraw_interval(stream)
    return {"mininterval": interval, "maxinterval": max(interval, 10.0)}


def redraw_interval(stream=None) -> float:
    """The least time between a bar's redraws on `stream` (standard error by default)."""
    stream = sys.stderr if stream is None else stream
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-like stream without a terminal
        interactive = False
    return 0.1 if interactive else LOG_INTERVAL_SECONDS
