"""The runner's one decode → mel → patches path, which indexing and training both read."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from mre.embedder.audio.decode import load_audio
from mre.embedder.audio.frontend import MelFrontend, make_patches
from mre.embedder.models.paper import PAPER_FRONTEND
from mre.embedder.models.registry import get_model_spec
from mre.embedder.runner import patch_stream


def test_every_front_end_cuts_the_same_decode_and_a_bad_file_is_reported(tmp_path):
    rng = np.random.default_rng(0)
    good = tmp_path / "noise.wav"
    sf.write(good, 0.1 * rng.standard_normal(16000 * 7).astype(np.float32), 16000)
    bad = tmp_path / "not-audio.wav"
    bad.write_text("not audio")
    musicnn = get_model_spec("musicnn-msd").frontend
    paper = replace(PAPER_FRONTEND, n_mels=64, patch_frames=62)
    threads_before = torch.get_num_threads()
    inline = list(patch_stream([str(good), str(bad)], [musicnn, paper], workers=0))
    in_workers = list(patch_stream([str(good), str(bad), str(good)], [musicnn, paper], workers=2))

    assert [t.decoded.path for t in inline] == [str(good), str(bad)]
    assert [t.decoded.path for t in in_workers] == [str(good), str(bad), str(good)]
    for tracks in (inline, in_workers):
        assert tracks[1].patches is None and tracks[1].decoded.error
        assert tracks[0].decoded.samples is None and tracks[0].decoded.patches is None  # the patches came instead
    samples, _ = load_audio(str(good), 16000)

    def one_thread_mel(config):  # the front-end as the runner runs it: on one torch thread
        torch.set_num_threads(1)  # (per thread: OpenMP's count is this thread's own)
        with torch.inference_mode():
            return make_patches(MelFrontend(config)(torch.from_numpy(samples)[None])[0], config.patch_frames).numpy()

    for index, config in enumerate([musicnn, paper]):
        with ThreadPoolExecutor(1) as thread:
            expected = thread.submit(one_thread_mel, config).result()
        for tracks in (inline, in_workers):
            patches = tracks[0].patches[index]
            assert patches.shape == expected.shape == (len(expected), config.patch_frames, config.n_mels)
            # the same computation on the same samples, on one torch thread, in a decode worker or
            # inline: the same bits (training's cached features depend on it)
            np.testing.assert_array_equal(patches, expected)
        np.testing.assert_array_equal(in_workers[2].patches[index], expected)
    assert torch.get_num_threads() == threads_before  # decoding inline left this thread's count alone


def test_front_ends_of_one_decode_share_a_sample_rate():
    with pytest.raises(ValueError, match="one sample rate"):
        next(patch_stream(["x.wav"], [PAPER_FRONTEND, replace(PAPER_FRONTEND, sample_rate=22050)], workers=0))


def test_a_forked_child_makes_its_own_mel_thread():
    # inline decoding runs the mel on a one-thread helper; a child forked after it was made has
    # no such thread, and must not wait on it forever
    import os
    import signal

    from mre.embedder.runner import mel_patches

    samples = (0.1 * np.random.default_rng(1).standard_normal(16000 * 4)).astype(np.float32)
    config = get_model_spec("musicnn-msd").frontend
    here = mel_patches(samples, [config])[0]
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's own exit code says what it found
        signal.alarm(60)  # waiting on a thread it does not have would end it here, not hang the suite
        os._exit(0 if np.array_equal(mel_patches(samples, [config])[0], here) else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
