"""`ObjectPrompt`, `apply_prompts` and `propagate_prompted`: the one prompt record and how it reaches a session."""

import numpy as np
import pytest
import torch

from sam2_plugins.model import Sam2VideoPredictor, build_model
from sam2_plugins.prompt_simulation import simulate_clicks
from sam2_plugins.prompts import ObjectPrompt, apply_prompts, first_prompt_frames, propagate_prompted

HEIGHT, WIDTH = 48, 64


@pytest.fixture(scope="module")
def predictor() -> Sam2VideoPredictor:
    torch.manual_seed(0)
    network = build_model("sam2.1_hiera_t", image_size=128, apply_postprocessing=False)
    with torch.no_grad():
        network.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(1.0)
    return Sam2VideoPredictor(network, fill_hole_area=0, device="cpu")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    rng = np.random.default_rng(0)
    video = np.repeat(rng.integers(0, 255, (1, HEIGHT, WIDTH, 3), dtype=np.uint8), 8, axis=0)
    for t in range(len(video)):
        video[t, 8 + t : 24 + t, 10 + t : 30 + t] = (230, 30, 30)
        video[t, 30:44, 40 - t : 56 - t] = (30, 30, 230)
    return video


def _square(top: int, left: int, size: int = 14) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[top : top + size, left : left + size] = True
    return mask


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"points": [(1, 2)], "labels": []}, "1 points but 0 labels"),
        ({"points": [(1, 2)], "labels": [2]}, "must be 1 (positive) or 0 (negative)"),
        ({}, "holds nothing"),
        ({"box": (0, 0, 5)}, "a box is 4 numbers"),
        ({"mask": np.ones((2, 2), bool), "box": (0, 0, 1, 1)}, "a mask or clicks/a box, not both"),
        ({"points": [(1, 2)], "labels": [1], "simulated_clicks": 3}, "needs a ground-truth mask"),
        ({"mask": np.ones((2, 2), bool), "simulated_clicks": 2}, "one of (1, 3, 5) clicks"),
    ],
)
def test_a_malformed_prompt_names_the_object_frame_and_fix(options, message):
    with pytest.raises(ValueError, match="object 7 on frame 3") as caught:
        ObjectPrompt(3, 7, **options)
    assert message in str(caught.value)


def test_a_negative_frame_is_refused():
    with pytest.raises(ValueError, match="0-based frame index"):
        ObjectPrompt(-1, 1, points=[(0, 0)], labels=[1])


def test_prompts_compare_by_content_masks_included():
    mask = _square(2, 2)
    assert ObjectPrompt(0, 1, mask=mask) == ObjectPrompt(0, 1, mask=mask.copy())
    assert ObjectPrompt(0, 1, mask=mask) != ObjectPrompt(0, 1, mask=~mask)
    assert ObjectPrompt(0, 1, points=[[1, 2]], labels=[1]) == ObjectPrompt(0, 1, points=((1.0, 2.0),), labels=(1,))
    assert ObjectPrompt(0, 1, box=(0, 0, 4, 4)) != ObjectPrompt(0, 1, box=(0, 0, 4, 4), points=[(1, 1)], labels=[1])


def test_apply_prompts_gives_each_kind_to_the_session_as_its_own_call_would(predictor, frames):
    mask, box, clicks = _square(8, 10), (40, 30, 56, 44), ([(20.0, 15.0), (5.0, 5.0)], [1, 0])
    session = predictor.init_video(frames)
    masks = apply_prompts(
        session,
        [
            ObjectPrompt(0, 1, mask=mask),
            ObjectPrompt(0, 2, box=box),
            ObjectPrompt(2, 3, points=clicks[0], labels=clicks[1]),
        ],
    )
    reference = predictor.init_video(frames)
    reference.add_mask(0, 1, mask)
    expected_0 = reference.add_box(0, 2, box)
    expected_2 = reference.add_points(2, 3, *clicks)
    assert sorted(masks) == [0, 2]
    assert masks[0][0] == expected_0[0] == [1, 2] and torch.equal(masks[0][1], expected_0[1])
    assert torch.equal(masks[2][1], expected_2[1])


def test_simulated_clicks_are_the_paper_protocol_on_the_ground_truth(predictor, frames):
    gt = _square(9, 11, 15)
    session = predictor.init_video(frames)
    obj_ids, logits = apply_prompts(session, [ObjectPrompt(1, 5, mask=gt, simulated_clicks=3)])[1]
    reference = predictor.init_video(frames)

    def predict(points, labels):
        return (reference.add_points(1, 5, points, labels)[1][0] > 0).numpy()

    simulate_clicks(gt, 3, predict)
    assert obj_ids == [5] and torch.equal(logits, reference.masks(1)[1])


def test_each_object_is_tracked_from_its_first_prompt_as_if_alone(predictor, frames):
    """Meta's later-object protocol runs one session per object from its first frame; ours batches them."""
    prompts = [ObjectPrompt(0, 1, mask=_square(8, 10)), ObjectPrompt(3, 2, mask=_square(30, 37))]
    session = predictor.init_video(frames)
    apply_prompts(session, prompts)
    assert first_prompt_frames(prompts) == {1: 0, 2: 3}
    batched = {frame: dict(zip(ids, logits)) for frame, ids, logits in propagate_prompted(session, {1: 0, 2: 3})}
    assert sorted(batched) == list(range(len(frames)))
    assert all(list(batched[frame]) == [1] for frame in range(3))
    assert all(list(batched[frame]) == [1, 2] for frame in range(3, len(frames)))
    for prompt in prompts:
        alone = predictor.init_video(frames)
        apply_prompts(alone, [prompt])
        for frame, _, logits in alone.propagate(start_frame=prompt.frame):
            assert torch.allclose(batched[frame][prompt.obj_id], logits[0], atol=1e-4), (prompt.obj_id, frame)
            assert torch.equal(batched[frame][prompt.obj_id] > 0, logits[0] > 0)


def test_propagation_stops_at_the_last_frame_and_names_unknown_objects(predictor, frames):
    session = predictor.init_video(frames)
    apply_prompts(session, [ObjectPrompt(1, 1, box=(10, 8, 30, 24)), ObjectPrompt(6, 2, box=(40, 30, 56, 44))])
    assert [frame for frame, _, _ in propagate_prompted(session, {1: 1, 2: 6}, last=4)] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"objects \[9\] have no prompt"):
        next(propagate_prompted(session, {9: 0}))
