"""The batch embedder: many audio files → one vector each, streamed in fixed-size patch batches.

Decoding, resampling and the mel front-end run in worker processes (CPU-bound work that
would otherwise serialise with the model, and on a GPU machine leave one parent process to
copy and transform every track); the workers send back each track's mel patches, a third of
its samples' size. The model runs in the parent on the chosen device, on batches of patches
gathered across tracks, so a library of short clips fills batches as well as one long track
does. A track's vector is ready once its last patch went through.
"""
from __future__ import annotations

import contextlib
import multiprocessing
from collections import deque
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np

from mre.embedder.audio.attributes import ATTRIBUTE_NAMES, TrackAttributes, extract_attributes
from mre.embedder.audio.decode import AudioError, AudioInfo, load_audio
from mre.embedder.audio.frontend_config import FrontendConfig
from mre.embedder.models.device import PRECISIONS, choose_device  # noqa: F401  (re-exported: the runner's callers pick a device)
from mre.embedder import lifetime  # imported by the decode server too: it then dies with mre

# torch is imported where audio is embedded: decode workers, and callers that only read
# DEFAULT_MAX_SECONDS or choose nothing to embed, never pay for it.
if TYPE_CHECKING:
    import torch

# Longer tracks are analysed on their first 15 minutes: beyond that the mean over patches
# barely moves, and a 2-hour DJ mix would otherwise hold ~1 GB of samples in one worker.
DEFAULT_MAX_SECONDS = 900.0


@dataclass
class DecodedTrack:
    """What a worker sends back: the samples at the model's rate, or — where front-ends were
    asked for — each front-end's mel patches ``[P, patch_frames, n_mels]`` (float32) instead
    of the samples; or why it could not."""

    path: str
    samples: np.ndarray | None
    info: AudioInfo | None
    error: str | None = None
    extras: dict = field(default_factory=dict)
    analysed_seconds: float = 0.0
    decoder_messages: str | None = None  # what the decoder library printed while reading this file
    patches: tuple[np.ndarray, ...] | None = None


@dataclass
class EmbeddedTrack:
    """One finished track: the model's per-track output (mean over patches) and its audio info."""

    path: str
    info: AudioInfo | None
    patch_mean: np.ndarray | None
    n_patches: int
    error: str | None = None
    extras: dict = field(default_factory=dict)
    analysed_seconds: float = 0.0  # what was decoded (≤ the file's duration with max_seconds)
    decoder_messages: str | None = None  # the decoder's own warnings about this file, one line


@contextlib.contextmanager
def _float32_convolutions(device):
    """cuDNN convolutions in float32 proper while the model runs on a GPU.

    PyTorch lets cuDNN use TF32 (10-bit mantissas) for float32 convolutions by default. On an
    H200, musicnn's track vectors then moved by up to 3.7e-3 in label log-odds from the CPU's
    and 4 of the 92 labels ranked the 28 demo tracks differently; with TF32 off they stayed
    within 4e-5 and no ranking changed, at the same throughput (decoding was the limit).
    """
    import torch

    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


@contextlib.contextmanager
def _model_precision(device, precision: str):
    """The model's batch in float32 proper (no TF32), or under autocast to a half precision."""
    import torch

    if precision == "float32":
        with _float32_convolutions(device):
            yield
        return
    with torch.autocast(device_type=device.type, dtype=getattr(torch, precision)):
        yield


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers() -> int:
    """Decode workers: one per core beyond the one the model uses, at least one."""
    return max(1, usable_cores() - 1)


def default_model_threads() -> int:
    """CPU threads that run the model: one per core (they share the cores with decoding)."""
    return usable_cores()


# On CPU a model call takes at most this many patches per model thread. The musicnn
# kernels run one patch per convolution anyway, so a bigger batch is not faster there; it
# only makes the main thread stop pulling decoded tracks for longer, and the decode worker
# (at most two tracks ahead) then idles. Measured on the 2-core machine, musicnn-mtt:
# batch 64 -> 67-69x realtime end to end (6 s of 13 waiting for decodes), 8 -> 76-81x.
CPU_PATCHES_PER_MODEL_THREAD = 4


def cpu_batch_size(batch_size: int, model_threads: int) -> int:
    """Patches per model call on CPU with ``model_threads`` threads (see above)."""
    return max(1, min(batch_size, CPU_PATCHES_PER_MODEL_THREAD * model_threads))


class _CpuPatchThreads:
    """Runs a model's CPU batches as slices on threads that each use one torch thread.

    torch's own intra-op (OpenMP) threads meet at a barrier after every operation; when a
    decode worker or another process takes one of their cores, the whole team waits for
    it. Measured on the 2-core machine, musicnn-mtt, one decode worker, another process
    busy on one core: 11x realtime end to end with 2 torch threads, 46x with slices on 2
    single-threaded Python threads (as with 1 torch thread, but an idle core left by
    decoding can still go to the model). torch ops release the GIL, so slices run in parallel.
    """

    def __init__(self, threads: int):
        import torch

        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,))
        self._ready: set[int] = set()  # models that have run once on the calling thread

    def __call__(self, model: "PatchModel", patches: torch.Tensor) -> torch.Tensor:
        import torch

        if id(model) not in self._ready:
            # a model loads its weights on first use: on one thread, not on each slice's at once
            # (two threads both loaded them, and CPython 3.11's AST state, which np.load's header
            # parse uses, is per interpreter: "AST constructor recursion depth mismatch")
            with torch.inference_mode():
                model.patch_outputs(patches[:1])
            self._ready.add(id(model))

        def run_slice(part: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():  # a per-thread mode: each worker thread enters it
                return model.patch_outputs(part)

        slice_size = -(-len(patches) // self.threads)
        return torch.cat(list(self._pool.map(run_slice, patches.split(slice_size))))

    def close(self) -> None:
        self._pool.shutdown()


CpuPatchThreads = _CpuPatchThreads  # for other batch jobs of the embedder (training's teacher pass)


_MAX_DECODER_MESSAGE = 300
_decoder_log = None  # this process's capture file for the decoder's stderr, made on first use


@contextlib.contextmanager
def _decoder_messages_captured(into: list) -> Iterator[None]:
    """libsndfile's decoders (libmpg123: "Warning: Xing stream size off by more than 1%...")
    write to file descriptor 2 with no file name; catch it around one file's decode so it can
    be attached to that file instead of appearing on the terminal unattributed."""
    global _decoder_log
    try:
        if _decoder_log is None:
            _decoder_log = tempfile.TemporaryFile()
        _decoder_log.seek(0)
        _decoder_log.truncate()
        sys.stderr.flush()
        saved = os.dup(2)
    except OSError:  # no temporary space, no descriptors: decode without catching
        yield
        return
    os.dup2(_decoder_log.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        _decoder_log.seek(0)
        text = _decoder_log.read(4 * _MAX_DECODER_MESSAGE).decode("utf-8", "replace")
        text = " ".join(text.split())
        if text:
            into.append(text if len(text) <= _MAX_DECODER_MESSAGE else text[:_MAX_DECODER_MESSAGE - 1] + "…")


def _decode_one(args: tuple[str, int, float | None, Callable | None, tuple[FrontendConfig, ...]]) -> DecodedTrack:
    path, sample_rate, max_seconds, analyse, frontends = args
    said: list[str] = []
    try:
        with _decoder_messages_captured(said):
            samples, info = load_audio(path, sample_rate, max_seconds=max_seconds)
    except AudioError as error:
        # the path has its own column
        return DecodedTrack(path, None, None, error.reason + (f" (decoder: {said[0]})" if said else ""))
    except Exception as error:  # a worker must report, never die: the run goes on
        return DecodedTrack(path, None, None, f"{type(error).__name__}: {error}".splitlines()[0])
    extras = {}
    if analyse is not None:
        try:
            extras = analyse(samples, sample_rate)
        except Exception as error:
            extras = {"analysis_error": f"{type(error).__name__}: {error}".splitlines()[0]}
    track = DecodedTrack(path, samples, info, None, extras, len(samples) / sample_rate, said[0] if said else None)
    if frontends:
        try:
            track.patches = mel_patches(samples, frontends)
        except Exception as error:  # a worker must report, never die: the run goes on
            track.error = f"{type(error).__name__}: {error}".splitlines()[0]
        track.samples = None  # the patches replace them: they are what goes back to the parent
    return track


_mel_frontends: dict = {}  # this process's torch front-ends, one per configuration
_in_decode_worker = False  # set in a decode worker, whose torch runs on one thread
_mel_thread: ThreadPoolExecutor | None = None  # elsewhere, the one thread mel_patches runs on


def mel_patches(samples: np.ndarray, frontends: Sequence[FrontendConfig]) -> tuple[np.ndarray, ...]:
    """Each front-end's log-mel of ``samples`` cut into model inputs ``[P, patch_frames, n_mels]``.

    The torch front-end on the CPU, whichever device runs the model, and always on one torch
    thread: in a decode worker, or on a one-thread helper thread where a process decodes
    inline. So a track's patches are the same bits wherever they are made (MKL's matmul may
    round differently on another number of threads), and every device's model reads them.
    """
    def compute() -> tuple[np.ndarray, ...]:
        import torch

        from mre.embedder.audio.frontend import MelFrontend, make_patches

        waveform = torch.from_numpy(np.ascontiguousarray(samples))[None]
        patches = []
        with torch.inference_mode():
            for config in frontends:
                frontend = _mel_frontends.get(config)
                if frontend is None:
                    frontend = _mel_frontends[config] = MelFrontend(config)
                patches.append(make_patches(frontend(waveform)[0], config.patch_frames).numpy())
        return tuple(patches)

    if _in_decode_worker:
        return compute()
    global _mel_thread
    if _mel_thread is None:
        import torch

        # torch's thread count is per thread (OpenMP): this one runs single-threaded
        _mel_thread = ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(1,))
    return _mel_thread.submit(compute).result()


def _forget_mel_thread() -> None:
    global _mel_thread
    _mel_thread = None  # a forked child has no such thread: it makes its own on first use


os.register_at_fork(after_in_child=_forget_mel_thread)


def _init_decode_worker(owner_pid: int, owner_start_time: str | None, mel: bool) -> None:
    global _in_decode_worker
    lifetime.init_worker(owner_pid, owner_start_time)
    if mel:
        import torch

        # one torch thread per worker: the workers already fill the cores, one process each
        torch.set_num_threads(1)
        _in_decode_worker = True


def decode_server():
    """The multiprocessing context the decode workers start from, its server started now.

    forkserver: workers start from a clean process, not a fork of one whose torch thread
    pools are already running (forking those can deadlock). The server imports this module
    (numpy, soundfile, soxr) and torch with the mel front-end once, so each worker forks
    ready instead of importing them (~1 s each). Started early (`embed_files` calls this
    before it imports torch itself), the server's imports run beside the caller's.
    """
    context = multiprocessing.get_context("forkserver")
    # A new worker also re-runs the program's main module (multiprocessing's spawn protocol):
    # a main that imports torch at its top costs every worker ~1 s, so the `mre` command and
    # the throughput benchmarks import torch only inside their functions.
    # lifetime first: it sets up the server's signals before the heavy imports. (The list has
    # no effect once the server runs.)
    context.set_forkserver_preload(["mre.embedder.lifetime", "mre.embedder.runner", "mre.embedder.audio.frontend"])
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return context


def _in_workers(paths: Sequence[str], workers: int) -> bool:
    """Whether `decode_stream` decodes in worker processes (not for one file or workers=0)."""
    return workers > 0 and len(paths) > 1


def decode_stream(
    paths: list[str],
    sample_rate: int,
    workers: int,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    analyse: Callable | None = None,
    frontends: Sequence[FrontendConfig] = (),
) -> Iterator[DecodedTrack]:
    """Decoded tracks in input order; `workers=0` decodes in this process (tests, tiny jobs).

    frontends: front-ends at ``sample_rate`` whose mel patches the workers compute and send
    back instead of the samples (``DecodedTrack.patches``, in this order); none: the samples.
    """
    frontends = tuple(frontends)
    tasks = [(p, sample_rate, max_seconds, analyse, frontends) for p in paths]
    if not _in_workers(paths, workers):
        for task in tasks:
            yield _decode_one(task)
        return
    context = decode_server()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_decode_worker,
                               initargs=(os.getpid(), lifetime.process_start_time(os.getpid()), bool(frontends)))
    ending = False
    try:
        # At most 2 tracks per worker in flight: the model is slower than decoding, and
        # pool.map would decode the whole library ahead of it, holding every track's samples.
        in_flight: deque = deque()
        for number, task in enumerate(tasks):
            # the first `workers` submits start the workers: a signal is held until each is up
            with lifetime.signals_held() if number < workers else contextlib.nullcontext():
                in_flight.append(pool.submit(_decode_one, task))
            if len(in_flight) >= 2 * workers:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()
    except BaseException:  # Ctrl-C, SIGTERM, an error, or the generator closed unfinished
        ending = True
        raise
    finally:
        # Tracks not started are not decoded. A signal waits for the tracks in the workers'
        # hands: a shutdown cut short left workers waiting for work that never came, and `mre`
        # joining them at exit. One that came while an interrupted run stops is dropped: the
        # run already ends (raised in a closing generator, it printed a traceback).
        with lifetime.signals_held(deliver=not ending):
            pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class PatchedTrack:
    """A decoded track cut into model inputs: per front-end asked for, its mel patches
    ``[P, patch_frames, n_mels]`` (float32, on the CPU); None where it did not decode
    (``decoded.error``). ``decoded.samples`` is None: the worker sent the patches instead."""

    decoded: DecodedTrack
    patches: tuple[np.ndarray, ...] | None


def patch_stream(
    paths: list[str],
    frontends: Sequence[FrontendConfig],
    *,
    workers: int,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    analyse: Callable | None = None,
) -> Iterator[PatchedTrack]:
    """The one decode → mel → patches path: each file decoded once, then every front-end's mel
    of the same samples cut into patches, in the decode workers (`decode_stream`), in input order.

    frontends: one or more front-ends at one sample rate (training's student and the musicnn
    teacher read the same decode).
    """
    rates = {config.sample_rate for config in frontends}
    if len(rates) != 1:
        raise ValueError(f"front-ends of one decode need one sample rate, got {sorted(rates)} Hz")
    for decoded in decode_stream(paths, rates.pop(), workers, max_seconds, analyse, frontends):
        if decoded.error is not None or decoded.patches is None:
            yield PatchedTrack(decoded, None)
            continue
        patches, decoded.patches = decoded.patches, None
        yield PatchedTrack(decoded, patches)


class PatchModel:
    """What the runner needs of a model: its front-end and a per-patch output function."""

    frontend: FrontendConfig
    output_dim: int

    def patch_outputs(self, mel_patches: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


def embed_files(
    paths: Iterable[str],
    model: PatchModel,
    *,
    device: str | torch.device = "auto",
    batch_size: int = 64,
    workers: int | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    analyse: Callable | None = None,
    progress: Callable[[EmbeddedTrack], None] | None = None,
    model_threads: int | None = None,
    precision: str = "float32",
) -> Iterator[EmbeddedTrack]:
    """Embed audio files; yields one EmbeddedTrack per input path, in input order.

    paths: audio files. model: a PatchModel. device: "auto", "cpu", "cuda" or a torch.device.
    batch_size: patches per model call (on CPU at most cpu_batch_size()). workers: decode processes (None: cores − 1; 0: inline).
    max_seconds: analyse at most this much of each track. analyse: optional
    `f(samples, sample_rate) -> dict` run in the worker on the decoded samples (no second read).
    progress: called once per finished track. model_threads: on CPU, threads that run slices
    of each batch with one torch thread each (None: one per core; 0: torch's own threading).
    precision: "float32" (the default), or "float16" / "bfloat16" to run the model under torch's
    autocast (meant for GPUs; on CPU it runs too, on torch's own threading; models.device.PRECISIONS says what
    each one costs in drift).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    paths = [str(p) for p in paths]
    if not paths:
        return  # nothing to embed: torch is not even imported
    if workers is None:
        workers = default_workers()
    if _in_workers(paths, workers):
        decode_server()  # its imports run while this process imports torch and loads the model
    import torch

    torch_device = device if isinstance(device, torch.device) else choose_device(device)
    if model_threads is None:
        model_threads = default_model_threads()
    # autocast is per thread, so a reduced precision runs the batch whole, on torch's own threads
    patch_threads = (_CpuPatchThreads(model_threads)
                     if torch_device.type == "cpu" and model_threads > 0 and precision == "float32" else None)
    if patch_threads is not None:
        batch_size = cpu_batch_size(batch_size, model_threads)

    pending: dict[int, dict] = {}  # track index -> {track, n_patches, sum, done}
    next_to_emit = 0
    batch_patches: list[np.ndarray] = []
    batch_owner: list[int] = []

    def run_batch() -> None:
        if not batch_patches:
            return
        # one copy to the device a batch (the tracks' patches arrive from the workers on the CPU)
        patches = torch.from_numpy(np.concatenate(batch_patches)).to(torch_device)
        if patch_threads is not None:
            outputs = patch_threads(model, patches).float().numpy()
        else:
            with torch.inference_mode(), _model_precision(torch_device, precision):
                outputs = model.patch_outputs(patches).float().cpu().numpy()
        owners = np.concatenate([np.full(len(p), o) for p, o in zip(batch_patches, batch_owner)])
        for owner in np.unique(owners):
            entry = pending[owner]
            rows = outputs[owners == owner]
            entry["sum"] = rows.sum(axis=0) if entry["sum"] is None else entry["sum"] + rows.sum(axis=0)
            entry["done"] += len(rows)
        batch_patches.clear()
        batch_owner.clear()

    def ready() -> Iterator[EmbeddedTrack]:
        nonlocal next_to_emit
        while next_to_emit in pending:
            entry = pending[next_to_emit]
            if entry["done"] < entry["n_patches"]:
                return
            decoded: DecodedTrack = entry["track"]
            mean = entry["sum"] / entry["n_patches"] if entry["n_patches"] else None
            track = EmbeddedTrack(decoded.path, decoded.info, mean, entry["n_patches"], decoded.error, decoded.extras,
                                  decoded.analysed_seconds, decoded.decoder_messages)
            del pending[next_to_emit]
            next_to_emit += 1
            if progress is not None:
                progress(track)
            yield track

    queued = 0
    stream = patch_stream(paths, (model.frontend,), workers=workers, max_seconds=max_seconds, analyse=analyse)
    for index, patched in enumerate(stream):
        if patched.patches is None:
            pending[index] = {"track": patched.decoded, "n_patches": 0, "sum": None, "done": 0}
        else:
            patches = patched.patches[0]
            pending[index] = {"track": patched.decoded, "n_patches": len(patches), "sum": None, "done": 0}
            # split a long track's patches so no model call exceeds batch_size
            for start in range(0, len(patches), batch_size):
                chunk = patches[start:start + batch_size]
                if queued + len(chunk) > batch_size:
                    run_batch()
                    queued = 0
                batch_patches.append(chunk)
                batch_owner.append(index)
                queued += len(chunk)
        yield from ready()
    run_batch()
    if patch_threads is not None:
        patch_threads.close()  # (an abandoned generator's pool ends when it is collected)
    yield from ready()


# Why a decoded track has no vector: the words every caller records (the store's skipped table,
# `mre tags`, `mre info`, the quality benchmark).
NO_AUDIO = "no audio to analyse"
NON_FINITE = "the model produced non-finite values"


@dataclass
class FinishedTrack:
    """One track as every caller uses it: its vector in the model's space and its musical
    attributes, or the reason it has no vector.

    index: the track's position in the input. vector: float32 ``[model.dim]`` (None with an
    error). attributes: ``ATTRIBUTE_NAMES`` → value, every value None where they were not
    measured (not asked for, or the analysis failed: the track still counts).
    """

    index: int
    path: str
    info: AudioInfo | None
    vector: np.ndarray | None
    attributes: dict
    error: str | None = None
    analysed_seconds: float = 0.0
    decoder_messages: str | None = None


def finish_track(index: int, track: EmbeddedTrack, model) -> FinishedTrack:
    """The model's track vector from the runner's patch mean, checked, and the attributes by name."""
    vector, error = None, track.error
    if error is None:
        if track.patch_mean is None:
            error = NO_AUDIO
        else:
            vector = np.asarray(model.track_vector(track.patch_mean), dtype=np.float32)
            if not np.all(np.isfinite(vector)):
                vector, error = None, NON_FINITE
    extras = track.extras
    attributes = extras.as_dict() if isinstance(extras, TrackAttributes) else dict.fromkeys(ATTRIBUTE_NAMES)
    return FinishedTrack(index, track.path, track.info, vector, attributes, error, track.analysed_seconds,
                         track.decoder_messages)


def embed_tracks(paths: Iterable[str], model, *, attributes: bool = True, **options) -> Iterator[FinishedTrack]:
    """`embed_files` finished: one FinishedTrack per input path, in input order.

    model: a model with ``track_vector`` (every model ``load_model`` returns). attributes: measure
    the musical attributes in the decode workers (no second read of the file). options: as
    `embed_files` (device, batch_size, workers, max_seconds, progress, model_threads).
    """
    analyse = extract_attributes if attributes else None
    for index, track in enumerate(embed_files(paths, model, analyse=analyse, **options)):
        yield finish_track(index, track, model)


def seconds_of_audio(tracks: Iterable[EmbeddedTrack]) -> float:
    """Total analysed duration, for throughput figures."""
    return float(sum(t.analysed_seconds for t in tracks))
