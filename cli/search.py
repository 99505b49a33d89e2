"""`mre query`, `mre tags`, `mre similar`: thin shells over mre.retrieval."""
from __future__ import annotations

from pathlib import Path

import click

from mre.indexer.paths import printable_path
from mre.cli.options import (device_option, emit_json, filter_options, filters_from, json_option, k_option, model_option,
                             one_line_errors, store_option, vocab_option, word_vectors_option)


def _open(store, model=None, word_vectors=None, vocab=None, device="cpu"):
    from mre.retrieval.library import Library

    return Library(store, model=model, word_vectors=word_vectors, vocabulary=vocab, device=device)


def _print_hits(hits, as_json: bool) -> None:
    if as_json:
        emit_json([hit.as_dict() for hit in hits])
        return
    if not hits:
        click.echo("no tracks")
    for rank, hit in enumerate(hits, 1):
        tags = f"  [{', '.join(hit.top_tags[:3])}]" if hit.top_tags else ""
        click.echo(f"{rank:3d}. {hit.score:.3f}  {printable_path(hit.path)}{tags}")


@click.command()
@click.argument("text")
@store_option
@k_option
@json_option
@word_vectors_option
@filter_options
@one_line_errors
def query(text, store, k, as_json, word_vectors, bpm, key_name, mode, min_duration, max_duration):
    """Words → songs: the tracks that best match TEXT (any words, not a fixed tag list).

    Negate with "no", "without" or "-": "acoustic guitar no vocals". Filters narrow the
    results to a tempo range, a key or mode, a duration.

    \b
    Example:
        mre query "dub reggae" -k 20
        mre query "calm piano without drums" --json
        mre query "deep house" --bpm 120-126 --key "A minor"
    """
    filters = filters_from(bpm, key_name, mode, min_duration, max_duration)
    result = _open(store, word_vectors=word_vectors).search(text, k, filters)
    for message in result.messages:
        click.echo(message, err=True)
    if not as_json and (result.matched_labels or result.related_labels):
        understood = ", ".join(f"{label} {weight:+.2f}" for label, weight in result.related_labels)
        click.echo(f"query → {understood}", err=True)
    _print_hits(result.hits, as_json)


@click.command()
@click.argument("targets", nargs=-1, required=True)
@store_option
@model_option
@click.option("-k", "k", type=click.IntRange(min=1), default=None,
              help="How many tags  [default: 10; with --threshold, every tag that reaches it].")
@click.option("--threshold", type=float, default=None,
              help="Every tag whose score reaches this, best first (at most -k when given too). Scores are "
                   "0–1 for the zero-shot models and the taggers, cosines for a trained model.")
@json_option
@vocab_option
@word_vectors_option
@device_option
@one_line_errors
def tags(targets, store, model, k, threshold, as_json, vocab, word_vectors, device):
    """Song → words: the tags that best describe each file or track id in TARGETS.

    With --model musicnn-msd or musicnn-mtt, the tagger's own 50 labels by mean probability.
    Otherwise tags come from the tag vocabulary (the store's; --vocab for your own, e.g. a
    dataset's tag list). Files need not be in the store: they are scored against it as its
    own tracks are, many of them embedded in one batched run.

    \b
    Example:
        mre tags song.mp3 other.flac --model musicnn-mtt -k 5
        mre tags song.mp3 --threshold 0.3 --json
        mre tags song.mp3 --vocab my-tags.txt -k 20
    """
    from mre.embedder.models.registry import MODELS
    from mre.retrieval.library import Library, TagResult, default_store_path
    from mre.retrieval.tagging import tag_files

    if k is None and threshold is None:
        k = 10
    store_path = Path(store).expanduser() if store else default_store_path()
    if model not in MODELS and (store_path / "CURRENT").exists():
        library = Library(store_path, model=model, word_vectors=word_vectors, vocabulary=vocab, device=device)
        note = library.tag_space().lacking_note()
        if note:
            click.echo(note, err=True)
        results = library.tag_many(list(targets), k, threshold)
    else:
        missing = [t for t in targets if not Path(t).expanduser().is_file()]
        if missing and model not in MODELS:
            raise click.ClickException(f"{missing[0]!r} is not a file, and there is no store at {store_path} to look up track ids")
        results = tag_files([str(Path(t).expanduser().resolve()) for t in targets], model, k=k, threshold=threshold,
                            vocabulary=vocab, word_vectors=word_vectors, device=device,
                            note=lambda line: click.echo(line, err=True))
    failures = [r for r in results if not isinstance(r, TagResult)]
    if as_json:
        emit_json([r.as_dict() if isinstance(r, TagResult) else {"path": r[0], "tags": [], "error": r[1]} for r in results])
    else:
        for result in results:
            if isinstance(result, TagResult):
                click.echo(printable_path(result.path))
                for entry in result.tags:
                    click.echo(f"  {entry['score']:.3f}  {entry['tag']}")
    for path, reason in failures:
        click.echo(f"Error: {printable_path(path)}: {reason}", err=True)
    if failures:
        raise SystemExit(1)


@click.command()
@click.argument("target")
@store_option
@k_option
@json_option
@device_option
@filter_options
@click.option("--compatible", is_flag=True,
              help="Only keys that mix harmonically with TARGET's: same, relative, a fifth up or down.")
@one_line_errors
def similar(target, store, k, as_json, device, bpm, key_name, mode, min_duration, max_duration, compatible):
    """Song → songs: the tracks that sound most like TARGET (a file or a track id).

    A file not in the store is embedded on the fly.

    \b
    Example:
        mre similar ~/Music/song.mp3 -k 5
        mre similar ~/Music/song.mp3 --bpm 122-130 --compatible
    """
    filters = filters_from(bpm, key_name, mode, min_duration, max_duration)
    _print_hits(_open(store, device=device).similar(target, k, filters, compatible=compatible), as_json)


@click.command()
@click.argument("targets", nargs=-1, required=True)
@store_option
@json_option
@device_option
@one_line_errors
def info(targets, store, as_json, device):
    """A card per track: duration, format, tempo, key and mode, loudness, brightness, top tags.

    TARGETS are files or track ids; files outside the store are analysed on the fly. Files
    need no store at all: without one, the card has the default model's top tags.

    \b
    Example:
        mre info ~/Music/song.mp3 --json
        mre info ~/Music/*.flac --store ~/music-store
    """
    from mre.retrieval.library import default_store_path, file_cards

    store_path = Path(store).expanduser() if store else default_store_path()
    if (store_path / "CURRENT").exists():
        cards = _open(store_path, device=device).info(list(targets))
    else:
        missing = [t for t in targets if not Path(t).expanduser().is_file()]
        if missing:
            raise click.ClickException(f"{missing[0]!r} is not a file, and there is no store at {store_path} "
                                       "to look up track ids")
        cards = file_cards([str(Path(t).expanduser().resolve()) for t in targets], device=device)
    if as_json:
        emit_json(cards)
        return
    for card in cards:
        click.echo(printable_path(card["path"]))
        bpm = f"{card['bpm']:.1f} BPM (confidence {card['bpm_confidence']:.2f})" if card.get("bpm") else "no clear pulse"
        key = f"{card['key']} {card['mode']}" if card.get("key") else "no key"
        duration = card.get("duration")
        click.echo(f"  duration   {duration:.1f} s, {card.get('format')}, {card.get('sample_rate')} Hz, "
                   f"{card.get('channels')} ch" if duration is not None else "  duration   unknown")
        if card.get("loudness_db") is None:
            click.echo("  attributes could not be measured")
        else:
            click.echo(f"  tempo      {bpm}")
            click.echo(f"  key        {key} (mode strength {card['mode_strength']:+.2f})")
            click.echo(f"  loudness   {card['loudness_db']:.1f} LUFS, range {card['dynamic_range_db']:.1f} LU")
            click.echo(f"  brightness {card['brightness']:.0f} Hz centroid; percussive {card['percussiveness']:.2f}, "
                       f"{card['onset_density']:.1f} onsets/s, beat strength {card['beat_strength']:.2f}")
        if card.get("top_tags"):
            click.echo(f"  tags       {', '.join(card['top_tags'])}")
