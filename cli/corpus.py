"""`mre corpus build`: render a tagged training corpus from generated General MIDI arrangements."""
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

    try:
        fonts = resolve_soundfonts(soundfonts, held_out_evaluation)
        options = CorpusOptions(out=out, clips=clips, seed=seed, soundfonts=fonts, seconds=seconds,
                                sample_rate=int(sample_rate), audio_format=audio_format,
                                held_out_evaluation=held_out_evaluation)
        manifest = build_corpus(options, workers=workers, progress=not quiet)
    except (ValueError, OSError) as error:
        raise click.ClickException(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__) from None
    render = manifest["render"]
    click.echo(f"wrote {clips} clips ({render['audio_seconds'] / 60:.1f} min of audio, "
               f"{manifest['tag_vocabulary_size']} tags) to {out}: tracks.csv, manifest.json")
    click.echo(f"rendered at {render['speed_x_realtime']}x realtime ({render['wall_seconds']} s, {workers} worker(s))")
