"""The runner's one decode → mel → patches path, which indexing and training both read."""
from __future__ import annotations

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
    tracks = list(patch_stream([str(good), str(bad)], [musicnn, paper], torch.device("cpu"), workers=0))

    assert [t.decoded.path for t in tracks] == [str(good), str(bad)]
    assert tracks[1].patches is None and tracks[1].decoded.error
    assert tracks[0].decoded.samples is None  # freed once cut
    samples, _ = load_audio(str(good), 16000)
    for config, patches in zip([musicnn, paper], tracks[0].patches):
        with torch.inference_mode():
            expected = make_patches(MelFrontend(config)(torch.from_numpy(samples)[None])[0], config.patch_frames)
        assert patches.shape == expected.shape == (len(expected), config.patch_frames, config.n_mels)
        assert torch.equal(patches, expected)  # the same computation on the same samples


def test_front_ends_of_one_decode_share_a_sample_rate():
    with pytest.raises(ValueError, match="one sample rate"):
        next(patch_stream(["x.wav"], [PAPER_FRONTEND, replace(PAPER_FRONTEND, sample_rate=22050)],
                          torch.device("cpu"), workers=0))
