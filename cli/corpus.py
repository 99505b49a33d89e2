"""`mre corpus build`: render a tagged training corpus from generated General MIDI arrangements;
`mre corpus attributes`: learn `mre info`'s key profiles and tempo-octave decision from one."""
from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def corpus():
    """Tagged corpora rendered offline, for `mre train --tracks`.

    \b
    Example:
        mre corpus build --out corpus --clips 2000 --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2
        mre train --tracks corpus/tracks.csv --out corpus.mre
    """


@corpus.command()
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder to write (new or empty).")
@click.option("--clips", type=click.IntRange(min=1), required=True, help="How many clips.")
@click.option("--seed", type=int, default=0, show_default=True, help="The corpus is a pure function of the seed.")
@click.option("--soundfont", "soundfonts", multiple=True, required=True,
              help="A General MIDI .sf2/.sf3 (repeat for several; each clip draws one), or `timgm6mb` for the "
                   "copy pretty-midi ships. MuseScore General is refused: it is held out for evaluation.")
@click.option("--seconds", type=click.FloatRange(1, 600), default=10.0, show_default=True,
              help="Nominal clip length; each clip varies by ±15%.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Render processes.")
@click.option("--sample-rate", type=click.Choice(["16000", "22050", "44100"]), default="22050", show_default=True)
@click.option("--format", "audio_format", type=click.Choice(["flac", "ogg"]), default="flac", show_default=True)
@click.option("--held-out-evaluation", is_flag=True,
              help="Mark the output as an evaluation set; only then may a held-out SoundFont be used.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def build(out, clips, seed, soundfonts, seconds, workers, sample_rate, audio_format, held_out_evaluation, quiet):
    """Render CLIPS arrangements to OUT/audio, with OUT/tracks.csv and OUT/manifest.json.

    \b
    Example:
        mre corpus build --out corpus --clips 200 --soundfont timgm6mb --workers 2
    """
    # not the shared one_line_errors: it imports the engine (torch), seconds of start-up a render job never uses
    from mre.training.corpus.build import CorpusOptions, build_corpus, resolve_soundfonts

    import sys

    from mre.cli.options import sigterm_as_ctrl_c

    # SIGTERM ends a build as Ctrl-C does: the clips rendered so far are kept for the next one
    with sigterm_as_ctrl_c() as ended_by:
        try:
            fonts = resolve_soundfonts(soundfonts, held_out_evaluation)
            options = CorpusOptions(out=out, clips=clips, seed=seed, soundfonts=fonts, seconds=seconds,
                                    sample_rate=int(sample_rate), audio_format=audio_format,
                                    held_out_evaluation=held_out_evaluation)
            manifest = build_corpus(options, workers=workers, progress=not quiet)
        except (ValueError, OSError) as error:
            raise click.ClickException(str(error).strip().splitlines()[0] if str(error).strip()
                                       else type(error).__name__) from None
        except KeyboardInterrupt:
            what, status = ended_by()
            click.echo(f"{what}: the clips rendered so far are kept in {out}; run the same command again to finish",
                       err=True)
            sys.exit(status)
    if manifest.get("reused"):
        click.echo(f"{out} already holds this corpus ({clips} clips, seed {seed}, the same generator code and "
                   "SoundFont files): nothing rendered")
        return
    render = manifest["render"]
    click.echo(f"wrote {len(manifest['clips'])} clips ({render['audio_seconds'] / 60:.1f} min of audio, "
               f"{manifest['tag_vocabulary_size']} tags) to {out}: tracks.csv, manifest.json")
    skipped = manifest.get("skipped_clips", [])
    if skipped:
        click.echo(f"skipped {len(skipped)} clip{'s' if len(skipped) > 1 else ''} that no SoundFont given plays whole "
                   f"({skipped[0]['reason']}{', …' if len(skipped) > 1 else ''}): manifest.json lists them under "
                   "skipped_clips; another --soundfont renders them", err=True)
    kept = render.get("reused_clips", 0)
    if kept:
        click.echo(f"kept {kept} clips already rendered there (the same corpus with another clip count)")
    if kept < clips:
        click.echo(f"rendered {len(manifest['clips']) - kept} clips at {render['speed_x_realtime']}x realtime ({render['wall_seconds']} s, "
                   f"{workers} worker(s))")


@corpus.command()
@click.option("--corpus", "folder", type=click.Path(file_okay=False), default="corpus/attributes", show_default=True,
              help="A corpus from mre corpus build (not a --held-out-evaluation set).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="File to write; default: the one mre info reads (embedder/audio/data/attribute_model.json).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def attributes(folder, out, quiet):
    """Learn mre info's key profiles and tempo octave from a corpus's exact tempo, key and mode.

    Fitted on the corpus's train split, chosen on its valid split among options that lose at
    most 2 of 100 clips to the fixed rules on attribute_eval's synthetic clips, and used only
    where they beat the fixed rules on valid.

    \b
    Example:
        mre corpus build --out corpus/attributes --clips 1500 --seed 0 --workers 2 \\
            --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2 --soundfont timgm6mb
        mre corpus attributes --corpus corpus/attributes
    """
    from pathlib import Path

    from mre.benchmarks.synth import evaluation_set, render
    from mre.embedder.audio.attributes import LEARNED_FILE
    from mre.training.attribute_model import SAMPLE_RATE, SYNTHETIC_PER_GROUP, check_rows, corpus_manifest, summary, write_model

    clips = ((render(spec, SAMPLE_RATE), SAMPLE_RATE, spec.tonic, spec.mode, spec.bpm)
             for spec, _ in evaluation_set(SYNTHETIC_PER_GROUP, seed=0))
    try:
        corpus_manifest(Path(folder))     # a missing or held-out corpus is refused before any work
        synthetic = check_rows(clips, progress=not quiet)
        model = write_model(Path(folder), Path(out) if out else LEARNED_FILE, synthetic, progress=not quiet)
    except (ValueError, OSError) as error:
        raise click.ClickException(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__) from None
    for line in summary(model):
        click.echo(line)
    click.echo(f"wrote {out or LEARNED_FILE}")
