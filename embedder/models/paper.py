"""The paper's two-branch model: an audio branch and a word branch that meet in one space.

After Choi, Lee, Park and Nam, "Zero-shot learning and knowledge transfer in music
classification and tagging":

- audio branch ("paper"): a log-mel patch, normalised by one global mean/std of the
  training set → four Conv1D blocks over time (128 filters each, kernels 4, 4, 4, 2, ReLU,
  max-pool 4, 4, 4, 2) → Conv1D(100, kernel 1) → global average pool → 100-d. Mel bands are
  the channels. Batch normalisation follows each convolution (as in the authors' Keras
  code base for their taggers); pools round up so a short patch still yields one frame.
- audio branch ("musicnn"): the paper's "pretrained audio model" option. Its code starts the
  convolutions from a supervised tagger of the same architecture; ours is the ported musicnn
  MSD tagger, kept frozen, whose 200-d penultimate features (standardised per
  dimension on the training set) go through a small trainable head to 100-d. Frozen,
  because fine-tuning a 2.3 GFLOP/patch network is not something a 2-core CPU does in
  minutes; the features are computed once per patch.
- word branch: a word vector (any gensim KeyedVectors) → one linear layer → 100-d.
- score: cosine. Loss: max-margin hinge ``max(0, m − cos(a, w+) + cos(a, w−))``, margin 0.4,
  negatives drawn from the tags the track does not have.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from mre.embedder.audio.frontend import FrontendConfig

AUDIO_BRANCHES = ("paper", "musicnn")
# The pretrained branch's backbone: trained on MSD, as the paper's model was.
BACKBONE_TAGGER = "musicnn-msd"
BACKBONE_FEATURES = 200  # musicnn's penultimate dense layer
# Which frozen taggers' penultimate features the head reads, concatenated in this order.
# "msd+mtt" adds the MagnaTagATune tagger (instruments, "no vocals", "harpsichord"...): the
# default zero-shot model runs both taggers anyway, so its features cost no extra pass.
BACKBONES = {"msd": ("musicnn-msd",), "msd+mtt": ("musicnn-msd", "musicnn-mtt"),
             "msd+mtt-pooled": ("musicnn-msd", "musicnn-mtt")}
# "-pooled": the layer below the penultimate one, the back-end's max and mean over time of the
# 753 front- and mid-end channels (1,506 a tagger), for studies of a wider head input.
POOLED_FEATURES = 1506

# Paper settings: 128 mel bands and ~3 s patches (130 frames at 22.05 kHz, hop 512). Here at
# 16 kHz / hop 256 (187 frames, the same 3 s), the rate the musicnn taggers use, so a
# `--teacher musicnn` run decodes each file once for teacher and student.
PAPER_FRONTEND = FrontendConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=128, patch_frames=187,
                                log="log10_1p_10000", float16_before_log=False)


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network; stored in the model file."""

    audio_branch: str = "paper"
    embedding_dim: int = 100
    conv_channels: tuple[int, ...] = (128, 128, 128, 128)
    conv_kernels: tuple[int, ...] = (4, 4, 4, 2)
    conv_pools: tuple[int, ...] = (4, 4, 4, 2)
    head_hidden: int = 256          # musicnn branch: width of the head's hidden layer
    backbone: str = "msd"           # musicnn branch: which taggers' features (BACKBONES)
    word_dim: int = 50
    frontend: dict = field(default_factory=PAPER_FRONTEND.as_dict)

    def __post_init__(self) -> None:
        if self.audio_branch not in AUDIO_BRANCHES:
            raise ValueError(f"audio branch must be one of {', '.join(AUDIO_BRANCHES)}, got {self.audio_branch!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        if not len(self.conv_channels) == len(self.conv_kernels) == len(self.conv_pools):
            raise ValueError("conv_channels, conv_kernels and conv_pools need one entry per layer")
        self.conv_channels, self.conv_kernels, self.conv_pools = (
            tuple(int(v) for v in values) for values in (self.conv_channels, self.conv_kernels, self.conv_pools))

    @property
    def backbone_taggers(self) -> tuple[str, ...]:
        return BACKBONES[self.backbone]

    @property
    def feature_dim(self) -> int:
        """Width of the musicnn branch's input: 200 penultimate (or 1,506 pooled) features per backbone tagger."""
        return (POOLED_FEATURES if self.backbone_layer == "pooled" else BACKBONE_FEATURES) * len(self.backbone_taggers)

    @property
    def backbone_layer(self) -> str:
        """Which layer of the backbone taggers the head reads: "penultimate" or "pooled"."""
        return "pooled" if self.backbone.endswith("-pooled") else "penultimate"

    @property
    def frontend_config(self) -> FrontendConfig:
        return FrontendConfig(**self.frontend)

    def as_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


class PaperAudioBranch(nn.Module):
    """Normalised log-mel patches ``[B, frames, n_mels]`` → ``[B, embedding_dim]`` (not normalised)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        layers: list[nn.Module] = []
        channels = config.frontend_config.n_mels
        for width, kernel, pool in zip(config.conv_channels, config.conv_kernels, config.conv_pools):
            # "same" padding written out: torch's padding="same" copies the input for even kernels
            layers += [nn.ConstantPad1d(((kernel - 1) // 2, kernel // 2), 0.0), nn.Conv1d(channels, width, kernel),
                       nn.BatchNorm1d(width), nn.ReLU(), nn.MaxPool1d(pool, ceil_mode=True)]
            channels = width
        layers.append(nn.Conv1d(channels, config.embedding_dim, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs.transpose(1, 2)).mean(dim=2)  # global average pool over time


class FeatureHead(nn.Module):
    """Standardised backbone features ``[B, 200 per tagger]`` → ``[B, embedding_dim]``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(config.feature_dim, config.head_hidden), nn.ReLU(),
                                    nn.Linear(config.head_hidden, config.embedding_dim))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs)


class TwoBranchModel(nn.Module):
    """The trainable part: audio branch + word projection, and the input normalisation."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.audio = PaperAudioBranch(config) if config.audio_branch == "paper" else FeatureHead(config)
        self.words = nn.Linear(config.word_dim, config.embedding_dim)
        # paper branch: one scalar mean/std of the log-mel; musicnn branch: one per feature
        size = 1 if config.audio_branch == "paper" else config.feature_dim
        self.register_buffer("input_mean", torch.zeros(size))
        self.register_buffer("input_std", torch.ones(size))

    def embed_audio(self, inputs: torch.Tensor) -> torch.Tensor:
        """Branch inputs (mel patches or backbone features) → unit vectors ``[B, D]``."""
        normalised = (inputs.float() - self.input_mean) / self.input_std
        return F.normalize(self.audio(normalised), dim=1)

    def embed_words(self, word_vectors: torch.Tensor) -> torch.Tensor:
        """Word vectors ``[N, word_dim]`` → unit vectors ``[N, D]``."""
        return F.normalize(self.words(word_vectors.float()), dim=1)


def hinge_loss(audio: torch.Tensor, words: torch.Tensor, positives: torch.Tensor, negatives_per_positive: int,
               margin: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Max-margin hinge over (patch, positive tag, sampled negative tag) triples.

    audio [B, D] and words [T, D] are unit vectors; positives [B, T] bool says which tags each
    patch's track has. Each positive pair gets `negatives_per_positive` negatives sampled
    uniformly from the tags that track does not have. Summed per patch (the paper sums over
    pairs), averaged over the batch. Rows without a positive or without a negative add nothing.
    """
    cosine = audio @ words.T                                   # [B, T]
    usable = positives.any(dim=1) & (~positives).any(dim=1)
    rows, tags = torch.nonzero(positives & usable[:, None], as_tuple=True)
    if len(rows) == 0:
        return cosine.sum() * 0.0
    negative_pool = (~positives[rows]).float()                 # [pairs, T]
    # sampled on the CPU: a CPU generator keeps runs reproducible whatever the device
    sampled = torch.multinomial(negative_pool.detach().cpu(), negatives_per_positive, replacement=True,
                                generator=generator).to(cosine.device)
    positive_cos = cosine[rows, tags][:, None]
    negative_cos = cosine[rows[:, None], sampled]
    per_triple = F.relu(margin - positive_cos + negative_cos)
    return per_triple.sum() / audio.shape[0]
