"""`mre train`: the paper's model on your tagged tracks, or on a folder tagged by the musicnn teacher."""
from __future__ import annotations

import sys

import click

from mre.cli.options import device_option, emit_json, json_option, one_line_errors, word_vectors_option


@click.command()
@click.option("--tracks", "tracks_table", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV or Parquet with `path` (relative to the table) and `tags` (|-separated); optional `split`.")
@click.option("--teacher", type=click.Choice(["musicnn"]), default=None,
              help="The pre-trained musicnn taggers tag an untagged --library; with --tracks, their labels "
                   "that the table does not name join its tags.")
@click.option("--library", type=click.Path(exists=True, file_okay=False), default=None, help="Folder for --teacher.")
@click.option("--teacher-threshold", type=click.FloatRange(0, 1), default=0.15, show_default=True,
              help="A teacher label becomes a tag where its mean probability reaches this.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="The model file to write.")
@click.option("--audio-branch", type=click.Choice(["paper", "musicnn"]), default="paper", show_default=True,
              help="paper: the paper's CNN from scratch; musicnn: a head on the frozen pre-trained MSD tagger.")
@click.option("--backbone", type=click.Choice(["msd", "msd+mtt"]), default="msd", show_default=True,
              help="--audio-branch musicnn: the frozen taggers whose penultimate features the head reads.")
@click.option("--unseen-tags", "unseen_tags_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Tags held out of training, one per line (default: a random --unseen-fraction).")
@click.option("--unseen-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.25, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the track split, the tag split and training.")
@click.option("--epochs", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--patience", type=click.IntRange(min=1), default=6, show_default=True,
              help="Stop after this many epochs without a better validation loss.")
@click.option("--batch-size", type=click.IntRange(min=2), default=32, show_default=True, help="Patches per step.")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default="sgd", show_default=True,
              help="sgd: Nesterov momentum 0.9, as the paper.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning rate (default: sgd 0.1, adam 0.001).")
@click.option("--margin", type=click.FloatRange(min=0), default=0.4, show_default=True)
@click.option("--negatives", type=click.IntRange(min=1), default=1, show_default=True,
              help="Negative tags sampled per positive.")
@click.option("--max-seconds", type=click.FloatRange(min=1), default=120.0, show_default=True,
              help="Audio decoded per file.")
@click.option("--max-patches", type=click.IntRange(min=1), default=16, show_default=True,
              help="3 s patches kept per file, spread over it.")
@click.option("--resume", is_flag=True, help="Continue from OUT.ckpt (same data and settings).")
@word_vectors_option
@device_option
@click.option("--workers", type=click.IntRange(min=0), default=None, help="Decode processes (default: cores − 1).")
@json_option
@one_line_errors
def train(tracks_table, teacher, library, teacher_threshold, out, audio_branch, backbone, unseen_tags_file, unseen_fraction,
          seed, epochs, patience, batch_size, optimizer, lr, margin, negatives, max_seconds, max_patches, resume,
          word_vectors, device, workers, as_json):
    """Train the paper's two-branch model (audio CNN + word projection, hinge loss) and evaluate it.

    Tags are split into seen (trained on) and unseen (held out); the evaluation on the test
    tracks gives tag-retrieval ROC-AUC for both and annotation ROC-AUC, saved beside the
    model as OUT.eval.json and OUT.eval.png. Index and query with the model file:
    `mre index DIR --model OUT`.

    \b
    Example:
        mre train --tracks ~/data/mine/tracks.csv --out mine.mre
        mre train --teacher musicnn --library ~/Music --out my-music.mre
        mre train --tracks corpus/tracks.csv --teacher musicnn --out both.mre
        mre index ~/Music --model my-music.mre && mre query "dreamy synth"
    """
    from mre.training.run import DataOptions, format_report, run_training
    from mre.embedder.models.paper import ModelConfig
    from mre.embedder.runner import choose_device, default_workers
    from mre.training.loop import TrainSettings
    from mre.training.inputs import TrainingDataError

    data = DataOptions(tracks_table=tracks_table, library=library, teacher=teacher,
                       teacher_threshold=teacher_threshold, unseen_tags_file=unseen_tags_file,
                       unseen_fraction=unseen_fraction, max_seconds=max_seconds, max_patches=max_patches)
    settings = TrainSettings(epochs=epochs, batch_size=batch_size, optimizer=optimizer, learning_rate=lr,
                             margin=margin, negatives=negatives, patience=patience, seed=seed)
    if backbone != "msd" and audio_branch != "musicnn":
        raise click.UsageError("--backbone applies to --audio-branch musicnn")
    log = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    try:
        report, written = run_training(data, ModelConfig(audio_branch=audio_branch, backbone=backbone), settings, out,
                                       word_vectors=word_vectors, resume=resume, device=str(choose_device(device)),
                                       workers=default_workers() if workers is None else workers, log=log)
    except TrainingDataError as error:
        raise click.ClickException(str(error)) from None
    except KeyboardInterrupt:
        click.echo(f"interrupted: finished epochs are in {out}.ckpt; the same command with --resume continues",
                   err=True)
        sys.exit(130)
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo(format_report(report))
        click.echo(f"wrote {', '.join(str(p) for p in written)}")
