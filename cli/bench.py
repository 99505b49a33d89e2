"""`mre bench quality` and `mre bench speed`: the scripted benchmarks, one command each."""
from __future__ import annotations

import json
from pathlib import Path

import click

from mre.cli.options import device_option, emit_json, json_option, model_option, one_line_errors, word_vectors_option


@click.group()
def bench():
    """Benchmarks: retrieval quality on a dataset, and speed.

    \b
    Example:
        mre bench quality --dataset folders --root ~/Music/by-mood
        mre bench speed --sizes 10000,100000
    """


@bench.command()
@click.option("--dataset", type=click.Choice(["mtat", "gtzan", "table", "folders"]), required=True,
              help="Dataset layout under --root (folders: each file tagged by the sub-folders it is in).")
@click.option("--root", type=click.Path(exists=True, file_okay=False), required=True, help="Dataset folder.")
@click.option("--tracks", default="tracks.csv", show_default=True, help="For --dataset table: the table inside the root.")
@click.option("--split-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="For gtzan: folder with train/valid/test list files (default: the root).")
@click.option("--split", default="test", show_default=True, help="Which split to evaluate.")
@click.option("--model", "models", multiple=True,
              help="Model name or model file (default mre-zs-corpus); repeat to compare models side by side.")
@click.option("--out", type=click.Path(file_okay=False), default="bench-out", show_default=True,
              help="Folder for quality.json, per_tag.csv and the PNGs.")
@json_option
@device_option
@word_vectors_option
@click.option("--workers", type=click.IntRange(min=0), default=None, help="Decode processes (default: cores − 1).")
@click.option("--threshold", type=float, default=None,
              help="Per-track predictions (predictions.csv) keep the tags scoring this or more  [default: 0.15]. "
                   "Scores are 0–1 for the zero-shot models and the taggers; the taggers learnt from sparse tags, so most "
                   "tags of a track score near 0 and one that applies stands out at 0.15 or more (where mre train's "
                   "teacher takes a label as a track's tag). A trained model's scores are cosines: choose your own.")
@one_line_errors
def quality(dataset, root, tracks, split_dir, split, models, out, as_json, device, word_vectors, workers, threshold):
    """Tag-retrieval and annotation ROC-AUC (and accuracy for GTZAN) of a model on a dataset.

    The paper's Table 1 figures are printed beside, labelled as the paper's. A tagger
    (musicnn-msd, musicnn-mtt, musicnn-vgg-msd, musicnn-vgg-mtt) is the supervised row: it
    scores the dataset tags among its own labels, and only those count in its figures.
    Per track, the tags scoring --threshold or more, from the dataset's tags and from the
    whole tag vocabulary, go to predictions.csv; a few tracks are printed.

    \b
    Example:
        mre bench quality --dataset mtat --root ~/data/mtat
        mre bench quality --dataset gtzan --root ~/data/gtzan --split-dir ~/data/gtzan/splits --json
        mre bench quality --dataset table --root ~/data/mine --tracks tags.parquet
        mre bench quality --dataset folders --root ~/Music/by-mood --model mre-zs-musicnn --model mine.mre
        mre bench quality --dataset mtat --root ~/data/mtat --model musicnn-mtt --model mre-zs-musicnn
    """
    from mre.benchmarks.quality import format_comparison, format_table
    from mre.benchmarks.quality_predictions import DEFAULT_THRESHOLD, format_examples
    from mre.benchmarks.quality_run import run_quality
    from mre.embedder.models.factory import DEFAULT_MODEL

    models = list(models) or [None]
    reports = []
    for model in models:
        # several models: each writes into its own sub-folder of --out
        target = Path(out) / Path(model or DEFAULT_MODEL).name if len(models) > 1 else Path(out)
        report, written = run_quality(dataset, root, tracks=tracks, split_dir=split_dir, split=split, model_name=model,
                                      out=target, device=device, word_vectors=word_vectors, workers=workers,
                                      threshold=DEFAULT_THRESHOLD if threshold is None else threshold)
        reports.append(report)
        if not as_json:
            click.echo(format_table(report))
            click.echo(format_examples(report.predictions, report.tags, root=Path(root).resolve(),
                                       file=target / "predictions.csv"))
            click.echo(f"wrote {', '.join(str(p) for p in written)}\n")
    if as_json:
        emit_json(reports[0].to_json() if len(reports) == 1 else {"models": [r.to_json() for r in reports]})
    elif len(reports) > 1:
        click.echo(format_comparison(reports, [model or DEFAULT_MODEL for model in models]))


def _sizes(_ctx, _param, value: str) -> list[int]:
    """--sizes as whole numbers ≥ 1, checked before the benchmark imports anything heavy."""
    parts = [part.strip() for part in value.replace("_", "").split(",") if part.strip()]
    if not parts or not all(part.isdigit() and int(part) >= 1 for part in parts):
        raise click.BadParameter(f"whole numbers of vectors separated by commas, e.g. 10000,100000 (got {value!r})")
    return [int(part) for part in parts]


@bench.command()
@click.option("--library", type=click.Path(exists=True, file_okay=False), default=None,
              help="Audio for the embedding figures (default: the demo library, else generated clips).")
@click.option("--sizes", default="10000,100000,1000000", show_default=True, callback=_sizes,
              help="Search benchmark sizes (e.g. 1000000,10000000: 10M store-like vectors with the default model "
                   "need ~17 GiB of memory, with mre-zs-musicnn ~8 GiB).")
@click.option("--search-vectors", type=click.Choice(["store", "random"]), default="store", show_default=True,
              help="Search on vectors drawn from a mixture fitted to the model's embeddings of real audio (--library, "
                   "else the demo library and generated clips; queries: its vocabulary tags), or random unit vectors.")
@click.option("--reindex-files", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="Files in the generated library for the unchanged re-index figure (0: skip).")
@model_option
@device_option
@click.option("--out", type=click.Path(file_okay=False), default="bench-out", show_default=True)
@json_option
@one_line_errors
def speed(library, sizes, search_vectors, reindex_files, model, device, out, as_json):
    """Embedding throughput vs decode-only, search latency/recall vs numpy, unchanged re-index time.

    The search figures use the index the engine chooses at each size (build time, memory,
    single-query p50 on one thread, recall@10, ratio to numpy) and plot latency against size.

    \b
    Example:
        mre bench speed --sizes 10000,100000 --out bench-out
        mre bench speed --sizes 1000000,10000000 --reindex-files 0
    """
    import contextlib
    import io
    import tempfile

    from mre.benchmarks import reindex_speed, search_speed, tagging_speed
    from mre.embedder.audio.decode import audio_files_under
    from mre.embedder.models.factory import DEFAULT_MODEL, load_model
    from mre.embedder.runner import default_workers

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    quiet = contextlib.redirect_stdout(io.StringIO()) if as_json else contextlib.nullcontext()
    report = {}
    with quiet, tempfile.TemporaryDirectory() as scratch:
        if library:
            paths = [str(p) for p in audio_files_under(library)]
        else:
            paths = tagging_speed._demo_files() or tagging_speed._generated_files(Path(scratch))
        model_name = model or DEFAULT_MODEL
        report["embedding"] = figures = tagging_speed.measure(paths, model_name, 64, default_workers(), device, "float32")
        click.echo(f"embedding ({model_name}, {figures['device']}): end to end {figures['end_to_end_x_realtime']}× "
                   f"realtime, decode only {figures['decode_only_x_realtime']}× — ratio "
                   f"{figures['ratio_end_to_end_vs_decode']}")
        dim = load_model(model_name).dim
        report["search"] = search_speed.run(sizes, dim=dim, vectors=search_vectors, model_name=model_name,
                                            cache_dir=out_dir, echo=click.echo,
                                            reference_paths=paths if library else None)
        png = search_speed.plot_latency_vs_size(report["search"], out_dir / "search_latency_size.png")
        search_speed.plot_latency_vs_recall(report["search"], out_dir / "search_latency_recall.png")
        if reindex_files:
            report["reindex"] = reindex_speed.run(n_files=reindex_files, dim=dim)
    (out_dir / "speed.json").write_text(json.dumps(report, indent=2, default=str))
    if as_json:
        emit_json(report)
    else:
        click.echo(f"wrote {out_dir / 'speed.json'}" + (f", {png}" if png else ""))
        if png is None:
            from mre.benchmarks.quality_figures import NO_MATPLOTLIB

            click.echo(NO_MATPLOTLIB)
