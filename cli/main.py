"""The `mre` command group."""
import click


@click.group()
def main():
    """mre: zero-shot music retrieval."""


if __name__ == "__main__":
    main()
