"""Training the paper's model: hinge loss over seen tags, early stopping, atomic checkpoints, resume.

`train(...)` takes prepared inputs (see `mre.training.inputs`) and the tag split, trains, writes
the model file, and returns the test split's track vectors and labels for the evaluation.
Each epoch ends with a checkpoint written atomically beside the model file (`OUT.ckpt`); a
run started again with `resume=True` continues from it when the data and settings match.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from mre.embedder.models.paper import ModelConfig, TwoBranchModel, hinge_loss
from mre.embedder.models.trained import TrainedModel, load_trained_model, model_payload, write_atomically
from mre.training.inputs import PreparedInputs, TrainingDataError
from mre.embedder.words.space import WordSpace

CHECKPOINT_FORMAT = "mre-training-checkpoint"
OPTIMIZERS = ("sgd", "adam")
# The paper: SGD, lr 1e-3, momentum 0.9, Nesterov, with a loss summed over the batch. Our loss
# is averaged over the batch (so the step does not grow with batch size); 0.1 × the batch-mean
# gradient is the paper's step at its batch size of ~100 patches.
DEFAULT_LEARNING_RATE = {"sgd": 0.1, "adam": 1e-3}


@dataclass
class TrainSettings:
    epochs: int = 40
    batch_size: int = 32
    optimizer: str = "sgd"
    learning_rate: float | None = None        # None: DEFAULT_LEARNING_RATE of the optimiser
    momentum: float = 0.9
    margin: float = 0.4
    negatives: int = 1                        # sampled negative tags per positive (the paper: 1)
    patience: int = 6                         # epochs without a better validation loss before stopping
    seed: int = 0
    word_weight_decay: float = 0.0            # L2 decay on the word projection's weight only
    input_dropout: float = 0.0                # musicnn head: drop this share of each training patch's standardised features
    input_noise: float = 0.0                  # musicnn head: add Gaussian noise of this many standard deviations to them

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise TrainingDataError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        for name in ("epochs", "batch_size", "negatives", "patience"):
            if getattr(self, name) < 1:
                raise TrainingDataError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.word_weight_decay < 0:
            raise TrainingDataError(f"word_weight_decay must be at least 0, got {self.word_weight_decay}")
        if not 0 <= self.input_dropout < 1:
            raise TrainingDataError(f"input_dropout must be in [0, 1), got {self.input_dropout}")
        if self.input_noise < 0:
            raise TrainingDataError(f"input_noise must be at least 0, got {self.input_noise}")

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATE[self.optimizer]


@dataclass
class TrainResult:
    model: TrainedModel
    history: list[dict]
    best_epoch: int
    stopped_early: bool
    resumed_from: int | None
    tags: list[str]                 # seen + unseen, the columns of test_labels
    seen_tags: list[str]
    unseen_tags: list[str]
    test_track_vectors: np.ndarray  # [n_test, dim]
    test_labels: np.ndarray         # [n_test, n_tags] bool


def _label_matrix(prepared: PreparedInputs, tags: list[str]) -> np.ndarray:
    column = {tag: i for i, tag in enumerate(tags)}
    labels = np.zeros((len(prepared.tracks), len(tags)), dtype=bool)
    for row, track in enumerate(prepared.tracks):
        for tag in track.tags:
            if tag in column:
                labels[row, column[tag]] = True
    return labels


def _rows_of(inputs: np.ndarray, indices: np.ndarray) -> torch.Tensor:
    """Patches by index as float32 (sorted reads: the inputs may be a memory-mapped file)."""
    return torch.from_numpy(np.asarray(inputs[np.sort(indices)], dtype=np.float32))


def _normalisation(network: TwoBranchModel, inputs: np.ndarray, indices: np.ndarray, chunk: int = 512) -> None:
    """The paper's input normalisation, from the training patches only (in chunks: they may not fit in memory)."""
    per_feature = network.config.audio_branch != "paper"
    total = total_sq = None
    count = 0
    for start in range(0, len(indices), chunk):
        values = np.asarray(inputs[np.sort(indices[start:start + chunk])], dtype=np.float64)
        # per feature: statistics over patches; paper branch: one scalar over every value
        values = values.reshape(len(values), -1) if per_feature else values.reshape(-1, 1)
        part, part_sq = values.sum(axis=0), (values ** 2).sum(axis=0)
        total = part if total is None else total + part
        total_sq = part_sq if total_sq is None else total_sq + part_sq
        count += values.shape[0]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0))
    network.input_mean.copy_(torch.from_numpy(mean.astype(np.float32)).reshape(network.input_mean.shape))
    network.input_std.copy_(torch.from_numpy(np.maximum(std, 1e-6).astype(np.float32)).reshape(network.input_std.shape))


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(torch.split(order, batch_size))


def _perturbed(network, audio_in: torch.Tensor, settings: TrainSettings, generator) -> torch.Tensor:
    """A training batch's backbone features with settings' input dropout and noise, both in
    standardised units (a dropped feature sits at its mean); unchanged when both are 0."""
    if not (settings.input_dropout or settings.input_noise):
        return audio_in
    mean, std = network.input_mean.to(audio_in.device), network.input_std.to(audio_in.device)
    standard = (audio_in.float() - mean) / std
    if settings.input_dropout:
        keep = torch.rand(standard.shape, generator=generator) >= settings.input_dropout
        standard = standard * keep.to(standard.device) / (1.0 - settings.input_dropout)
    if settings.input_noise:
        standard = standard + settings.input_noise * torch.randn(standard.shape, generator=generator).to(standard.device)
    return standard * std + mean


def _epoch_loss(network, inputs, indices, positives, word_vectors, settings, device, *, optimizer=None,
                generator=None, bar=None) -> float:
    """One pass over inputs[indices] (positives: one row per index): trains when an optimiser is
    given, else measures (no gradients)."""
    network.train(optimizer is not None)
    total, count = 0.0, 0
    for batch in _batches(len(indices), settings.batch_size, generator if optimizer is not None else None):
        batch = np.sort(batch.numpy())
        audio_in = _rows_of(inputs, indices[batch]).to(device)
        if optimizer is not None:
            audio_in = _perturbed(network, audio_in, settings, generator)
        with torch.set_grad_enabled(optimizer is not None):
            if optimizer is not None and len(batch) < 2:
                continue  # batch norm cannot train on one patch
            loss = hinge_loss(network.embed_audio(audio_in), network.embed_words(word_vectors),
                              positives[torch.from_numpy(batch)].to(device), settings.negatives, settings.margin,
                              generator)
            if optimizer is not None:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        total += float(loss.detach()) * len(batch)
        count += len(batch)
        if bar is not None:
            bar.set_postfix(loss=f"{total / max(count, 1):.4f}")
            bar.update(len(batch))
    return total / max(count, 1)


def _make_optimizer(network, settings: TrainSettings):
    # the word projection's weight may decay on its own: with word vectors wider than the
    # training tags span, the directions no tag reaches otherwise keep their random start
    # (one group without it: the optimiser state of checkpoints from before it still loads)
    decayed = network.words.weight
    groups = ([{"params": [p for p in network.parameters() if p is not decayed]},
               {"params": [decayed], "weight_decay": settings.word_weight_decay}]
              if settings.word_weight_decay > 0 else network.parameters())
    if settings.optimizer == "adam":
        return torch.optim.Adam(groups, lr=settings.lr)
    return torch.optim.SGD(groups, lr=settings.lr, momentum=settings.momentum, nesterov=True)


def track_vectors(network: TwoBranchModel, inputs: np.ndarray, owner: np.ndarray, rows: np.ndarray,
                  device, batch_size: int = 256) -> np.ndarray:
    """L2-normalised mean of each track's patch vectors, for the given track rows (owner is sorted:
    a track's patches are consecutive)."""
    network.eval()
    out = []
    with torch.inference_mode():
        for row in rows:
            start, end = np.searchsorted(owner, [row, row + 1])
            vectors = torch.cat([network.embed_audio(_rows_of(inputs, np.arange(first, min(first + batch_size, end)))
                                                     .to(device)) for first in range(start, end, batch_size)])
            mean = vectors.mean(dim=0)
            out.append((mean / mean.norm().clamp_min(1e-12)).cpu().numpy())
    return np.asarray(out, dtype=np.float32).reshape(len(rows), network.config.embedding_dim)


def train(prepared: PreparedInputs, words: WordSpace, seen_tags: list[str], unseen_tags: list[str], *,
          config: ModelConfig, settings: TrainSettings, out: str | Path, fingerprint: str,
          word_vectors_path: str | None = None, resume: bool = False, device: str | torch.device = "cpu",
          show_progress: bool | None = None, log: Callable[[str], None] = print) -> TrainResult:
    """Train on the train split's seen tags; early-stop on the valid split; write the model file `out`."""
    out = Path(out)
    checkpoint_path = out.with_name(out.name + ".ckpt")
    device = torch.device(device)
    torch.manual_seed(settings.seed)
    network = TwoBranchModel(config).to(device)
    splits = np.array([t.split for t in prepared.tracks])
    train_rows, valid_rows, test_rows = (np.flatnonzero(splits == s) for s in ("train", "valid", "test"))
    if len(train_rows) == 0 or len(valid_rows) == 0:
        raise TrainingDataError(f"training needs train and valid tracks; got {len(train_rows)} and {len(valid_rows)}")
    seen_labels = torch.from_numpy(_label_matrix(prepared, seen_tags))
    owner = torch.from_numpy(prepared.owner)
    train_indices = np.flatnonzero(np.isin(prepared.owner, train_rows))
    valid_indices = np.flatnonzero(np.isin(prepared.owner, valid_rows))
    _normalisation(network, prepared.inputs, train_indices)
    word_vectors = torch.from_numpy(words.phrase_matrix(seen_tags)).to(device)
    train_positives = seen_labels[owner[torch.from_numpy(train_indices)]]
    valid_positives = seen_labels[owner[torch.from_numpy(valid_indices)]]

    optimizer = _make_optimizer(network, settings)
    history: list[dict] = []
    best_state, best_loss, best_epoch, stale, start_epoch, resumed_from = None, float("inf"), 0, 0, 0, None
    identity = {"fingerprint": fingerprint, "config": config.as_dict(), "seen_tags": seen_tags,
                "unseen_tags": unseen_tags, "word_vectors": words.vectors_id,
                "settings": {k: v for k, v in asdict(settings).items() if k not in ("epochs", "patience")
                             and not (k in ("word_weight_decay", "input_dropout", "input_noise") and v == 0)}}
    # (settings left at 0 stay out of the identity: checkpoints from before them resume)
    if resume and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT or state.get("identity") != identity:
            raise TrainingDataError(f"{checkpoint_path} was made from other data or settings; train without "
                                    "--resume to start over")
        network.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        history, best_state, best_loss = state["history"], state["best_state"], state["best_loss"]
        best_epoch, stale, start_epoch = state["best_epoch"], state["stale"], state["epoch"]
        resumed_from = start_epoch
        log(f"resuming from {checkpoint_path} after epoch {start_epoch}")
    elif resume:
        log(f"no checkpoint at {checkpoint_path}: starting from scratch")

    stopped_early = stale >= settings.patience
    for epoch in range(start_epoch, settings.epochs):
        if stale >= settings.patience:
            stopped_early = True
            break
        started = time.monotonic()
        generator = torch.Generator().manual_seed(settings.seed * 1_000_003 + epoch)  # same epochs on resume
        with tqdm(total=len(train_indices), desc=f"epoch {epoch + 1}/{settings.epochs}", unit="patch",
                  disable=not show_progress if show_progress is not None else None, leave=False) as bar:
            train_loss = _epoch_loss(network, prepared.inputs, train_indices, train_positives, word_vectors, settings, device,
                                     optimizer=optimizer, generator=generator, bar=bar)
        # the same negatives every epoch, so validation losses compare
        valid_loss = _epoch_loss(network, prepared.inputs, valid_indices, valid_positives, word_vectors, settings, device,
                                 generator=torch.Generator().manual_seed(settings.seed))
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "valid_loss": valid_loss,
                        "seconds": round(time.monotonic() - started, 3)})
        if valid_loss < best_loss - 1e-6:
            best_loss, best_epoch, stale = valid_loss, epoch + 1, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in network.state_dict().items()})
        else:
            stale += 1
        log(f"epoch {epoch + 1}: train loss {train_loss:.4f}, valid loss {valid_loss:.4f}"
            + (" (best)" if stale == 0 else ""))
        write_atomically(checkpoint_path, {
            "format": CHECKPOINT_FORMAT, "identity": identity, "epoch": epoch + 1,
            "network": {k: v.detach().cpu() for k, v in network.state_dict().items()},
            "optimizer": optimizer.state_dict(), "history": history, "best_state": best_state,
            "best_loss": best_loss, "best_epoch": best_epoch, "stale": stale})
    if stale >= settings.patience:
        stopped_early = True
    if best_state is None:
        raise TrainingDataError("no epoch finished: nothing to save")
    network.load_state_dict(best_state)
    training = {"settings": asdict(settings), "history": history, "best_epoch": best_epoch,
                "best_valid_loss": best_loss, "stopped_early": stopped_early,
                "tracks": {s: int(np.sum(splits == s)) for s in ("train", "valid", "test")},
                "patches": int(len(prepared.inputs))}
    write_atomically(out, model_payload(network.cpu(), words, word_vectors_path=word_vectors_path,
                                        seen_tags=seen_tags, unseen_tags=unseen_tags, fingerprint=fingerprint,
                                        training=training))
    model = load_trained_model(out, device=device, word_space=words)
    tags = seen_tags + unseen_tags
    vectors = track_vectors(model.network, prepared.inputs, prepared.owner, test_rows, device)
    return TrainResult(model, history, best_epoch, stopped_early, resumed_from, tags, seen_tags, unseen_tags, vectors,
                       _label_matrix(prepared, tags)[test_rows])
