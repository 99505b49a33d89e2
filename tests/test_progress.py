"""Progress bars redraw often on a terminal and once each half minute into a log file, so a long
job's log keeps its figures readable."""
from __future__ import annotations

import io

from mre.util.progress import LOG_INTERVAL_SECONDS, redraw_every, redraw_interval


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_into_a_file_redraws_each_half_minute_and_on_a_terminal_at_once():
    assert redraw_interval(io.StringIO()) == LOG_INTERVAL_SECONDS == 30.0
    assert redraw_interval(_Terminal()) < 1.0
    closed = io.StringIO()
    closed.close()
    assert redraw_interval(closed) == LOG_INTERVAL_SECONDS
    assert redraw_interval(object()) == LOG_INTERVAL_SECONDS  # no isatty at all
    # tqdm's monitor thread redraws a bar it thinks stalled after maxinterval: not more often than the interval
    assert redraw_every(io.StringIO()) == {"mininterval": 30.0, "maxinterval": 30.0}
    assert redraw_every(_Terminal())["mininterval"] < 1.0 and redraw_every(_Terminal())["maxinterval"] == 10.0
