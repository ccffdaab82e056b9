"""Video predictor behaviour beyond parity: batching, pruning, feature caching, hole filling, errors."""

import copy

import numpy as np
import pytest
import torch

from sam2_plugins.model import NO_OBJECT_SCORE, Sam2VideoPredictor, build_model, get_config
from sam2_plugins.model.postprocess import FILLED_HOLE_LOGIT, fill_holes
from sam2_plugins.model.predictor import available_devices, pick_device

IMAGE_SIZE = 128
HEIGHT, WIDTH = 48, 64


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    network = build_model("sam2.1_hiera_t", image_size=IMAGE_SIZE)
    with torch.no_grad():
        network.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(1.0)
    return network


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    rng = np.random.default_rng(0)
    video = np.repeat(rng.integers(0, 255, (1, HEIGHT, WIDTH, 3), dtype=np.uint8), 20, axis=0)
    for t in range(len(video)):
        video[t, 8 + t : 24 + t, 10 + t : 30 + t] = (230, 30, 30)
    return video


def _mask(top: int, left: int, size: int = 14) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[top : top + size, left : left + size] = True
    return mask


def _run(predictor, frames, prompts, **session_options):
    """Propagate mask prompts {obj_id: mask} on frame 0; returns the session and {frame: logits}."""
    session = predictor.init_video(frames, **session_options)
    for obj_id, mask in prompts.items():
        session.add_mask(0, obj_id, mask)
    return session, {frame_idx: masks for frame_idx, _, masks in session.propagate()}


def test_fill_holes_fills_only_small_eight_connected_background_regions():
    logits = torch.full((1, 1, 12, 12), 5.0)
    logits[0, 0, 1:3, 1:3] = -1.0  # 4-pixel hole
    logits[0, 0, 6:9, 6:9] = -1.0  # 9-pixel hole
    logits[0, 0, 1, 8] = logits[0, 0, 2, 9] = -2.0  # two diagonal pixels: one 2-pixel region
    filled = fill_holes(logits, max_area=4)
    assert torch.all(filled[0, 0, 1:3, 1:3] == FILLED_HOLE_LOGIT)
    assert torch.all(filled[0, 0, 6:9, 6:9] == -1.0)
    assert filled[0, 0, 1, 8] == FILLED_HOLE_LOGIT and filled[0, 0, 2, 9] == FILLED_HOLE_LOGIT
    assert torch.equal(fill_holes(logits, max_area=0), logits)


def test_objects_tracked_together_match_objects_tracked_alone(model, frames):
    predictor = Sam2VideoPredictor(model, fill_hole_area=0, device="cpu")
    prompts = {7: _mask(8, 10), "cell": _mask(30, 40)}
    _, together = _run(predictor, frames[:6], prompts)
    for row, (obj_id, mask) in enumerate(prompts.items()):
        _, alone = _run(predictor, frames[:6], {obj_id: mask})
        for frame_idx, masks in alone.items():
            torch.testing.assert_close(together[frame_idx][row], masks[0], atol=1e-4, rtol=0)


class CountingFrames:
    """A frame sequence that counts the frames read from it (each read is one decode and one image encoding)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.reads = array, 0
        self.height, self.width = array.shape[1:3]

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, index: int) -> np.ndarray:
        self.reads += 1
        return self.array[index]


def _memory_growth(session, **options) -> list[int]:
    """Bytes the session's memories grow by at each propagated frame."""
    sizes = [session.memory_bytes() for _ in session.propagate(**options)]
    return np.diff(sizes).tolist()


def test_tracked_frames_keep_mask_and_pointer_only_and_pruning_keeps_memory_flat(model, frames):
    """Behind the 6-frame window a tracked frame keeps its low-resolution mask, pointer and score (its spatial memory
    is freed); with pruning, frames beyond pointer reach go too and a single pass gives the same masks."""
    predictor = Sam2VideoPredictor(model, fill_hole_area=0, device="cpu")
    mask_and_pointer = (IMAGE_SIZE // 4) ** 2 * 4 + model.hidden_dim * 4 + 4
    spatial = model.mem_dim * (IMAGE_SIZE // 16) ** 2 * 2  # bfloat16
    full = predictor.init_video(frames)
    full.add_mask(0, 1, _mask(8, 10))
    growth = _memory_growth(full)  # frame 0 is the prompt's; frames 1.. are tracked
    assert growth[:5] == [mask_and_pointer + spatial] * 5  # window filling: frames 1-6 keep spatial memories
    assert growth[6:] == [mask_and_pointer] * (len(frames) - 7)  # one spatial memory freed per frame

    pruned = predictor.init_video(frames, prune_memories=True)
    pruned.add_mask(0, 1, _mask(8, 10))
    growth = _memory_growth(pruned)
    assert growth[15:] == [0] * (len(frames) - 16)  # 15 tracked frames of pointers, then flat
    for frame_idx in range(len(frames)):
        pruned_masks, full_masks = pruned.masks(frame_idx)[1], full.masks(frame_idx)[1]
        if 0 < frame_idx < len(frames) - 15:  # beyond pointer reach of the last frame: forgotten
            assert bool((pruned_masks == NO_OBJECT_SCORE).all()), frame_idx
        else:
            torch.testing.assert_close(pruned_masks, full_masks, atol=0, rtol=0, msg=f"frame {frame_idx}")


def test_a_correction_behind_the_window_re_encodes_the_memories_it_needs(model, frames):
    """A correction on frame 10 after propagating to the end (frames 4-9 freed) gives what it gives right after
    propagating to frame 10 (frames 4-9 still encoded): the freed memories are re-encoded from their masks."""
    predictor = Sam2VideoPredictor(model, fill_hole_area=8, device="cpu")
    prompts = {1: _mask(8, 10), 2: _mask(30, 40)}
    to_end, _ = _run(predictor, frames, prompts)
    to_frame_10 = predictor.init_video(frames)
    for obj_id, mask in prompts.items():
        to_frame_10.add_mask(0, obj_id, mask)
    list(to_frame_10.propagate(max_frames=10))
    before = to_end.memory_bytes()
    for session in (to_end, to_frame_10):
        session.add_points(10, 1, [[24, 20]], [1])
    torch.testing.assert_close(to_end.masks(10)[1], to_frame_10.masks(10)[1], atol=1e-4, rtol=0)
    spatial = model.mem_dim * (IMAGE_SIZE // 16) ** 2 * 2
    correction = to_end.memory_bytes() - before
    assert correction - 6 * spatial == (IMAGE_SIZE // 4) ** 2 * 4 + model.hidden_dim * 4 + 4  # 4-9 re-encoded


def test_repropagation_reuses_cached_image_features(model, frames):
    predictor = Sam2VideoPredictor(model, device="cpu")
    cached_frames = CountingFrames(frames[:5])
    session, _ = _run(predictor, cached_frames, {1: _mask(8, 10)})
    assert cached_frames.reads == 5
    session.add_points(3, 1, [[20, 15]], [0])
    list(session.propagate(start_frame=3))
    assert cached_frames.reads == 5

    uncached_frames = CountingFrames(frames[:5])
    uncached, _ = _run(predictor, uncached_frames, {1: _mask(8, 10)}, feature_cache_mb=0)
    list(uncached.propagate())
    assert uncached_frames.reads == 5 + 4  # the last frame is the one frame kept


@pytest.mark.parametrize("object_score_bias", [-20.0, 20.0])
def test_object_scores_gate_the_masks(model, frames, object_score_bias):
    """An object scored absent (score <= 0) on a tracked frame gets an empty mask; one scored present keeps its."""
    gated = copy.deepcopy(model)
    with torch.no_grad():
        gated.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(object_score_bias)
    predictor = Sam2VideoPredictor(gated, device="cpu")
    session, outputs = _run(predictor, frames[:6], {1: _mask(8, 10), 2: _mask(30, 40)})
    for frame_idx, masks in outputs.items():
        scores = session.object_scores(frame_idx)
        assert scores.shape == (2,)
        if frame_idx == 0:  # the mask prompts' frame: present by definition
            assert bool((scores > 0).all())
        elif object_score_bias < 0:
            assert bool((scores < 0).all()), scores
            torch.testing.assert_close(masks, torch.full_like(masks, NO_OBJECT_SCORE))
        else:
            assert bool((scores > 0).all()), scores
            assert bool((masks > 0).flatten(1).any(1).all()), f"frame {frame_idx}: a visible object lost its mask"
    torch.testing.assert_close(session.masks(4)[1], outputs[4])


def test_objects_can_be_added_removed_and_reset(model, frames):
    predictor = Sam2VideoPredictor(model, device="cpu")
    session, _ = _run(predictor, frames[:4], {1: _mask(8, 10)})
    obj_ids, masks = session.add_box(2, 2, [40, 28, 56, 44])
    assert obj_ids == [1, 2] and masks.shape == (2, HEIGHT, WIDTH)
    assert [len(ids) for _, ids, _ in session.propagate()] == [2, 2, 2, 2]
    assert session.remove_object(1) == [2]
    assert session.masks(3)[1].shape == (1, HEIGHT, WIDTH)
    session.reset()
    assert session.obj_ids == []
    assert session.masks(0)[1].shape == (0, HEIGHT, WIDTH)
    empty = session.add_points(1, 5, [[10, 10]], [1])[1]
    assert empty.shape == (1, HEIGHT, WIDTH) and (session.masks(0)[1] == NO_OBJECT_SCORE).all()


def test_bad_input_gets_clear_errors(model, frames):
    session = Sam2VideoPredictor(model, device="cpu").init_video(frames[:3])
    with pytest.raises(RuntimeError, match="add points, a box or a mask"):
        next(session.propagate())
    with pytest.raises(ValueError, match=r"mask shape \(10, 10\).*\(48, 64\)"):
        session.add_mask(0, 1, np.ones((10, 10), bool))
    with pytest.raises(ValueError, match="2 points but 1 labels"):
        session.add_points(0, 1, [[1, 2], [3, 4]], [1])
    with pytest.raises(ValueError, match="box must be 4 numbers"):
        session.add_box(0, 1, [1, 2, 3])
    with pytest.raises(IndexError, match="outside the video's 3 frames"):
        session.add_points(3, 1, [[1, 2]], [1])
    with pytest.raises(ValueError, match="unknown SAM 2 config 'sam3'"):
        get_config("sam3")
    assert get_config("configs/sam2.1/sam2.1_hiera_b+.yaml").name == "sam2.1_hiera_b+"
    with pytest.raises(ValueError, match="multiple of 32"):
        build_model("sam2.1_hiera_t", image_size=400)


def test_bad_prompts_are_clear_value_errors_and_change_nothing(model, frames):
    session = Sam2VideoPredictor(model, device="cpu").init_video(frames[:3])
    bad_calls = [
        (lambda: session.add_points(0, 1, [[float("nan"), 2]], [1]), r"points \[\[nan, 2.0\]\] holds NaN or inf"),
        (lambda: session.add_points(0, 1, [[1, float("inf")]], [1]), "points .* holds NaN or infinite"),
        (lambda: session.add_points(0, 1, [], []), "points is empty: give at least one"),
        (lambda: session.add_points(0, 1, [[1, 2], [3, 4]], [1, 2]), r"labels \[1, 2\] hold values other than 0 and 1"),
        (lambda: session.add_points(0, 1, [[1, 2]], [-1]), "label each point 1 .* or 0"),
        (lambda: session.add_box(0, 1, [30, 5, 10, 20]), r"box \[30.0, 5.0, 10.0, 20.0\] has its corners swapped"),
        (lambda: session.add_box(0, 1, [10, 20, 30, 5]), "top-left corner"),
        (lambda: session.add_box(0, 1, [0, 0, float("nan"), 4]), "box .* holds NaN"),
        (lambda: session.add_box(0, 1, [0, 0, 9, 9], [[1, 1]], [3]), "labels .* other than 0 and 1"),
        (lambda: session.add_mask(0, 1, _mask(8, 10).astype(np.float32)), "mask is torch.float32, not boolean"),
        (lambda: session.add_mask(0, 1, np.full((HEIGHT, WIDTH), np.nan)), "probabilities > 0.5"),
        (lambda: session.add_mask(0, 1, _mask(8, 10).astype(np.uint8) * 7), "values other than 0 and 1"),
    ]
    for call, message in bad_calls:
        with pytest.raises(ValueError, match=message):
            call()
    assert session.obj_ids == []  # nothing half-added
    session.add_mask(0, 1, _mask(8, 10).astype(np.uint8))  # 0/1 integers are a mask
    session.add_box(0, 2, [10, 5, 10, 20], [], [])  # a box without clicks
    assert session.obj_ids == [1, 2]


def test_a_new_object_while_propagating_is_a_clear_error(model, frames):
    session = Sam2VideoPredictor(model, device="cpu").init_video(frames[:4])
    session.add_mask(0, 1, _mask(8, 10))
    propagation = session.propagate()
    next(propagation)
    with pytest.raises(RuntimeError, match="object 2 is new while propagate\\(\\) is running: add it after"):
        session.add_mask(1, 2, _mask(30, 40))
    assert session.obj_ids == [1]
    assert [frame_idx for frame_idx, _, _ in propagation] == [1, 2, 3]
    obj_ids, masks = session.add_mask(1, 2, _mask(30, 40))  # once the propagation has ended
    assert obj_ids == [1, 2] and masks.shape == (2, HEIGHT, WIDTH)
    assert [obj_ids for _, obj_ids, _ in session.propagate()] == [[1, 2]] * 4


def _correct_and_propagate_both_ways(session, **options) -> list[tuple]:
    """A negative click on object 1 at frame 10, then propagation forward and backward from there."""
    session.add_points(10, 1, [[24, 20]], [0])
    return [*session.propagate(start_frame=10, **options), *session.propagate(start_frame=10, reverse=True, **options)]


def test_propagating_selected_objects_re_tracks_them_and_leaves_the_others(model, frames):
    """After a correction on object 1, propagating object 1 only leaves object 2's masks bit-identical on every frame
    and gives object 1 what a session holding only object 1 gives; re-tracking every object would move object 2."""
    predictor = Sam2VideoPredictor(model, fill_hole_area=8, device="cpu")
    prompts = {1: _mask(8, 10), 2: _mask(30, 40)}
    selected, _ = _run(predictor, frames, prompts)
    everything, _ = _run(predictor, frames, prompts)
    alone, _ = _run(predictor, frames, {1: prompts[1]})
    before = [selected.masks(frame_idx)[1][1].clone() for frame_idx in range(len(frames))]

    outputs = _correct_and_propagate_both_ways(selected, obj_ids=[1])
    expected = _correct_and_propagate_both_ways(alone)
    assert [(frame_idx, obj_ids) for frame_idx, obj_ids, _ in outputs] == [(t, [1]) for t, _, _ in expected]
    for (frame_idx, _, masks), (_, _, alone_masks) in zip(outputs, expected):
        torch.testing.assert_close(masks, alone_masks, atol=1e-4, rtol=0, msg=f"frame {frame_idx}")
    _correct_and_propagate_both_ways(everything)
    moved = 0
    for frame_idx in range(len(frames)):
        obj_ids, masks = selected.masks(frame_idx)
        assert obj_ids == [1, 2]
        assert torch.equal(masks[1], before[frame_idx]), f"object 2 changed on frame {frame_idx}"
        torch.testing.assert_close(masks[:1], alone.masks(frame_idx)[1], atol=1e-4, rtol=0)
        moved += not torch.equal(everything.masks(frame_idx)[1][1], before[frame_idx])
    assert moved > 0, "re-tracking every object moves object 2, so the check above can fail"


def test_propagating_unknown_objects_is_a_clear_error(model, frames):
    session = Sam2VideoPredictor(model, device="cpu").init_video(frames[:4])
    session.add_mask(0, 1, _mask(8, 10))
    with pytest.raises(ValueError, match=r"obj_ids \[1, 5\] must name objects of this session; unknown: \[5\]"):
        next(session.propagate(obj_ids=[1, 5]))
    with pytest.raises(ValueError, match=r"obj_ids \[\] must name objects"):
        next(session.propagate(obj_ids=[]))
    assert session.masks(1)[1].eq(NO_OBJECT_SCORE).all(), "nothing was tracked"


def test_from_checkpoint_infers_the_config_and_postprocessing(model, tmp_path):
    checkpoint = tmp_path / "random.pt"
    torch.save({"model": model.state_dict()}, checkpoint)
    predictor = Sam2VideoPredictor.from_checkpoint(checkpoint, image_size=IMAGE_SIZE, device="cpu")
    assert predictor.model.obj_ptr_tpos_proj is not None and predictor.fill_hole_area == 8
    plain = Sam2VideoPredictor.from_checkpoint(
        checkpoint, image_size=IMAGE_SIZE, apply_postprocessing=False, device="cpu"
    )
    assert plain.fill_hole_area == 0 and not plain.model.binarize_click_masks_for_memory


def test_bfloat16_autocast_tracks_like_float32(model, frames):
    """The autocast path CUDA takes by default, run on CPU: masks stay within IoU 0.99 of float32."""
    prompts = {1: _mask(8, 10), 2: _mask(30, 40)}
    _, exact = _run(Sam2VideoPredictor(model, fill_hole_area=0, device="cpu"), frames[:6], prompts)
    fast_predictor = Sam2VideoPredictor(model, fill_hole_area=0, device="cpu", precision="bfloat16")
    assert fast_predictor.autocast_dtype == torch.bfloat16
    _, fast = _run(fast_predictor, frames[:6], prompts)
    assert sorted(fast) == sorted(exact) == list(range(6))
    for frame_idx, logits in exact.items():
        assert fast[frame_idx].dtype == torch.float32
        ours, theirs = fast[frame_idx] > 0, logits > 0
        iou = (ours & theirs).sum((1, 2)) / (ours | theirs).sum((1, 2)).clamp(min=1)
        assert torch.all(iou >= 0.99), (frame_idx, iou)
    assert any(not torch.equal(fast[i], exact[i]) for i in exact), "bfloat16 autocast was not in effect"
    with pytest.raises(ValueError, match="precision must be"):
        Sam2VideoPredictor(model, device="cpu", precision="float16")


def test_encode_frame_leaves_only_the_decoder_for_a_first_click(model, frames):
    counted = CountingFrames(frames[:5])
    session = Sam2VideoPredictor(model, device="cpu").init_video(counted)
    session.encode_frame(3)
    assert counted.reads == 1
    session.add_points(3, 1, [[20, 15]], [1])
    assert counted.reads == 1
    with pytest.raises(IndexError, match="outside the video's 5 frames"):
        session.encode_frame(5)


def test_a_device_the_machine_lacks_is_a_clear_error():
    assert pick_device("auto").type == available_devices()[0] and pick_device("cpu").type == "cpu"
    missing = next(name for name in ("cuda", "mps") if name not in available_devices())
    with pytest.raises(ValueError, match=f"device '{missing}' is not available.*runs on .*cpu"):
        pick_device(missing)
