"""Options shared by many commands, defined once so every command spells them the same."""
from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys

import click

store_option = click.option(
    "--store", type=click.Path(file_okay=False), default=None, envvar="MRE_STORE", show_envvar=True,
    help="Store folder (default: $MRE_STORE, else the per-user data directory).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
k_option = click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
                        help="How many results.")
model_option = click.option(
    "--model", default=None,
    help="Model name (zero-shot: mre-zs-corpus, the default, and mre-zs-musicnn; taggers musicnn-msd, musicnn-mtt, musicnn-vgg-msd, "
         "musicnn-vgg-mtt) or a model file.")
device_option = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                             show_default=True, help="Where the model runs.")
class WordVectorsParam(click.ParamType):
    """"minilm" or an existing file."""

    name = "minilm|FILE"

    def convert(self, value, param, ctx):
        if value == "minilm":
            return value
        return click.Path(exists=True, dir_okay=False).convert(value, param, ctx)


word_vectors_option = click.option(
    "--word-vectors", type=WordVectorsParam(), default=None,
    help='"minilm" (all-MiniLM-L6-v2 word vectors, extra [sentence]) or a GloVe text, word2vec text/binary '
         "or gensim KeyedVectors file (default: bundled GloVe 6B 50-d).")
vocab_option = click.option("--vocab", type=click.Path(exists=True, dir_okay=False), default=None,
                            help="Your own tag vocabulary: CSV with a `tag` column, or one tag per line.")


def emit_json(value) -> None:
    from mre.indexer.paths import json_safe

    json.dump(json_safe(value), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


@contextlib.contextmanager
def sigterm_as_ctrl_c():
    """SIGTERM (kill, systemd, a CI timeout) raises KeyboardInterrupt inside the block, as Ctrl-C
    does, so a command saves its work the same way for both. Yields ``ended_by()``, for the
    KeyboardInterrupt handler: ("terminated" or "interrupted", the exit status 128 + signal), and
    SIGTERM ignored from then on (a second one must not cut the exit short)."""
    received = [signal.SIGINT]

    def terminate(signum, _frame):
        received[0] = signum
        raise KeyboardInterrupt

    def ended_by() -> tuple[str, int]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return ("terminated" if received[0] == signal.SIGTERM else "interrupted"), 128 + received[0]

    previous_handler = signal.signal(signal.SIGTERM, terminate)
    try:
        yield ended_by
    finally:
        if signal.getsignal(signal.SIGTERM) is terminate:
            signal.signal(signal.SIGTERM, previous_handler)


def _user_error_types() -> tuple[type[BaseException], ...]:
    """The errors a user can cause. Imported when one is raised, not when a command is defined:
    decoding (soundfile, soxr) must not load for `mre --help` or a query."""
    from mre.embedder.audio.decode import AudioError
    from mre.embedder.words.space import WordVectorError
    from mre.indexer.store import StoreError
    from mre.retrieval.library import LibraryError

    return LibraryError, StoreError, AudioError, WordVectorError, FileNotFoundError, ValueError, RuntimeError


def one_line_errors(function):
    """Library errors become one clear line and exit status 1, never a traceback."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception as error:
            if not isinstance(error, _user_error_types()):
                raise
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise click.ClickException(message) from None

    return wrapper


def filter_options(function):
    """--bpm, --key, --mode, --min-duration, --max-duration: the same on every search command."""
    options = [
        click.option("--bpm", default=None, help="Tempo or range, e.g. 124 or 120-128."),
        click.option("--key", "key_name", default=None, help='Key, e.g. "A minor", "F#", "Bbm".'),
        click.option("--mode", type=click.Choice(["major", "minor"]), default=None, help="Major or minor."),
        click.option("--min-duration", type=click.FloatRange(min=0), default=None, help="Seconds."),
        click.option("--max-duration", type=click.FloatRange(min=0), default=None, help="Seconds."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def filters_from(bpm, key_name, mode, min_duration, max_duration):
    from mre.retrieval.filters import Filters

    return Filters.from_options(bpm=bpm, key=key_name, mode=mode, min_duration=min_duration, max_duration=max_duration)
