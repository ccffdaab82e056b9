"""Divisions on a real predictor session (random weights) and the divisions a tracking result suggests."""

import numpy as np
import pytest
from random_checkpoint import CONFIG, IMAGE_SIZE, write_random_checkpoint

from sam2_plugins.division import (
    Division,
    Divisions,
    Proposal,
    divide,
    propose_divisions,
    split_mask,
)
from sam2_plugins.frames import open_frames
from sam2_plugins.model import Sam2VideoPredictor
from sam2_plugins.prompts import ObjectPrompt
from sam2_plugins.sample_data import ellipse, synthetic_cells

SIZE = 64


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Sam2VideoPredictor:
    path = write_random_checkpoint(tmp_path_factory.mktemp("checkpoint"))
    return Sam2VideoPredictor.from_checkpoint(path, config=CONFIG, image_size=IMAGE_SIZE, device="cpu")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return synthetic_cells(n_frames=4, size=SIZE, n_cells=2, seed=3)[0]


def two_blobs(big=(20, 16), small=(44, 40)) -> np.ndarray:
    """A mask in three parts: a large disk, a smaller one and a speck."""
    mask = ellipse(SIZE, SIZE, big, (8, 8)) | ellipse(SIZE, SIZE, small, (5, 5))
    mask[60, 60] = True
    return mask


def test_split_mask_gives_the_two_largest_parts_larger_first():
    larger, smaller = split_mask(two_blobs())
    np.testing.assert_array_equal(larger, ellipse(SIZE, SIZE, (20, 16), (8, 8)))
    np.testing.assert_array_equal(smaller, ellipse(SIZE, SIZE, (44, 40), (5, 5)))
    with pytest.raises(ValueError, match="one piece"):
        split_mask(ellipse(SIZE, SIZE, (20, 16), (8, 8)))


def test_divide_prompts_the_daughters_with_the_split_and_hides_the_mother_from_then_on(predictor, frames):
    session = predictor.init_video(open_frames(frames))
    session.add_points(0, 1, np.array([[16.0, 20.0]]), np.array([1]))
    divisions = Divisions()
    division = divide(session, divisions, 2, 1, (7, 8), mother_mask=two_blobs())
    assert division == Division(2, 1, (7, 8)) and list(divisions) == [division]
    assert session.obj_ids == [1, 7, 8]

    twin = predictor.init_video(open_frames(frames))
    twin.add_points(0, 1, np.array([[16.0, 20.0]]), np.array([1]))
    larger, smaller = split_mask(two_blobs())
    twin.add_mask(2, 7, larger)
    twin.add_mask(2, 8, smaller)
    np.testing.assert_array_equal(session.masks(2)[1].numpy(), twin.masks(2)[1].numpy())

    assert [divisions.shown(1, t) for t in range(4)] == [True, True, False, False]
    assert [divisions.shown(7, t) for t in range(4)] == [False, False, True, True]
    assert divisions.parents() == {7: 1, 8: 1} and divisions.parent(1) == 0
    assert divisions.first_frame(8) == 2 and divisions.last_frame(1) == 1


def test_divide_with_the_daughters_clicks_and_box(predictor, frames):
    session = predictor.init_video(open_frames(frames))
    session.add_points(0, 1, np.array([[16.0, 20.0]]), np.array([1]))
    prompts = [ObjectPrompt(3, 4, points=((12.0, 18.0),), labels=(1,)), ObjectPrompt(3, 5, box=(30, 30, 50, 52))]
    divisions = Divisions()
    assert divide(session, divisions, 3, 1, (4, 5), prompts=prompts) == Division(3, 1, (4, 5))
    twin = predictor.init_video(open_frames(frames))
    twin.add_points(0, 1, np.array([[16.0, 20.0]]), np.array([1]))
    twin.add_points(3, 4, np.array([[12.0, 18.0]]), np.array([1]))
    twin.add_box(3, 5, (30, 30, 50, 52))
    np.testing.assert_array_equal(session.masks(3)[1].numpy(), twin.masks(3)[1].numpy())
    assert divisions.parents() == {4: 1, 5: 1}


def test_divide_errors_name_the_object_and_the_fix(predictor, frames):
    session = predictor.init_video(open_frames(frames))
    divisions = Divisions()
    with pytest.raises(ValueError, match="object 1 on frame 2: the mask is one piece.*prompt the two daughters"):
        divide(session, divisions, 2, 1, (2, 3), mother_mask=ellipse(SIZE, SIZE, (20, 16), (8, 8)))
    with pytest.raises(ValueError, match="daughter 2 of object 1 has no prompt"):
        divide(session, divisions, 2, 1, (2, 3), prompts=[ObjectPrompt(2, 3, mask=two_blobs())])
    with pytest.raises(ValueError, match="a prompt of object 3 on frame 1 is no prompt of a daughter"):
        divide(session, divisions, 2, 1, (2, 3), prompts=[ObjectPrompt(1, 3, mask=two_blobs())])
    assert not len(divisions) and session.obj_ids == [], "nothing recorded or prompted by a refused division"
    divide(session, divisions, 2, 1, (2, 3), mother_mask=two_blobs())
    with pytest.raises(ValueError, match="object 1 already divided on frame 2 into 2 and 3: undo"):
        divisions.add(Division(3, 1, (4, 5)))
    with pytest.raises(ValueError, match="object 3 is already a daughter of object 1"):
        divisions.add(Division(3, 9, (3, 4)))
    with pytest.raises(ValueError, match="object 2 starts on frame 2 .* only divide after that frame"):
        divisions.add(Division(2, 2, (4, 5)))
    with pytest.raises(ValueError, match="needs a frame before"):
        divisions.add(Division(0, 6, (4, 5)))
    assert divisions.pop() == Division(2, 1, (2, 3)) and not len(divisions)


def proposal_labels() -> np.ndarray:
    """Cell 1 splits on frame 3 and stays split; cell 2 is lost after frame 2 and cells 5, 6 appear inside it on
    frame 3 and 4; cell 3 splits for one frame only."""
    labels = np.zeros((6, SIZE, SIZE), np.uint16)
    for t in range(6):
        if t < 3:
            labels[t][ellipse(SIZE, SIZE, (14, 14), (8, 8))] = 1
            labels[t][ellipse(SIZE, SIZE, (46, 46), (10, 10))] = 2
        else:
            labels[t][ellipse(SIZE, SIZE, (8, 14), (4, 6))] = 1
            labels[t][ellipse(SIZE, SIZE, (20, 14), (4, 6))] = 1
            labels[t][ellipse(SIZE, SIZE, (42, 46), (4, 4))] = 5
            if t > 3:
                labels[t][ellipse(SIZE, SIZE, (52, 46), (4, 4))] = 6
        labels[t][ellipse(SIZE, SIZE, (14, 48), (6, 6))] = 3
    labels[2][14, 40:56] = 0  # cell 3 cut in two on frame 2 only
    return labels


def test_proposals_find_split_masks_and_new_cells_inside_a_lost_one():
    labels = proposal_labels()
    assert propose_divisions(labels, persist=3) == [Proposal(3, 1), Proposal(3, 2, (5, 6))]
    assert propose_divisions(labels, persist=4) == [Proposal(3, 2, (5, 6))], "cell 1 is split on 3 frames only"
    assert propose_divisions(labels, persist=1) == [Proposal(2, 3), Proposal(3, 1)], "cell 6 comes 2 frames late"
    decided = Divisions([Division(3, 2, (5, 6))])
    assert propose_divisions(labels, persist=3, divisions=decided) == [Proposal(3, 1)]
    assert Proposal(3, 2, (5, 6)).describe() == "frame 3: object 2 -> 5 + 6"
