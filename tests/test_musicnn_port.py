"""The musicnn taggers in PyTorch give the original's numbers, and their weights are the original's.

Reference numbers: tests/fixtures/musicnn_reference/reference.json, made with musicnn's own
TensorFlow code on the clips tests/musicnn_clips.py generates (how: README.md beside it).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mre.embedder.audio.frontend import MelFrontend, make_patches
from mre.embedder.models.convert import MUSICNN_CHECKPOINTS, convert_checkpoint
from mre.embedder.models.musicnn import PatchShapeError
from mre.embedder.models.registry import (
    MODELS,
    UnknownModelError,
    WeightsIntegrityError,
    get_model_spec,
    load_tagger,
    weights_path,
)
from mre.embedder.models.tf_checkpoint import CheckpointError, crc32c, read_checkpoint, read_index
from musicnn_clips import CLIP_SEEDS, generate_clip

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "musicnn_reference" / "reference.json").read_text())
# registry name -> the model name musicnn's extractor takes
ORIGINAL_NAME = {name: folder for name, (folder, _) in MUSICNN_CHECKPOINTS.items()}
TOLERANCE = 1e-4  # max abs difference per tag probability

try:
    import musicnn

    MUSICNN_DIR = Path(musicnn.__file__).parent
except ImportError:  # pragma: no cover - the Makefile installs it --no-deps
    MUSICNN_DIR = None
needs_musicnn = pytest.mark.skipif(MUSICNN_DIR is None, reason="musicnn (its checkpoints) not installed: pip install --no-deps musicnn==0.1.0")


@pytest.fixture(scope="module")
def clip_patches() -> dict[str, torch.Tensor]:
    """Each reference clip through OUR front-end, cut into patches as musicnn does."""
    frontend = MelFrontend(MODELS["musicnn-msd"].frontend)
    patches = {}
    for clip_name in CLIP_SEEDS:
        mel = frontend(torch.from_numpy(generate_clip(clip_name)).unsqueeze(0))[0]
        patches[clip_name] = make_patches(mel, frontend.config.patch_frames)
    return patches


@pytest.fixture(scope="module")
def taggers() -> dict:
    return {name: load_tagger(name) for name in MODELS}


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_tag_probabilities_match_the_original_musicnn(model_name, clip_patches, taggers):
    reference = REFERENCE["models"][ORIGINAL_NAME[model_name]]
    assert tuple(reference["labels"]) == MODELS[model_name].labels
    for clip_name, patches in clip_patches.items():
        expected = np.array(reference["clips"][clip_name]["patch_probabilities"])
        with torch.inference_mode():
            probabilities, penultimate = taggers[model_name](patches)
        assert probabilities.shape == expected.shape, clip_name
        assert np.abs(probabilities.numpy() - expected).max() <= TOLERANCE, clip_name
        track_tags = probabilities.numpy().mean(axis=0)  # a track's tags: mean over patches
        expected_mean = np.array(reference["clips"][clip_name]["mean_probabilities"])
        assert np.abs(track_tags - expected_mean).max() <= TOLERANCE, clip_name
        if "patch_penultimate" in reference["clips"][clip_name]:
            expected_features = np.array(reference["clips"][clip_name]["patch_penultimate"])
            # features reach ~10 in magnitude; 1e-4 relative to that
            assert np.abs(penultimate.numpy() - expected_features).max() <= 1e-3, clip_name


def test_logits_and_penultimate_are_exposed(clip_patches, taggers):
    tagger = taggers["musicnn-mtt"]
    patches = clip_patches["drums"]
    with torch.inference_mode():
        probabilities, penultimate = tagger(patches)
        logits, penultimate_again = tagger.forward_logits(patches)
    assert penultimate.shape == (len(patches), 200)
    assert torch.allclose(torch.sigmoid(logits), probabilities)
    assert torch.equal(penultimate, penultimate_again)


def test_a_patch_does_not_depend_on_its_batch(clip_patches, taggers):
    patches = torch.cat(list(clip_patches.values()))
    with torch.inference_mode():
        together = taggers["musicnn-msd"](patches)[0]
        one_by_one = torch.cat([taggers["musicnn-msd"](patch[None])[0] for patch in patches])
    assert torch.allclose(together, one_by_one, atol=1e-6)


@pytest.mark.parametrize("frames", [187, 63])
def test_timbral_convolutions_through_the_band_dft_equal_the_direct_ones(frames, clip_patches, monkeypatch):
    # On CPU the timbral blocks run through the DFT over bands; cuDNN runs them directly.
    # Both must give the same tags, for the 3 s patches and for other lengths.
    tagger = load_tagger("musicnn-mtt")
    patches = clip_patches["chords"][:, :frames]
    with torch.inference_mode():
        through_dft = tagger(patches)
        monkeypatch.setattr(tagger, "band_dft_devices", ())
        direct = tagger(patches)
    assert torch.allclose(through_dft[0], direct[0], rtol=0, atol=2e-6)
    assert torch.allclose(through_dft[1], direct[1], rtol=0, atol=2e-5)


def test_short_clip_is_repeat_padded_and_tagged():
    frontend = MelFrontend(MODELS["musicnn-mtt"].frontend)
    half_second = torch.from_numpy(generate_clip("chords")[:8000]).unsqueeze(0)
    patches = make_patches(frontend(half_second)[0], 187)
    with torch.inference_mode():
        probabilities, _ = load_tagger("musicnn-mtt")(patches)
    assert probabilities.shape == (1, 50) and torch.isfinite(probabilities).all()


def test_musicnn_takes_other_patch_lengths_vgg_does_not(taggers):
    # musicnn is fully convolutional over time (its README's input_length option); vgg flattens.
    mel = torch.rand(2, 63, 96) * 3
    with torch.inference_mode():
        assert taggers["musicnn-msd"](mel)[0].shape == (2, 50)
        with pytest.raises(PatchShapeError, match="exactly 187 frames"):
            taggers["musicnn-vgg-msd"](mel)


@pytest.mark.parametrize("shape", [(187, 96), (2, 187, 128), (2, 0, 96)])
def test_wrong_patch_shapes_are_refused(shape, taggers):
    with pytest.raises(PatchShapeError):
        taggers["musicnn-msd"](torch.zeros(shape))


def test_runs_under_autocast_close_to_float32(clip_patches, taggers):
    patches = clip_patches["chords"]
    with torch.inference_mode():
        full = taggers["musicnn-msd"](patches)[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = taggers["musicnn-msd"](patches)[0]
    assert mixed.dtype == torch.float32 and torch.isfinite(mixed).all()
    assert (mixed - full).abs().max() < 0.05  # bf16 keeps ~3 significant digits


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(clip_patches, taggers):
    patches = clip_patches["sweep"]
    with torch.inference_mode():
        cpu = taggers["musicnn-mtt"](patches)[0]
        cuda = load_tagger("musicnn-mtt", device="cuda")(patches.cuda())[0].cpu()
    assert (cpu - cuda).abs().max() <= TOLERANCE


# --- the registry ------------------------------------------------------------------------


@needs_musicnn
def test_labels_are_musicnn_configuration_lists():
    from musicnn import configuration  # plain lists, no TensorFlow import

    assert MODELS["musicnn-msd"].labels == tuple(configuration.MSD_LABELS)
    assert MODELS["musicnn-mtt"].labels == tuple(configuration.MTT_LABELS)


def test_unknown_model_names_the_known_ones():
    with pytest.raises(UnknownModelError, match="musicnn-msd, musicnn-mtt"):
        get_model_spec("musicnn-gtzan")


def test_corrupted_weights_are_rejected(tmp_path):
    spec = MODELS["musicnn-msd"]
    corrupted = tmp_path / spec.weights_file
    data = bytearray(weights_path(spec).read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit inside a kernel
    corrupted.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="corrupt: sha256"):
        load_tagger("musicnn-msd", weights_dir=tmp_path)


def test_missing_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(WeightsIntegrityError, match="missing.*models.convert convert"):
        load_tagger("musicnn-mtt", weights_dir=tmp_path)


def test_registered_checksums_are_the_shipped_files():
    for spec in MODELS.values():
        assert hashlib.sha256(weights_path(spec).read_bytes()).hexdigest() == spec.sha256, spec.name


# --- the checkpoint reader and the conversion ------------------------------------------------


@needs_musicnn
@pytest.mark.parametrize("model_name", sorted(MUSICNN_CHECKPOINTS))
def test_converting_the_installed_checkpoint_reproduces_the_shipped_weights(model_name, tmp_path):
    converted = convert_checkpoint(model_name, MUSICNN_DIR, output_dir=tmp_path)
    assert converted.read_bytes() == weights_path(MODELS[model_name]).read_bytes()


@needs_musicnn
def test_reader_sees_every_tensor_of_the_checkpoint():
    entries = read_index(MUSICNN_DIR / "MSD_musicnn" / ".index")
    assert len(entries) == 150  # 64 inference tensors + 2 Adam slots each + 2 beta powers
    assert entries["conv2d/kernel"].shape == (7, 38, 1, 204)  # timbral 7 x int(0.4 * 96)
    assert entries["dense/kernel"].shape == (1506, 200)  # 2 x 753 pooled features -> 200
    tensors = read_checkpoint(str(MUSICNN_DIR / "MSD_musicnn") + "/", ["beta1_power", "conv2d/bias"])
    assert tensors["beta1_power"].dtype == np.float32 and tensors["beta1_power"].shape == ()
    assert tensors["conv2d/bias"].shape == (204,)


def test_crc32c_known_answer():
    # RFC 3720 (iSCSI) appendix B.4 test vector: 32 zero bytes.
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"123456789") == 0xE3069283


@pytest.fixture
def checkpoint_copy(tmp_path) -> Path:
    if MUSICNN_DIR is None:
        pytest.skip("musicnn (its checkpoints) not installed")
    folder = tmp_path / "MTT_vgg"
    folder.mkdir()
    for name in (".index", ".data-00000-of-00001"):
        shutil.copy(MUSICNN_DIR / "MTT_vgg" / name, folder / name)
    return folder


def test_truncated_index_is_a_checkpoint_error(checkpoint_copy):
    index = checkpoint_copy / ".index"
    index.write_bytes(index.read_bytes()[:-20])
    with pytest.raises(CheckpointError, match="bad table magic"):
        read_checkpoint(str(checkpoint_copy) + "/")


def test_garbage_in_an_index_block_is_a_checkpoint_error(checkpoint_copy):
    index = checkpoint_copy / ".index"
    data = bytearray(index.read_bytes())
    data[0:40] = b"\xff" * 40  # varints that never end, inside the first data block
    index.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        read_checkpoint(str(checkpoint_copy) + "/")


def test_corrupt_tensor_data_fails_its_checksum(checkpoint_copy):
    entry = read_index(checkpoint_copy / ".index")["1CNN/kernel"]
    data_file = checkpoint_copy / ".data-00000-of-00001"
    data = bytearray(data_file.read_bytes())
    data[entry.offset + 5] ^= 0x10
    data_file.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch in tensor '1CNN/kernel'"):
        read_checkpoint(str(checkpoint_copy) + "/", ["1CNN/kernel"])


def test_missing_checkpoint_files_are_checkpoint_errors(checkpoint_copy, tmp_path):
    with pytest.raises(CheckpointError, match="cannot read checkpoint index"):
        read_checkpoint(tmp_path / "nothing-here")
    (checkpoint_copy / ".data-00000-of-00001").unlink()
    with pytest.raises(CheckpointError, match="cannot read checkpoint data"):
        read_checkpoint(str(checkpoint_copy) + "/", ["1CNN/bias"])
    with pytest.raises(CheckpointError, match="no tensor"):
        read_checkpoint(str(checkpoint_copy) + "/", ["not/a/tensor"])
