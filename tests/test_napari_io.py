"""Labels exports that re-open aligned with their image: TIFF calibration and axis order, SA-V folders, and the
npe2 reader and writers driven as napari's File menu drives them (run under xvfb-run)."""

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from napari.plugins import _npe2
from PIL import Image

from sam2_plugins.datasets.sav_eval import write_sav_object_masks
from sam2_plugins.frames import frame_name
from sam2_plugins.napari_plugin.export import (
    LabelsGeometry,
    default_export_path,
    export_labels_sav,
    read_labels_sav,
    read_labels_tiff,
    save_labels_tiff,
)
from sam2_plugins.napari_plugin.frame_axes import FrameAxes
from sam2_plugins.napari_plugin.io import get_reader

pytestmark = pytest.mark.napari


def random_labels(shape, seed=0, ids=5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, ids, shape).astype(np.uint16)


def zstack_geometry(labels: np.ndarray) -> LabelsGeometry:
    """A (Y, X, Z) stack tracked along its last axis, 0.5 um pixels and 2 um slices, offset."""
    meta = {
        "scale": (0.5, 0.5, 2.0),
        "translate": (10.0, -4.0, 3.0),
        "units": ("micrometer",) * 3,
        "metadata": FrameAxes.at(labels.shape, 2).to_metadata(),
    }
    return LabelsGeometry.of_layer(labels, meta)


def test_yxz_stack_tiff_is_a_calibrated_imagej_hyperstack_that_reads_back_in_its_axis_order(tmp_path):
    labels = random_labels((12, 9, 5))
    path = save_labels_tiff(labels, tmp_path / "zstack.tif", zstack_geometry(labels))
    with tifffile.TiffFile(path) as tiff:
        assert tiff.is_imagej and tiff.series[0].axes == "TYX" and tiff.series[0].shape == (5, 12, 9)
        assert tiff.pages[0].resolution == (2.0, 2.0)  # pixels per micron along x, y
        assert tiff.imagej_metadata["finterval"] == 2.0 and tiff.imagej_metadata["unit"] == "micron"
        np.testing.assert_array_equal(tiff.asarray(), np.moveaxis(labels, 2, 0))  # what Fiji shows
    read, geometry = read_labels_tiff(path)
    np.testing.assert_array_equal(read, labels)
    assert geometry == zstack_geometry(labels) and geometry.axes == "YXT"


def test_4d_labels_keep_t_and_z_calibration_and_the_tracked_frame_axes(tmp_path):
    labels = random_labels((3, 4, 10, 11), seed=1)
    meta = {"scale": (5.0, 1.5, 0.25, 0.25), "axis_labels": ("t", "z", "y", "x")}
    meta["metadata"] = FrameAxes.at(labels.shape, 1, position=(2, 0, 0, 0)).to_metadata()
    geometry = LabelsGeometry.of_layer(labels, meta)
    assert geometry.axes == "TZYX" and geometry.frame_axes.fixed == ((0, 2),)
    path = save_labels_tiff(labels, tmp_path / "4d.tif", geometry)
    with tifffile.TiffFile(path) as tiff:
        assert tiff.imagej_metadata["spacing"] == 1.5 and tiff.imagej_metadata["finterval"] == 5.0
        assert tiff.imagej_metadata["frames"] == 3 and tiff.imagej_metadata["slices"] == 4
    read, read_geometry = read_labels_tiff(path)
    np.testing.assert_array_equal(read, labels)
    assert read_geometry == geometry


def test_single_frame_and_single_image_labels_read_back_unsqueezed(tmp_path):
    one_frame = random_labels((1, 6, 7))
    np.testing.assert_array_equal(read_labels_tiff(save_labels_tiff(one_frame, tmp_path / "t1.tif"))[0], one_frame)
    image_labels = random_labels((6, 7))
    read, geometry = read_labels_tiff(save_labels_tiff(image_labels, tmp_path / "2d.tif"))
    np.testing.assert_array_equal(read, image_labels)
    assert geometry.axes == "YX"


def test_ids_above_uint16_keep_axis_order_and_geometry(tmp_path):
    labels = random_labels((6, 5, 3)).astype(np.uint32) * 30_000
    read, geometry = read_labels_tiff(save_labels_tiff(labels, tmp_path / "big.tif", zstack_geometry(labels)))
    assert read.dtype == np.uint32 and read.max() == 120_000
    np.testing.assert_array_equal(read, labels)
    assert geometry == zstack_geometry(labels)


def test_sav_export_of_a_yxz_stack_writes_z_frames_and_reads_back_the_whole_layer(tmp_path):
    labels = random_labels((12, 9, 5), seed=2)
    video = export_labels_sav(labels, tmp_path, "stack", zstack_geometry(labels))
    for obj_id in range(1, 5):
        pngs = sorted(p.name for p in (video / f"{obj_id:03d}").iterdir())
        assert pngs == [f"{frame_name(z)}.png" for z in range(5)]
    read, geometry = read_labels_sav(video)
    np.testing.assert_array_equal(read, labels)
    assert geometry == zstack_geometry(labels)


def test_sav_export_of_a_4d_stack_writes_the_tracked_z_only(tmp_path):
    labels = np.zeros((3, 4, 6, 6), dtype=np.uint16)
    labels[:, 1, 2:4, 2:4] = 7  # tracked along T at z = 1
    labels[:, 3, :2, :2] = 9  # another z: not part of the tracked frames
    geometry = LabelsGeometry.of_layer(labels, {"metadata": FrameAxes.at(labels.shape, 0, (0, 1, 0, 0)).to_metadata()})
    video = export_labels_sav(labels, tmp_path, "tz", geometry)
    assert sorted(p.name for p in video.iterdir() if p.is_dir()) == ["007"]
    read, _ = read_labels_sav(video)
    expected = labels.copy()
    expected[:, 3] = 0
    np.testing.assert_array_equal(read, expected)


def test_sav_export_onto_a_file_names_it_and_keeps_it(tmp_path):
    existing = tmp_path / "labels.tif"
    existing.write_bytes(b"keep")
    with pytest.raises(FileExistsError, match=r"labels.tif: is a file; SA-V export writes a folder"):
        export_labels_sav(random_labels((2, 3, 3)), existing, "video")
    assert existing.read_bytes() == b"keep"


def test_sav_ground_truth_folders_place_sparse_frames_at_their_index(tmp_path):
    mask = np.zeros((4, 5), dtype=bool)
    mask[1:3, 1:4] = True
    other = np.zeros_like(mask)
    other[3, :] = True
    write_sav_object_masks(tmp_path, "gt", "000", {"00000": mask, "00008": np.zeros_like(mask)})
    write_sav_object_masks(tmp_path, "gt", "002", {"00004": mask, "00008": other})
    labels, geometry = read_labels_sav(tmp_path / "gt")
    assert labels.shape == (9, 4, 5) and geometry.axes == "TYX"
    np.testing.assert_array_equal(labels[0], mask * 1)  # SA-V's object 000 is label 1, 002 is label 3
    np.testing.assert_array_equal(labels[4], mask * 3)
    np.testing.assert_array_equal(labels[8], other * 3)
    assert not labels[[1, 2, 3, 5, 6, 7]].any()


def test_sav_folders_named_by_a_digit_int_does_not_read_are_not_objects_or_numbered_frames(tmp_path):
    """'²' passes str.isdigit but not int(): an object folder so named is not an object (it crashed the reader),
    and a frame so named puts the frames in name order."""
    mask = np.zeros((4, 5), dtype=bool)
    mask[1:3, 1:4] = True
    write_sav_object_masks(tmp_path, "gt", "000", {"00000": mask, "00002": mask})
    stray = tmp_path / "gt" / "\u00b2"
    stray.mkdir()
    Image.fromarray(mask.astype(np.uint8) * 255).save(stray / "00000.png")
    labels, _ = read_labels_sav(tmp_path / "gt")
    assert labels.shape == (3, 4, 5) and set(np.unique(labels)) == {0, 1}
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "gt" / "000" / "\u00b2.png")
    labels, _ = read_labels_sav(tmp_path / "gt")
    assert labels.shape == (3, 4, 5)  # 00000, 00002, ² in name order: no gap left for frame 1
    assert all(labels[index].any() for index in range(3))


def test_default_export_path_is_beside_the_source_else_in_home(tmp_path):
    assert default_export_path(tmp_path / "cells.tif", "cells", "_labels.tif") == tmp_path / "cells_labels.tif"
    assert default_export_path(tmp_path / "frames", "frames", "_sav") == tmp_path / "frames_sav"
    assert default_export_path(None, "layer", "_labels.tif") == Path.home() / "layer_labels.tif"


def test_reader_claims_our_files_only(tmp_path):
    foreign = tmp_path / "foreign.tif"
    tifffile.imwrite(foreign, random_labels((2, 3, 4)), imagej=True)
    assert get_reader(str(foreign)) is None
    assert get_reader(str(tmp_path)) is None
    ours = save_labels_tiff(random_labels((2, 3, 4)), tmp_path / "ours.tif")
    assert get_reader(str(ours)) is not None


def save_with_writer(viewer, layer, path: Path, display_name: str) -> None:
    """What File > Save Selected Layers does once the user picks ``display_name`` in the file-type list."""
    viewer.layers.selection = {layer}
    extensions, writers = _npe2.file_extensions_string_for_layers([layer])
    (writer,) = [w for w in writers if w.display_name == display_name]
    assert display_name in extensions
    viewer.layers.save(str(path), selected=True, _writer=writer)


@pytest.mark.parametrize(
    ("writer", "name"),
    [
        ("SAM 2 labels TIFF (ImageJ hyperstack, overlays the image)", "labels.tif"),
        ("SAM 2 labels as SA-V PNG folders", "stack"),
    ],
)
def test_saved_labels_reopen_over_the_image(make_napari_viewer, tmp_path, writer, name):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.random.default_rng(3).random((12, 9, 5)), scale=(0.5, 0.5, 2.0), translate=(10, -4, 3))
    labels = random_labels((12, 9, 5), seed=4)
    layer = viewer.add_labels(
        labels, scale=image.scale, translate=image.translate, metadata=FrameAxes.at(labels.shape, 2).to_metadata()
    )
    save_with_writer(viewer, layer, tmp_path / name, writer)
    (reopened,) = viewer.open(str(tmp_path / name), plugin="sam2-plugins")
    assert type(reopened).__name__ == "Labels" and reopened.data.shape == image.data.shape
    np.testing.assert_array_equal(reopened.data, labels)
    np.testing.assert_allclose(reopened.scale, image.scale)
    np.testing.assert_allclose(reopened.translate, image.translate)
    for world in ([10.0, -4.0, 3.0], [14.5, -1.0, 11.0], [15.2, -0.3, 9.4]):
        np.testing.assert_allclose(reopened.world_to_data(world), image.world_to_data(world))
    assert reopened.metadata == layer.metadata


def test_open_dialog_offers_our_reader_for_tiffs_and_sav_folders(tmp_path):
    """napari asks which reader to use when several can read a file: ours is one of the choices."""
    tiff = save_labels_tiff(random_labels((4, 6, 7)), tmp_path / "labels.tif")
    video = export_labels_sav(random_labels((4, 6, 7)), tmp_path, "video")
    for path in (tiff, video):
        assert "sam2-plugins" in _npe2.get_readers(str(path))


def test_labels_of_one_2d_image_export_as_a_one_frame_sav_video(tmp_path):
    labels = random_labels((6, 7))
    video = export_labels_sav(labels, tmp_path, "photo")
    assert sorted(p.name for p in (video / "001").iterdir()) == ["00000.png"]
    read, geometry = read_labels_sav(video)
    np.testing.assert_array_equal(read, labels)
    assert geometry.axes == "YX"


def test_re_exporting_sav_after_removing_an_object_leaves_no_stale_folder(tmp_path):
    labels = random_labels((3, 6, 7), seed=5)
    geometry = zstack_geometry(np.zeros((6, 7, 3), np.uint16))
    stack = np.moveaxis(labels, 0, 2).copy()
    video = export_labels_sav(stack, tmp_path, "stack", geometry)
    assert sorted(p.name for p in video.iterdir() if p.is_dir()) == ["001", "002", "003", "004"]
    stack[stack == 3] = 0
    export_labels_sav(stack, tmp_path, "stack", geometry)
    assert sorted(p.name for p in video.iterdir() if p.is_dir()) == ["001", "002", "004"]
    read, _ = read_labels_sav(video)
    np.testing.assert_array_equal(read, stack)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "is empty"),
        (".", "names a folder itself"),
        ("..", "names the parent folder"),
        ("a/b", "holds a path separator"),
        ("..\\x", "holds a path separator"),
        ("bell\x07", "holds the control character"),
        ("cells ", "starts or ends with a space"),
    ],
)
def test_sav_export_refuses_a_name_that_is_no_single_folder_name_and_writes_nothing(tmp_path, name, reason):
    root = tmp_path / "exports"
    root.mkdir()
    (root / "keep.txt").write_text("the user's")
    with pytest.raises(ValueError, match=rf"^video name {re.escape(repr(name))} {reason}.*rename it"):
        export_labels_sav(random_labels((2, 3, 3)), root, name)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [Path("exports"), Path("exports/keep.txt")]


def test_file_save_as_sav_onto_a_parent_path_is_refused(make_napari_viewer, tmp_path):
    """File > Save Selected Layers with a typed path ending in '..' names no video folder."""
    viewer = make_napari_viewer()
    layer = viewer.add_labels(random_labels((2, 3, 3)))
    (tmp_path / "keep.txt").write_text("the user's")
    with pytest.raises(ValueError, match=r"video name '\.\.' names the parent folder"):
        save_with_writer(viewer, layer, tmp_path / "..", "SAM 2 labels as SA-V PNG folders")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
