"""The corpus builder: a tiny render with the SoundFont pretty_midi ships (TimGM6mb), read back
the way `mre train --tracks` reads it; the tags are checked against the music that was made
(tempo words against the bpm column, the bpm column against the tempo estimator, four on the
floor against the drum stem's onsets); MuseScore General is refused for training."""
from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

pytest.importorskip("tinysoundfont")
pytest.importorskip("pretty_midi")

from mre.training.datasets import read_tracks_table  # noqa: E402
from mre.cli.main import main  # noqa: E402
from mre.training.corpus import music  # noqa: E402
from mre.training.corpus.arrangements import FAST_BPM, SLOW_BPM, make_arrangement  # noqa: E402
from mre.training.corpus.build import (CorpusOptions, UnrenderableClip, build_corpus, bundled_soundfont,  # noqa: E402
                                      render_with_fallback, resolve_soundfonts)
from mre.training.corpus.instruments import DRUM_KEYS, FAMILIES, INSTRUMENTS, in_family, instrument  # noqa: E402
from mre.training.corpus.render import (HeldOutSoundFont, Renderer, SoundFontGap, check_soundfont,  # noqa: E402
                                       draw_variation, is_held_out)
from mre.training.corpus.styles import STYLES  # noqa: E402

CLIPS, SECONDS, SEED = 12, 3.0, 7


def _build(out, seed=SEED, clips=CLIPS, workers=1):
    options = CorpusOptions(out=out, clips=clips, seed=seed, soundfonts=(bundled_soundfont(),), seconds=SECONDS)
    return build_corpus(options, workers=workers)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    manifest = _build(out)
    with open(out / "tracks.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return out, manifest, rows


def test_clips_decode_and_the_table_reads_as_mre_train_reads_it(corpus):
    out, manifest, rows = corpus
    assert len(rows) == CLIPS
    dataset = read_tracks_table(out / "tracks.csv")
    assert len(dataset.tracks) == CLIPS and not dataset.missing_audio
    for ref, labels, row in zip(dataset.tracks, dataset.labels, rows):
        audio, rate = sf.read(ref.path)
        assert rate == 22050 and audio.ndim == 1
        assert abs(len(audio) / rate - float(row["seconds"])) < 1e-3
        assert SECONDS * 0.84 <= len(audio) / rate <= SECONDS * 1.16
        assert np.isfinite(audio).all() and 0 < np.abs(audio).max() <= 1.0
        assert {dataset.tags[j] for j in np.flatnonzero(labels)} == set(row["tags"].split("|"))
        assert ref.split == row["split"] in ("train", "valid", "test")
    assert manifest["held_out_evaluation"] is False and manifest["purpose"] == "training"
    assert manifest["soundfonts"][0]["name"] == "TimGM6mb.sf2" and len(manifest["soundfonts"][0]["sha256"]) == 64
    assert sum(manifest["counts"]["splits"].values()) == CLIPS
    assert manifest["render"]["speed_x_realtime"] > 0
    assert json.loads((out / "manifest.json").read_text())["clips"][0]["variation"]["soundfont"] == "TimGM6mb.sf2"


def test_each_clip_carries_the_exact_tags_of_its_arrangement(corpus):
    _, _, rows = corpus
    for index, row in enumerate(rows):
        arrangement = make_arrangement(SEED, index, SECONDS)
        tags = row["tags"].split("|")
        assert tags == arrangement.tags
        assert float(row["bpm"]) == arrangement.bpm and row["key"] == arrangement.key and row["mode"] == arrangement.mode
        for part in arrangement.parts:
            if not part.drums:
                assert set(instrument(part.instrument).tags) <= set(tags)
        assert ("fast" in tags) == (arrangement.bpm >= FAST_BPM)
        assert ("slow" in tags) == (arrangement.bpm < SLOW_BPM)
        assert (row["mode"] in tags) if row["mode"] else not {"major", "minor"} & set(tags)
        assert ("drums" in tags) >= any(p.drums for p in arrangement.parts)


def test_same_seed_gives_the_same_corpus_and_another_seed_another(corpus, tmp_path):
    out, manifest, _ = corpus
    again = _build(tmp_path / "again", workers=2)   # the worker count changes nothing
    assert (tmp_path / "again" / "tracks.csv").read_bytes() == (out / "tracks.csv").read_bytes()
    for row in again["clips"]:
        assert (tmp_path / "again" / row["path"]).read_bytes() == (out / row["path"]).read_bytes()
    assert again["clips"] == manifest["clips"]
    other = _build(tmp_path / "other", seed=SEED + 1, clips=4)
    assert (tmp_path / "other" / "tracks.csv").read_bytes() != (out / "tracks.csv").read_bytes()
    assert [c["tags"] for c in other["clips"]] != [c["tags"] for c in manifest["clips"][:4]]


def test_building_the_same_corpus_again_renders_nothing_and_other_options_render_anew(corpus):
    out, manifest, _ = corpus
    options = CorpusOptions(out=out, clips=CLIPS, seed=SEED, soundfonts=(bundled_soundfont(),), seconds=SECONDS)
    first = out / manifest["clips"][0]["path"]
    before = first.stat().st_mtime_ns
    again = build_corpus(options)
    assert again["reused"] and again["clip_count"] == CLIPS and first.stat().st_mtime_ns == before
    result = CliRunner().invoke(main, ["corpus", "build", "--out", str(out), "--clips", str(CLIPS), "--seed", str(SEED),
                                       "--seconds", str(SECONDS), "--soundfont", "timgm6mb", "--quiet"])
    assert result.exit_code == 0 and "nothing rendered" in result.output
    from mre.training.corpus.build import already_built
    assert already_built(CorpusOptions(**{**options.__dict__, "seed": SEED + 1})) is None
    assert already_built(CorpusOptions(**{**options.__dict__, "clips": CLIPS - 1})) is None
    manifest_path = out / "manifest.json"
    kept = manifest_path.read_text()
    try:      # made by other generator code: not this corpus
        manifest_path.write_text(json.dumps(json.loads(kept) | {"generator": "other code"}))
        assert already_built(options) is None
    finally:
        manifest_path.write_text(kept)


def test_the_generator_fingerprint_follows_the_code_not_its_prose(tmp_path):
    import shutil

    from mre.training.corpus import build as build_module
    from mre.training.corpus.build import GENERATOR_MODULES, generator_fingerprint

    source = os.path.dirname(build_module.__file__)
    for name in GENERATOR_MODULES:
        shutil.copy(os.path.join(source, f"{name}.py"), tmp_path / f"{name}.py")
    assert generator_fingerprint(tmp_path) == generator_fingerprint()
    render = tmp_path / "render.py"
    text = render.read_text()
    render.write_text(text.replace('"""Playing an arrangement', '"""Rendering an arrangement', 1) + "\n# a comment\n")
    assert generator_fingerprint(tmp_path) == generator_fingerprint()
    render.write_text(text.replace("LEVEL_DBFS = {", "LEVEL_DBFS = {**{}, ", 1))
    assert generator_fingerprint(tmp_path) != generator_fingerprint()


def test_a_smaller_corpus_built_over_a_larger_one_leaves_none_of_its_clips(tmp_path):
    _build(tmp_path, clips=4)
    smaller = _build(tmp_path, clips=2)
    on_disk = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "audio").rglob("*.flac"))
    assert on_disk == sorted(c["path"] for c in smaller["clips"]) and len(on_disk) == 2


def test_a_held_out_set_left_by_other_generator_code_is_rendered_again(corpus, tmp_path, monkeypatch):
    # benchmarks measure what a fresh checkout renders: TimGM6mb stands in for MuseScore General
    from mre.training.corpus import build as build_module

    monkeypatch.setattr(build_module, "held_out_soundfont", bundled_soundfont)
    held_out = tmp_path / "heldout"
    made = build_module.held_out_set(held_out, clips=2, seed=SEED, progress=False)
    first = held_out / made["clips"][0]["path"]
    audio, before = first.read_bytes(), first.stat().st_mtime_ns
    assert build_module.held_out_set(held_out, clips=5, seed=1, progress=False)["clip_count"] == 2  # kept as it is
    assert first.stat().st_mtime_ns == before
    manifest_path = held_out / "manifest.json"
    manifest_path.write_text(json.dumps(json.loads(manifest_path.read_text()) | {"generator": "older code"}))
    again = build_module.held_out_set(held_out, progress=False)
    assert again["generator"] == made["generator"] and again["clip_count"] == 2 and again["seed"] == SEED
    assert first.stat().st_mtime_ns != before and first.read_bytes() == audio
    # a set whose SoundFont is not here cannot be rendered again: one line says what to do
    manifest_path.write_text(json.dumps(json.loads(manifest_path.read_text()) | {"generator": "older code"}))
    monkeypatch.setattr(build_module, "held_out_soundfont", lambda: first)
    with pytest.raises(ValueError, match="render it again"):
        build_module.held_out_set(held_out, progress=False)
    with pytest.raises(ValueError, match="training corpus"):
        build_module.held_out_set(corpus[0], progress=False)


def test_musescore_general_is_held_out_of_training_corpora(tmp_path):
    fake = tmp_path / "MuseScore_General.sf3"
    fake.write_bytes(b"RIFF....sfbkLIST")
    with pytest.raises(HeldOutSoundFont):
        resolve_soundfonts([str(fake)], held_out_evaluation=False)
    assert check_soundfont(fake, held_out_evaluation=True) == fake
    link = tmp_path / "default-GM.sf3"          # as Debian's alternatives link names it
    link.symlink_to(fake)
    renamed = tmp_path / "font.sf2"             # a renamed copy still says what it is inside
    renamed.write_bytes(b"RIFF\x00\x00\x00\x00sfbkLIST\x00\x00\x00\x00INFOINAM\x12\x00\x00\x00MuseScore_General\x00")
    assert is_held_out(link) and is_held_out(renamed) and not is_held_out(bundled_soundfont())
    result = CliRunner().invoke(main, ["corpus", "build", "--out", str(tmp_path / "c"), "--clips", "1",
                                       "--soundfont", str(renamed)])
    assert result.exit_code == 1 and "held out" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "c").exists()


def test_a_clip_renders_the_same_whatever_was_rendered_before_it():
    # a pool worker renders clips in an order set by scheduling: its synthesizer must not carry
    # voices from one clip into the next (it did: 303 of 8,000 clips differed by one 16-bit step)
    def rendered(renderer, index):
        arrangement = make_arrangement(0, index, 10.0)
        return renderer.render(arrangement, draw_variation(arrangement, 1, 10.0, 0.15))[0]

    for index in (0, 1, 4, 7):
        alone = rendered(Renderer([bundled_soundfont()], 22050), index)
        warmed = Renderer([bundled_soundfont()], 22050)
        rendered(warmed, index + 5)
        assert rendered(warmed, index).tobytes() == alone.tobytes(), index


def test_a_soundfont_that_plays_a_part_silent_hands_the_clip_to_the_next_one():
    # TimGM6mb plays this whistle solo (seed 0, clip 4015) silent: a 10 s clip seen in a real build
    arrangement = make_arrangement(0, 4015, 10.0)
    assert arrangement.style == "solo whistle"
    variation = draw_variation(arrangement, 2, 10.0, 0.0) | {"soundfont": 0}
    renderer = Renderer([bundled_soundfont()], 16000)
    with pytest.raises(SoundFontGap, match="whistle silent"):
        renderer.render(arrangement, variation)

    class GapInFirst:                       # the same arrangement: the first font has the gap
        calls = []

        def render(self, arrangement, variation):
            self.calls.append(variation["soundfont"])
            if variation["soundfont"] == 0:
                raise SoundFontGap("no whistle")
            return np.ones(4), {}, {}

    audio, used, played = render_with_fallback(GapInFirst(), arrangement, variation, 2)
    assert GapInFirst.calls == [0, 1] and played["soundfont"] == 1 and used["fallback_from"] == 0
    with pytest.raises(UnrenderableClip, match="whistle silent"):  # one SoundFont: none to hand it to
        render_with_fallback(renderer, arrangement, variation, 1)


def test_a_clip_no_soundfont_plays_is_skipped_and_recorded_and_the_corpus_is_complete(tmp_path, monkeypatch):
    """Such a clip stopped the whole build (a 3,000-clip build through TimGM6mb alone stopped at
    clip 2,914, keeping none): it is left out of the table, listed in the manifest, and the corpus
    counts as complete."""
    from mre.training.corpus import build as build_module

    original = build_module.render_with_fallback

    def gap_at_two(renderer, arrangement, variation, n_fonts):
        if arrangement.index == 2:
            raise UnrenderableClip(f"clip 2 ({arrangement.style}): the SoundFont plays whistle silent")
        return original(renderer, arrangement, variation, n_fonts)

    monkeypatch.setattr(build_module, "render_with_fallback", gap_at_two)
    out = tmp_path / "corpus"
    manifest = _build(out, clips=4)
    [skipped] = manifest["skipped_clips"]
    assert skipped["index"] == 2 and skipped["reason"].endswith("plays whistle silent")
    assert [c["path"] for c in manifest["clips"]] == [build_module.audio_path(i, "flac") for i in (0, 1, 3)]
    with open(out / "tracks.csv", newline="") as handle:
        assert [row["path"] for row in csv.DictReader(handle)] == [c["path"] for c in manifest["clips"]]
    assert not (out / build_module.audio_path(2, "flac")).exists()
    assert _build(out, clips=4).get("reused")  # complete: run again, nothing is rendered

    monkeypatch.setattr(build_module, "render_with_fallback", original)
    fresh = _build(tmp_path / "fresh", clips=4)
    assert "skipped_clips" not in fresh  # a corpus without such clips has the manifest it always had
    assert manifest["clips"] == [fresh["clips"][i] for i in (0, 1, 3)]


def test_tempo_words_and_the_bpm_column_are_what_is_heard(corpus):
    """The bpm column against the project's tempo estimator on grooves with drums: within 4 %
    or at an octave. Measured on seed 0, clips 0-79 at 8 s: 37 of 37 grooves."""
    from mre.embedder.audio.attributes import extract_attributes

    _, _, rows = corpus
    fast = [float(r["bpm"]) for r in rows if "fast" in r["tags"].split("|")]
    slow = [float(r["bpm"]) for r in rows if "slow" in r["tags"].split("|")]
    assert not fast or not slow or min(fast) > max(slow)
    renderer = Renderer([bundled_soundfont()], 22050)
    checked, agree = 0, 0
    for index in range(40):
        arrangement = make_arrangement(0, index, 6.0)
        if not any(p.drums for p in arrangement.parts):
            continue
        audio, _, _ = renderer.render(arrangement, draw_variation(arrangement, 1, 6.0, 0.0))
        ratio = extract_attributes(audio, 22050).bpm / arrangement.bpm
        checked += 1
        agree += any(abs(ratio - octave) <= 0.04 * octave for octave in (0.5, 1.0, 2.0))
        if checked == 8:
            break
    print(f"tempo estimate agrees with the bpm column on {agree}/{checked} grooves")
    assert checked == 8 and agree >= 6


def test_four_on_the_floor_has_a_kick_on_every_beat():
    index = next(i for i in range(200) if make_arrangement(0, i, 4.0).style in ("house", "techno"))
    arrangement = make_arrangement(0, index, 4.0)
    assert "four on the floor" in arrangement.tags
    variation = draw_variation(arrangement, 1, 4.0, 0.0)
    renderer = Renderer([bundled_soundfont()], 22050)
    drums = next(k for k, p in enumerate(arrangement.parts) if p.drums)
    stem, _ = renderer.stem(0, arrangement, drums, variation, np.random.default_rng(0))
    rate, beat = 22050, arrangement.seconds_per_beat
    envelope = np.abs(stem)
    for k in range(int(len(stem) / rate / beat) - 1):
        at = int(k * beat * rate)
        on = envelope[at: at + int(0.03 * rate)].max()
        before = envelope[max(0, at - int(0.06 * rate)): max(1, at - int(0.01 * rate))].max() if k else 0.0
        assert on > 0.25 * envelope.max() and on > 1.5 * before, f"beat {k}: {on:.3f} vs {before:.3f} before"


def test_catalogue_is_well_formed_and_covers_every_general_midi_family():
    assert all(in_family(family) for family in FAMILIES)
    for style in STYLES.values():
        steps = style.meter * music.STEPS_PER_BEAT
        for grid in (g for option in style.drums for g in option):
            assert set(grid) <= set(DRUM_KEYS) and all(len(p) == steps for p in grid.values()), style.name
        if style.bass != "walking":
            assert all(len(p) == steps and set(p) <= set("R35678a-.") for option in style.bass for p in option), style.name
        assert all(len(p) == steps for option, _ in style.comp for p in option), style.name
        assert all(len(r) == steps for r in style.melody_rhythms), style.name
        assert all(name in INSTRUMENTS for name in style.bass_instruments + style.comp_instruments
                   + style.melody_instruments + style.pad_instruments), style.name
        low, high = min(t[0] for t in style.tempo), max(t[1] for t in style.tempo)
        assert 40 <= low <= high <= 220, style.name
    made = [make_arrangement(0, i, 4.0) for i in range(150)]
    assert {a.kind for a in made} == {"genre", "ensemble", "solo"}
    assert all(a.parts and all(p.notes for p in a.parts) for a in made)
    assert make_arrangement(3, 5, 4.0).tags == make_arrangement(3, 5, 4.0).tags


def test_the_command_builds_in_a_fresh_process(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "mre.cli.main", "corpus", "build", "--out", str(tmp_path / "c"),
                             "--clips", "2", "--seconds", "2", "--soundfont", "timgm6mb", "--quiet"],
                            capture_output=True, text=True, env=os.environ | {"PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr
    assert "x realtime" in result.stdout and (tmp_path / "c" / "tracks.csv").is_file()


def test_mre_train_learns_from_the_tiny_corpus(corpus, tmp_path):
    """The table trains as it is: splits from the builder, every tag with a word vector kept."""
    from dataclasses import replace

    from mre.training.run import DataOptions, run_training
    from mre.embedder.models.paper import PAPER_FRONTEND, ModelConfig
    from mre.training.loop import TrainSettings

    out, _, rows = corpus
    tiny = ModelConfig(conv_channels=(16, 16, 16, 16),
                       frontend=replace(PAPER_FRONTEND, n_mels=64, patch_frames=62).as_dict())
    lines = []
    report, written = run_training(DataOptions(tracks_table=str(out / "tracks.csv"), max_patches=2), tiny,
                                   TrainSettings(epochs=1, batch_size=8), str(tmp_path / "corpus.mre"),
                                   show_progress=False, log=lines.append)
    assert (tmp_path / "corpus.mre").is_file()
    assert sum(report.tracks.values()) == len(rows)
    assert report.tracks.get("train", 0) == sum(r["split"] == "train" for r in rows)
    assert not any("no word vector" in line for line in lines), lines


def test_make_model_trains_on_the_tiny_corpus_and_writes_a_loadable_corpus_model(corpus, tmp_path):
    """`make model` end to end on the tiny render: musicnn-feature head, held-out tags unseen,
    deterministic weights file, the paper's control beside it; the file serves as mre-zs-corpus."""
    from mre.embedder.models.corpus_model import CorpusZeroShotModel
    from mre.training.corpus.held_out import held_out_tags
    from mre.training.model_build import LABEL_READING_GRID, build

    out, _, _ = corpus
    result = build(out, tmp_path / "work", tmp_path / "ship.npz", epochs=1, workers=0, log=lambda line: None)
    family, family_tags, styles = held_out_tags()
    assert set(result["report"]["unseen_tags"]) <= set(family_tags + styles)
    assert not set(result["report"]["seen_tags"]) & set(family_tags + styles)
    model = CorpusZeroShotModel(path=tmp_path / "ship.npz")
    assert model.scale > 0 and model.query_vector("trumpet").vector[model.label_dim:].any()
    # the label-reading weights were chosen from the grid, on validation words kept out of this training
    choice = result["label_reading"]
    assert model.label_reading == choice["label_reading"] and set(choice["label_reading"]) <= set(LABEL_READING_GRID)
    assert not set(choice["validation_unseen"]) & set(family_tags + styles)
    validation = CorpusZeroShotModel(path=tmp_path / "work" / "validation.npz")
    assert set(choice["validation_unseen"]) <= set(validation.held_out_words) - set(validation.seen_words)
    assert (tmp_path / "work" / "control.npz").is_file()
    again = build(out, tmp_path / "again", tmp_path / "again.npz", epochs=1, workers=0, control=False, log=lambda line: None)
    assert again["shipped"] == result["shipped"]
    assert (tmp_path / "again.npz").read_bytes() == (tmp_path / "ship.npz").read_bytes()  # deterministic bytes


def test_the_phrase_reading_study_runs_on_make_models_work_folder_and_says_what_is_missing(corpus, tmp_path, capsys):
    from mre.training.choose_phrase_reading import main as phrase_main, readings
    from mre.training.model_build import build

    out, _, _ = corpus
    with pytest.raises(SystemExit, match="run `make model` first"):
        phrase_main(["--work", str(tmp_path / "nothing"), "--corpus", str(out)])
    build(out, tmp_path / "work", tmp_path / "ship.npz", epochs=1, workers=0, control=False, log=lambda line: None)
    phrase_main(["--work", str(tmp_path / "work"), "--corpus", str(out)])
    assert "validation clips" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not a seen tag"):
        phrase_main(["--work", str(tmp_path / "work"), "--corpus", str(out), "--keep-out", "no such tag"])
    # the three readings of a phrase of a label and another word, as the corpus model reads it
    from mre.embedder.models.corpus_model import CorpusZeroShotModel

    model = CorpusZeroShotModel(path=tmp_path / "ship.npz")
    read = readings(model, "tender piano")
    np.testing.assert_allclose(read["both"], model.query_vector("tender piano").vector, atol=1e-6)
    np.testing.assert_allclose(read["both"][:-1], (read["split"] + read["whole"])[:-1] / 2, atol=1e-6)
    assert read["both"][-1] == read["split"][-1]  # the phrase keeps its parts' offset


def test_the_label_reading_study_leaves_each_soundfont_out_of_training(corpus, tmp_path, capsys):
    """choose_label_reading trains a head per SoundFont left out and scores only that SoundFont's
    clips; a corpus of one SoundFont is refused in one line. The tiny render has one SoundFont, so
    a copy of its table names two (each with train and valid clips) to run the folds."""
    import shutil

    from mre.training.choose_label_reading import main as study_main
    from mre.training.model_build import build

    out, _, rows = corpus
    build(out, tmp_path / "work", tmp_path / "ship.npz", epochs=1, workers=0, control=False, log=lambda line: None)
    with pytest.raises(SystemExit, match="one SoundFont"):
        study_main(["--work", str(tmp_path / "work"), "--corpus", str(out)])
    two = tmp_path / "two"
    shutil.copytree(out, two)
    pattern = ["train", "train", "valid", "train", "train", "valid"]  # each font: 4 train, 2 valid clips
    for index, row in enumerate(rows):
        row["split"] = pattern[(index // 2) % len(pattern)]
        row["soundfont"] = ("a.sf2", "b.sf2")[index % 2]
    with open(two / "tracks.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    study_main(["--work", str(tmp_path / "work"), "--corpus", str(two), "--json", str(tmp_path / "folds.json")])
    folds = json.loads((tmp_path / "folds.json").read_text())
    assert sorted(folds) == ["a.sf2", "b.sf2"]
    assert all(fold["clips"] == len(rows) // 2 for fold in folds.values())  # each font's non-test clips
    assert "mean over the 2 SoundFonts left out" in capsys.readouterr().out


def test_a_smaller_corpus_variant_trains_on_the_first_clips_of_the_table(tmp_path):
    """clips-N keeps the fold's training clips among the corpus table's first N rows (the corpus of
    N clips of the same seed); clip numbers follow the table, not the order tracks come in."""
    from types import SimpleNamespace

    from mre.training.choose_label_reading import clip_numbers, variant_rows, variant_settings

    with open(tmp_path / "tracks.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "tags", "soundfont"])
        writer.writeheader()
        writer.writerows({"path": f"audio/{i:06d}.flac", "tags": "piano", "soundfont": "a.sf2"} for i in range(6))
    tracks = [SimpleNamespace(path=str(tmp_path / f"audio/{i:06d}.flac")) for i in (5, 0, 3, 1, 4, 2)]
    numbers = clip_numbers(tmp_path, tracks)
    assert numbers.tolist() == [5, 0, 3, 1, 4, 2]
    train_rows = np.array([0, 1, 2, 4])  # clips 5, 0, 3, 4
    assert variant_rows("clips-4", train_rows, numbers).tolist() == [1, 2]
    assert variant_rows("base", train_rows, numbers).tolist() == train_rows.tolist()
    assert variant_settings("clips-4", 3).seed == 3
    for bad in ("clips-0", "clips-x", "fewer"):
        with pytest.raises(ValueError):
            variant_settings(bad, 0)


def test_the_pooled_backbone_reads_the_taggers_back_end_vectors_into_a_cache_of_its_own(corpus, tmp_path):
    """`--backbone msd+mtt-pooled` gives the head both taggers' pooled back-end vectors (1,506 each,
    the layer under the penultimate one, from the same forward pass as the probabilities); the
    study refuses make model's work folder rather than replace its cached features."""
    import torch

    from mre.embedder.models.paper import ModelConfig
    from mre.embedder.models.registry import load_tagger
    from mre.training.choose_label_reading import main as study_main
    from mre.training.inputs import _TeacherPass
    from mre.training.model_build import work_inputs

    out, _, _ = corpus
    config = ModelConfig(audio_branch="musicnn", backbone="msd+mtt-pooled")
    assert config.feature_dim == 2 * 1506 and ModelConfig(audio_branch="musicnn", backbone="msd+mtt").feature_dim == 400
    msd, mtt = load_tagger("musicnn-msd"), load_tagger("musicnn-mtt")
    patches = torch.randn(2, 187, 96)
    outputs = _TeacherPass(msd, mtt, layer="pooled").patch_outputs(patches)
    _, _, msd_pooled = msd.forward_layers(patches)
    width = outputs.shape[1] - 2 * 1506
    assert torch.equal(outputs[:, width:width + 1506], msd_pooled)
    assert torch.equal(outputs[:, :width], _TeacherPass(msd, mtt).patch_outputs(patches)[:, :width])  # same probabilities
    _, prepared = work_inputs(out, tmp_path / "pooled", backbone="msd+mtt-pooled")
    assert prepared.inputs.shape[1] == 3012 and (tmp_path / "pooled" / "corpus.mre.inputs.json").is_file()
    (tmp_path / "made").mkdir()
    (tmp_path / "made" / "corpus.mre").write_bytes(b"")
    with pytest.raises(SystemExit, match="work folder of its own"):
        study_main(["--work", str(tmp_path / "made"), "--corpus", str(out), "--backbone", "msd+mtt-pooled"])


def test_the_union_reading_of_a_word_that_is_a_label_or_a_learnt_tag_is_that_word():
    """With one neighbour, a word read over the labels and the seen tags together is its own label
    (weight 1 on its log-odds) or its own learnt row."""
    from mre.embedder.models.corpus_model import CorpusZeroShotModel
    from mre.training.choose_label_reading import union_reading

    model = CorpusZeroShotModel()
    label_vectors, tokens = model._labels_in_word_space()
    piano = model.words.phrase_vector("piano").vector
    read = union_reading(model, piano, 1, 0.05)
    assert read[:model.label_dim].sum() == pytest.approx(1.0) and not read[model.label_dim:].any()
    assert tokens[int(np.argmax(read[:model.label_dim]))] == ("piano",)
    learnt = next(t for t in model.seen_words if not model.is_label_query(t) and len(t.split()) == 1
                  and t not in {" ".join(tok) for tok in tokens})
    read = union_reading(model, model.words.phrase_vector(learnt).vector, 1, 0.05)
    assert not read[:model.label_dim].any()
    np.testing.assert_allclose(read[model.label_dim:], model.project_words(model.words.phrase_vector(learnt).vector)[0],
                               atol=1e-6)


def test_the_negation_study_says_what_it_lacks_in_one_line(corpus, tmp_path):
    """choose_negation_weight reads make model's work folder; the tiny render has no pair of tags
    with ten clips each way, and says so rather than printing an empty table."""
    from mre.training.choose_negation_weight import main as negation_main
    from mre.training.model_build import build

    out, _, _ = corpus
    with pytest.raises(SystemExit, match="run `make model` first"):
        negation_main(["--work", str(tmp_path / "nothing"), "--corpus", str(out)])
    build(out, tmp_path / "work", tmp_path / "ship.npz", epochs=1, workers=0, control=False, log=lambda line: None)
    with pytest.raises(SystemExit, match="no pair of tags"):
        negation_main(["--work", str(tmp_path / "work"), "--corpus", str(out)])


def test_a_corpus_grown_or_cut_keeps_the_clips_it_shares_and_ends_as_a_fresh_build(tmp_path, monkeypatch):
    """A clip depends on the seed and its index, not on the clip count: growing a corpus renders
    only the new clips, cutting it renders none, and either way the table and the manifest's clips
    are a fresh build's. A build interrupted midway leaves a manifest of the clips it kept and the
    ones it finished, and the next build renders only the rest."""
    from mre.training.corpus import build as build_module

    grown, fresh = tmp_path / "grown", tmp_path / "fresh"
    _build(grown, clips=4)
    first = sorted((grown / "audio").rglob("*.flac"))
    before = [p.stat().st_mtime_ns for p in first]
    rendered = []
    original = build_module.render_clip
    monkeypatch.setattr(build_module, "render_clip", lambda index: rendered.append(index) or original(index))
    manifest = _build(grown, clips=6)
    assert rendered == [4, 5] and manifest["render"]["reused_clips"] == 4
    assert [p.stat().st_mtime_ns for p in first] == before
    reference = _build(fresh, clips=6)
    assert (grown / "tracks.csv").read_text() == (fresh / "tracks.csv").read_text()
    assert manifest["clips"] == reference["clips"] and manifest["counts"] == reference["counts"]
    assert manifest["render"]["audio_seconds"] == reference["render"]["audio_seconds"]

    rendered.clear()
    cut = _build(grown, clips=3)
    assert rendered == [] and cut["clips"] == reference["clips"][:3]
    assert sorted(str(p.relative_to(grown)) for p in (grown / "audio").rglob("*.flac")) == \
        sorted(c["path"] for c in cut["clips"])

    def interrupted(index):
        if index == 4:
            raise KeyboardInterrupt
        return original(index)

    monkeypatch.setattr(build_module, "render_clip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _build(grown, clips=6)
    left = json.loads((grown / "manifest.json").read_text())
    assert len(left["clips"]) == 4 and left["clip_count"] == 6  # the 4th, rendered before the interruption, too
    assert build_module.already_built(CorpusOptions(out=grown, clips=6, seed=SEED, soundfonts=(bundled_soundfont(),),
                                                    seconds=SECONDS)) is None
    monkeypatch.setattr(build_module, "render_clip", original)
    again = _build(grown, clips=6)
    assert again["clips"] == reference["clips"] and again["render"]["reused_clips"] == 4
    assert (grown / "tracks.csv").read_text() == (fresh / "tracks.csv").read_text()


_BUILD_AS_IN_A_TERMINAL = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # a test run in the background hands Ctrl-C ignored
from mre.cli.main import main
sys.argv[0] = "mre"
main()
"""


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
@pytest.mark.parametrize("signal_name, status, word", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_ctrl_c_or_sigterm_ends_a_build_in_one_line_keeping_what_it_rendered(tmp_path, signal_name, status, word):
    """A signal to the whole process group, as Ctrl-C in a terminal sends, while render workers
    run, and a second one to the builder as it stops them: one line, no process left (a worker
    killed holding the task queue's lock, or a second signal cutting the pool's shutdown short,
    hung the build for good), and the clips finished so far kept for the next build."""
    import signal
    import subprocess
    import sys
    import time

    from mre.benchmarks.reliability import group_members

    out = tmp_path / "corpus"
    argv = [sys.executable, "-c", _BUILD_AS_IN_A_TERMINAL, "corpus", "build", "--out", str(out), "--clips", "400",
            "--seed", str(SEED), "--seconds", str(SECONDS), "--soundfont", "timgm6mb", "--workers", "2", "--quiet"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and len(list(out.glob("audio/*/*.flac"))) < 16:
        time.sleep(0.01)
    try:
        assert process.poll() is None, process.communicate()
        os.killpg(process.pid, getattr(signal, signal_name))
        time.sleep(0.05)
        process.send_signal(getattr(signal, signal_name))  # again, while the builder stops its workers
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    stderr = stderr.decode()
    assert process.returncode == status and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith(f"{word}: the clips rendered so far are kept"), stderr
    deadline = time.monotonic() + 5
    while group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert group_members(process.pid) == []

    left = json.loads((out / "manifest.json").read_text())
    finished = len(left["clips"])
    assert 1 <= finished < 400 and left["clip_count"] == 400
    again = _build(out, clips=finished)  # the clips it finished, as a fresh build renders them
    assert again["render"]["reused_clips"] == finished
    fresh = _build(tmp_path / "fresh", clips=finished)
    assert again["clips"] == fresh["clips"]
    assert (out / "tracks.csv").read_text() == (tmp_path / "fresh" / "tracks.csv").read_text()
