"""`/api/duplicates`: the report of `mre duplicates --json`, made off the request path.

Fingerprinting a library the cache lacks takes minutes (fpcalc decodes every file), and
matching 10k fingerprints ~20 s, so the report is made in a background thread, one per
generation and minimum score, while requests answer at once: 202 with how far fingerprinting
got, then 200 with the report, kept for the rest of the generation like the map. Searches
never wait on it (it holds no lock of theirs), and only one report is made at a time so two
of them never run two fpcalc pools side by side.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

# at most one report in the making at a time, whatever the generation or minimum score
_MAKING = threading.Lock()
# Fingerprints are saved to the cache after each batch, so a server stopped halfway keeps what
# it did. A batch grows with the cache (a quarter of it): each save rewrites the whole cache,
# and fixed small batches would rewrite a big one thousands of times.
FIRST_BATCH = 32
# A request waits this long for a report nearly done before answering "not yet": a small
# library is then answered in one request.
WAIT_SECONDS = 1.5


class FpcalcMissing(Exception):
    """Files lack fingerprints and fpcalc is not installed to compute them."""


@dataclass
class DuplicatesWork:
    """One report in the making (or made) for one generation and minimum score."""

    store: Path
    keys: list[tuple[str, int, int]]       # (path, size, mtime_ns) of the generation's tracks
    track_ids: dict[str, str]              # path → track id, for the page's players
    min_score: float
    to_fingerprint: int = 0
    fingerprinted: int = 0
    body: dict | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> "DuplicatesWork":
        threading.Thread(target=self._run, name="mre-duplicates", daemon=True).start()
        return self

    def _run(self) -> None:
        from mre.indexer.fingerprints import load_cache, update_fingerprints
        from mre.indexer.store import Store
        from mre.retrieval.duplicates import DuplicatesError, find_duplicates

        # fpcalc processes: half the cores, so searches still get one on a 2-core machine
        workers = max(1, (os.cpu_count() or 2) // 2)
        try:
            with _MAKING:
                store = Store(self.store)
                cached = load_cache(self.store)
                missing = [key for key in self.keys if key not in cached]
                self.to_fingerprint = len(missing)
                start, computed = 0, 0
                while start < len(missing):
                    batch = missing[start:start + max(FIRST_BATCH, (len(cached) + start) // 4)]
                    computed += update_fingerprints(store, batch, workers=workers, progress=self._progress(start)).computed
                    start += len(batch)
                    self.fingerprinted = start
                report = find_duplicates(store, min_score=self.min_score, workers=workers)
                report.computed += computed   # as the CLI counts them: computed while making this report
                body = report.as_dict()
                # the CLI's JSON, plus each file's track id (in the files' order) for /audio/ID:
                # the page plays copies by id, as no route takes a path
                body["track_ids"] = [[self.track_ids.get(f.path) for f in group.files] for group in report.groups]
                self.body = body
        except DuplicatesError as error:
            self.error = str(error).splitlines()[0]
        except Exception as error:  # a report that could not be made: said in one line, not a dead thread
            self.error = f"the duplicates report failed: {type(error).__name__}: {error}".splitlines()[0]
        finally:
            self.done.set()

    def _progress(self, before: int):
        def progress(done, _total, _path):
            self.fingerprinted = before + done
        return progress

    def answer(self) -> tuple[int, dict]:
        """(HTTP status, JSON value) now: 200 and the report, 202 and the progress, or 500."""
        self.done.wait(WAIT_SECONDS)
        if self.body is not None:
            return 200, self.body
        if self.error is not None:
            return 500, {"error": self.error}
        return 202, {"pending": True, "to_fingerprint": self.to_fingerprint, "fingerprinted": self.fingerprinted}


def check_fpcalc(store: Path, keys: list[tuple[str, int, int]]) -> None:
    """FpcalcMissing (with how to install it) when some of `keys` lack a cached fingerprint
    and fpcalc is not installed. A report without them would quietly miss their groups, so the
    page says what to install instead; this is checked on every request until it is."""
    from mre.indexer.fingerprints import INSTALL_HINT, fpcalc_path, load_cache

    if fpcalc_path() is not None:
        return
    cached = load_cache(store)
    missing = sum(1 for key in keys if key not in cached)
    if missing:
        raise FpcalcMissing(f"{missing} of {len(keys)} tracks have no fingerprint yet, and {INSTALL_HINT}")
