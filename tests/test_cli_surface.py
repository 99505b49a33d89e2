"""Every command as a new user meets it: `--help` works everywhere and shows an example, and
every command that takes `--model` runs with every registered model on a tiny generated
library — it either works or says why in one line with a non-zero status, never a traceback.
"""
from __future__ import annotations

import click
import pytest
import soundfile as sf
from click.testing import CliRunner

from mre.benchmarks.synth import ClipSpec, render
from mre.cli.main import main
from mre.embedder.models.factory import model_names


def _commands(group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()):
    """(words, command) of every command under the group, sub-groups included."""
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from _commands(command, click.Context(command, parent=ctx, info_name=name), prefix + (name,))


ROOT_CONTEXT = click.Context(main, info_name="mre")
ALL_COMMANDS = list(_commands(main, ROOT_CONTEXT))
MODEL_COMMANDS = [" ".join(words) for words, command in ALL_COMMANDS
                  if any("--model" in getattr(p, "opts", ()) for p in command.params)]


def _invoke(*args) -> click.testing.Result:
    return CliRunner().invoke(main, [str(a) for a in args])  # exceptions caught: a traceback is a failure below


def _assert_clean(result: click.testing.Result, words) -> None:
    """Exit 0, or a non-zero status with one `Error: ...` line; never an uncaught exception."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"mre {' '.join(map(str, words))} raised {result.exception!r}\n{result.output}")
    assert "Traceback" not in result.output
    if result.exit_code != 0:
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, f"mre {' '.join(map(str, words))}: {result.stderr!r}"


def test_every_command_is_listed_and_takes_help():
    assert {"index", "query", "tags", "similar", "info", "train", "bench", "bench quality", "bench speed"} <= {
        " ".join(words) for words, _ in ALL_COMMANDS}
    top = _invoke("--help")
    assert top.exit_code == 0
    for words, _ in ALL_COMMANDS:
        result = _invoke(*words, "--help")
        _assert_clean(result, words)
        assert result.exit_code == 0 and "Example" in result.output, words
        if len(words) == 1:
            assert words[0] in top.output  # the top-level help lists it


@pytest.fixture(scope="module")
def tiny_library(tmp_path_factory):
    """Two 4-s generated tracks, each in a folder named for its mood (a `folders` dataset)."""
    root = tmp_path_factory.mktemp("tiny")
    for folder, spec in [("calm", ClipSpec(bpm=70, tonic="C", mode="major", instruments=("piano",), drums="none",
                                           loudness_db=-22, seconds=4.0, seed=1)),
                         ("loud", ClipSpec(bpm=150, tonic="E", mode="minor", instruments=("guitar", "bass"),
                                           drums="rock", loudness_db=-11, seconds=4.0, seed=2))]:
        (root / folder).mkdir()
        sf.write(root / folder / f"{folder}.wav", render(spec, 16000), 16000)
    return root


def _model_run(command: str, model: str, library, scratch) -> list:
    """The arguments that run `command` with `--model model` on the tiny library."""
    track = next(library.rglob("*.wav"))
    return {
        "index": ["index", library, "--store", scratch / "store", "--workers", "0"],
        "tags": ["tags", track, "-k", "3", "--store", scratch / "no-store"],
        "bench quality": ["bench", "quality", "--dataset", "folders", "--root", library, "--out", scratch / "q",
                          "--workers", "0"],
        "bench speed": ["bench", "speed", "--library", library, "--sizes", "200", "--reindex-files", "0",
                        "--out", scratch / "s"],
    }[command] + ["--model", model]


def test_the_commands_that_take_a_model_are_the_ones_run_below():
    assert sorted(MODEL_COMMANDS) == ["bench quality", "bench speed", "index", "tags"]


@pytest.mark.parametrize("model", model_names())
@pytest.mark.parametrize("command", sorted(MODEL_COMMANDS))
def test_every_model_command_runs_or_says_why(command, model, tiny_library, tmp_path, one_faiss_thread):
    args = _model_run(command, model, tiny_library, tmp_path)
    _assert_clean(_invoke(*args), args)


def test_ctrl_c_in_a_command_with_nothing_to_save_is_one_line_and_status_130(cli, monkeypatch):
    """click's own answer was "Aborted!" and status 1; a shell reads 130 as ended by Ctrl-C."""
    import mre.retrieval.library as library

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(library, "Library", interrupted)
    result = cli("query", "calm piano", "--store", "/nonexistent-store")
    assert result.exit_code == 130
    assert result.stderr.strip() == "interrupted" and result.stdout == ""
