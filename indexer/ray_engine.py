"""`mre index --engine ray`: decoding and the model run on a Ray cluster through Ray Data.

The driver (`mre index`, pipeline.py) does what it always does: scan, diff, staging and the
commit of a generation. Only the files to embed go to Ray, as a dataset of (path, size,
mtime) rows cut into blocks of a few files; ``map_batches`` hands each block to an actor
(one model per actor, loaded once) that runs the local engine's own call,
``pipeline.embedded_rows``, on it and returns the staged rows as an Arrow table — vectors as
fixed-size float32 lists, the staging schema, not Ray's tensor extension. The driver streams
them back in order, shows progress and appends them to the staging area as the local engine
does, so a run killed at any point resumes from the staged parts.

Sizing (a local cluster on a small machine must not hang): every actor asks for its CPUs and
the pool leaves one CPU of the cluster free, since Ray Data's own tasks need a CPU slot and
an actor pool holding every CPU waits for them forever (2 CPUs, 2 one-CPU actors). A local
cluster gets a capped object store (Ray's default is 30 % of memory; the blocks here are
paths and vectors), its own session folder, no dashboard, and is shut down when the
embedding ends, however it ends.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import tempfile
import warnings
from dataclasses import dataclass
from typing import Iterator

# a Ray block (and an actor call) holds this many files: small enough that progress moves and
# work spreads over the actors, big enough that a GPU actor fills patch batches
FILES_PER_BLOCK = 8
# the object store of a local cluster (Ray would take 30 % of memory)
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 ** 2
INSTALL_HINT = "--engine ray needs Ray Data: pip install 'music-retrieval-engine[ray]' (or pip install 'ray[data]')"
# the columns an actor adds to the staged row for the driver's summary; not staged
REPORT_COLUMNS = ("analysed_seconds", "decoder_messages")


@dataclass
class RowReport:
    """What the driver needs of a finished track besides its staged row (for the summary)."""

    path: str
    analysed_seconds: float = 0.0
    decoder_messages: str | None = None


class RayEngineError(RuntimeError):
    """Ray missing, a cluster that cannot be reached or is too small (one line for the user)."""


def require_ray():
    """Import ray (with Ray Data) or say in one line how to install it."""
    # Ray connects on its own when an API is called without a session: a thread of Ray Data
    # still winding down after mre's shutdown (Ctrl-C, SIGTERM) would start a whole new default
    # cluster in /tmp/ray. Read by ray when it is first imported.
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    try:
        import ray
        import ray.data  # noqa: F401  (ray without the [data] extra lacks it)
    except ImportError:
        raise RayEngineError(INSTALL_HINT) from None
    return ray


@dataclass
class ActorPlan:
    """How many actors and what each asks of the cluster."""

    actors: int
    cpus_per_actor: int
    gpus_per_actor: int

    @property
    def decode_workers(self) -> int:
        # one CPU runs the model; the others decode in processes of the actor (as the local
        # engine: cores − 1). One CPU: decode inline.
        return self.cpus_per_actor - 1

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_actor else "cpu"


def plan_actors(cluster_cpus: float, num_gpus: int) -> ActorPlan:
    """Actors for a cluster of ``cluster_cpus`` CPUs; one CPU is always left to Ray Data's tasks.

    CPU only: one one-CPU actor per other CPU (each decodes and runs the model on one core:
    no thread contends with another actor's). ``num_gpus`` N: N actors with one GPU each,
    sharing the other CPUs for their decode workers.
    """
    spare = int(math.floor(cluster_cpus)) - 1
    if spare < 1:
        raise RayEngineError(f"the Ray cluster has {cluster_cpus:g} CPUs; --engine ray needs at least 2 "
                             "(one for Ray Data's tasks, one per actor)")
    if num_gpus:
        return ActorPlan(actors=num_gpus, cpus_per_actor=max(1, spare // num_gpus), gpus_per_actor=1)
    return ActorPlan(actors=spare, cpus_per_actor=1, gpus_per_actor=0)



def _quiet_ray_data_console() -> None:
    """Ray Data logs its plan and progress to the console, and an actor's error with Ray's
    tracebacks; mre draws its own bar and says a failure in one line (RayEngineError, with the
    actor's own message), so nothing of it reaches the terminal (Ray Data's log file in the
    session folder keeps it)."""
    for handler in logging.getLogger("ray.data").handlers:
        if handler.name == "console":
            handler.setLevel(logging.CRITICAL)


def _first_line(error: BaseException) -> str:
    """The cause a Ray error carries, in one line (its text starts with Ray's own framing)."""
    cause = getattr(error, "cause", None)
    text = str(cause if cause is not None else error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _portable(name: str | None) -> str | None:
    """A model or word-vector file by its absolute path (actors may run elsewhere than the
    driver's folder; on a cluster that path must hold the same file on every node), or the name."""
    return os.path.abspath(name) if name and os.path.exists(name) else name


def check_device(device: str, num_gpus: int) -> None:
    """With Ray the actors' resources choose the device: --device cuda alone is refused."""
    if device == "cuda" and not num_gpus:
        raise RayEngineError("with --engine ray the model runs where --num-gpus puts it: "
                             "ask for --num-gpus N instead of --device cuda")


class _EmbedActor:
    """One model per actor, loaded once; each call embeds one block of files."""

    def __init__(self, model_name, word_vectors, model_id, device, batch_size, max_seconds, decode_workers,
                 model_threads, precision="float32"):
        from mre.embedder.models.factory import load_model

        self.model = load_model(model_name, device=device, word_vectors=word_vectors)
        if self.model.model_id != model_id:
            raise RuntimeError(f"a Ray worker loaded {self.model.model_id}, the driver {model_id}: "
                               "install the same mre and model files on every node")
        self.options = dict(device=device, batch_size=batch_size, max_seconds=max_seconds,
                            workers=decode_workers, model_threads=model_threads, precision=precision)
        self.schema = output_schema(self.model.dim)

    def __call__(self, batch):
        import pyarrow as pa

        from mre.indexer.paths import table_paths
        from mre.indexer.pipeline import embedded_rows, staged_table
        from mre.indexer.scan import FileEntry

        entries = [FileEntry(path, size, mtime_ns) for path, size, mtime_ns in
                   zip(table_paths(batch), batch.column("size").to_pylist(), batch.column("mtime_ns").to_pylist())]
        rows, reports = [], []
        for row, track in embedded_rows(entries, self.model, **self.options):
            rows.append(row)
            reports.append(track)
        table = staged_table(rows, self.model.dim)
        return table.append_column(self.schema.field("analysed_seconds"),
                                   pa.array([t.analysed_seconds for t in reports], pa.float64())).append_column(
            self.schema.field("decoder_messages"), pa.array([t.decoder_messages for t in reports], pa.string()))


def output_schema(dim: int):
    """What an actor returns: the staging schema, then the report columns."""
    import pyarrow as pa

    from mre.indexer.pipeline import _staged_schema

    return _staged_schema(dim).append(pa.field("analysed_seconds", pa.float64())).append(
        pa.field("decoder_messages", pa.string()))


class RayEngine:
    """Embeds files on a Ray cluster: ``address`` None starts a private local one (stopped at
    the end), "auto" or HOST:PORT joins a running one (left running). A context manager: the
    cluster it started is gone when the ``with`` ends."""

    def __init__(self, address: str | None = None, num_gpus: int = 0, *, num_cpus: int | None = None,
                 object_store_bytes: int = LOCAL_OBJECT_STORE_BYTES, temp_dir: str | None = None):
        self.address = address
        self.num_gpus = num_gpus
        self.num_cpus = num_cpus
        self.object_store_bytes = object_store_bytes
        self.temp_dir = temp_dir
        self.plan: ActorPlan | None = None
        self._ray = None
        self._started_ray = False  # this engine called ray.init (so it calls ray.shutdown)
        self._own_temp_dir: str | None = None
        require_ray()  # fail before any scanning when it is not installed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the cluster ------------------------------------------------------------------------
    def _start(self):
        ray = require_ray()
        if self.address is None and ray.is_initialized():
            # this process already has a Ray session (a notebook, a test's shared cluster): use
            # it as it is and leave it running
            self._ray = ray
            return self._configure(ray)
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                       configure_logging=True)
        if self.address is None:
            temp_dir = self.temp_dir
            if temp_dir is None:
                # a private session folder, short enough for Ray's Unix socket paths
                temp_dir = self._own_temp_dir = tempfile.mkdtemp(prefix="mre-ray-")
            from mre.embedder import runner  # the cores the local engine would use

            options.update(num_cpus=self.num_cpus or runner.usable_cores(), num_gpus=self.num_gpus,
                           object_store_memory=self.object_store_bytes, _temp_dir=temp_dir)
        else:
            options.update(address=self.address)
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            self._remove_temp_dir()
            where = self.address or "a local cluster"
            raise RayEngineError(f"could not start Ray on {where}: {str(error).strip().splitlines()[0]}") from None
        finally:
            # ray.init installs its own SIGTERM handler; mre's (save finished work, exit 143) stays
            for sig, handler in handlers.items():
                if handler is not None:
                    signal.signal(sig, handler)
        self._ray = ray
        self._started_ray = True
        return self._configure(ray)

    def _configure(self, ray):
        resources = ray.cluster_resources()
        if self.num_gpus > resources.get("GPU", 0):
            self.close()
            raise RayEngineError(f"--num-gpus {self.num_gpus}, but the Ray cluster has {resources.get('GPU', 0):g} GPUs")
        try:
            self.plan = plan_actors(resources.get("CPU", 0), self.num_gpus)
        except RayEngineError:
            self.close()
            raise
        _quiet_ray_data_console()
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # rows come back in the order of the scan
        context.enable_progress_bars = False  # the driver draws mre's own bar
        context.print_on_execution_start = False
        return ray

    def close(self) -> None:
        """Disconnect; a cluster this engine started is shut down (its processes end)."""
        if self._ray is not None:
            if self._started_ray:
                self._ray.shutdown()  # a local cluster ends; a joined one is only disconnected from
            self._ray = None
            self._started_ray = False
        self._remove_temp_dir()

    def _remove_temp_dir(self) -> None:
        if self._own_temp_dir is not None:
            shutil.rmtree(self._own_temp_dir, ignore_errors=True)
            self._own_temp_dir = None

    # -- the work ---------------------------------------------------------------------------
    def embedded_rows(self, entries, model, *, device="auto", batch_size: int = 64, max_seconds=None,
                      precision: str = "float32", model_name: str | None = None, word_vectors: str | None = None
                      ) -> Iterator[tuple[dict, object]]:
        """(staged row, RowReport) per entry, in order, as ``pipeline.embedded_rows`` yields them
        (a row's ``vector`` a float32 array, None with an error). model_name, word_vectors: what
        the driver gave ``load_model`` for ``model``; the actors load the same themselves."""
        if not entries:
            return
        from mre.indexer.paths import path_columns, table_paths
        from mre.indexer.tables import optional_vectors_from_column

        import pyarrow as pa

        check_device(device, self.num_gpus)
        ray = self._start() if self._ray is None else self._ray
        batches = None
        try:
            plan = self.plan
            texts, raws = path_columns([e.path for e in entries])
            files = pa.table({"path": texts, "path_bytes": raws,
                              "size": pa.array([e.size for e in entries], pa.int64()),
                              "mtime_ns": pa.array([e.mtime_ns for e in entries], pa.int64())})
            blocks = [files.slice(start, FILES_PER_BLOCK) for start in range(0, files.num_rows, FILES_PER_BLOCK)]
            with warnings.catch_warnings():
                # max_restarts: Ray Data documents it as the way to turn restarts off (a restarted
                # actor would warn on the terminal that its arguments may be gone), while
                # warning that extra remote arguments are deprecated
                warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
                dataset = ray.data.from_arrow(blocks).map_batches(
                    _EmbedActor, batch_size=None, batch_format="pyarrow", zero_copy_batch=True,
                    fn_constructor_args=(_portable(model_name), _portable(word_vectors), model.model_id, plan.device, batch_size,
                                         max_seconds, plan.decode_workers, plan.cpus_per_actor, precision),
                    compute=ray.data.ActorPoolStrategy(size=plan.actors), num_cpus=plan.cpus_per_actor,
                    num_gpus=plan.gpus_per_actor,
                    # an actor that dies fails the run (the finished tracks are staged: run again)
                    max_restarts=0)
            # the row fields as Python values; the vectors stay numpy (staged_table makes their column)
            row_names = [name for name in output_schema(model.dim).names if name not in REPORT_COLUMNS + ("vector",)]
            batches = iter(dataset.iter_batches(batch_size=None, batch_format="pyarrow"))
            while True:
                try:
                    table = next(batches)
                except StopIteration:
                    break
                except ray.exceptions.RayError as error:
                    raise RayEngineError(f"the Ray job failed: {_first_line(error)}") from None
                reports = zip(table.column("analysed_seconds").to_pylist(), table.column("decoder_messages").to_pylist())
                vectors = optional_vectors_from_column(table.column("vector"), model.dim)
                for row, vector, path, (seconds, said) in zip(table.select(row_names).to_pylist(), vectors,
                                                              table_paths(table), reports):
                    row["vector"] = vector
                    yield row, RowReport(path, seconds or 0.0, said)
        finally:
            if batches is not None:
                # stops Ray Data's executor (its threads) before Ray itself: one still running
                # after the shutdown (Ctrl-C, SIGTERM, an error in the driver) fails noisily
                batches.close()
            self.close()
