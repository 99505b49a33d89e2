"""Tagging / embedding throughput against decoding alone, on the same files, in one run.

    python -m mre.benchmarks.tagging_speed [FOLDER] [--model musicnn-mtt] [--batch-size 64]
        [--workers N] [--threads N] [--device cpu|cuda] [--dtype float32|float16|bfloat16] [--json OUT]

FOLDER defaults to the demo library (immich-memories-music) when installed, else 30 generated
30-second clips. Figures are seconds of audio per second of wall time ("× realtime"):

- decode only: the same worker pool decoding + resampling to 16 kHz, nothing else — the limit;
- end to end: decode + mel + model, as `mre tags` / `mre index` run it.

The ratio end-to-end / decode-only says what tagging costs on top of reading the files
(1.0: tagging is free; 0.5: tagging costs as much as decoding).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mre.embedder.runner import decode_stream, default_workers, embed_files, seconds_of_audio


def _demo_files() -> list[str]:
    try:
        import immich_memories_music
    except ImportError:
        return []
    return sorted(str(p) for p in (Path(immich_memories_music.__file__).parent / "tracks").rglob("*.opus"))


def _generated_files(folder: Path, n: int = 30, seconds: float = 30.0) -> list[str]:
    from mre.benchmarks.synth import evaluation_set, render, write_wav

    clips = evaluation_set(max(1, n // 5), seed=1, seconds=seconds)[:n]
    return [str(write_wav(folder / f"clip{i:03d}.wav", render(spec, 44100), 44100)) for i, (spec, _) in enumerate(clips)]


class _CastModel:
    """Runs a model's patches under autocast (CUDA fp16/bf16 measurements)."""

    def __init__(self, model, dtype: torch.dtype, device: torch.device):
        self.model, self.dtype, self.device = model, dtype, device
        self.frontend, self.output_dim = model.frontend, model.output_dim

    def patch_outputs(self, patches):
        with torch.autocast(device_type=self.device.type, dtype=self.dtype):
            return self.model.patch_outputs(patches)


def measure(paths: list[str], model_name: str, batch_size: int, workers: int, device: str, dtype: str) -> dict:
    from mre.embedder.models import load_model
    from mre.embedder.runner import choose_device

    torch_device = choose_device(device)
    model = load_model(model_name, device=torch_device)
    model.to(torch_device)
    run_model = model if dtype == "float32" else _CastModel(model, getattr(torch, dtype), torch_device)

    # warm-up: load weights, first-call allocations (not part of either figure)
    list(embed_files(paths[:1], run_model, device=torch_device, batch_size=batch_size, workers=0))

    started = time.perf_counter()
    decoded_seconds = 0.0
    for track in decode_stream(paths, model.frontend.sample_rate, workers):
        decoded_seconds += track.analysed_seconds
    decode_wall = time.perf_counter() - started

    started = time.perf_counter()
    tracks = list(embed_files(paths, run_model, device=torch_device, batch_size=batch_size, workers=workers))
    if torch_device.type == "cuda":
        torch.cuda.synchronize()
    embed_wall = time.perf_counter() - started
    embedded_seconds = seconds_of_audio(tracks)
    patches = sum(t.n_patches for t in tracks)

    decode_speed = decoded_seconds / decode_wall
    embed_speed = embedded_seconds / embed_wall
    return {"files": len(paths), "audio_seconds": round(decoded_seconds, 1), "model": model_name,
            "device": str(torch_device), "dtype": dtype, "batch_size": batch_size, "workers": workers,
            "torch_threads": torch.get_num_threads(), "patches": patches,
            "decode_only_x_realtime": round(decode_speed, 1), "end_to_end_x_realtime": round(embed_speed, 1),
            "patches_per_second": round(patches / embed_wall, 1),
            "ratio_end_to_end_vs_decode": round(embed_speed / decode_speed, 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--model", default="musicnn-mtt")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    workers = default_workers() if args.workers is None else args.workers
    with tempfile.TemporaryDirectory() as scratch:
        if args.folder:
            from mre.embedder.audio import AUDIO_EXTENSIONS

            paths = sorted(str(p) for p in args.folder.rglob("*") if p.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS
                           or p.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            paths = _demo_files() or _generated_files(Path(scratch))
        figures = measure(paths, args.model, args.batch_size, workers, args.device, args.dtype)
    print(f"{figures['files']} files, {figures['audio_seconds']:.0f} s of audio; model {figures['model']} on "
          f"{figures['device']} ({figures['dtype']}), batch {figures['batch_size']}, {figures['workers']} decode "
          f"workers, {figures['torch_threads']} torch threads, cpu cores {os.cpu_count()}")
    print(f"{'':<14}{'× realtime':>12}{'vs decode':>11}")
    print(f"{'decode only':<14}{figures['decode_only_x_realtime']:>12.1f}{1.0:>11.2f}")
    print(f"{'end to end':<14}{figures['end_to_end_x_realtime']:>12.1f}{figures['ratio_end_to_end_vs_decode']:>11.2f}")
    print(f"({figures['patches_per_second']:.0f} patches/s)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
