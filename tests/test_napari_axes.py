"""4D and beyond: frames along one axis of an N-D layer, the other axes at fixed indices, read lazily."""

import dask.array as da
import numpy as np
import pytest
from napari.layers import Image

from sam2_plugins.frames import FrameSourceError, open_frames
from sam2_plugins.napari_plugin.frame_axes import FrameAxes
from sam2_plugins.napari_plugin.prompts import FramePrompts, collect_prompts, create_prompt_layers


class CountingArray:
    """A lazy array that records every selection read from it."""

    def __init__(self, array: np.ndarray):
        self.array, self.shape, self.ndim, self.dtype = array, array.shape, array.ndim, array.dtype
        self.reads: list[tuple] = []

    def __getitem__(self, selection):
        self.reads.append(selection)
        return self.array[selection]


def tzyx(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4096, (5, 3, 16, 20), dtype=np.uint16)


def test_frames_along_t_at_one_z_and_along_z_at_one_t_read_one_plane_each():
    data = CountingArray(tzyx())
    along_t = open_frames(data, axis=0, fixed={1: 2})
    assert len(along_t) == 5 and (along_t.height, along_t.width) == (16, 20)
    np.testing.assert_array_equal(along_t.raw(3), data.array[3, 2])
    along_z = open_frames(data, axis=1, fixed={0: 4})
    assert len(along_z) == 3
    np.testing.assert_array_equal(along_z.raw(1), data.array[4, 1])
    assert all(sum(isinstance(s, int) for s in selection) == 2 for selection in data.reads), "one plane per read"


def test_a_dask_4d_stack_is_never_computed_whole():
    data = da.from_array(tzyx(1), chunks=(1, 1, 16, 20))
    frames = FrameAxes.at(data.shape, 0, position=(0, 1.2, 0, 0)).open_frames(data)
    assert isinstance(frames.array, da.Array)
    np.testing.assert_array_equal(frames.raw(2), tzyx(1)[2, 1])
    assert frames[2].shape == (16, 20, 3) and frames[2].dtype == np.uint8


def test_fixed_indices_are_checked():
    with pytest.raises(FrameSourceError, match=r"index 7 of axis 1 is outside its 3 entries"):
        open_frames(tzyx(), axis=0, fixed={1: 7})
    with pytest.raises(FrameSourceError, match=r"expected \(T, H, W\) or \(T, H, W, C\) once the fixed axes"):
        open_frames(np.zeros((2, 2, 3, 4, 5), np.uint8), axis=0)


def test_frame_axes_pick_the_plane_fix_the_rest_and_view_the_labels():
    axes = FrameAxes.at((5, 3, 16, 20), 1, position=(3.6, 0, 7, 9))
    assert (axes.sequence, axes.fixed, axes.plane, axes.num_frames) == (1, ((0, 4),), (2, 3), 3)
    labels = np.zeros((5, 3, 16, 20), dtype=np.uint16)
    view = axes.frame_view(labels)
    assert view.shape == (3, 16, 20) and np.shares_memory(view, labels)
    view[2, 5, 6] = 9
    assert labels[4, 2, 5, 6] == 9 and np.count_nonzero(labels) == 1
    yxz = FrameAxes.at((16, 20, 6), 2)
    assert yxz.plane == (0, 1) and yxz.fixed == () and yxz.frame_view(np.zeros((16, 20, 6))).shape == (6, 16, 20)
    assert yxz.axis_letters() == "YXT" and axes.axis_letters() == "TZYX", "the image's layout, tracked along z"
    assert axes.axis_letters(("t", "z", "y", "x")) == "TZYX"


def test_points_off_the_fixed_index_belong_to_no_frame():
    axes = FrameAxes.at((5, 3, 16, 20), 0, position=(0, 1, 0, 0))
    frame, yx = axes.frame_of(np.array([3.2, 1.0, 4.5, 6.0]))
    assert frame == 3 and yx.tolist() == [4.5, 6.0]
    assert axes.frame_of(np.array([3.0, 2.0, 4.5, 6.0])) is None
    assert FrameAxes.from_metadata(axes.to_metadata(), (5, 3, 16, 20)) == axes


def test_a_2d_image_is_a_video_of_one_frame():
    image = np.random.default_rng(0).integers(0, 255, (12, 14, 3), dtype=np.uint8)
    axes = FrameAxes.at(image.shape[:2], 0)
    assert (axes.sequence, axes.num_frames, axes.plane, axes.axis_letters()) == (None, 1, (0, 1), "YX")
    frames = axes.open_frames(image)
    assert len(frames) == 1
    np.testing.assert_array_equal(frames[0], image)
    labels = np.zeros((12, 14), dtype=np.uint16)
    axes.frame_view(labels)[0, 3, 4] = 2
    assert labels[3, 4] == 2
    assert axes.frame_of(np.array([3.0, 4.0]))[0] == 0


def test_prompts_on_another_index_of_a_fixed_axis_are_not_this_sessions():
    image = Image(np.zeros((3, 4, 20, 24), dtype=np.uint16), name="tzyx")
    points, boxes = create_prompt_layers(image, obj_id=1)
    points.add([[1, 2, 5, 6], [1, 3, 7, 8]])  # frame 1 at z 2 (this session) and at z 3 (not)
    boxes.add_rectangles(np.array([[2, 3, 1, 1], [2, 3, 1, 9], [2, 3, 9, 9], [2, 3, 9, 1]]))
    prompts = collect_prompts(points, boxes, FrameAxes.at(image.data.shape, 0, position=(0, 2, 0, 0)))
    assert prompts == {(1, 1): FramePrompts(points=((6.0, 5.0),), labels=(1,))}
