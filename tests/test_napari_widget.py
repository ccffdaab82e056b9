"""The dock widget in a real napari viewer (run under xvfb-run) with a random-weight SAM 2.1 tiny at 128 px."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
from qtpy.QtCore import Qt
from random_checkpoint import CONFIG, IMAGE_SIZE, write_random_checkpoint

from sam2_plugins.frames import open_frames
from sam2_plugins.masks import read_binary_mask_png
from sam2_plugins.model import Sam2Model, Sam2VideoPredictor
from sam2_plugins.napari_plugin import widget as widget_module
from sam2_plugins.napari_plugin.prompts import create_prompt_layers
from sam2_plugins.napari_plugin.tracking import Direction, paint_masks
from sam2_plugins.napari_plugin.widget import ExportLayout, Sam2Widget
from sam2_plugins.sample_data import synthetic_cells

pytestmark = pytest.mark.napari

WAIT_MS = 120_000
SCREENSHOT = Path(__file__).resolve().parent / "artifacts" / "napari_widget.png"
"""Kept after the run; the README's docs/napari_widget.png is a copy of one."""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """Seeded random weights in the official checkpoint format (plumbing only: the masks mean nothing)."""
    return write_random_checkpoint(tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture
def docked(make_napari_viewer, qtbot):
    """A viewer with the plugin's widget docked from its npe2 manifest; closed once its workers are done."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("sam2-plugins", "SAM 2 video segmentation")
    yield viewer, widget
    wait_idle(widget, qtbot)


def wait_idle(widget: Sam2Widget, qtbot) -> None:
    """Wait for the widget's workers (prompts, background encoding, propagation) to finish."""
    qtbot.waitUntil(lambda: widget.prompt_worker is None and widget.propagation_worker is None, timeout=WAIT_MS)


def start_session(widget: Sam2Widget, image, checkpoint: Path, qtbot, sequence_axis: int = 0) -> None:
    widget.reset_choices()
    form = widget.session_form
    form.image.value, form.sequence_axis.value, form.checkpoint.value = image, sequence_axis, str(checkpoint)
    form.config.value, form.device.value, form.image_size.value = CONFIG, "cpu", IMAGE_SIZE
    form.call_button.native.click()
    qtbot.waitUntil(lambda: widget.tracking is not None, timeout=WAIT_MS)


def propagate(widget: Sam2Widget, qtbot, **options) -> None:
    widget.propagate_form(**options)
    qtbot.waitUntil(lambda: widget.propagation_worker is None, timeout=WAIT_MS)


def click(viewer, widget: Sam2Widget, frame: int, y: float, x: float, positive: bool = True, qtbot=None) -> None:
    """A click on frame ``frame`` as the Points layer's add mode makes it; with ``qtbot``, wait for its mask."""
    viewer.dims.set_current_step(widget.sequence_axis, frame)
    widget.points.feature_defaults["positive"] = positive
    coords = [y, x]
    coords.insert(widget.sequence_axis, frame)
    widget.points.add(coords)
    if qtbot is not None:
        qtbot.waitUntil(lambda: widget.prompt_worker is None, timeout=WAIT_MS)


def object_frames(widget: Sam2Widget, obj_id: int) -> list[int]:
    return [t for t, frame in enumerate(widget.tracking.labels) if (frame == obj_id).any()]


def test_widget_docks_and_sample_data_opens(docked):
    viewer, widget = docked
    assert isinstance(widget, Sam2Widget)
    viewer.open_sample("sam2-plugins", "fluorescent_cells")
    assert [layer.name for layer in viewer.layers] == ["cells (16-bit)", "cells ground truth"]
    widget.reset_choices()
    assert widget.session_form.image.value is viewer.layers["cells (16-bit)"]


class DirectTwin:
    """The same prompts sent straight to a predictor session, painted into an expected label stack."""

    def __init__(self, checkpoint: Path, data: np.ndarray, sequence_axis: int = 0):
        predictor = Sam2VideoPredictor.from_checkpoint(
            str(checkpoint), config=CONFIG, image_size=IMAGE_SIZE, device="cpu"
        )
        self.session = predictor.init_video(open_frames(data, axis=sequence_axis))
        self.labels = np.zeros(
            (self.session.num_frames, self.session.video_height, self.session.video_width), dtype=np.uint16
        )

    def add_points(self, frame: int, obj_id: int, points: list, labels: list) -> None:
        obj_ids, masks = self.session.add_points(frame, obj_id, np.array(points, dtype=np.float32), np.array(labels))
        paint_masks(self.labels[frame], obj_ids, masks.numpy())

    def propagate(self, start_frame: int, reverse: bool) -> None:
        for frame, obj_ids, masks in self.session.propagate(start_frame=start_frame, reverse=reverse):
            paint_masks(self.labels[frame], obj_ids, masks.numpy())


def test_click_propagate_correct_on_the_sample_and_screenshot(make_napari_viewer, checkpoint, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1400, 1050)
    dock, widget = viewer.window.add_plugin_dock_widget("sam2-plugins", "SAM 2 video segmentation")
    viewer.window._qt_window.resizeDocks([dock], [420], Qt.Orientation.Horizontal)
    image = viewer.open_sample("sam2-plugins", "fluorescent_cells")[0]
    truth = viewer.layers["cells ground truth"].data
    n_frames = len(truth)
    assert image.data.dtype == np.uint16
    start_session(widget, image, checkpoint, qtbot)
    twin = DirectTwin(checkpoint, image.data)
    assert widget.labels_layer.data.shape == image.data.shape

    k = n_frames // 2
    y1, x1 = np.argwhere(truth[k] == 1).mean(axis=0)
    click(viewer, widget, k, y1, x1, qtbot=qtbot)
    twin.add_points(k, 1, [[x1, y1]], [1])
    assert object_frames(widget, 1) == [k], "the clicked frame's mask appears at once, on that frame only"
    np.testing.assert_array_equal(widget.tracking.labels, twin.labels)

    propagate(widget, qtbot, direction=Direction.BOTH, all_frames=True)
    twin.propagate(k, reverse=False)
    twin.propagate(k, reverse=True)
    assert object_frames(widget, 1) == list(range(n_frames))
    assert widget.progress_bar.value == widget.progress_bar.max == n_frames + 1
    np.testing.assert_array_equal(widget.tracking.labels, twin.labels)

    widget.new_object()
    assert widget.object_id.value == 2 and widget.points.feature_defaults["obj_id"].iloc[0] == 2
    y2, x2 = np.argwhere(truth[0] == 2).mean(axis=0)
    click(viewer, widget, 0, y2, x2, qtbot=qtbot)
    twin.add_points(0, 2, [[x2, y2]], [1])
    propagate(widget, qtbot, direction=Direction.FORWARD, all_frames=True)
    twin.propagate(0, reverse=False)
    np.testing.assert_array_equal(widget.tracking.labels, twin.labels)

    hand_painted = np.zeros_like(twin.labels, dtype=bool)
    hand_painted[:, :6, :6] = True
    widget.tracking.labels[hand_painted] = twin.labels[hand_painted] = 9
    before = widget.tracking.labels.copy()
    later = n_frames - 3
    widget.labels_layer.selected_label = 1
    yn, xn = np.argwhere(before[later] == 1)[len(np.argwhere(before[later] == 1)) // 2]
    click(viewer, widget, later, yn, xn, positive=False, qtbot=qtbot)
    twin.add_points(later, 1, [[xn, yn]], [0])
    np.testing.assert_array_equal(widget.tracking.labels, twin.labels)
    assert not np.array_equal(widget.tracking.labels[later], before[later]), "a correction shows at once"

    propagate(widget, qtbot, direction=Direction.BOTH, all_frames=True)
    twin.propagate(later, reverse=False)
    twin.propagate(later, reverse=True)
    np.testing.assert_array_equal(widget.tracking.labels, twin.labels)
    assert not np.array_equal(widget.tracking.labels == 1, before == 1), "re-propagation follows the correction"
    assert object_frames(widget, 2) == list(range(n_frames)), "the other object is still tracked"
    assert (widget.tracking.labels[hand_painted] == 9).all(), "labels outside the session stay"

    viewer.dims.set_current_step(0, k)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    screenshot = viewer.screenshot(str(SCREENSHOT), canvas_only=False)
    assert screenshot.shape[0] > 400 and SCREENSHOT.stat().st_size > 10_000
    wait_idle(widget, qtbot)


def test_propagate_right_after_a_click_waits_for_it_and_cancel_stops_the_worker(docked, checkpoint, qtbot):
    viewer, widget = docked
    image = viewer.add_image(synthetic_cells(n_frames=30, size=96, n_cells=2)[0], name="long")
    start_session(widget, image, checkpoint, qtbot)
    click(viewer, widget, 0, 24, 24)
    widget.propagate_form(direction=Direction.FORWARD, all_frames=True)
    assert widget.prompt_worker is not None, "the click is still being applied"
    qtbot.waitUntil(lambda: widget.progress_bar.value >= 2, timeout=WAIT_MS)
    assert not widget.labels_layer.editable, "no hand edits while the worker paints copies of frames"
    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: widget.propagation_worker is None, timeout=WAIT_MS)
    painted = object_frames(widget, 1)
    assert painted == list(range(len(painted))) and 2 <= len(painted) < 30
    assert widget.progress_bar.value < widget.progress_bar.max
    assert widget.status.value == "Propagation cancelled."
    assert widget.propagate_form.call_button.enabled and not widget.cancel_button.enabled
    assert widget.labels_layer.editable


def test_the_shown_frame_is_encoded_in_the_background_so_a_first_click_only_decodes(
    docked, checkpoint, qtbot, monkeypatch
):
    viewer, widget = docked
    image = viewer.add_image(synthetic_cells(n_frames=6, size=64, n_cells=2)[0], name="cells")
    start_session(widget, image, checkpoint, qtbot)
    qtbot.waitUntil(lambda: widget.prompt_worker is None, timeout=WAIT_MS)  # the frame shown at start is encoded
    encoded = []
    original = Sam2Model.encode_image
    monkeypatch.setattr(Sam2Model, "encode_image", lambda model, image: encoded.append(1) or original(model, image))
    viewer.dims.set_current_step(widget.sequence_axis, 4)
    qtbot.waitUntil(lambda: len(encoded) == 1 and widget.prompt_worker is None, timeout=WAIT_MS)
    click(viewer, widget, 4, 20, 20, qtbot=qtbot)
    assert len(encoded) == 1, "the click reused the background encoding"
    assert object_frames(widget, 1) == [4]
    viewer.layers.clear()
    assert widget.prompt_worker is None, "no background encoding once the image has left the viewer"


@pytest.mark.parametrize(
    ("kind", "sequence_axis"),
    [("uint16", 0), ("float32 z-stack", 2), ("uint8 rgb", 0)],
)
def test_widget_labels_equal_direct_predictor_calls(docked, checkpoint, qtbot, tmp_path, kind, sequence_axis):
    viewer, widget = docked
    cells, _ = synthetic_cells(n_frames=5, size=64, n_cells=2, seed=1)
    data = {
        "uint16": cells,
        "float32 z-stack": np.moveaxis(cells.astype(np.float32) / 4095.0, 0, 2),
        "uint8 rgb": np.stack([(cells // 16).astype(np.uint8)] * 3, axis=-1),
    }[kind]
    image = viewer.add_image(data, name=kind, rgb=kind == "uint8 rgb")
    start_session(widget, image, checkpoint, qtbot, sequence_axis=sequence_axis)
    click(viewer, widget, 2, 20, 30, qtbot=qtbot)
    click(viewer, widget, 2, 40, 12, positive=False, qtbot=qtbot)
    widget.new_object()
    box = np.array([[10, 8], [10, 40], [50, 40], [50, 8]], dtype=float)  # (y, x) corners on frame 4
    widget.boxes.add_rectangles(np.insert(box, sequence_axis, 4, axis=1))
    qtbot.waitUntil(lambda: widget.prompt_worker is None, timeout=WAIT_MS)
    propagate(widget, qtbot, direction=Direction.BOTH, all_frames=True)

    twin = DirectTwin(checkpoint, data, sequence_axis)
    twin.add_points(2, 1, [[30, 20]], [1])
    twin.add_points(2, 1, [[30, 20], [12, 40]], [1, 0])
    obj_ids, masks = twin.session.add_box(4, 2, (8, 10, 40, 50), np.zeros((0, 2)), np.zeros(0))
    paint_masks(twin.labels[4], obj_ids, masks.numpy())
    twin.propagate(2, reverse=False)
    twin.propagate(2, reverse=True)
    np.testing.assert_array_equal(widget.tracking.labels, twin.labels)
    assert object_frames(widget, 2), "the box prompt segments object 2"

    assert widget.labels_layer.data.shape == data.shape[:3]
    widget.export_form(path=tmp_path / "labels.tif", layout=ExportLayout.TIFF)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "labels.tif"), twin.labels)
    widget.export_form(path=tmp_path / "sav", layout=ExportLayout.SAV)
    written = read_binary_mask_png(tmp_path / "sav" / kind / "002" / "00004.png")
    np.testing.assert_array_equal(written, twin.labels[4] == 2)


def test_bad_inputs_are_reported_with_the_fix(docked, qtbot, tmp_path):
    viewer, widget = docked
    volume = viewer.add_image(np.zeros((2, 3, 16, 16), dtype=np.uint16), name="4d")
    with pytest.raises(ValueError, match="4d: 4D image; SAM 2 needs a sequence of 2D frames"):
        widget.start_session(volume)
    stack = viewer.add_image(np.zeros((3, 16, 16), dtype=np.uint16), name="stack")
    missing = tmp_path / "nowhere.pt"
    with qtbot.capture_exceptions():
        widget.start_session(stack, checkpoint=str(missing), device="cpu")
        qtbot.waitUntil(lambda: "Could not start" in widget.status.value, timeout=WAIT_MS)
    assert str(missing) in widget.status.value and widget.tracking is None
    with pytest.raises(RuntimeError, match="Start a session first"):
        widget.propagate()


def test_t_key_on_the_canvas_toggles_the_next_clicks_polarity(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    image = viewer.add_image(np.zeros((3, 32, 32), dtype=np.uint16))
    points, _ = create_prompt_layers(image)
    viewer.add_layer(points)
    viewer.layers.selection.active = points
    points.mode = "add"
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_T)
    points.add([1, 5, 5])
    qtbot.keyClick(canvas, Qt.Key.Key_T)
    points.add([1, 9, 9])
    assert points.features["positive"].tolist() == [False, True]


def test_large_label_stacks_are_memory_mapped(docked, checkpoint, qtbot, monkeypatch):
    monkeypatch.setattr(widget_module, "LABELS_IN_MEMORY_BYTES", 1000)
    viewer, widget = docked
    image = viewer.add_image(synthetic_cells(n_frames=3, size=64, n_cells=1)[0], name="big")
    start_session(widget, image, checkpoint, qtbot)
    assert isinstance(widget.labels_layer.data, np.memmap) and not widget.labels_layer.data.any()
    click(viewer, widget, 1, 32, 32, qtbot=qtbot)
    assert object_frames(widget, 1) == [1] and (widget.labels_layer.data[1] == 1).any()


def test_propagation_over_a_range_only_touches_it(docked, checkpoint, qtbot):
    viewer, widget = docked
    image = viewer.add_image(synthetic_cells(n_frames=6, size=64, n_cells=1)[0], name="range")
    start_session(widget, image, checkpoint, qtbot)
    click(viewer, widget, 2, 32, 32, qtbot=qtbot)
    propagate(widget, qtbot, direction=Direction.BOTH, all_frames=False, first_frame=1, last_frame=3)
    assert object_frames(widget, 1) == [1, 2, 3]
    assert widget.progress_bar.value == widget.progress_bar.max == 4
    with pytest.raises(ValueError, match="outside the frame range 3..5"):
        widget.propagate(direction=Direction.FORWARD, all_frames=False, first_frame=3, last_frame=5)
