"""TrackingSession on a real predictor session (random weights, no viewer): prompt edits reach the predictor."""

import numpy as np
import pytest
from random_checkpoint import CONFIG, IMAGE_SIZE, write_random_checkpoint

from sam2_plugins.frames import open_frames
from sam2_plugins.model import Sam2VideoPredictor
from sam2_plugins.napari_plugin.prompts import FramePrompts
from sam2_plugins.napari_plugin.tracking import TrackingSession
from sam2_plugins.sample_data import synthetic_cells

CLICK = FramePrompts(points=((20.0, 30.0),), labels=(1,))
CORRECTION = FramePrompts(points=((20.0, 30.0), (40.0, 10.0)), labels=(1, 0))
BOX = FramePrompts(points=((30.0, 30.0),), labels=(0,), box=(10.0, 12.0, 50.0, 44.0))


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Sam2VideoPredictor:
    path = write_random_checkpoint(tmp_path_factory.mktemp("checkpoint"), seed=1)
    return Sam2VideoPredictor.from_checkpoint(path, config=CONFIG, image_size=IMAGE_SIZE, device="cpu")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return synthetic_cells(n_frames=4, size=64, n_cells=2, seed=2)[0]


def tracking_session(predictor, frames) -> TrackingSession:
    return TrackingSession(predictor.init_video(open_frames(frames)), np.zeros(frames.shape, dtype=np.uint16))


def test_only_changed_prompts_are_sent_and_a_box_goes_with_its_clicks(predictor, frames):
    tracking = tracking_session(predictor, frames)
    assert tracking.sync_prompts({(1, 1): CLICK}) == {1}
    assert tracking.sync_prompts({(1, 1): CLICK}) == set()
    assert tracking.sync_prompts({(1, 1): CLICK, (3, 2): BOX}) == {3}

    direct = predictor.init_video(open_frames(frames))
    direct.add_points(1, 1, np.array(CLICK.points), np.array(CLICK.labels))
    obj_ids, masks = direct.add_box(3, 2, BOX.box, np.array(BOX.points), np.array(BOX.labels))
    assert obj_ids == [1, 2]
    np.testing.assert_array_equal(tracking.labels[3] == 2, masks[1].numpy() > 0)
    assert (tracking.labels[3] == 2).any()


def test_deleting_a_frames_prompts_replays_the_rest(predictor, frames):
    tracking = tracking_session(predictor, frames)
    tracking.sync_prompts({(1, 1): CLICK, (2, 1): CORRECTION})
    assert (tracking.labels[2] == 1).any()

    assert tracking.sync_prompts({(1, 1): CLICK}) == {1, 2}
    assert not (tracking.labels[2] == 1).any(), "the frame that lost its prompts loses the object"
    assert tracking.prompts == {(1, 1): CLICK}
    fresh = predictor.init_video(open_frames(frames))
    _, expected = fresh.add_points(1, 1, np.array(CLICK.points), np.array(CLICK.labels))
    np.testing.assert_array_equal(tracking.labels[1] == 1, expected[0].numpy() > 0)

    tracking.sync_prompts({})
    assert not (tracking.labels == 1).any() and tracking.session.obj_ids == []
