"""Convert musicnn's TF1 checkpoints to the .npz weights mre ships (``embedder/weights/``).

The checkpoints are read without TensorFlow (``tf_checkpoint``); the tensors keep their TF names
and values, and only those inference needs are kept. The conversion is reproducible: the .npz
bytes depend only on the tensors, so ``python -m mre.embedder.models.convert convert`` gives the
sha256 the registry records. The architectures that load these tensors are in ``musicnn``.
"""
from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np

from mre.embedder.models.registry import WEIGHTS_DIR
from mre.embedder.models.tf_checkpoint import read_checkpoint, read_index

__all__ = ["MUSICNN_CHECKPOINTS", "WEIGHTS_DIR", "convert_checkpoint", "inference_tensor_names"]

# Our model name -> (folder inside the musicnn package, architecture).
MUSICNN_CHECKPOINTS = {
    "musicnn-msd": ("MSD_musicnn", "musicnn"),
    "musicnn-mtt": ("MTT_musicnn", "musicnn"),
    "musicnn-vgg-msd": ("MSD_vgg", "vgg"),
    "musicnn-vgg-mtt": ("MTT_vgg", "vgg"),
}


def inference_tensor_names(names: list[str]) -> list[str]:
    """Checkpoint tensors inference needs: drop Adam's slots and step counters."""
    return sorted(
        name for name in names if not name.endswith(("/Adam", "/Adam_1")) and name not in ("beta1_power", "beta2_power")
    )


def _default_musicnn_dir() -> Path:
    try:
        import musicnn  # installed --no-deps: only its checkpoint files are read
    except ImportError as error:
        raise FileNotFoundError(
            "the musicnn package is not installed; `pip install --no-deps musicnn==0.1.0` "
            "or pass musicnn_dir"
        ) from error
    return Path(musicnn.__file__).parent


def write_npz_deterministic(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """Write an .npz whose bytes depend only on the tensors (fixed zip timestamps), so
    the recorded sha256 is reproducible by re-running the conversion."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(tensors):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(tensors[name]), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue())


def convert_checkpoint(model_name: str, musicnn_dir: str | Path | None = None, output_dir: str | Path = WEIGHTS_DIR) -> Path:
    """Convert one of musicnn's TF1 checkpoints to ``<output_dir>/<model_name>.npz``.

    Args:
        model_name: one of :data:`MUSICNN_CHECKPOINTS` (e.g. ``"musicnn-msd"``).
        musicnn_dir: the installed ``musicnn`` package folder; found by import when None.
        output_dir: where the .npz goes (the package's ``weights/`` by default).

    Returns:
        The written path. Tensors keep their TF names and values; only the inference
        ones are kept (no optimiser state).
    """
    if model_name not in MUSICNN_CHECKPOINTS:
        raise ValueError(f"no musicnn checkpoint called {model_name!r}; known: {sorted(MUSICNN_CHECKPOINTS)}")
    folder, _ = MUSICNN_CHECKPOINTS[model_name]
    prefix = str(Path(musicnn_dir) if musicnn_dir is not None else _default_musicnn_dir()) + f"/{folder}/"
    names = inference_tensor_names(list(read_index(prefix + ".index")))
    tensors = read_checkpoint(prefix, names)
    output_path = Path(output_dir) / f"{model_name}.npz"
    output_path.parent.mkdir(parents=True, exist_ok=True)
    write_npz_deterministic(output_path, tensors)
    return output_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mre.embedder.models.convert", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="convert musicnn's checkpoints to .npz weights")
    convert.add_argument("models", nargs="*", default=sorted(MUSICNN_CHECKPOINTS), help="default: all")
    convert.add_argument("--musicnn-dir", type=Path, default=None)
    convert.add_argument("--output-dir", type=Path, default=WEIGHTS_DIR)
    arguments = parser.parse_args(argv)
    import hashlib

    for model_name in arguments.models:
        path = convert_checkpoint(model_name, arguments.musicnn_dir, arguments.output_dir)
        print(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path}")


if __name__ == "__main__":
    main()
