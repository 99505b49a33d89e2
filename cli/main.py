"""The `mre` command group; each command lives in a small module of its own."""
import click

from mre.cli.bench import bench
from mre.cli.corpus import corpus
from mre.cli.index import index
from mre.cli.search import info, query, similar, tags
from mre.cli.train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


for command in (index, query, tags, similar, info, train, bench, corpus):
    main.add_command(command)

if __name__ == "__main__":
    main()
