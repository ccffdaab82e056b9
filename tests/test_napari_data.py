"""Sample data, export of the Labels and the npe2 manifest (no model, no viewer)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from sam2_plugins.frames import frame_name, open_frames
from sam2_plugins.masks import read_binary_mask_png
from sam2_plugins.napari_plugin.export import plain_geometry, save_labels_sav, save_labels_tiff
from sam2_plugins.napari_plugin.sample_data import fluorescent_cells_sample
from sam2_plugins.sample_data import CAMERA_MAX, CAMERA_OFFSET, synthetic_cells


def test_synthetic_cells_are_12_bit_with_every_cell_labelled_on_every_frame():
    image, labels = synthetic_cells(n_frames=5, size=96, n_cells=4, seed=3)
    assert image.dtype == np.uint16 and image.shape == labels.shape == (5, 96, 96)
    assert image.max() <= CAMERA_MAX < np.iinfo(np.uint16).max // 8
    for t in range(5):
        assert set(np.unique(labels[t])) == {0, 1, 2, 3, 4}
        inside, outside = image[t][labels[t] > 0], image[t][labels[t] == 0]
        assert inside.mean() > outside.mean() + 300
        assert abs(np.median(outside) - CAMERA_OFFSET) < 30
    assert not np.array_equal(labels[0], labels[4]), "cells should move"


def test_synthetic_cells_become_visible_with_percentile_normalization():
    image, labels = synthetic_cells(n_frames=3, size=64, n_cells=2)
    frame = open_frames(image)[1]
    assert frame.dtype == np.uint8 and frame.shape == (64, 64, 3)
    assert frame[labels[1] > 0].mean() > 100, "12-bit data must not stay dark after normalization"


def test_sample_provider_returns_image_and_ground_truth_layers():
    (image, image_meta, image_kind), (labels, _, labels_kind) = fluorescent_cells_sample()
    assert (image_kind, labels_kind) == ("image", "labels")
    assert image.shape == labels.shape and image.dtype == np.uint16
    assert image_meta["contrast_limits"][0] == CAMERA_OFFSET


def test_tiff_export_round_trips(tmp_path):
    labels = np.zeros((3, 8, 9), dtype=np.int32)
    labels[1, 2:4, 3:6] = 2
    labels[2, 0, 0] = 7
    path = save_labels_tiff(labels, tmp_path / "labels.tif")
    written = tifffile.imread(path)
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written, labels)
    assert not list(tmp_path.glob(".*partial"))


def test_tiff_export_keeps_ids_above_uint16(tmp_path):
    labels = np.full((2, 4, 4), 70_000, dtype=np.int64)
    written = tifffile.imread(save_labels_tiff(labels, tmp_path / "big.tif"))
    assert written.dtype == np.uint32 and written.max() == 70_000


def test_tiff_export_errors_name_the_file_and_keep_the_old_one(tmp_path):
    existing = tmp_path / "labels.tif"
    existing.write_bytes(b"old")
    with pytest.raises(ValueError, match="labels.tif: labels must be an integer array of shape \\(4, 4\\) \\(YX\\)"):
        save_labels_tiff(np.zeros((4, 4), dtype=np.float32), existing)
    with pytest.raises(
        ValueError, match="labels.tif: labels must be an integer array of shape \\(2, 4, 4\\) \\(TYX\\)"
    ):
        save_labels_tiff(np.zeros((4, 4), dtype=np.uint8), existing, plain_geometry((2, 4, 4)))
    with pytest.raises(ValueError, match="negative ids"):
        save_labels_tiff(-np.ones((1, 2, 2), dtype=np.int32), existing)
    assert existing.read_bytes() == b"old"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_labels_tiff(np.zeros((1, 2, 2), dtype=np.uint8), tmp_path / "missing" / "labels.tif")


def test_npe2_manifest_validates_with_imports():
    npe2 = Path(sys.executable).with_name("npe2")
    result = subprocess.run([str(npe2), "validate", "sam2-plugins", "--imports"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Manifest for 'SAM 2 video segmentation' valid!" in result.stdout
    assert "invalid" not in result.stdout.lower()


def test_sav_export_writes_one_png_folder_per_object(tmp_path):
    labels = np.zeros((4, 6, 7), dtype=np.uint16)
    labels[0, 1:3, 1:3] = 1
    labels[2, 4:, :2] = 12
    labels[1, :2, 4:] = labels[3, 3:, 3:] = 5  # first seen on frame 1, gone on frame 2, back on frame 3
    labels[2, :2, 4:] = 1000
    video = save_labels_sav(labels, tmp_path, video_name="cells")
    assert sorted(p.name for p in video.iterdir()) == ["001", "005", "012", "1000"]
    for obj_id in (1, 5, 12, 1000):
        folder = video / f"{obj_id:03d}"
        assert sorted(p.name for p in folder.iterdir()) == [f"{frame_name(t)}.png" for t in range(4)]
        written = [read_binary_mask_png(folder / f"{frame_name(t)}.png") for t in range(4)]
        np.testing.assert_array_equal(np.stack(written), labels == obj_id)
    assert set(np.unique(np.array(Image.open(video / "012" / "00002.png")))) == {0, 255}
    labels[labels == 5] = 0
    assert save_labels_sav(labels, tmp_path, video_name="cells") == video
    assert sorted(p.name for p in video.iterdir()) == ["001", "012", "1000"]  # a re-export drops stale objects
