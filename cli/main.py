"""The `mre` command group; each command lives in a small module of its own.

A command's module is imported only when that command runs or shows its --help (click's
lazy-loading pattern): `mre --help` imports no command, and `mre query` none of the others,
so neither pays for torch or the benchmarks.
"""
from __future__ import annotations

import importlib

import click

# name → (module, command object in it, summary that `mre --help` lists). The summary is the
# first paragraph of the command's docstring, kept here so that listing imports nothing;
# tests/test_cli_imports.py checks that the two stay the same.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "bench": ("mre.cli.bench", "bench", "Benchmarks: retrieval quality on a dataset, and speed."),
    "corpus": ("mre.cli.corpus", "corpus", "Tagged corpora rendered offline, for `mre train --tracks`."),
    "duplicates": ("mre.cli.duplicates", "duplicates",
                   "Groups of files that are the same recording, and which copy to keep; nothing is deleted."),
    "index": ("mre.cli.index", "index", "Embed every audio file under PATH and build the store's indexes."),
    "info": ("mre.cli.search", "info",
             "A card per track: duration, format, tempo, key and mode, loudness, brightness, top tags."),
    "query": ("mre.cli.search", "query",
              "Words → songs: the tracks that best match TEXT (any words, not a fixed tag list)."),
    "serve": ("mre.cli.serve", "serve", "A local web page: search by words, listen, and see the library as a map."),
    "similar": ("mre.cli.search", "similar",
                "Song → songs: the tracks that sound most like TARGET (a file or a track id)."),
    "tags": ("mre.cli.search", "tags",
             "Song → words: the tags that best describe each file or track id in TARGETS."),
    "train": ("mre.cli.train", "train",
              "Train the paper's two-branch model (audio CNN + word projection, hinge loss) and evaluate it."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported by name when first asked for."""

    def __init__(self, *args, lazy_commands: dict[str, tuple[str, str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy_commands:
            return super().get_command(ctx, name)
        module, attribute, _ = self.lazy_commands[name]
        return getattr(importlib.import_module(module), attribute)

    def invoke(self, ctx: click.Context):
        # Ctrl-C in a command with nothing to save (click would say "Aborted!" with status 1):
        # one line, and the shell's status for SIGINT. Commands that save work say more themselves.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list as click writes it, from the summaries: no command is imported."""
        listed = []
        for name in self.list_commands(ctx):
            command = (click.Command(name, help=self.lazy_commands[name][2]) if name in self.lazy_commands
                       else super().get_command(ctx, name))
            if command is not None and not command.hidden:
                listed.append((name, command))
        if listed:
            limit = formatter.width - 6 - max(len(name) for name, _ in listed)  # click's own spacing
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in listed])


@click.group(cls=LazyGroup, lazy_commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="music-retrieval-engine")
def main():
    """mre: zero-shot music retrieval. Index a folder, then search it with any words.

    \b
    Example:
        mre index ~/Music
        mre query "dub reggae"
        mre tags ~/Music/song.mp3
        mre similar ~/Music/song.mp3
    """


if __name__ == "__main__":
    main()
