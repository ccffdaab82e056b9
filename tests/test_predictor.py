"""Video predictor behaviour beyond parity: batching, pruning, feature caching, hole filling, errors."""

import numpy as np
import pytest
import torch

from sam2_plugins.model import NO_OBJECT_SCORE, Sam2VideoPredictor, build_model, get_config
from sam2_plugins.model.postprocess import FILLED_HOLE_LOGIT, fill_holes

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


def test_pruned_memories_stay_bounded_and_do_not_change_a_single_pass(model, frames):
    predictor = Sam2VideoPredictor(model, fill_hole_area=8, device="cpu")
    full_session, full = _run(predictor, frames, {1: _mask(8, 10)})
    pruned_session, pruned = _run(predictor, frames, {1: _mask(8, 10)}, prune_memories=True)
    for frame_idx in full:
        torch.testing.assert_close(pruned[frame_idx], full[frame_idx], atol=0, rtol=0)
    bank = pruned_session._banks[1]
    assert len(bank.tracked) == bank.max_pointer_distance == 15
    assert sum(memory.spatial is not None for memory in bank.tracked.values()) == 6
    assert len(full_session._banks[1].tracked) == len(frames) - 1


def test_spatial_memories_behind_the_window_are_dropped_and_re_encoded_for_corrections(model, frames, monkeypatch):
    """Only the last 6 tracked frames keep spatial memories; a correction far behind re-encodes the ones it needs
    from their masks and gives what a session that kept every memory gives."""
    predictor = Sam2VideoPredictor(model, fill_hole_area=8, device="cpu")
    prompts = {1: _mask(8, 10), 2: _mask(30, 40)}
    lean, _ = _run(predictor, frames, prompts)
    assert all(sum(m.spatial is not None for m in bank.tracked.values()) == 6 for bank in lean._banks.values())
    with monkeypatch.context() as patch:
        patch.setattr(type(lean), "_drop_spatial_behind", lambda self, frame_idx, reverse: None)
        kept, _ = _run(predictor, frames, prompts)
    assert all(m.spatial is not None for bank in kept._banks.values() for m in bank.tracked.values())

    for session in (lean, kept):
        session.add_points(10, 1, [[24, 20]], [1])
    torch.testing.assert_close(lean.masks(10)[1], kept.masks(10)[1], atol=1e-4, rtol=0)
    assert sum(m.spatial is not None for m in lean._banks[1].tracked.values()) == 6 + 6  # frames 4-9 re-encoded
    for (frame_idx, _, lean_masks), (_, _, kept_masks) in zip(
        lean.propagate(start_frame=10, reverse=True), kept.propagate(start_frame=10, reverse=True)
    ):
        torch.testing.assert_close(lean_masks, kept_masks, atol=1e-4, rtol=0, msg=f"frame {frame_idx}")


def test_repropagation_reuses_cached_image_features(model, frames, monkeypatch):
    predictor = Sam2VideoPredictor(model, device="cpu")
    encoded = []
    original = model.encode_image
    monkeypatch.setattr(model, "encode_image", lambda image: encoded.append(1) or original(image))
    session, _ = _run(predictor, frames[:5], {1: _mask(8, 10)})
    assert len(encoded) == 5
    session.add_points(3, 1, [[20, 15]], [0])
    list(session.propagate(start_frame=3))
    assert len(encoded) == 5

    uncached, _ = _run(predictor, frames[:5], {1: _mask(8, 10)}, feature_cache_mb=0)
    list(uncached.propagate())
    assert len(encoded) == 5 + 5 + 4  # frame 0 is the one frame kept


def test_object_scores_gate_the_masks(model, frames):
    predictor = Sam2VideoPredictor(model, device="cpu")
    session, outputs = _run(predictor, frames[:6], {1: _mask(8, 10), 2: _mask(30, 40)})
    for frame_idx, masks in outputs.items():
        scores = session.object_scores(frame_idx)
        assert scores.shape == (2,)
        for score, mask in zip(scores, masks):
            assert score > 0 or bool((mask <= 0).all())
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


def test_encode_frame_leaves_only_the_decoder_for_a_first_click(model, frames, monkeypatch):
    session = Sam2VideoPredictor(model, device="cpu").init_video(frames[:5])
    encoded = []
    original = model.encode_image
    monkeypatch.setattr(model, "encode_image", lambda image: encoded.append(1) or original(image))
    session.encode_frame(3)
    assert len(encoded) == 1
    session.add_points(3, 1, [[20, 15]], [1])
    assert len(encoded) == 1
    with pytest.raises(IndexError, match="outside the video's 5 frames"):
        session.encode_frame(5)
