"""Prompt layers -> per-frame prompts, mask painting and propagation planning (no model, no viewer)."""

import numpy as np
import pytest
from napari.layers import Image, Labels

from sam2_plugins.napari_plugin.frame_axes import FrameAxes
from sam2_plugins.napari_plugin.prompts import (
    FramePrompts,
    collect_prompts,
    color_by_object,
    create_prompt_layers,
    set_prompt_object,
    toggle_polarity,
)
from sam2_plugins.napari_plugin.tracking import Direction, frames_visited, paint_masks, propagation_runs


@pytest.fixture
def layers():
    image = Image(np.zeros((6, 40, 50), dtype=np.uint16), name="stack", scale=(1.0, 0.5, 0.5))
    return create_prompt_layers(image, obj_id=3)


def test_clicks_and_boxes_become_frame_prompts(layers):
    points, boxes = layers
    points.mode = "add"
    points.add([2, 10, 20])
    toggle_polarity(points)
    points.add([2, 12.5, 30])
    set_prompt_object(points, boxes, 5)
    points.add([4, 1, 2])
    boxes.add_rectangles(np.array([[4, 5, 6], [4, 5, 16], [4, 15, 16], [4, 15, 6]]))

    prompts = collect_prompts(points, boxes, FrameAxes.at((6, 40, 50), 0))

    assert prompts == {
        (2, 3): FramePrompts(points=((20.0, 10.0), (30.0, 12.5)), labels=(1, 0)),
        (4, 5): FramePrompts(points=((2.0, 1.0),), labels=(0,), box=(6.0, 5.0, 16.0, 15.0)),
    }
    assert points.scale.tolist() == [1.0, 0.5, 0.5]
    np.testing.assert_array_equal(points.border_color[0], [0, 1, 0, 1])
    np.testing.assert_array_equal(points.border_color[1], [1, 0, 0, 1])


def test_toggle_in_select_mode_flips_selected_clicks(layers):
    points, boxes = layers
    points.mode = "add"
    points.add([[1, 5, 5], [1, 6, 6]])
    points.mode = "select"
    points.selected_data = {1}
    toggle_polarity(points)
    assert collect_prompts(points, boxes, FrameAxes.at((6, 40, 50), 0))[(1, 3)].labels == (1, 0)
    np.testing.assert_array_equal(points.border_color[1], [1, 0, 0, 1])
    assert bool(points.feature_defaults["positive"].iloc[0]) is True


def test_clicks_and_boxes_take_their_objects_label_colour(layers):
    points, boxes = layers
    labels = Labels(np.zeros((6, 40, 50), dtype=np.uint16))
    points.add([[1, 5, 5], [1, 6, 6]])
    points.features.loc[1, "obj_id"] = 7
    boxes.add_rectangles(np.array([[2, 1, 1], [2, 1, 9], [2, 9, 9], [2, 9, 1]]))
    color_by_object(points, boxes, labels.colormap.map)
    np.testing.assert_allclose(points.face_color, labels.colormap.map(np.array([3, 7])), atol=1e-6)
    np.testing.assert_allclose(boxes.edge_color, labels.colormap.map(np.array([3])), atol=1e-6)
    assert not np.allclose(points.face_color[0], points.face_color[1])


def test_sequence_axis_other_than_first(layers):
    points, boxes = layers
    points.add([7, 3, 4])  # axis 2 is the sequence: frame 4, y 7, x 3
    prompts = collect_prompts(points, boxes, FrameAxes.at((6, 40, 50), 2))
    assert prompts == {(4, 3): FramePrompts(points=((3.0, 7.0),), labels=(1,))}


def test_paint_masks_replaces_only_painted_objects():
    frame = np.array([[1, 1, 2, 0], [0, 7, 7, 0]], dtype=np.uint16)
    logits = np.array(
        [
            [[5, -1, -1, 3], [-1, -1, -1, 2]],  # object 1 moves right
            [[-1, -1, 4, 4], [-1, -1, -1, 1]],  # object 2 overlaps object 1: higher logit wins
        ],
        dtype=np.float32,
    )
    paint_masks(frame, [1, 2], logits)
    np.testing.assert_array_equal(frame, [[1, 0, 2, 2], [0, 7, 7, 1]])


def test_paint_masks_keeps_other_labels_under_new_masks():
    frame = np.array([[9, 0]], dtype=np.uint16)
    paint_masks(frame, [1], np.ones((1, 1, 2), dtype=np.float32))
    np.testing.assert_array_equal(frame, [[9, 1]])


@pytest.mark.parametrize(
    ("current", "direction", "expected"),
    [
        (4, Direction.FORWARD, [(4, False, 5)]),
        (4, Direction.BACKWARD, [(4, True, 2)]),
        (4, Direction.BOTH, [(4, False, 5), (4, True, 2)]),
        (2, Direction.BOTH, [(2, False, 7)]),
        (9, Direction.FORWARD, [(9, False, 0)]),
    ],
)
def test_propagation_runs_cover_the_range(current, direction, expected):
    runs = propagation_runs(current, direction, first=2, last=9)
    assert runs == expected
    visited = {current + step * (-1 if reverse else 1) for _, reverse, n in runs for step in range(n + 1)}
    if direction is Direction.BOTH:
        assert visited == set(range(2, 10)), "both ways covers the whole range"
    assert frames_visited(runs) == sum(n + 1 for _, _, n in expected)


def test_propagation_runs_reject_current_frame_outside_range():
    with pytest.raises(ValueError, match="outside the frame range 5..9"):
        propagation_runs(4, Direction.BOTH, first=5, last=9)


def test_propagating_backward_from_the_first_frame_is_refused():
    with pytest.raises(ValueError, match="frame 2 is the first frame of the range 2..9: nothing lies behind it"):
        propagation_runs(2, Direction.BACKWARD, first=2, last=9)
