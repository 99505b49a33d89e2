"""Tagging / embedding throughput against decoding alone, on the same files, in one run.

    python -m mre.benchmarks.tagging_speed [FOLDER] [--model musicnn-mtt] [--batch-size 64]
        [--workers N] [--model-threads N] [--threads N] [--device cpu|cuda]
        [--dtype float32|float16|bfloat16] [--rounds N] [--json OUT]

FOLDER defaults to the demo library (immich-memories-music) when installed, else 30 generated
30-second clips. Figures are seconds of audio per second of wall time ("× realtime"):

- decode only: the same worker pool decoding + resampling to 16 kHz, nothing else — the limit;
- end to end: decode + mel + model, as `mre tags` / `mre index` run it.

The ratio end-to-end / decode-only says what tagging costs on top of reading the files
(1.0: tagging is free; 0.5: tagging costs as much as decoding).

On CPU it also times the model alone on one thread and counts its multiply-adds as direct
convolutions would do them, beside a large convolution's rate on one thread (what the CPU
can sustain): how close the model runs
to the machine, and the end-to-end ceiling if every core did nothing but decode and tag,
cores / (decode core-seconds + model core-seconds per second of audio). With --dtype other
than float32, the largest change of any per-patch output against float32 is printed too.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


from mre.embedder.runner import (
    cpu_batch_size,
    decode_stream,
    default_model_threads,
    default_workers,
    embed_files,
    seconds_of_audio,
)


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
        import torch

        with torch.autocast(device_type=self.device.type, dtype=self.dtype):
            return self.model.patch_outputs(patches)


def _musicnn_taggers(model) -> list:
    from mre.embedder.models.musicnn import MusicnnTagger

    taggers = getattr(model, "taggers", None) or [getattr(model, "tagger", None)]
    return [tagger for tagger in taggers if isinstance(tagger, MusicnnTagger)]


def musicnn_flops_per_patch(tagger, frames: int) -> float:
    """Floating-point operations (2 per multiply-add) of one patch through a MusicnnTagger
    computed directly: the five front-end convolutions at every band offset, the mid-end, the
    dense layers. On CPU the timbral convolutions go through the DFT over bands with ~2-3x
    fewer operations, so a rate from this count is a direct-convolution equivalent and can
    pass the reference convolution's."""
    flops = 0.0
    for name in tagger._frontend_blocks:
        channels, _, kernel_frames, kernel_bands = getattr(tagger, f"{name}_kernel").shape
        flops += 2 * channels * kernel_frames * kernel_bands * frames * (tagger.n_mels - kernel_bands + 1)
    for name in ("midend_1", "midend_2", "midend_3"):
        flops += 2 * getattr(tagger, f"{name}_kernel").numel() * frames
    return flops + 2 * (tagger.dense_kernel.numel() + tagger.output_kernel.numel())


def _best_seconds(function, repeats: int = 3) -> float:
    function()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def measure_model_alone(model, run_model, patches: torch.Tensor) -> dict:
    """``run_model`` (the model, or it under autocast) on one CPU thread, best of 3, its
    GFLOP/s by ``model``'s count, and a reference convolution's GFLOP/s."""
    import torch

    saved_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            model_seconds = _best_seconds(lambda: run_model.patch_outputs(patches))
            # a 256 -> 256 channel 3x3 convolution: oneDNN's best case, our peak reference
            features, kernel = torch.randn(1, 256, 64, 64), torch.randn(256, 256, 3, 3)
            reference_seconds = _best_seconds(lambda: torch.nn.functional.conv2d(features, kernel, padding=1))
    finally:
        torch.set_num_threads(saved_threads)
    flops = sum(musicnn_flops_per_patch(t, patches.shape[1]) for t in _musicnn_taggers(model)) * len(patches)
    figures = {"model_alone_patches_per_second_1_thread": round(len(patches) / model_seconds, 1),
               "reference_conv_gflops_1_thread": round(2 * 256 * 256 * 9 * 64 * 64 / reference_seconds / 1e9, 1)}
    if flops:
        figures["model_gflops_1_thread"] = round(flops / model_seconds / 1e9, 1)
    return figures


def max_deviation_from_float32(model, run_model, patches: torch.Tensor) -> float:
    import torch

    with torch.inference_mode():
        return float((run_model.patch_outputs(patches).float() - model.patch_outputs(patches).float()).abs().max())


def measure(paths: list[str], model_name: str, batch_size: int, workers: int, device: str, dtype: str,
            model_threads: int | None = None, rounds: int = 1) -> dict:
    import torch

    from mre.embedder.models.factory import load_model
    from mre.embedder.runner import choose_device

    torch_device = choose_device(device)
    model = load_model(model_name, device=torch_device)
    model.to(torch_device)
    run_model = model if dtype == "float32" else _CastModel(model, getattr(torch, dtype), torch_device)

    # warm-up: load weights, first-call allocations, start the decode workers' fork server
    # (a once-per-program cost, not part of either figure)
    list(embed_files(paths[:1], run_model, device=torch_device, batch_size=batch_size, workers=0,
                     model_threads=model_threads))
    list(decode_stream(paths[:2], model.frontend.sample_rate, workers, max_seconds=1.0))

    # Rounds alternate decode-only and end-to-end; each figure is its best round: on a shared
    # machine other processes only ever slow a run down.
    decode_wall = embed_wall = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        decoded_seconds = 0.0
        for track in decode_stream(paths, model.frontend.sample_rate, workers):
            decoded_seconds += track.analysed_seconds
        decode_wall = min(decode_wall, time.perf_counter() - started)

        started = time.perf_counter()
        tracks = list(embed_files(paths, run_model, device=torch_device, batch_size=batch_size, workers=workers,
                                  model_threads=model_threads))
        if torch_device.type == "cuda":
            torch.cuda.synchronize()
        embed_wall = min(embed_wall, time.perf_counter() - started)
    embedded_seconds = seconds_of_audio(tracks)
    patches = sum(t.n_patches for t in tracks)

    decode_speed = decoded_seconds / decode_wall
    embed_speed = embedded_seconds / embed_wall
    on_cpu_threads = torch_device.type == "cpu" and (model_threads is None or model_threads > 0)
    threads = (default_model_threads() if model_threads is None else model_threads) if on_cpu_threads else 0
    figures = {"files": len(paths), "audio_seconds": round(decoded_seconds, 1), "model": model_name,
               "device": str(torch_device), "dtype": dtype, "rounds": rounds,
               "batch_size": cpu_batch_size(batch_size, threads) if on_cpu_threads else batch_size, "workers": workers,
               "model_threads": threads,
               "torch_threads": 1 if on_cpu_threads else torch.get_num_threads(), "patches": patches,
               "decode_only_x_realtime": round(decode_speed, 1), "end_to_end_x_realtime": round(embed_speed, 1),
               "patches_per_second": round(patches / embed_wall, 1),
               "ratio_end_to_end_vs_decode": round(embed_speed / decode_speed, 3)}
    sample = _sample_patches(paths[0], model, torch_device)
    if dtype != "float32":
        figures["max_patch_output_change_vs_float32"] = max_deviation_from_float32(model, run_model, sample)
    if torch_device.type == "cpu":
        figures.update(measure_model_alone(model, run_model, sample))
        patch_seconds = model.frontend.patch_seconds
        model_core_seconds = 1 / (figures["model_alone_patches_per_second_1_thread"] * patch_seconds)
        cores = os.cpu_count() or 1
        figures["ceiling_x_realtime"] = round(cores / (workers / decode_speed + model_core_seconds), 1)
    return figures


def _sample_patches(path: str, model, device: torch.device, count: int = 8) -> torch.Tensor:
    import torch

    from mre.embedder.audio.decode import load_audio
    from mre.embedder.runner import mel_patches

    config = model.frontend
    samples, _ = load_audio(path, config.sample_rate, max_seconds=count * config.patch_seconds)
    return torch.from_numpy(mel_patches(samples, [config])[0][:count]).to(device)


def main(argv: list[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--model", default="musicnn-mtt")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--model-threads", type=int, default=None,
                        help="CPU: threads running batch slices, one torch thread each (default: one per core; "
                             "0: torch's own threading, see --threads)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads with --model-threads 0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat both measurements, keep each one's best (for a machine others share)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    workers = default_workers() if args.workers is None else args.workers
    with tempfile.TemporaryDirectory() as scratch:
        if args.folder:
            from mre.embedder.audio.decode import audio_files_under

            paths = [str(p) for p in audio_files_under(args.folder)]
        else:
            paths = _demo_files() or _generated_files(Path(scratch))
        figures = measure(paths, args.model, args.batch_size, workers, args.device, args.dtype, args.model_threads,
                          args.rounds)
    print(f"{figures['files']} files, {figures['audio_seconds']:.0f} s of audio; model {figures['model']} on "
          f"{figures['device']} ({figures['dtype']}), batch {figures['batch_size']}, {figures['workers']} decode "
          f"workers, {figures['model_threads']} model threads x {figures['torch_threads']} torch threads, "
          f"cpu cores {os.cpu_count()}" + (f", best of {figures['rounds']} rounds" if figures["rounds"] > 1 else ""))
    print(f"{'':<14}{'× realtime':>12}{'vs decode':>11}")
    print(f"{'decode only':<14}{figures['decode_only_x_realtime']:>12.1f}{1.0:>11.2f}")
    print(f"{'end to end':<14}{figures['end_to_end_x_realtime']:>12.1f}{figures['ratio_end_to_end_vs_decode']:>11.2f}")
    if "ceiling_x_realtime" in figures:
        ceiling = figures["ceiling_x_realtime"]
        print(f"{'ceiling':<14}{ceiling:>12.1f}{ceiling / figures['decode_only_x_realtime']:>11.2f}"
              "  (all cores busy decoding and tagging, nothing else)")
    print(f"({figures['patches_per_second']:.0f} patches/s end to end)")
    if "model_alone_patches_per_second_1_thread" in figures:
        rate = f", {figures['model_gflops_1_thread']:.0f} GFLOP/s direct-convolution equivalent" if "model_gflops_1_thread" in figures else ""
        print(f"model alone on 1 thread: {figures['model_alone_patches_per_second_1_thread']:.1f} patches/s{rate}; "
              f"a 256-channel 3x3 convolution: {figures['reference_conv_gflops_1_thread']:.0f} GFLOP/s")
    if "max_patch_output_change_vs_float32" in figures:
        print(f"{figures['dtype']}: largest change of a per-patch output vs float32: "
              f"{figures['max_patch_output_change_vs_float32']:.1e}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
