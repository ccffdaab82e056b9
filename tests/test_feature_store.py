"""Image features cached on disk per (file, model, image size): a reopened stack is not encoded again."""

import os
import time

import numpy as np
import pytest
import tifffile
import torch
from random_checkpoint import CONFIG, IMAGE_SIZE, write_random_checkpoint

from sam2_plugins.feature_store import DiskFeatureStore, checkpoint_key, default_cache_root
from sam2_plugins.frames import open_frames
from sam2_plugins.model import Sam2VideoPredictor
from sam2_plugins.sample_data import synthetic_cells


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture
def predictor(checkpoint):
    return Sam2VideoPredictor.from_checkpoint(checkpoint, config=CONFIG, image_size=IMAGE_SIZE, device="cpu")


@pytest.fixture
def stack(tmp_path):
    image, labels = synthetic_cells(n_frames=5, size=96, n_cells=2, seed=1)
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, image)
    return path, labels


def count_encodings(predictor, monkeypatch) -> list[int]:
    """Every image the model encodes appends to the returned list."""
    calls = []
    encode = predictor.model.encode_image
    monkeypatch.setattr(predictor.model, "encode_image", lambda image: calls.append(1) or encode(image))
    return calls


def track(predictor, path, store, mask) -> list[np.ndarray]:
    """Prompt object 1 with ``mask`` on frame 0 and propagate: every frame's logits."""
    with open_frames(path) as frames:
        session = predictor.init_video(frames, feature_store=store)
        session.add_mask(0, 1, mask)
        logits = [masks.numpy().copy() for _, _, masks in session.propagate()]
        session.close()
    store.flush()
    return logits


def open_store(path, checkpoint, root, **options) -> DiskFeatureStore:
    return DiskFeatureStore(path, checkpoint_key(checkpoint, CONFIG), IMAGE_SIZE, root=root, **options)


def test_a_reopened_stack_reads_its_features_from_disk_and_tracks_identically(
    predictor, checkpoint, stack, tmp_path, monkeypatch
):
    path, labels = stack
    encodings = count_encodings(predictor, monkeypatch)
    first_store = open_store(path, checkpoint, tmp_path / "cache")
    first = track(predictor, path, first_store, labels[0] == 1)
    assert len(encodings) == 5 and first_store.cached_frames() == [0, 1, 2, 3, 4]
    encodings.clear()
    reopened = open_store(path, checkpoint, tmp_path / "cache")
    assert reopened.folder == first_store.folder
    second = track(predictor, path, reopened, labels[0] == 1)
    assert encodings == [], "every frame's features came from disk"
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_a_changed_file_or_another_model_or_size_is_encoded_again_and_old_versions_are_removed(
    predictor, checkpoint, stack, tmp_path, monkeypatch
):
    path, labels = stack
    store = open_store(path, checkpoint, tmp_path / "cache")
    track(predictor, path, store, labels[0] == 1)
    other_size = DiskFeatureStore(path, checkpoint_key(checkpoint, CONFIG), 256, root=tmp_path / "cache")
    other_model = DiskFeatureStore(path, "sam2.1_hiera_large", IMAGE_SIZE, root=tmp_path / "cache")
    other_reading = open_store(path, checkpoint, tmp_path / "cache", reading="axis=1")
    assert len({s.folder for s in (store, other_size, other_model, other_reading)}) == 4
    assert other_size.get(0) is None and other_model.get(0) is None
    image = tifffile.imread(path)
    tifffile.imwrite(path, image[::-1])
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    encodings = count_encodings(predictor, monkeypatch)
    changed = open_store(path, checkpoint, tmp_path / "cache")
    assert changed.folder != store.folder and not store.folder.exists(), "the stale version is removed"
    assert other_size.folder.exists() and other_model.folder.exists() and other_reading.folder.exists()
    track(predictor, path, changed, labels[4] == 1)
    assert len(encodings) == 5


def test_the_cache_stays_within_its_bound_dropping_the_least_recently_used_frames(
    predictor, checkpoint, stack, tmp_path
):
    path, labels = stack
    unbounded = open_store(path, checkpoint, tmp_path / "measure")
    track(predictor, path, unbounded, labels[0] == 1)
    frame_bytes = (unbounded.folder / "000000.pt").stat().st_size
    root = tmp_path / "cache"
    store = open_store(path, checkpoint, root, max_bytes=int(2.5 * frame_bytes))
    track(predictor, path, store, labels[0] == 1)
    on_disk = sum(p.stat().st_size for p in root.glob("*/[0-9]*.pt"))
    assert on_disk <= 2.5 * frame_bytes and store.cached_frames() == [3, 4], "the last frames written stay"


def test_an_unreadable_cached_frame_is_reported_removed_and_encoded_again(
    predictor, checkpoint, stack, tmp_path, monkeypatch
):
    path, labels = stack
    store = open_store(path, checkpoint, tmp_path / "cache")
    track(predictor, path, store, labels[0] == 1)
    (store.folder / "000002.pt").write_bytes(b"not a torch file")
    encodings = count_encodings(predictor, monkeypatch)
    reopened = open_store(path, checkpoint, tmp_path / "cache")
    with pytest.warns(UserWarning, match="000002.pt: unreadable cached features"):
        track(predictor, path, reopened, labels[0] == 1)
    assert len(encodings) == 1 and reopened.cached_frames() == [0, 1, 2, 3, 4]


def test_stored_features_load_with_weights_only(predictor, checkpoint, stack, tmp_path):
    path, labels = stack
    store = open_store(path, checkpoint, tmp_path / "cache")
    track(predictor, path, store, labels[0] == 1)
    tensors = torch.load(store.folder / "000001.pt", weights_only=True)
    assert set(tensors) == {"high_res", "vision"} and tensors["vision"].shape[0] == 1


def test_the_default_root_follows_xdg_cache_home_and_a_missing_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_root() == tmp_path / "sam2-plugins" / "features"
    with pytest.raises(FileNotFoundError, match="missing.tif: no such file"):
        DiskFeatureStore(tmp_path / "missing.tif", "model", 128)
