"""One GPU measurement of mre's default model: throughput against decode-only,
vector drift against the CPU, float16/bfloat16 drift, and a training epoch, in one run.

Sections, each guarded (an error is printed and the next section runs), figures written to
OUT/gpu_figures.json after every section (a timeout still leaves what was measured):

  env          torch / CUDA / cuDNN versions and TF32 flags, packages, cores
  throughput   mre.benchmarks.tagging_speed.measure: decode-only vs end-to-end x realtime on
               the demo tracks repeated --repeat times, --workers decode workers, --batch patches
  formats      the same on the tracks transcoded to each of --formats (FLAC, MP3, WAV at the
               tracks' own sample rate): decoding is the ceiling, and what it costs depends on
               the codec (Opus decodes ~3x slower than FLAC or MP3 per core)
  model_alone  the model alone on the device on random mel patches (patches/s, x realtime)
  vectors      per-track vectors (embed_files, as `mre index` makes them) vs the CPU reference
               vectors computed beforehand on a CPU (--make-reference); also with TF32 off
  dtypes       float16 / bfloat16 autocast: throughput (measure) and track-vector drift
  train        `mre train --teacher musicnn --library TRACKS --audio-branch paper --epochs N`
               through run_training (what cli/train.py calls), per-epoch seconds
  cpu_here     (if time is left) the CPU vectors recomputed on this machine's CPU

    python -m mre.benchmarks.gpu_check --make-reference      # on a CPU machine: cpu_reference.npz
    python -m mre.benchmarks.gpu_check --device cuda --out gpu-out   # on the GPU machine, same tracks
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from mre.embedder.models.factory import DEFAULT_MODEL as MODEL  # a name only: no torch
STARTED = time.monotonic()
FIGURES: dict = {}


def elapsed() -> float:
    return time.monotonic() - STARTED


def say(*parts) -> None:
    print(f"[{elapsed():6.1f}s]", *parts, flush=True)


def save(out: Path | None) -> None:
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_figures.json").write_text(json.dumps(FIGURES, indent=2, default=str))


def section(name: str, out: Path | None, deadline: float | None = None, needs: float = 0.0):
    """Decorator-free guard: run fn() and record its figures or its error under FIGURES[name]."""
    def run(fn):
        if deadline is not None and elapsed() + needs > deadline:
            say(f"== {name}: SKIPPED (needs ~{needs:.0f} s, {deadline - elapsed():.0f} s left of the budget)")
            FIGURES[name] = {"skipped": f"time budget: ~{needs:.0f} s needed, {deadline - elapsed():.0f} s left"}
            save(out)
            return None
        say(f"== {name}")
        begun = time.monotonic()
        try:
            result = fn()
            FIGURES[name] = result if result is not None else {}
        except BaseException as error:  # noqa: BLE001 - report and go on, whatever it was
            if isinstance(error, KeyboardInterrupt):
                raise
            text = "".join(traceback.format_exception(error))
            print(text[-3000:], flush=True)
            FIGURES[name] = {"error": f"{type(error).__name__}: {error}"[:500]}
            result = None
        FIGURES.setdefault(name, {})
        if isinstance(FIGURES[name], dict):
            FIGURES[name]["section_seconds"] = round(time.monotonic() - begun, 1)
        say(f"== {name} done in {time.monotonic() - begun:.1f} s")
        save(out)
        return result
    return run


def track_paths(folder: Path) -> list[str]:
    from mre.embedder.audio.decode import audio_files_under

    return [str(p) for p in audio_files_under(folder)]


def transcode(paths: list[str], folder: Path, fmt: str, workers: int) -> list[str]:
    """``paths`` rewritten as ``fmt`` files under ``folder`` (same samples and rate; FLAC and WAV
    16-bit, MP3 at libsndfile's default bit rate), decoded and written in ``workers`` processes."""
    from concurrent.futures import ProcessPoolExecutor

    folder.mkdir(parents=True, exist_ok=True)
    targets = [str(folder / f"{index:04d}.{fmt}") for index in range(len(paths))]
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(_transcode_one, paths, targets, [fmt] * len(paths)))
    return targets


def _transcode_one(source: str, target: str, fmt: str) -> None:
    import soundfile

    samples, rate = soundfile.read(source, dtype="float32")
    kinds = {"flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III")}
    container, subtype = kinds[fmt]
    soundfile.write(target, samples, rate, format=container, subtype=subtype)


def track_vectors(paths: list[str], device: str, dtype: str = "float32", batch: int = 256, workers: int = 0,
                  model_threads: int | None = None) -> tuple[np.ndarray, np.ndarray, list[int], float]:
    """(mean patch probabilities [n, 100], track vectors [n, 100], patches per track, seconds) as
    `mre index` computes them (embed_files + model.track_vector)."""
    from mre.embedder.models.factory import load_model
    from mre.embedder.runner import choose_device, embed_files

    torch_device = choose_device(device)
    model = load_model(MODEL, device=torch_device)
    model.to(torch_device)
    begun = time.perf_counter()
    # the product's path: `mre index --precision` passes the same option to the runner
    tracks = list(embed_files(paths, model, device=torch_device, batch_size=batch, workers=workers,
                              model_threads=model_threads, precision=dtype))
    seconds = time.perf_counter() - begun
    bad = [t for t in tracks if t.error or t.patch_mean is None]
    if bad:
        raise RuntimeError(f"{len(bad)} track(s) failed: {bad[0].path}: {bad[0].error}")
    means = np.stack([t.patch_mean for t in tracks]).astype(np.float64)
    vectors = np.stack([model.track_vector(t.patch_mean) for t in tracks])
    return means, vectors, [t.n_patches for t in tracks], seconds


def compare(name: str, means: np.ndarray, vectors: np.ndarray, ref_means: np.ndarray, ref_vectors: np.ndarray,
            rel_paths: list[str]) -> dict:
    """Largest per-track differences of two sets of track vectors (same track order)."""
    dv = np.abs(vectors.astype(np.float64) - ref_vectors.astype(np.float64))
    dp = np.abs(means - ref_means)
    per_track = dv.max(axis=1)
    worst = int(per_track.argmax())
    a, b = vectors.astype(np.float64), ref_vectors.astype(np.float64)
    cosine = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-300)
    # does the ranking of tracks for each label change? (what a query sees)
    rank_changes = sum(int(not np.array_equal(np.argsort(-a[:, j], kind="stable"), np.argsort(-b[:, j], kind="stable")))
                       for j in range(a.shape[1]))
    result = {"max_abs_diff_track_vector_logit": float(dv.max()),
              "median_per_track_max_abs_diff_logit": float(np.median(per_track)),
              "worst_track": rel_paths[worst],
              "max_abs_diff_mean_probability": float(dp.max()),
              "max_rel_diff_mean_probability": float((dp / np.maximum(ref_means, 1e-6)).max()),
              "min_cosine": float(cosine.min()),
              "labels_whose_track_ranking_changed": rank_changes, "labels": int(a.shape[1])}
    say(f"{name}: max |Δ track vector (label log-odds)| = {result['max_abs_diff_track_vector_logit']:.3e} "
        f"(worst track {result['worst_track']}; median per-track max {result['median_per_track_max_abs_diff_logit']:.2e}); "
        f"max |Δ mean probability| = {result['max_abs_diff_mean_probability']:.3e} "
        f"(relative {result['max_rel_diff_mean_probability']:.2e}); min cosine {result['min_cosine']:.8f}; "
        f"labels whose track ranking changed: {rank_changes}/{a.shape[1]}")
    return result


def load_reference(path: Path, folder: Path) -> tuple[list[str], np.ndarray, np.ndarray, dict]:
    with np.load(path, allow_pickle=False) as archive:
        rel = [str(p) for p in archive["paths"]]
        info = json.loads(str(archive["info"]))
        return rel, archive["means"], archive["vectors"], info


def make_reference(args) -> None:
    import torch

    folder = args.tracks
    paths = track_paths(folder)
    means, vectors, patches, seconds = track_vectors(paths, "cpu", "float32", batch=64, workers=args.workers)
    rel = np.array([str(Path(p).relative_to(folder)) for p in paths])
    info = {"torch": torch.__version__, "device": "cpu", "dtype": "float32", "tracks": len(paths),
            "patches": int(sum(patches)), "seconds": round(seconds, 1), "host_cores": os.cpu_count()}
    np.savez(args.reference, paths=rel, means=means, vectors=vectors, info=json.dumps(info))
    print(f"wrote {args.reference}: {info}")


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
    parser.add_argument("--tracks", type=Path, default=None, help="audio folder (default: the demo library)")
    parser.add_argument("--reference", type=Path, default=Path("cpu_reference.npz"))
    parser.add_argument("--word-vectors", default=None, help="for the training section (default: bundled GloVe)")
    parser.add_argument("--repeat", type=int, default=8, help="the track list repeated this many times for throughput")
    parser.add_argument("--batch", type=int, default=64, help="patches per model call (the runner's default)")
    parser.add_argument("--also-batch", type=int, default=256, help="a second, shorter throughput run (0: none)")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--formats", default="flac,mp3,wav",
                        help="throughput also on the tracks transcoded to these (comma-separated; '' for none)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dtypes", default="float16,bfloat16")
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--train-repeat", type=int, default=8, help="second training run on the library x N (0: none)")
    parser.add_argument("--budget", type=float, default=250.0, help="seconds: optional sections are skipped past it")
    parser.add_argument("--make-reference", action="store_true", help="write the CPU reference vectors and stop")
    args = parser.parse_args()
    if args.tracks is None:
        from mre.benchmarks.tagging_speed import _demo_files

        demo = _demo_files()
        if not demo:
            parser.error("no --tracks given and the demo library (immich-memories-music) is not installed")
        args.tracks = Path(os.path.commonpath(demo))
    if args.make_reference:
        make_reference(args)
        return
    os.environ.setdefault("MRE_CACHE_DIR", tempfile.mkdtemp(prefix="mre-cache-"))
    out, budget, device = args.out, args.budget, args.device
    on_cuda = device.startswith("cuda")
    paths = track_paths(args.tracks)
    rel_paths = [str(Path(p).relative_to(args.tracks)) for p in paths]
    FIGURES["settings"] = {k: str(v) for k, v in vars(args).items()}
    FIGURES["settings"]["tracks_found"] = len(paths)
    say(f"{len(paths)} tracks under {args.tracks}; device {device}; budget {budget:.0f} s")

    # ---------------------------------------------------------------- env
    def env():
        import importlib

        info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
                "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "cpu_count": os.cpu_count(),
                "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                "float32_matmul_precision": torch.get_float32_matmul_precision()}
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
        from importlib import metadata

        for name in ("numpy", "scipy", "soundfile", "soxr", "gensim", "smart_open", "platformdirs", "cffi", "pyarrow",
                     "click", "tqdm", "matplotlib"):
            try:
                module = importlib.import_module(name)
                info[name] = f"{metadata.version(name)} ({Path(module.__file__).parent})"
            except Exception as error:  # noqa: BLE001
                info[name] = f"MISSING: {type(error).__name__}: {error}"
        import soundfile

        info["libsndfile"] = soundfile.__libsndfile_version__
        for key, value in info.items():
            say(f"  {key}: {value}")
        return info

    section("env", out)(env)
    if on_cuda and not torch.cuda.is_available():
        say("CUDA was asked for but torch sees no GPU: stopping")
        save(out)
        sys.exit(2)

    from mre.benchmarks.tagging_speed import measure

    def throughput(batch: int, dtype: str = "float32", rounds: int = args.rounds, repeat: int = args.repeat,
                   files: list[str] = paths, label: str = ""):
        figures = measure(files * repeat, MODEL, batch, args.workers, device, dtype, rounds=rounds)
        figures["track_list_repeated"] = repeat
        say(f"  {figures['files']} {label}files ({len(paths)} tracks x {repeat}), {figures['audio_seconds']:.0f} s of audio, "
            f"batch {figures['batch_size']}, {figures['workers']} decode workers, {dtype}, best of {rounds}")
        say(f"  decode only : {figures['decode_only_x_realtime']:8.1f} x realtime")
        say(f"  end to end  : {figures['end_to_end_x_realtime']:8.1f} x realtime  "
            f"({figures['patches_per_second']:.0f} patches/s)")
        say(f"  ratio end-to-end / decode-only: {figures['ratio_end_to_end_vs_decode']:.3f}")
        if "max_patch_output_change_vs_float32" in figures:
            say(f"  {dtype}: largest per-patch output change vs float32 (8 patches): "
                f"{figures['max_patch_output_change_vs_float32']:.2e}")
        if "ceiling_x_realtime" in figures:
            say(f"  (cpu) ceiling {figures['ceiling_x_realtime']} x realtime; model alone 1 thread "
                f"{figures['model_alone_patches_per_second_1_thread']} patches/s")
        return figures

    section(f"throughput_float32_batch{args.batch}", out)(lambda: throughput(args.batch))

    # ---------------------------------------------------------------- other formats
    scratch = Path(tempfile.mkdtemp(prefix="mre-formats-"))
    for fmt in [f.strip().lower() for f in args.formats.split(",") if f.strip()]:
        def in_format(fmt=fmt):
            begun = time.perf_counter()
            files = transcode(paths, scratch / fmt, fmt, args.workers)
            megabytes = sum(os.path.getsize(f) for f in files) / 1e6
            say(f"  {len(files)} tracks transcoded to {fmt} ({megabytes:.0f} MB) in {time.perf_counter() - begun:.1f} s")
            figures = throughput(args.batch, files=files, label=f"{fmt} ")
            figures["megabytes"] = round(megabytes, 1)
            return figures

        section(f"throughput_{fmt}_float32_batch{args.batch}", out, deadline=budget, needs=30)(in_format)

    # ---------------------------------------------------------------- model alone
    def model_alone():
        from mre.embedder.models.factory import load_model
        from mre.embedder.runner import choose_device

        torch_device = choose_device(device)
        model = load_model(MODEL, device=torch_device)
        model.to(torch_device)
        frames, patch_seconds = model.frontend.patch_frames, model.frontend.patch_seconds
        result = {}
        for batch in (64, 256, 1024):
            patches = torch.randn(batch, frames, model.frontend.n_mels, device=torch_device)
            with torch.inference_mode():
                model.patch_outputs(patches)
                if on_cuda:
                    torch.cuda.synchronize()
                repeats, begun = 0, time.perf_counter()
                while repeats < 3 or (time.perf_counter() - begun < 1.0 and repeats < 200):
                    model.patch_outputs(patches)
                    repeats += 1
                if on_cuda:
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - begun
            rate = batch * repeats / seconds
            result[f"batch{batch}_patches_per_second"] = round(rate, 1)
            result[f"batch{batch}_x_realtime"] = round(rate * patch_seconds, 1)
            say(f"  model alone, batch {batch}: {rate:9.0f} patches/s = {rate * patch_seconds:9.0f} x realtime")
            if not on_cuda and batch >= 64:
                break
        if on_cuda:
            result["max_memory_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        return result

    section("model_alone", out)(model_alone)

    # ---------------------------------------------------------------- vectors vs CPU
    state = {}

    def vectors():
        rel, ref_means, ref_vectors, info = load_reference(args.reference, args.tracks)
        if rel != rel_paths:
            raise RuntimeError(f"reference tracks differ from {args.tracks}: {rel[:3]} vs {rel_paths[:3]}")
        say(f"  CPU reference: {info}")
        means, vecs, patches, seconds = track_vectors(paths, device, "float32", args.batch, args.workers)
        state["float32"] = (means, vecs)
        result = {"reference": info, "patches": int(sum(patches)), "seconds": round(seconds, 2),
                  "tf32_default": compare(f"  {device} float32 (TF32 flags as default) vs CPU", means, vecs,
                                          ref_means, ref_vectors, rel_paths)}
        state["reference"] = (ref_means, ref_vectors)
        FIGURES["vectors_vs_cpu"] = result  # kept if what follows fails
        if on_cuda:
            saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
            try:
                torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
                m2, v2, _, _ = track_vectors(paths, device, "float32", args.batch, args.workers)
                result["tf32_off"] = compare(f"  {device} float32 (TF32 off for cuDNN and matmul) vs CPU", m2, v2,
                                             ref_means, ref_vectors, rel_paths)
                result["tf32_default_vs_tf32_off"] = compare(f"  {device} TF32 default vs TF32 off", means, vecs,
                                                             m2, v2, rel_paths)
            except Exception as error:  # noqa: BLE001
                traceback.print_exc()
                result["tf32_off"] = {"error": f"{type(error).__name__}: {error}"[:500]}
            finally:
                torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
        return result

    section("vectors_vs_cpu", out)(vectors)

    # ---------------------------------------------------------------- fp16 / bf16
    for dtype in [d for d in args.dtypes.split(",") if d]:
        def reduced(dtype=dtype):
            result = {"throughput": throughput(args.batch, dtype, rounds=1)}
            means, vecs, _, _ = track_vectors(paths, device, dtype, args.batch, args.workers)
            if "float32" in state:
                result["vs_float32_same_device"] = compare(f"  {dtype} vs float32 on {device}", means, vecs,
                                                           *state["float32"], rel_paths)
            if "reference" in state:
                result["vs_cpu_float32"] = compare(f"  {dtype} vs CPU float32", means, vecs, *state["reference"],
                                                   rel_paths)
            return result

        section(f"autocast_{dtype}", out, deadline=budget, needs=25)(reduced)

    if args.also_batch:
        section(f"throughput_float32_batch{args.also_batch}", out, deadline=budget, needs=20)(
            lambda: throughput(args.also_batch, rounds=1))

    # ---------------------------------------------------------------- training
    def training(library: Path, label: str):
        from mre.training.run import DataOptions, format_report, run_training
        from mre.embedder.models.paper import ModelConfig
        from mre.embedder.runner import choose_device
        from mre.training.loop import TrainSettings

        lines = []

        def log(line: str) -> None:
            lines.append((round(elapsed(), 1), line))
            say("  " + line)

        scratch = Path(tempfile.mkdtemp(prefix=f"mre-train-{label}-"))
        begun = time.perf_counter()
        report, written = run_training(
            DataOptions(library=str(library), teacher="musicnn"), ModelConfig(audio_branch="paper"),
            TrainSettings(epochs=args.train_epochs), scratch / "model.mre", word_vectors=args.word_vectors,
            device=str(choose_device(device)), workers=args.workers, show_progress=False, log=log)
        total = time.perf_counter() - begun
        say("  " + format_report(report).replace("\n", "\n  "))
        epochs = [h["seconds"] for h in report.history]
        result = {"library": str(library), "tracks": report.tracks, "patches_note": "16 patches of 3 s per track max",
                  "epochs": len(report.history), "epoch_seconds": epochs, "history": report.history,
                  "total_seconds_incl_decode_teacher_eval": round(total, 2),
                  "seen_tags": len(report.seen_tags), "unseen_tags": len(report.unseen_tags),
                  "seen_auc": report.seen_tag_retrieval_auc, "unseen_auc": report.unseen_tag_retrieval_auc,
                  "log": lines}
        say(f"  epoch seconds (train + valid pass): {epochs}; whole run {total:.1f} s")
        return result

    section("train_library", out, deadline=budget, needs=30)(lambda: training(args.tracks, "x1"))

    if args.train_repeat > 1:
        def bigger():
            library = Path(tempfile.mkdtemp(prefix="mre-trainlib-"))
            for copy in range(args.train_repeat):
                for path in paths:
                    target = library / f"copy{copy}" / Path(path).relative_to(args.tracks)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)  # copies: the library scan passes over symlinks
            return training(library, f"x{args.train_repeat}")

        section(f"train_library_x{args.train_repeat}", out, deadline=budget, needs=45)(bigger)

    # ---------------------------------------------------------------- this machine's CPU
    if on_cuda:
        def cpu_here():
            means, vecs, _, seconds = track_vectors(paths, "cpu", "float32", 64, max(1, args.workers // 4))
            result = {"seconds": round(seconds, 1)}
            if "reference" in state:
                result["device_cpu_vs_reference_cpu"] = compare("  this CPU vs reference CPU", means, vecs,
                                                                *state["reference"], rel_paths)
            if "float32" in state:
                result["cuda_vs_this_cpu"] = compare("  cuda float32 vs this CPU", *state["float32"], means, vecs,
                                                     rel_paths)
            return result

        section("cpu_on_device", out, deadline=budget, needs=40)(cpu_here)

    FIGURES["total_seconds"] = round(elapsed(), 1)
    save(out)
    say("SUMMARY " + json.dumps(summary(), default=str))


def summary() -> dict:
    """The headline figures, one line."""
    short = {}
    for name, value in FIGURES.items():
        if not isinstance(value, dict):
            continue
        if "error" in value or "skipped" in value:
            short[name] = value.get("error") or value.get("skipped")
        elif name.startswith("throughput"):
            short[name] = {k: value.get(k) for k in ("decode_only_x_realtime", "end_to_end_x_realtime",
                                                     "ratio_end_to_end_vs_decode", "patches_per_second")}
        elif name == "vectors_vs_cpu":
            short[name] = {k: value[k].get("max_abs_diff_track_vector_logit", value[k].get("error"))
                           for k in ("tf32_default", "tf32_off") if k in value}
        elif name == "model_alone":
            short[name] = {k: v for k, v in value.items() if k.endswith("x_realtime")}
        elif name == "cpu_on_device":
            short[name] = {k: value[k].get("max_abs_diff_track_vector_logit") for k in value if isinstance(value[k], dict)}
        elif name.startswith("autocast"):
            t = value.get("throughput", {})
            short[name] = {"end_to_end_x_realtime": t.get("end_to_end_x_realtime"),
                           "ratio": t.get("ratio_end_to_end_vs_decode"),
                           "max_dlogit_vs_fp32": value.get("vs_float32_same_device", {}).get(
                               "max_abs_diff_track_vector_logit")}
        elif name.startswith("train"):
            short[name] = {"epoch_seconds": value.get("epoch_seconds"), "tracks": value.get("tracks")}
    return short


if __name__ == "__main__":
    main()
