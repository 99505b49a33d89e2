"""`mre index`: embed a music folder into a store."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from mre.cli.options import (device_option, model_option, one_line_errors, sigterm_as_ctrl_c, store_option,
                             vocab_option, word_vectors_option)
from mre.embedder.models.device import PRECISIONS


@click.command()
@click.argument("path", type=click.Path(exists=True))
@store_option
@model_option
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Decode processes (default: cores − 1; with --engine ray each actor sizes its own).")
@device_option
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="3-s patches per model call.")
@click.option("--index-spec", default=None, help='FAISS factory string overriding the choice by size, e.g. "Flat", "HNSW32".')
@vocab_option
@word_vectors_option
@click.option("--max-seconds", type=click.FloatRange(min=3), default=900, show_default=True,
              help="Analyse at most this much of each track.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where decoding and the model run: here, or on a Ray cluster (extra [ray]).")
@click.option("--address", default=None, help='With --engine ray: a running cluster ("auto" or HOST:PORT); '
                                               "default: a private local one for this run.")
@click.option("--num-gpus", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --engine ray: one model actor per GPU (default: CPU actors).")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help="The model's arithmetic (default: the store's, float32 for a new store). Half precision is "
                   "for GPUs and moves vectors by ~1e-2; another precision than the store's re-embeds it.")
@one_line_errors
def index(path, store, model, workers, device, batch_size, index_spec, vocab, word_vectors, max_seconds, engine,
          address, num_gpus, precision):
    """Embed every audio file under PATH and build the store's indexes.

    Re-running it embeds only new and changed files and drops removed ones; an interrupted
    run resumes where it stopped. Files that cannot be read are skipped and listed.

    \b
    Examples:
        mre index ~/Music --store ~/music-store
        mre index /shared/music --engine ray --address auto --num-gpus 4
    """
    import time

    from tqdm import tqdm

    from mre.embedder.models.factory import DEFAULT_MODEL
    from mre.embedder.models.registry import MODELS
    from mre.indexer.paths import printable_path
    from mre.indexer.pipeline import index_library
    from mre.indexer.store import Store
    from mre.retrieval.library import default_store_path

    if model in MODELS:
        raise click.ClickException(
            f"{model} is a tagger with a fixed label list: use it with `mre tags FILE --model {model}`; "
            f"index with {DEFAULT_MODEL} (the default, built on it) or a model file from `mre train`")
    if engine == "local" and (address is not None or num_gpus):
        raise click.ClickException("--address and --num-gpus go with --engine ray")
    ray_engine = None
    if engine == "ray":
        from mre.indexer.ray_engine import RayEngine, check_device

        check_device(device, num_gpus)  # before any scanning
        # checks that Ray is installed; a cluster is started (or joined) only if there is work
        ray_engine = RayEngine(address=address, num_gpus=num_gpus)
    store_path = Path(store).expanduser() if store else default_store_path()
    bar = tqdm(total=0, unit="track", desc="embedding", file=sys.stderr, dynamic_ncols=True, disable=None)
    # no terminal (a log file, a cron job): a plain line every 30 s instead of a bar
    last_line = [time.monotonic()]

    def progress(done, total, current):
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(1)
        bar.set_postfix_str(printable_path(Path(current).name)[-40:], refresh=False)
        if bar.disable and (time.monotonic() - last_line[0] >= 30 or done == total):
            last_line[0] = time.monotonic()
            click.echo(f"embedding: {done}/{total} tracks", err=True)

    # SIGTERM (kill, systemd, a CI timeout) ends the run as Ctrl-C does: the pipeline saves
    # the tracks it finished, then the exit status says which signal it was (128 + number).
    with sigterm_as_ctrl_c() as ended_by:
        try:
            summary = index_library(path, Store(store_path), model_name=model, device=device, workers=workers,
                                    batch_size=batch_size, index_spec=index_spec, vocabulary=vocab,
                                    word_vectors=word_vectors, max_seconds=max_seconds, precision=precision,
                                    progress=progress, engine=ray_engine)
        except KeyboardInterrupt:
            what, status = ended_by()
            bar.close()
            click.echo(f"{what}: the tracks finished so far are saved in the store's staging area; "
                       "run the same command again to finish", err=True)
            sys.exit(status)
        finally:
            if ray_engine is not None:
                ray_engine.close()  # (already closed when the embedding ended; a no-op then)
    bar.close()
    for line in summary.lines():
        click.echo(line)
    click.echo(f"store: {summary.store}")
    if summary.total == 0 and summary.skipped and not summary.removed:
        raise click.ClickException(f"none of the {len(summary.skipped)} audio files under {printable_path(path)} "
                                   "could be indexed (reasons above)")
