"""`mre train`: the paper's model learns a space where held-out words still find their sounds.

The audio is generated (benchmarks/synth_scenes.py): scenes of five sound sources, each
tagged with four words that GloVe puts together; one word per source is never trained on.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors

from mre.benchmarks.synth_scenes import UNSEEN_WORDS, write_scene_library
from mre.training.run import DataOptions, run_training
from mre.embedder.models.factory import load_model
from mre.embedder.models.paper import PAPER_FRONTEND, ModelConfig, TwoBranchModel, hinge_loss
from mre.embedder.models.trained import ModelFileError
from mre.training.loop import TrainSettings
from mre.embedder.words.space import WordSpace
from mre.retrieval.library import Library, LibraryError

# A small network on 1 s, 64-band patches: the test is about what is learnt, not capacity.
TINY = ModelConfig(conv_channels=(32, 32, 32, 32), frontend=replace(PAPER_FRONTEND, n_mels=64, patch_frames=62).as_dict())


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    write_scene_library(folder, n_tracks=60, seconds=4.0, seed=0)
    (folder / "unseen.txt").write_text("\n".join(UNSEEN_WORDS) + "\n")
    return folder


def _unseen_auc(scenes: Path, out: Path, words: WordSpace) -> tuple[float, float]:
    data = DataOptions(tracks_table=str(scenes / "tracks.csv"), unseen_tags_file=str(scenes / "unseen.txt"),
                       valid_fraction=0.15, test_fraction=0.3, max_patches=4)
    report, _ = run_training(data, replace(TINY), TrainSettings(epochs=15, batch_size=16), out, words=words,
                             show_progress=False, log=lambda line: None)
    return report.unseen_tag_retrieval_auc, report.seen_tag_retrieval_auc


def test_unseen_tags_retrieved_through_glove_and_not_through_random_vectors(scenes, tmp_path):
    glove = WordSpace.load()
    unseen_glove, seen_glove = _unseen_auc(scenes, tmp_path / "glove.mre", glove)
    # the paper's control: the same model with random word vectors instead of GloVe
    vocabulary = [word for line in (scenes / "tracks.csv").read_text().splitlines()[1:]
                  for word in line.split(",")[1].split("|")]
    vocabulary = sorted(set(vocabulary))
    random_vectors = KeyedVectors(glove.dim)
    random_vectors.add_vectors(vocabulary, np.random.default_rng(1).standard_normal((len(vocabulary), glove.dim)))
    unseen_random, seen_random = _unseen_auc(scenes, tmp_path / "random.mre", WordSpace(random_vectors, "random"))
    assert seen_glove > 0.85 and seen_random > 0.85  # both learn the tags they were trained on
    assert unseen_glove > 0.75, f"unseen-tag AUC with GloVe {unseen_glove:.3f}"
    assert unseen_glove > unseen_random + 0.2, f"GloVe {unseen_glove:.3f} vs random vectors {unseen_random:.3f}"


@pytest.fixture(scope="module")
def trained(scenes, tmp_path_factory) -> tuple[Path, dict]:
    from click.testing import CliRunner

    from mre.cli.main import main

    out = tmp_path_factory.mktemp("model") / "scenes.mre"
    result = CliRunner().invoke(main, ["train", "--tracks", str(scenes / "tracks.csv"), "--out", str(out),
                                       "--epochs", "2", "--workers", "0", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_train_then_index_and_query_with_the_model_file(scenes, trained, tmp_path, cli):
    out, report = trained
    assert {"seen_tag_retrieval_auc", "unseen_tag_retrieval_auc", "annotation_auc", "history"} <= set(report)
    assert len(report["history"]) == 2 and report["unseen_tags"]
    for suffix in ("", ".eval.json", ".eval.png", ".ckpt", ".inputs.npy", ".inputs.json"):
        assert Path(f"{out}{suffix}").is_file()
    model = load_model(str(out))
    assert model.dim == 100 and model.seen_tags and model.unseen_tags

    store = tmp_path / "store"
    result = cli(*["index", str(scenes), "--model", str(out), "--store", str(store), "--workers", "0"])
    assert result.exit_code == 0, result.output
    meta = json.loads(next(store.glob("generations/*/meta.json")).read_text())
    assert meta["model_file"] == str(out.resolve()) and meta["model_id"] == model.model_id
    result = cli(*["query", "waves", "--store", str(store), "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 3 and all(-1.0 <= h["score"] <= 1.0 for h in hits)
    # the store remembers its model: opening it with another model is refused in one line
    with pytest.raises(LibraryError, match="re-index"):
        Library(store, model="mre-zs-musicnn")


def test_resume_continues_from_the_checkpoint_and_refuses_other_settings(scenes, tmp_path, cli):
    out = tmp_path / "m.mre"
    base = ["train", "--tracks", str(scenes / "tracks.csv"), "--out", str(out), "--workers", "0",
            "--max-patches", "1", "--patience", "50"]
    assert cli(*base + ["--epochs", "2"]).exit_code == 0
    result = cli(*base + ["--epochs", "3", "--resume", "--json"])
    assert result.exit_code == 0, result.output
    assert "reusing the decoded inputs" in result.output  # a resumed run does not decode again
    report = json.loads(result.stdout)
    assert report["resumed_from"] == 2 and [h["epoch"] for h in report["history"]] == [1, 2, 3]
    result = cli(*base + ["--epochs", "4", "--resume", "--margin", "0.2"])
    assert result.exit_code == 1 and "other data or settings" in result.output


def test_teacher_tags_an_untagged_folder(scenes, tmp_path, cli):
    library = tmp_path / "untagged"
    library.mkdir()
    for wav in sorted(scenes.glob("*.wav"))[:8]:
        (library / wav.name).write_bytes(wav.read_bytes())
    result = cli(*["train", "--teacher", "musicnn", "--library", str(library), "--out", str(tmp_path / "t.mre"),
                        "--teacher-threshold", "0.05", "--epochs", "1", "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["seen_tags"] and not any(tag.startswith("no ") for tag in report["seen_tags"] + report["unseen_tags"])


def test_teacher_labels_join_a_tables_tags_without_replacing_them(scenes, tmp_path, cli):
    rows = (scenes / "tracks.csv").read_text().splitlines()
    table = tmp_path / "tracks.csv"
    table.write_text("\n".join(f"{scenes}/{line}" if i else line for i, line in enumerate(rows[:9])) + "\n")
    table_tags = {tag for line in rows[1:9] for tag in line.split(",")[1].split("|")}
    result = cli(*["train", "--tracks", str(table), "--teacher", "musicnn", "--teacher-threshold", "0.05",
                   "--out", str(tmp_path / "t.mre"), "--epochs", "1", "--workers", "0", "--unseen-fraction", "0",
                   "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    trained_on = set(report["seen_tags"])
    assert table_tags <= trained_on  # the table's own tags all train
    given = trained_on - table_tags
    assert given and not any(tag.startswith("no ") for tag in given)  # and the taggers' labels beside them
    assert any("teacher:" in note for note in report["notes"])


def test_teacher_labels_leave_out_negations_kept_out_words_and_the_tracks_own_words():
    from mre.training.inputs import LabelledTrack, PreparedInputs, add_teacher_tags

    words = WordSpace.load()
    labels = ["Rock", "no vocals", "piano", "jazz", "guitar"]
    prepared = PreparedInputs(tracks=[LabelledTrack("a.wav", ["piano"]), LabelledTrack("b.wav", ["organ"])],
                              inputs=np.zeros((2, 1), np.float16), owner=np.arange(2), skipped=[],
                              teacher_probabilities=np.array([[0.9, 0.9, 0.9, 0.1, 0.5],
                                                              [0.2, 0.9, 0.1, 0.6, 0.1]]),
                              teacher_labels=labels)
    given = add_teacher_tags(prepared, words, ["piano", "organ", "Guitar"], threshold=0.15)
    assert given == ["jazz", "rock"]
    assert [t.tags for t in prepared.tracks] == [["piano", "rock"], ["organ", "jazz", "rock"]]  # most probable first


def test_bad_inputs_give_one_line(tmp_path, cli, scenes):
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("hello")
    with pytest.raises(ModelFileError, match="not a model file"):
        load_model(str(not_a_model))
    result = cli(*["train", "--out", str(tmp_path / "x.mre")])
    assert result.exit_code == 1 and "--tracks" in result.output
    table = tmp_path / "empty.csv"
    table.write_text("path,tags\nmissing.wav,rock\n")
    result = cli(*["train", "--tracks", str(table), "--out", str(tmp_path / "x.mre"), "--workers", "0"])
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_hinge_loss_is_zero_once_the_margin_is_met_and_short_patches_embed():
    words = torch.eye(3)
    audio = torch.tensor([[1.0, 0.0, 0.0]])
    positives = torch.tensor([[True, False, False]])
    assert float(hinge_loss(audio, words, positives, 2, margin=0.4)) == 0.0
    # the only negative (tag 1) is where the audio points: margin + 1 − 0
    two_tags = torch.eye(2)
    loss = hinge_loss(torch.tensor([[0.0, 1.0]]), two_tags, torch.tensor([[True, False]]), 1, margin=0.4)
    assert float(loss) == pytest.approx(1.4)
    network = TwoBranchModel(TINY).eval()
    with torch.inference_mode():
        vectors = network.embed_audio(torch.randn(2, 5, 64))  # 5 frames, shorter than every pool
    assert vectors.shape == (2, 100) and torch.allclose(vectors.norm(dim=1), torch.ones(2))


def test_bench_compares_models_on_a_library_sorted_into_folders(scenes, trained, tmp_path, cli):
    library = tmp_path / "by-source"
    copied = {"ocean": 0, "bells": 0}
    for source in copied:
        (library / source).mkdir(parents=True)
    for line in (scenes / "tracks.csv").read_text().splitlines()[1:]:
        name, tags = line.split(",")
        source = next((s for s in copied if s in tags.split("|") and copied[s] < 4), None)
        if source:
            (library / source / name).write_bytes((scenes / name).read_bytes())
            copied[source] += 1
    result = cli(*["bench", "quality", "--dataset", "folders", "--root", str(library), "--model", "mre-zs-musicnn",
                   "--model", str(trained[0]), "--out", str(tmp_path / "bench"), "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)["models"]
    assert [r["model"].split("@")[0] for r in reports] == ["mre-zs-musicnn", "mre-paper"]
    assert all(set(r["per_tag"]) == {"ocean", "bells"} for r in reports)
    assert (tmp_path / "bench" / "scenes.mre" / "quality.json").is_file()


def test_switching_a_store_to_another_model_re_embeds_every_folder_and_loses_nothing(scenes, trained, tmp_path, cli):
    for folder, names in (("a", ["scene_000.wav", "scene_001.wav"]), ("b", ["scene_002.wav", "scene_003.wav"])):
        (tmp_path / folder).mkdir()
        for name in names:
            (tmp_path / folder / name).write_bytes((scenes / name).read_bytes())
    store = str(tmp_path / "store")
    for folder in ("a", "b"):
        assert cli("index", tmp_path / folder, "--store", store, "--workers", "0").exit_code == 0
    result = cli("index", tmp_path / "a", "--store", store, "--model", trained[0], "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "model changed" in result.output
    assert "2 of them are under other folders of the store: embedded again" in result.output
    from mre.retrieval.library import Library

    library = Library(store)
    assert library.meta["model_id"].startswith("mre-paper@")
    assert len(library) == 4  # folder b's tracks too, now with the new model's vectors


def test_pretrained_audio_branch_trains_and_indexes(scenes, tmp_path, cli):
    """--audio-branch musicnn: a head on the frozen musicnn tagger; the store embeds through the backbone."""
    out = tmp_path / "head.mre"
    result = cli("train", "--tracks", scenes / "tracks.csv", "--out", out, "--audio-branch", "musicnn",
                 "--epochs", "2", "--workers", "0", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["seen_tags"]
    model = load_model(str(out))
    assert model.describe()["audio_branch"] == "musicnn" and model.frontend.n_mels == 96
    library = tmp_path / "few"
    library.mkdir()
    for wav in sorted(scenes.glob("*.wav"))[:3]:
        (library / wav.name).write_bytes(wav.read_bytes())
    store = tmp_path / "store"
    assert cli("index", library, "--model", out, "--store", store, "--workers", "0").exit_code == 0
    hits = json.loads(cli("query", "bells", "--store", store, "--json").stdout)
    assert len(hits) == 3


def test_word_weight_decay_shrinks_only_the_word_projection():
    """An SGD step with no gradient leaves every weight where it is, except the word
    projection's weight under word_weight_decay, which shrinks by lr · decay · (1 + momentum)
    (Nesterov's first step: the gradient plus momentum times the buffer, which is that gradient)."""
    from mre.training.inputs import TrainingDataError
    from mre.training.loop import _make_optimizer

    with pytest.raises(TrainingDataError, match="word_weight_decay"):
        TrainSettings(word_weight_decay=-0.1)
    network = TwoBranchModel(TINY)
    before = {name: value.detach().clone() for name, value in network.named_parameters()}
    settings = TrainSettings(word_weight_decay=0.5, learning_rate=0.1)
    optimizer = _make_optimizer(network, settings)
    optimizer.zero_grad()
    (0.0 * sum(value.sum() for value in network.parameters())).backward()
    optimizer.step()
    for name, value in network.named_parameters():
        if name == "words.weight":
            # float32 products of one step: a few ulps of the weights' size
            tolerance = 4 * torch.finfo(torch.float32).eps * float(before[name].abs().max())
            assert torch.allclose(value, before[name] * (1 - 0.1 * 0.5 * (1 + settings.momentum)), rtol=0, atol=tolerance)
        else:
            assert torch.equal(value, before[name]), name
    # without it the optimiser keeps one parameter group, as checkpoints written before it expect
    assert len(_make_optimizer(network, TrainSettings()).param_groups) == 1


def test_input_dropout_and_noise_act_on_standardised_features_and_only_when_asked():
    """Dropout sets a feature to its mean (0 in standardised units) and scales the kept ones by
    1/(1-p); noise adds that many standard deviations; at 0 the batch is the same tensor."""
    from mre.training.inputs import TrainingDataError
    from mre.training.loop import _perturbed

    for bad in ({"input_dropout": 1.0}, {"input_dropout": -0.1}, {"input_noise": -1.0}):
        with pytest.raises(TrainingDataError, match=next(iter(bad))):
            TrainSettings(**bad)
    network = TwoBranchModel(replace(TINY, audio_branch="musicnn", backbone="msd"))
    mean, std = torch.linspace(-1, 1, network.input_mean.numel()), torch.linspace(0.5, 2, network.input_std.numel())
    network.input_mean.copy_(mean)
    network.input_std.copy_(std)
    batch = mean + std * torch.randn(64, mean.numel(), generator=torch.Generator().manual_seed(0))
    assert _perturbed(network, batch, TrainSettings(), torch.Generator()) is batch
    dropped = _perturbed(network, batch, TrainSettings(input_dropout=0.5), torch.Generator().manual_seed(1))
    standard, out = (batch - mean) / std, (dropped - mean) / std
    # each feature either sits at its mean or is its standardised value doubled (float32 round trips)
    tolerance = 8 * torch.finfo(torch.float32).eps * (1 + float(standard.abs().max()))
    at_mean = out.abs() <= tolerance
    assert torch.allclose(out[~at_mean], 2 * standard[~at_mean], rtol=0, atol=tolerance)
    assert 0.4 < float(at_mean.float().mean()) < 0.6  # 64 × 200 draws of a fair coin
    noisy = _perturbed(network, batch, TrainSettings(input_noise=1.0), torch.Generator().manual_seed(2))
    difference = (noisy - batch) / std
    assert abs(float(difference.std()) - 1.0) < 0.05 and abs(float(difference.mean())) < 0.05


def test_the_fold_study_names_its_training_variants_in_one_line(capsys):
    from mre.training.choose_label_reading import main as study_main, variant_settings

    assert variant_settings("dropout-0.2", 3).input_dropout == 0.2 and variant_settings("noise-1", 3).seed == 3
    with pytest.raises(SystemExit):
        study_main(["--variants", "base", "mixup-0.2"])
    assert "base, clips-N, dropout-P or noise-S" in capsys.readouterr().err


def test_a_trained_model_weighs_a_negated_term_a_quarter_beside_positive_ones():
    """"X no Y" = unit(X − ¼·Y) in the joint space; "no Y" alone = unit(−Y)."""
    from mre.embedder.models.trained import TrainedModel

    words = WordSpace.load()
    model = TrainedModel(TwoBranchModel(replace(TINY, word_dim=words.dim)), words, seen_tags=["piano", "drums"],
                         unseen_tags=[], model_id="test")
    piano, drums = model._project(words.phrase_matrix(["piano", "drums"]))
    expected = piano - 0.25 * drums
    # float32 projections and a unit length: a few ulps
    tolerance = 8 * np.finfo(np.float32).eps
    np.testing.assert_allclose(model.query_vector("piano no drums").vector, expected / np.linalg.norm(expected),
                               rtol=0, atol=tolerance)
    np.testing.assert_allclose(model.query_vector("no drums").vector, -drums / np.linalg.norm(drums), rtol=0,
                               atol=tolerance)


def test_cached_inputs_of_unchanged_files_are_copied_when_others_join(scenes, tmp_path, monkeypatch):
    """A corpus grown by more files decodes only the new ones (and any whose size or mtime
    changed): the rest come from the cache the earlier file list left, and the result equals a
    fresh decode of the whole list, the taggers' probabilities included."""
    import os

    from mre.training import inputs as inputs_module
    from mre.training.inputs import LabelledTrack, prepare_inputs

    files = sorted(str(p) for p in scenes.rglob("*.wav"))[:6]
    tracks = [LabelledTrack(path, ["x"]) for path in files]
    config = ModelConfig(audio_branch="musicnn", backbone="msd+mtt")
    decoded = []
    original = inputs_module.patch_stream

    def recording(paths, *args, **kwargs):
        decoded.append(list(paths))
        return original(paths, *args, **kwargs)

    monkeypatch.setattr(inputs_module, "patch_stream", recording)
    cache = tmp_path / "corpus.mre.inputs"
    prepare_inputs(tracks[:4], config, cache=cache)
    meta_path = cache.with_name(cache.name + ".json")
    meta = json.loads(meta_path.read_text())
    # a cache written before files were named one by one gets their names on its next use
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k not in ("stamps", "settings")}))
    prepare_inputs(tracks[:4], config, cache=cache)
    assert decoded == [files[:4]] and json.loads(meta_path.read_text()) == meta

    def cut_short(paths, *args, **kwargs):
        decoded.append(list(paths))
        raise KeyboardInterrupt

    monkeypatch.setattr(inputs_module, "patch_stream", cut_short)
    with pytest.raises(KeyboardInterrupt):  # a growth cut short leaves the earlier cache whole
        prepare_inputs(tracks, config, cache=cache)
    monkeypatch.setattr(inputs_module, "patch_stream", recording)
    grown = prepare_inputs(tracks, config, cache=cache)
    assert decoded[-1] == files[4:]
    fresh = prepare_inputs(tracks, config)
    assert decoded[-1] == files
    assert np.array_equal(np.asarray(grown.inputs), fresh.inputs) and np.array_equal(grown.owner, fresh.owner)
    assert np.array_equal(grown.teacher_probabilities, fresh.teacher_probabilities)
    assert prepare_inputs(tracks, config, cache=cache) is not None and decoded[-1] == files  # same list: cache hit
    os.utime(files[1], ns=(os.stat(files[1]).st_atime_ns, os.stat(files[1]).st_mtime_ns + 10**9))
    again = prepare_inputs(tracks[::-1], config, cache=cache)  # another order, one file touched
    assert decoded[-1] == [files[1]]
    assert np.array_equal(np.asarray(again.teacher_probabilities)[::-1], fresh.teacher_probabilities)


def test_a_model_on_the_pooled_back_end_reads_that_layer_of_its_taggers():
    """A head trained on the taggers' pooled back-end vectors (`--backbone msd+mtt-pooled` in the
    studies) is given those vectors at indexing time, not the penultimate features."""
    from mre.embedder.models.registry import load_tagger
    from mre.embedder.models.trained import TrainedModel

    words = WordSpace.load()
    config = ModelConfig(audio_branch="musicnn", backbone="msd+mtt-pooled", word_dim=words.dim)
    model = TrainedModel(TwoBranchModel(config), words, seen_tags=["piano", "drums"], unseen_tags=[], model_id="test")
    patches = torch.randn(2, 187, 96)
    expected = torch.cat([load_tagger(name).forward_layers(patches)[2] for name in ("musicnn-msd", "musicnn-mtt")], dim=1)
    assert torch.equal(model.branch_inputs(patches), expected) and expected.shape == (2, 3012)
