"""Import discipline: commands load lazily, and the word side never imports torch, scipy, gensim or pandas.

`mre --help`, `mre query` on a store of the default model and `mre index` of an unchanged
library run in a fresh interpreter each, which then reports what it imported: a module
pulled in once by a stray top-level import would cost every command its import time again.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys

import click
import pytest

from mre.cli.main import COMMANDS, main

HEAVY = ("torch", "scipy", "gensim", "ray", "pandas")

# Runs mre in-process (click's CliRunner), then prints its output, the heavy modules and mre's
# command modules that were imported, as one Python literal on the last line.
RUN_AND_REPORT = """
import sys
from click.testing import CliRunner
from mre.cli.main import main

result = CliRunner().invoke(main, sys.argv[1:], catch_exceptions=False)
assert result.exit_code == 0, result.output
print(repr({
    "output": result.output,
    "heavy": sorted(name for name in %r if name in sys.modules),
    "commands": sorted(name for name in sys.modules if name.startswith("mre.cli.") and name != "mre.cli.main"),
}))
""" % (HEAVY,)


def imported_by(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", RUN_AND_REPORT, *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


def test_help_imports_no_command_and_nothing_heavy():
    imported = imported_by("--help")
    assert imported["heavy"] == [] and imported["commands"] == []
    assert all(name in imported["output"] for name in COMMANDS)


def test_query_on_a_default_model_store_imports_neither_torch_nor_scipy_nor_gensim(store):
    imported = imported_by("query", "calm piano no drums", "--store", store)
    assert imported["heavy"] == []
    assert "mre.cli.search" in imported["commands"] and "mre.cli.train" not in imported["commands"]


def test_index_of_an_unchanged_library_imports_no_torch(store, music_library, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(store, copy)  # the shared store stays as the other tests expect it
    imported = imported_by("index", music_library, "--store", copy, "--workers", "1")
    assert "nothing changed" in imported["output"]
    assert imported["heavy"] == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_lists_each_command_with_its_own_summary(name):
    """The summaries `mre --help` lists without importing the commands are their docstrings'."""
    command = main.get_command(click.Context(main), name)
    listed = click.Command(name, help=COMMANDS[name][2])
    for width in (30, 45, 80, 1000):
        assert listed.get_short_help_str(width) == command.get_short_help_str(width)
