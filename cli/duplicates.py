"""`mre duplicates`: a report of the store's files that are the same recording."""
from __future__ import annotations

import sys

import click

from mre.cli.options import emit_json, json_option, one_line_errors, store_option


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@store_option
@json_option
@click.option("--min-score", type=click.FloatRange(0.0, 1.0), default=None,
              help="Fingerprint agreement above chance (0–1) two files need to count as one recording  [default: 0.3].")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="fpcalc processes (default: cores − 1).")
@one_line_errors
def duplicates(paths, store, as_json, min_score, workers):
    """Groups of files that are the same recording, and which copy to keep; nothing is deleted.

    Finds copies across formats, bitrates, masters and trims by acoustic fingerprints
    (Chromaprint's fpcalc), computed once per file and cached in the store. Each group names
    the copy to keep first (lossless, then higher bitrate, then longer) and how each other
    copy differs: re-encode, remaster or level change, trimmed or faded, same audio. PATHS
    limit the report to groups with a file under them (a path no indexed track is under is
    said, before any fingerprinting).

    \b
    Example:
        mre duplicates --store ~/music-store
        mre duplicates ~/Music/Downloads --json
    """
    from tqdm import tqdm

    from mre.indexer.fingerprint_match import DEFAULT_MIN_SCORE
    from mre.indexer.paths import printable_path
    from mre.retrieval.duplicates import DuplicatesError, find_duplicates, report_lines

    bar = tqdm(total=0, unit="file", desc="fingerprinting", file=sys.stderr, dynamic_ncols=True, disable=None,
               leave=False)

    def progress(done, total, _path):
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(1)

    try:
        report = find_duplicates(store, paths=list(paths) or None,
                                 min_score=DEFAULT_MIN_SCORE if min_score is None else min_score,
                                 workers=workers, progress=progress)
    except DuplicatesError as error:
        raise click.ClickException(str(error)) from None
    finally:
        bar.close()
    for line in report.notes:
        click.echo(line, err=True)
    for path, reason in report.skipped[:20]:
        click.echo(f"no fingerprint for {printable_path(path)}: {reason}", err=True)
    if len(report.skipped) > 20:
        click.echo(f"… and {len(report.skipped) - 20} more files without a fingerprint", err=True)
    if as_json:
        emit_json(report.as_dict())
        return
    for line in report_lines(report):
        click.echo(line)
