"""`make model`: train the corpus model on a rendered corpus and write the weights mre ships.

    python -m mre.training.model_build --corpus corpus/train --work models \\
        --ship embedder/weights/mre-zs-corpus.npz

1. trains the paper's two-branch model (`mre train`'s run: hinge loss, margin 0.4, the
   held-out tags of training/data/held_out_tags.txt unseen) with the musicnn audio branch on
   the frozen taggers' penultimate features;
2. sets the scale that puts the trained space beside the label log-odds, on the corpus's
   validation clips only (never the held-out SoundFont): the median over labels of a
   label's log-odds spread over clips, over the median over seen tags of a tag's cosine
   spread — a trained word then moves scores as much as a label word does;
3. chooses how much of the default model's label-space reading a word that is not a label
   keeps beside its trained-space vector (`label_reading`: one weight for words the trained
   space learnt, one for every other word), on the validation clips of the training corpus:
   the head is trained once more with a further 15 % of the seen tags (by seed) kept out as
   validation-unseen words, and each weight of LABEL_READING_GRID is scored by the
   validation clips' tag-retrieval ROC-AUC on the learnt and on the validation-unseen words
   that are not labels (never the held-out words, the held-out SoundFont or the demo library);
4. sets the offset that starts a learnt word's score where label log-odds are (the median
   label log-odds over the validation clips minus the learnt words' median score), so that
   `mre tags` ranks label words and other words for one track on one scale, and the unlearnt
   prior (that median label log-odds) by which a word the model never learnt starts lower;
5. writes the head, the word projection, the scale, the label-reading weights, the offset and
   the prior as one .npz (written byte-for-byte deterministically, so the model id only changes when the
   weights do);
6. trains the paper's control beside it (random word vectors for the same tags, same data
   and seed) into WORK/control.npz, for `python -m mre.benchmarks.corpus_eval`.
"""
from __future__ import annotations

import argparse
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from mre.training.corpus.held_out import HELD_OUT_FILE

FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip entry can carry: no build time in the bytes
CONTROL_SEED = 1
# label-reading weights tried (0: the trained space alone; 1: the label reading moves scores as
# much as the trained part, both being on the label log-odds' scale)
LABEL_READING_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
VALIDATION_UNSEEN_FRACTION = 0.15  # as training/choose_backbone.py
MIN_VALID_POSITIVES = 3  # a word with fewer positive validation clips gives an AUC of a few pairs


def write_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez, without the wall-clock time numpy writes into every entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())
    temporary.replace(path)


def random_word_space(tags: list[str], dim: int, seed: int = CONTROL_SEED):
    """The paper's control: a random vector for every token of the tags (so no word relates to another)."""
    from gensim.models import KeyedVectors

    from mre.embedder.words.space import WordSpace

    tokens = sorted({token for tag in tags for token in tag.split()})
    vectors = KeyedVectors(dim)
    vectors.add_vectors(tokens, np.random.default_rng(seed).standard_normal((len(tokens), dim)).astype(np.float32))
    return WordSpace(vectors, f"random-{seed}")


def corpus_scale(network, prepared, words, seen_tags: list[str], device="cpu") -> float:
    """Median label log-odds spread over the validation clips / median seen-tag cosine spread."""
    import torch

    from mre.training.loop import track_vectors
    from mre.embedder.models.zeroshot import logit

    valid = np.flatnonzero(np.array([t.split for t in prepared.tracks]) == "valid")
    if len(valid) < 2:  # a spread needs two clips (a tiny corpus): the train clips then
        valid = np.flatnonzero(np.array([t.split for t in prepared.tracks]) != "test")
    embeddings = track_vectors(network, prepared.inputs, prepared.owner, valid, device)
    with torch.inference_mode():
        tags = network.embed_words(torch.from_numpy(words.phrase_matrix(seen_tags))).numpy()
    label_spread = np.median(logit(prepared.teacher_probabilities[valid]).std(axis=0))
    cosine_spread = np.median((embeddings @ tags.T).std(axis=0))
    return float(label_spread / cosine_spread) if cosine_spread > 0 else 1.0


def validation_vectors(network, prepared, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, track vectors) of the validation clips as the corpus model indexes them:
    [label log-odds | scale · unit embedding | 1]; a tiny corpus without two validation clips uses its train clips."""
    from mre.training.loop import track_vectors
    from mre.embedder.models.zeroshot import logit

    valid = np.flatnonzero(np.array([t.split for t in prepared.tracks]) == "valid")
    if len(valid) < 2:
        valid = np.flatnonzero(np.array([t.split for t in prepared.tracks]) != "test")
    embeddings = track_vectors(network, prepared.inputs, prepared.owner, valid, "cpu")
    return valid, np.concatenate([logit(prepared.teacher_probabilities[valid]), scale * embeddings,
                                  np.ones((len(valid), 1))], axis=1)


def corpus_offset(model, vectors: np.ndarray) -> tuple[float, float]:
    """(offset, unlearnt prior). The offset is where a learnt word's score starts, so that it
    sits among the labels' log-odds on a track: the median label log-odds over the validation
    clips minus the median score of the learnt words that are not labels (model's offsets must
    be 0 here). A word the trained space never learnt, read only through the words it resembles,
    starts lower by the median label log-odds itself (the prior of a label no evidence supports),
    so in a track's tags it ranks below the words the model knows unless its neighbours score high."""
    label_median = float(np.median(vectors[:, :model.label_dim]))
    words = [t for t in model.seen_words if not model.is_label_query(t)]
    if not words:
        return 0.0, label_median
    matrix, _ = model.tag_matrix(words)
    return label_median - float(np.median(vectors @ matrix.T.astype(np.float64))), label_median


def export_weights(network, prepared, words, seen_tags, unseen_tags, out: Path, provenance: dict,
                   label_reading: tuple[float, float] = (0.0, 0.0), offset: float = 0.0,
                   unlearnt_prior: float = 0.0) -> dict:
    """The corpus model's weights file; returns what it wrote besides the arrays."""
    from mre.embedder.models.paper import FeatureHead

    assert isinstance(network.audio, FeatureHead), "the corpus model's head is the musicnn branch"
    scale = corpus_scale(network, prepared, words, seen_tags)
    first, second = network.audio.layers[0], network.audio.layers[2]
    arrays = {
        "head_weight_1": first.weight.detach().numpy(), "head_bias_1": first.bias.detach().numpy(),
        "head_weight_2": second.weight.detach().numpy(), "head_bias_2": second.bias.detach().numpy(),
        "input_mean": network.input_mean.numpy(), "input_std": network.input_std.numpy(),
        "word_weight": network.words.weight.detach().numpy(), "word_bias": network.words.bias.detach().numpy(),
        "scale": np.float32(scale), "label_reading": np.asarray(label_reading, np.float32),
        "trained_offset": np.float32(offset), "unlearnt_prior": np.float32(unlearnt_prior),
        "seen_tags": np.array(seen_tags), "unseen_tags": np.array(unseen_tags),
        "word_vectors": np.array(words.vectors_id), "backbone_taggers": np.array(network.config.backbone_taggers),
        "provenance": np.array(json.dumps(provenance, sort_keys=True)),
    }
    write_npz_deterministic(out, {k: np.asarray(v, dtype=np.float32) if np.asarray(v).dtype.kind == "f" else v
                                  for k, v in arrays.items()})
    return {"scale": scale, "parameters": int(sum(np.asarray(v).size for k, v in arrays.items()
                                                  if k.startswith(("head_", "word_weight", "word_bias"))))}


def validation_unseen_words(seen: list[str], seed: int) -> list[str]:
    """The seen tags the label-reading step keeps out as validation-unseen words (seed + 1)."""
    rng = np.random.default_rng(seed + 1)
    return sorted(str(t) for t in rng.choice(seen, size=round(VALIDATION_UNSEEN_FRACTION * len(seen)), replace=False))


def work_inputs(corpus: Path, work: Path, seed: int = 0, words=None, backbone: str = "msd+mtt", workers: int = 0):
    """(words, prepared): make model's decoded inputs of `corpus` from the cache in its work folder
    (decoding what the cache does not hold), the clips split as make model splits them, and the
    word space (`words`, or GloVe's). make model's own steps and the studies that read what it
    leaves."""
    from mre.embedder.models.paper import ModelConfig
    from mre.embedder.words.space import WordSpace
    from mre.training.inputs import assign_splits, prepare_inputs
    from mre.training.run import _progress_bar, _table_tracks

    words = words if words is not None else WordSpace.load()
    tracks = _table_tracks(str(corpus / "tracks.csv"), words, [])
    bar = []  # a progress bar only when the cache does not hold every track

    def announce(reused: bool) -> None:
        if not reused:
            bar.append(_progress_bar(len(tracks), None, print))

    prepared = prepare_inputs(tracks, ModelConfig(audio_branch="musicnn", backbone=backbone),
                              cache=work / "corpus.mre.inputs", workers=workers, announce=announce,
                              progress=lambda done, total: bar[0](done, total))
    if bar:
        bar[0](None, None)
    prepared.tracks = assign_splits(prepared.tracks, seed)
    return words, prepared


def seen_and_unseen(prepared, words, seed: int = 0) -> tuple[list[str], list[str]]:
    """make model's seen tags (trained) and unseen tags (the held-out list) of `prepared`'s corpus."""
    from mre.training.inputs import split_tags, tag_vocabulary

    vocabulary, _ = tag_vocabulary(prepared.tracks, words)
    seen, unseen, _ = split_tags(vocabulary, seed, unseen_file=HELD_OUT_FILE)
    return seen, unseen


def choose_label_reading(prepared, words, seen: list[str], unseen: list[str], config, settings, work: Path,
                         seed: int, log=print) -> dict:
    """The label-reading weights (learnt words, other words), chosen on the training corpus's validation clips.

    Trains the head with a further VALIDATION_UNSEEN_FRACTION of the seen tags kept out, then
    scores each weight of LABEL_READING_GRID on the validation clips (label log-odds from the
    taggers' probabilities, the trained part as indexing makes it; no musical attributes: they
    are added alike whatever the weight). Returns the weights and the table it chose from.
    """
    from mre.training.metrics import tag_retrieval_auc
    from mre.embedder.models.corpus_model import CorpusZeroShotModel
    from mre.training.loop import _label_matrix, train

    validation_unseen = validation_unseen_words(seen, seed)
    train_seen = [t for t in seen if t not in set(validation_unseen)]
    result = train(prepared, words, train_seen, unseen + validation_unseen, config=config, settings=settings,
                   out=work / "validation.mre", fingerprint="validation", show_progress=False, log=lambda line: None)
    export_weights(result.model.network, prepared, words, train_seen, unseen + validation_unseen,
                   work / "validation.npz", {"validation_unseen": validation_unseen})
    model = CorpusZeroShotModel(path=work / "validation.npz", word_space=words)
    valid, vectors = validation_vectors(result.model.network, prepared, model.scale)

    def scored(tags: list[str]) -> list[str]:
        labels = _label_matrix(prepared, tags)[valid]
        return [t for t, n in zip(tags, labels.sum(axis=0)) if MIN_VALID_POSITIVES <= n <= len(valid) - MIN_VALID_POSITIVES
                and not model.is_label_query(t)]

    groups = {"learnt": scored(train_seen), "other": scored(validation_unseen)}

    def macro_auc(tags: list[str], matrix: np.ndarray, columns=slice(None)) -> float:
        if not tags:
            return float("nan")
        auc = tag_retrieval_auc(_label_matrix(prepared, tags)[valid],
                                vectors[:, columns].astype(np.float64) @ matrix.T.astype(np.float64), tags).roc_auc
        return float(np.mean(auc[np.isfinite(auc)])) if np.isfinite(auc).any() else float("nan")

    table = {}
    for weight in LABEL_READING_GRID:
        model.label_reading = (weight, weight)
        table[weight] = {name: macro_auc(tags, model.tag_matrix(tags)[0]) for name, tags in groups.items()}
    # the default model alone (its label reading, no trained part), for the record
    reference = {name: macro_auc(tags, np.stack([model._nearest_label_weights(words.phrase_vector(t).vector)
                                                 for t in tags]) if tags else None, slice(0, model.label_dim))
                 for name, tags in groups.items()}
    # a word group with no scorable word (a tiny corpus) keeps the trained space alone (weight 0)
    chosen = tuple(float(max(LABEL_READING_GRID, key=lambda w: (np.nan_to_num(table[w][name], nan=-1.0), -w)))
                   for name in groups)
    log(f"label reading, validation clips ({len(valid)}), ROC-AUC of {len(groups['learnt'])} learnt and "
        f"{len(groups['other'])} validation-unseen words that are not labels:")
    for weight, row in table.items():
        log(f"  weight {weight:4.2f}: learnt {row['learnt']:.3f}, validation-unseen {row['other']:.3f}")
    log(f"  the default model's reading alone: learnt {reference['learnt']:.3f}, validation-unseen {reference['other']:.3f}")
    log(f"chosen: {chosen[0]:g} for learnt words, {chosen[1]:g} for other words")
    return {"label_reading": chosen, "table": {str(w): row for w, row in table.items()}, "default_model": reference,
            "validation_unseen": validation_unseen, "words": groups}


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def build(corpus: Path, work: Path, ship: Path, *, backbone: str = "msd+mtt", seed: int = 0, epochs: int = 40,
          device: str = "cpu", workers: int = 1, control: bool = True, log=print) -> dict:
    from mre.training.run import DataOptions, run_training
    from mre.embedder.models.paper import ModelConfig
    from mre.embedder.models.trained import load_trained_model
    from mre.training.loop import TrainSettings, train
    from mre.embedder.words.space import WordSpace

    table = corpus / "tracks.csv"
    words = WordSpace.load()
    data = DataOptions(tracks_table=str(table), unseen_tags_file=str(HELD_OUT_FILE))
    config = ModelConfig(audio_branch="musicnn", backbone=backbone)
    settings = TrainSettings(epochs=epochs, seed=seed)
    model_file = work / "corpus.mre"
    report, _ = run_training(data, config, settings, model_file, words=words, device=device, workers=workers, log=log)
    log(f"test split of the training corpus: seen-tag AUC {_figure(report.seen_tag_retrieval_auc)}, "
        f"unseen-tag AUC {_figure(report.unseen_tag_retrieval_auc)}")
    # the decoded inputs again, from run_training's cache (same files and settings: no decoding)
    _, prepared = work_inputs(corpus, work, seed, words, backbone)
    trained = load_trained_model(model_file, word_space=words)
    provenance = {"corpus": json.loads((corpus / "manifest.json").read_text())["soundfonts"],
                  "corpus_seed": json.loads((corpus / "manifest.json").read_text())["seed"],
                  "clips": len(prepared.tracks), "training_seed": seed, "backbone": backbone,
                  "best_epoch": report.best_epoch, "held_out_file": HELD_OUT_FILE.name,
                  "test_split_auc": {"seen": report.seen_tag_retrieval_auc, "unseen": report.unseen_tag_retrieval_auc}}
    choice = choose_label_reading(prepared, words, trained.seen_tags, trained.unseen_tags,
                                  ModelConfig(audio_branch="musicnn", backbone=backbone, word_dim=words.dim),
                                  settings, work, seed, log=log)
    export_weights(trained.network, prepared, words, trained.seen_tags, trained.unseen_tags, ship, provenance,
                   label_reading=choice["label_reading"])
    from mre.embedder.models.corpus_model import CorpusZeroShotModel

    unplaced = CorpusZeroShotModel(path=ship, word_space=words)
    offset, prior = corpus_offset(unplaced, validation_vectors(trained.network, prepared, unplaced.scale)[1])
    shipped = export_weights(trained.network, prepared, words, trained.seen_tags, trained.unseen_tags, ship, provenance,
                             label_reading=choice["label_reading"], offset=offset, unlearnt_prior=prior)
    log(f"wrote {ship}: scale {shipped['scale']:.3f}, offset {offset:.3f}, unlearnt prior {prior:.3f}, label reading "
        f"{choice['label_reading'][0]:g} / {choice['label_reading'][1]:g}, {shipped['parameters']} trained parameters")
    result = {"report": report.to_json(), "shipped": shipped, "label_reading": choice}
    if control:
        vocabulary = trained.seen_tags + trained.unseen_tags
        random_words = random_word_space(vocabulary, words.dim)
        seen, unseen = seen_and_unseen(prepared, random_words, seed)
        control_config = ModelConfig(audio_branch="musicnn", backbone=backbone, word_dim=words.dim)
        control_result = train(prepared, random_words, seen, unseen, config=control_config,
                               settings=settings, out=work / "control.mre", fingerprint="control", device=device,
                               show_progress=False, log=lambda line: None)
        export_weights(control_result.model.network, prepared, random_words, seen, unseen, work / "control.npz",
                       provenance | {"control": "random word vectors", "control_seed": CONTROL_SEED})
        log(f"wrote {work / 'control.npz'} (the paper's control: random word vectors)")
    (work / "model_build.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="a folder from `mre corpus build` (not held out)")
    parser.add_argument("--work", type=Path, default=Path("models"), help="training outputs and the control")
    parser.add_argument("--ship", type=Path, required=True, help="the weights file to write")
    parser.add_argument("--backbone", choices=("msd", "msd+mtt"), default="msd+mtt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-control", action="store_true")
    args = parser.parse_args(argv)
    import torch

    # one thread: the same weights on every machine with the same torch build, and a head this
    # small gains nothing from a thread team, which stalls on a shared CPU (README, "Indexing")
    torch.set_num_threads(1)
    manifest = json.loads((args.corpus / "manifest.json").read_text())
    if manifest.get("held_out_evaluation"):
        raise SystemExit(f"{args.corpus} is a held-out evaluation set: it must never train a model")
    build(args.corpus, args.work, args.ship, backbone=args.backbone, seed=args.seed, epochs=args.epochs,
          workers=args.workers, control=not args.no_control)


if __name__ == "__main__":
    main()
