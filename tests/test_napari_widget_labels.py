"""The widget's painted-mask prompts, Labels seeding, 4D stacks, exports and feature cache, driven through its
buttons and canvas events in a real viewer (run under xvfb-run) with a random-weight SAM 2.1 tiny at 128 px."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
from napari.utils.notifications import notification_manager
from napari_ui import (  # noqa: F401  (checkpoint, docked: fixtures)
    canvas_position,
    checkpoint,
    click_canvas,
    click_frame,
    docked,
    image_to_world,
    press,
    start_session,
    wait_idle,
)
from qtpy.QtCore import Qt
from random_checkpoint import CONFIG, IMAGE_SIZE

from sam2_plugins.auto_masklets import auto_masklets
from sam2_plugins.frames import open_frames
from sam2_plugins.model import Sam2AutomaticMaskGenerator, Sam2ImagePredictor, Sam2Model, Sam2VideoPredictor
from sam2_plugins.napari_plugin.segment_all import segment_all
from sam2_plugins.napari_plugin.tracking import paint_masks
from sam2_plugins.napari_plugin.widget import ExportLayout
from sam2_plugins.sample_data import synthetic_cells

pytestmark = pytest.mark.napari


class Twin:
    """The predictor called directly on ``frames`` (the widget's results must equal it)."""

    def __init__(self, checkpoint: Path, frames, shape: tuple[int, ...]):
        predictor = Sam2VideoPredictor.from_checkpoint(checkpoint, config=CONFIG, image_size=IMAGE_SIZE, device="cpu")
        self.session = predictor.init_video(frames)
        self.labels = np.zeros(shape, dtype=np.uint16)

    def add_mask(self, frame: int, obj_id: int, mask: np.ndarray) -> None:
        obj_ids, logits = self.session.add_mask(frame, obj_id, mask)
        paint_masks(self.labels[frame], obj_ids, logits.numpy())

    def propagate_both(self, frame: int) -> None:
        for reverse in (False, True):
            for frame_idx, obj_ids, logits in self.session.propagate(start_frame=frame, reverse=reverse):
                paint_masks(self.labels[frame_idx], obj_ids, logits.numpy())


def session_on_cells(docked, checkpoint, qtbot, n_frames: int, n_cells: int, seed: int) -> np.ndarray:
    """Synthetic 64 px cells added to the viewer and a session started on them; returns the image."""
    viewer, widget = docked
    cells, _ = synthetic_cells(n_frames=n_frames, size=64, n_cells=n_cells, seed=seed)
    start_session(widget, viewer.add_image(cells, name="cells"), checkpoint, qtbot)
    return cells


def small_generator(model: Sam2Model) -> Sam2AutomaticMaskGenerator:
    """A 4x4-point generator that keeps every mask (random weights score low)."""
    return Sam2AutomaticMaskGenerator(
        Sam2ImagePredictor(model, device="cpu"), points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0
    )


def paint_on_canvas(viewer, widget, qtbot, label: int, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Select ``label`` and drag the brush from image pixel ``start`` to ``end`` on the current frame."""
    layer = widget.labels_layer
    viewer.layers.selection.active = layer
    layer.selected_label, layer.brush_size, layer.mode = label, 6, "paint"
    native = viewer.window._qt_viewer.canvas.native
    p0, p1 = (
        canvas_position(viewer, *image_to_world(widget, *start)),
        canvas_position(viewer, *image_to_world(widget, *end)),
    )
    qtbot.mousePress(native, Qt.MouseButton.LeftButton, pos=p0)
    for k in range(1, 9):
        qtbot.mouseMove(native, p0 + (p1 - p0) * (k / 8))
        qtbot.wait(20)
    qtbot.mouseRelease(native, Qt.MouseButton.LeftButton, pos=p1)


def test_a_painted_label_becomes_its_objects_mask_prompt_and_propagates(docked, checkpoint, qtbot):
    viewer, widget = docked
    cells = session_on_cells(docked, checkpoint, qtbot, n_frames=4, n_cells=2, seed=1)
    viewer.dims.set_current_step(0, 1)
    paint_on_canvas(viewer, widget, qtbot, 2, (20, 14), (26, 30))
    painted = widget.controller.tracking.labels[1] == 2
    assert painted.sum() > 30, "the brush painted label 2 on frame 1"
    press(widget.painted_mask_button)
    wait_idle(widget, qtbot)
    assert (1, 2) in widget.controller.tracking.masks
    press(widget.propagate_form.call_button)
    wait_idle(widget, qtbot)
    twin = Twin(checkpoint, open_frames(cells), cells.shape)
    twin.add_mask(1, 2, painted)
    twin.propagate_both(1)
    np.testing.assert_array_equal(widget.labels_layer.data, twin.labels)


def test_labels_set_as_a_new_array_are_the_ones_prompted_and_painted(docked, checkpoint, qtbot):
    viewer, widget = docked
    cells = session_on_cells(docked, checkpoint, qtbot, n_frames=4, n_cells=2, seed=1)
    drawn = np.zeros(cells.shape, dtype=np.uint16)
    drawn[2, 20:30, 14:30] = 3
    widget.labels_layer.data = drawn  # a console line or another plugin replaces the array
    viewer.dims.set_current_step(0, 2)
    widget.labels_layer.selected_label = 3
    press(widget.painted_mask_button)
    wait_idle(widget, qtbot)
    assert widget.status.toPlainText().startswith("Masks updated on frame 2"), widget.status.toPlainText()
    press(widget.propagate_form.call_button)
    wait_idle(widget, qtbot)
    assert widget.labels_layer.data is drawn, "results land in the array on screen"
    twin = Twin(checkpoint, open_frames(cells), cells.shape)
    twin.labels[2, 20:30, 14:30] = 3
    twin.add_mask(2, 3, twin.labels[2] == 3)
    twin.propagate_both(2)
    np.testing.assert_array_equal(widget.labels_layer.data, twin.labels)


def test_every_label_of_a_chosen_frame_of_another_labels_layer_seeds_an_object(docked, checkpoint, qtbot):
    viewer, widget = docked
    cells, truth = synthetic_cells(n_frames=4, size=64, n_cells=3, seed=2)
    image = viewer.add_image(cells, name="cells")
    previous = viewer.add_labels(truth, name="micro-sam")
    start_session(widget, image, checkpoint, qtbot)
    widget.reset_choices()
    widget.seed_form.layer.value, widget.seed_form.frame.value = previous, 2
    press(widget.seed_form.call_button)
    wait_idle(widget, qtbot)
    assert sorted(obj for _, obj in widget.controller.tracking.masks) == [1, 2, 3]
    viewer.dims.set_current_step(0, 2)
    press(widget.propagate_form.call_button)
    wait_idle(widget, qtbot)
    twin = Twin(checkpoint, open_frames(cells), cells.shape)
    for obj_id in (1, 2, 3):
        twin.add_mask(2, obj_id, truth[2] == obj_id)
    twin.propagate_both(2)
    np.testing.assert_array_equal(widget.labels_layer.data, twin.labels)


@pytest.mark.parametrize(("sequence_axis", "other_axis", "other_index"), [(0, 1, 2), (1, 0, 1)])
def test_a_4d_stack_propagates_along_the_chosen_axis_at_the_current_index_of_the_other(
    docked, checkpoint, qtbot, tmp_path, sequence_axis, other_axis, other_index
):
    viewer, widget = docked
    cells, _ = synthetic_cells(n_frames=12, size=48, n_cells=2, seed=3)
    data = cells.reshape(3, 4, 48, 48)  # (T, Z, Y, X)
    image = viewer.add_image(data, name="tzyx")
    viewer.dims.set_current_step(other_axis, other_index)
    start_session(widget, image, checkpoint, qtbot, sequence_axis=sequence_axis)
    assert widget.labels_layer.data.shape == data.shape
    click = click_frame(viewer, widget, qtbot, 1, 20, 24)
    press(widget.propagate_form.call_button)
    wait_idle(widget, qtbot)
    selection = [slice(None)] * 4
    selection[other_axis] = other_index
    frames = data[tuple(selection)]
    twin_session = Twin(checkpoint, open_frames(frames), frames.shape)
    obj_ids, logits = twin_session.session.add_points(1, 1, [click[::-1]], [1])
    paint_masks(twin_session.labels[1], obj_ids, logits.numpy())
    twin_session.propagate_both(1)
    np.testing.assert_array_equal(widget.labels_layer.data[tuple(selection)], twin_session.labels)
    others = np.delete(widget.labels_layer.data, other_index, axis=other_axis)
    assert not others.any(), "the other indices of the fixed axis stay unlabelled"
    widget.export_form.path.value = tmp_path / "tzyx.tif"
    press(widget.export_form.call_button)
    with tifffile.TiffFile(tmp_path / "tzyx.tif") as tiff:
        assert tiff.series[0].axes == "TZYX", "the file has the image's layout, whichever axis was tracked"
        np.testing.assert_array_equal(tiff.asarray(), widget.labels_layer.data)


def test_exported_tiff_and_sav_of_a_calibrated_yxz_stack_reopen_over_the_image(docked, checkpoint, qtbot, tmp_path):
    viewer, widget = docked
    cells, _ = synthetic_cells(n_frames=5, size=48, n_cells=2, seed=4)
    source = tmp_path / "stack.tif"
    tifffile.imwrite(source, np.moveaxis(cells, 0, 2), photometric="minisblack")  # (Y, X, Z)
    (image,) = viewer.open(str(source), scale=(0.5, 0.5, 2.0), translate=(3, -2, 1))
    start_session(widget, image, checkpoint, qtbot, sequence_axis=2)
    assert widget.export_form.path.value == tmp_path / "stack_labels.tif", "default path beside the source"
    click_frame(viewer, widget, qtbot, 2, 20, 24)
    press(widget.propagate_form.call_button)
    wait_idle(widget, qtbot)
    labels = np.asarray(widget.labels_layer.data).copy()
    assert labels.shape == image.data.shape and labels.any()
    press(widget.export_form.call_button)
    widget.export_form["layout"].value = ExportLayout.SAV
    assert widget.export_form.path.value == tmp_path / "stack_sav"
    press(widget.export_form.call_button)
    reopened = [
        viewer.open(str(tmp_path / "stack_labels.tif"), plugin="sam2-plugins")[0],
        viewer.open(str(tmp_path / "stack_sav" / "stack"), plugin="sam2-plugins")[0],
    ]
    for layer in reopened:
        np.testing.assert_array_equal(layer.data, labels)
        np.testing.assert_allclose(layer.scale, image.scale)
        np.testing.assert_allclose(layer.translate, image.translate)


def test_sav_export_after_deleting_objects_clicks_holds_only_the_objects_left(docked, checkpoint, qtbot, tmp_path):
    viewer, widget = docked
    image = viewer.add_image(synthetic_cells(n_frames=3, size=48, n_cells=2, seed=4)[0], name="cells")
    start_session(widget, image, checkpoint, qtbot)
    click_frame(viewer, widget, qtbot, 0, 20, 24)
    press(widget.new_object_button)
    click_frame(viewer, widget, qtbot, 0, 36, 30)
    press(widget.propagate_form.call_button)
    wait_idle(widget, qtbot)
    widget.export_form.path.value, widget.export_form["layout"].value = tmp_path / "sav", ExportLayout.SAV
    video = tmp_path / "sav" / "cells"
    for remaining in ({1, 2}, {1}, set()):
        deleted = {i for i, obj_id in enumerate(widget.points.features["obj_id"]) if obj_id not in remaining}
        widget.points.selected_data = deleted
        widget.points.remove_selected()
        wait_idle(widget, qtbot)
        press(widget.export_form.call_button)
        assert widget.status.toPlainText().startswith("Saved SA-V PNG folders"), widget.status.toPlainText()
        assert sorted(p.name for p in video.iterdir() if p.is_dir()) == [
            f"{obj_id:03d}" for obj_id in sorted(remaining)
        ]
        (reopened,) = viewer.open(str(video), plugin="sam2-plugins")
        np.testing.assert_array_equal(reopened.data, widget.labels_layer.data)
        assert set(np.unique(reopened.data)) == {0, *remaining}


def test_a_rotated_image_gets_clicks_labels_and_exports_on_its_own_pixels(docked, checkpoint, qtbot, tmp_path):
    viewer, widget = docked
    cells, _ = synthetic_cells(n_frames=3, size=48, n_cells=2, seed=4)
    image = viewer.add_image(cells, name="tilted", scale=(1, 0.5, 0.5), translate=(0, 4, -2), rotate=30)
    start_session(widget, image, checkpoint, qtbot)
    viewer.dims.set_current_step(0, 1)
    viewer.layers.selection.active = widget.points
    widget.points.mode = "add"
    click_canvas(viewer, qtbot, *image.data_to_world([1, 20, 30])[1:])
    wait_idle(widget, qtbot)
    (_, y, x) = widget.points.data[-1]
    assert abs(y - 20) < 1 and abs(x - 30) < 1, "the click lands on the image pixel under the cursor"
    twin = Twin(checkpoint, open_frames(cells), cells.shape)
    obj_ids, logits = twin.session.add_points(1, 1, [[x, y]], [1])
    paint_masks(twin.labels[1], obj_ids, logits.numpy())
    np.testing.assert_array_equal(widget.labels_layer.data, twin.labels)
    widget.export_form["layout"].value = ExportLayout.SAV
    widget.export_form.path.value = tmp_path / "sav"
    press(widget.export_form.call_button)
    widget.export_form.path.value, widget.export_form["layout"].value = tmp_path / "tilted.tif", ExportLayout.TIFF
    press(widget.export_form.call_button)
    for path in (tmp_path / "tilted.tif", tmp_path / "sav" / "tilted"):
        (reopened,) = viewer.open(str(path), plugin="sam2-plugins")
        np.testing.assert_array_equal(reopened.data, twin.labels)
        for layer in (widget.labels_layer, widget.boxes, reopened):
            for point in ([0, 0, 0], [2, 47, 0], [1, 20, 30]):
                np.testing.assert_allclose(layer.data_to_world(point), image.data_to_world(point), atol=1e-9)


def test_cached_features_let_a_reopened_stack_skip_encoding(docked, checkpoint, qtbot, tmp_path, monkeypatch):
    viewer, widget = docked
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cells, _ = synthetic_cells(n_frames=4, size=48, n_cells=2, seed=5)
    tifffile.imwrite(tmp_path / "cells.tif", cells, photometric="minisblack")
    (image,) = viewer.open(str(tmp_path / "cells.tif"))
    encoded = []
    encode = Sam2Model.encode_image
    monkeypatch.setattr(Sam2Model, "encode_image", lambda model, x: encoded.append(1) or encode(model, x))
    start_session(widget, image, checkpoint, qtbot, cache_features=True)
    click_frame(viewer, widget, qtbot, 0, 20, 24)
    press(widget.propagate_form.call_button)
    wait_idle(widget, qtbot)
    first = np.asarray(widget.labels_layer.data).copy()
    assert len(encoded) == 4
    encoded.clear()
    start_session(widget, image, checkpoint, qtbot, cache_features=True)
    click_frame(viewer, widget, qtbot, 0, 20, 24)
    press(widget.propagate_form.call_button)
    wait_idle(widget, qtbot)
    assert encoded == [], "every frame's features came from the disk cache"
    np.testing.assert_array_equal(widget.labels_layer.data, first)


def test_a_2d_image_takes_clicks_into_a_labels_layer_of_its_shape(docked, checkpoint, qtbot):
    viewer, widget = docked
    cells, _ = synthetic_cells(n_frames=1, size=64, n_cells=2, seed=6)
    image = viewer.add_image(cells[0], name="photo")
    start_session(widget, image, checkpoint, qtbot)
    assert widget.labels_layer.data.shape == (64, 64)
    qtbot.waitUntil(lambda: not widget.controller.busy)
    viewer.layers.selection.active = widget.points
    widget.points.mode = "add"
    click_canvas(viewer, qtbot, 30, 22)
    wait_idle(widget, qtbot)
    (y, x) = widget.points.data[-1]
    twin = Twin(checkpoint, open_frames(cells[:1]), (1, 64, 64))
    obj_ids, logits = twin.session.add_points(0, 1, [[x, y]], [1])
    paint_masks(twin.labels[0], obj_ids, logits.numpy())
    np.testing.assert_array_equal(widget.labels_layer.data, twin.labels[0])
    assert widget.labels_layer.data.any()


def test_a_click_on_another_z_of_a_4d_session_is_refused_with_a_message(docked, checkpoint, qtbot):
    viewer, widget = docked
    cells, _ = synthetic_cells(n_frames=6, size=48, n_cells=1, seed=7)
    image = viewer.add_image(cells.reshape(3, 2, 48, 48), name="tzyx")
    start_session(widget, image, checkpoint, qtbot, sequence_axis=0)
    viewer.dims.set_current_step(1, 1)  # the session tracks z = 0
    viewer.layers.selection.active = widget.points
    widget.points.mode = "add"
    click_canvas(viewer, qtbot, 20, 20)
    assert len(widget.points.data) == 0, "the click is removed"
    assert widget.status.toPlainText().startswith("This session tracks the frames with axis 1 at 0")


def test_a_tiff_export_onto_a_folder_is_a_readable_error_that_leaves_no_partial_file(
    docked, checkpoint, qtbot, tmp_path
):
    viewer, widget = docked
    session_on_cells(docked, checkpoint, qtbot, n_frames=3, n_cells=1, seed=6)
    click_frame(viewer, widget, qtbot, 1, 24, 24)
    folder = tmp_path / "exports"
    folder.mkdir()
    start = len(notification_manager.records)
    widget.export_form.path.value, widget.export_form["layout"].value = folder, ExportLayout.TIFF
    press(widget.export_form.call_button)
    expected = f"Export failed: {folder}: is a folder; a TIFF export is one file: pick a file name ending in .tif"
    assert [n.message for n in notification_manager.records[start:]] == [expected]
    assert widget.status.toPlainText() == expected
    assert sorted(tmp_path.iterdir()) == [folder] and not any(folder.iterdir()), "nothing written, no .partial left"


def test_a_tiff_export_path_without_a_suffix_gets_tif_and_reopens(docked, checkpoint, qtbot, tmp_path):
    viewer, widget = docked
    session_on_cells(docked, checkpoint, qtbot, n_frames=3, n_cells=1, seed=6)
    click_frame(viewer, widget, qtbot, 1, 24, 24)
    widget.export_form.path.value, widget.export_form["layout"].value = tmp_path / "labels", ExportLayout.TIFF
    press(widget.export_form.call_button)
    assert widget.status.toPlainText() == f"Saved TIFF stack to {tmp_path / 'labels.tif'}"
    assert [p.name for p in tmp_path.iterdir()] == ["labels.tif"]
    (reopened,) = viewer.open(str(tmp_path / "labels.tif"), plugin="sam2-plugins")
    np.testing.assert_array_equal(reopened.data, widget.labels_layer.data)


def test_a_typed_export_path_survives_a_layout_change(docked, checkpoint, qtbot, tmp_path):
    viewer, widget = docked
    image = viewer.add_image(synthetic_cells(n_frames=3, size=48, n_cells=1)[0], name="cells")
    start_session(widget, image, checkpoint, qtbot)
    assert widget.export_form.path.value == Path.home() / "cells_labels.tif", "no source file: the home folder"
    widget.export_form["layout"].value = ExportLayout.SAV
    assert widget.export_form.path.value == Path.home() / "cells_sav"
    widget.export_form.path.value = tmp_path / "mine"
    widget.export_form["layout"].value = ExportLayout.TIFF
    assert widget.export_form.path.value == tmp_path / "mine"


def test_segment_all_makes_every_generated_mask_a_new_object_ready_to_propagate(docked, checkpoint, qtbot):
    viewer, widget = docked
    cells = session_on_cells(docked, checkpoint, qtbot, n_frames=3, n_cells=3, seed=8)
    click_frame(viewer, widget, qtbot, 1, 20, 24)  # object 1 exists: generated objects start at 2
    form = widget.segment_form
    form.points_per_side.value, form.pred_iou_thresh.value, form.stability_score_thresh.value = 4, 0.0, 0.0
    press(form.call_button)
    wait_idle(widget, qtbot)
    predictor = Sam2VideoPredictor.from_checkpoint(checkpoint, config=CONFIG, image_size=IMAGE_SIZE, device="cpu")
    generator = small_generator(predictor.model)
    expected = segment_all(generator, open_frames(cells)[1], first_id=2)
    assert expected and sorted(obj for _, obj in widget.controller.tracking.masks) == sorted(expected)
    for obj_id, mask in expected.items():
        np.testing.assert_array_equal(widget.controller.tracking.masks[(1, obj_id)], mask)
    press(widget.propagate_form.call_button)
    wait_idle(widget, qtbot)
    assert {int(v) for v in np.unique(widget.labels_layer.data[0])} - {0}, "objects propagated to frame 0"


def test_segment_all_that_keeps_no_mask_says_so(docked, checkpoint, qtbot):
    _, widget = docked
    session_on_cells(docked, checkpoint, qtbot, n_frames=2, n_cells=1, seed=8)
    start = len(notification_manager.records)
    form = widget.segment_form
    form.points_per_side.value, form.pred_iou_thresh.value, form.stability_score_thresh.value = 2, 1.0, 1.0
    press(form.call_button)
    wait_idle(widget, qtbot)
    expected = (
        "Segment all kept no mask on frame 0: lower pred_iou_thresh or stability_score_thresh, or raise "
        "points_per_side."
    )
    assert widget.status.toPlainText() == expected
    assert [n.message for n in notification_manager.records[start:]] == [expected]
    assert widget.controller.tracking.masks == {} and not widget.labels_layer.data.any()


def test_track_all_paints_the_automatic_masklets_of_the_shown_frame_on(docked, checkpoint, qtbot):
    viewer, widget = docked
    cells = session_on_cells(docked, checkpoint, qtbot, n_frames=4, n_cells=3, seed=9)
    viewer.dims.set_current_step(0, 1)
    form = widget.segment_form
    form.points_per_side.value, form.pred_iou_thresh.value, form.stability_score_thresh.value = 4, 0.0, 0.0
    press(widget.track_all_form.call_button)
    wait_idle(widget, qtbot)
    assert widget.status.toPlainText().startswith("Propagation done")
    predictor = Sam2VideoPredictor.from_checkpoint(checkpoint, config=CONFIG, image_size=IMAGE_SIZE, device="cpu")
    generator = small_generator(predictor.model)
    expected = np.zeros(cells.shape, dtype=np.uint16)
    for frame_idx, obj_ids, logits in auto_masklets(predictor, generator, open_frames(cells), start_frame=1):
        paint_masks(expected[frame_idx], [1 + int(i) for i in obj_ids], logits.numpy())
    assert expected[1:].any() and not expected[0].any()
    np.testing.assert_array_equal(widget.labels_layer.data, expected)
