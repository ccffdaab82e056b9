"""Automatic masklets: seeding, reseeding with a generator whose output is fixed per frame, objects that end, and
the SA-V auto JSON and PNG writers read back by the library's readers."""

import copy

import numpy as np
import pytest
import torch

from sam2_plugins.auto_masklets import auto_masklets
from sam2_plugins.datasets.sav_train import read_masklet_json
from sam2_plugins.frames import frame_name
from sam2_plugins.masks import read_binary_mask_png
from sam2_plugins.model import Sam2VideoPredictor, build_model
from sam2_plugins.sav_masklets import visibility_changes, write_auto_masklet_json, write_auto_masklet_pngs

IMAGE_SIZE = 128
NUM_FRAMES, HEIGHT, WIDTH = 10, 48, 64


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    network = build_model("sam2.1_hiera_t", image_size=IMAGE_SIZE)
    with torch.no_grad():  # objects present on most frames, so that tracked masks are not empty
        network.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(1.0)
    return network


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    rng = np.random.default_rng(0)
    video = np.repeat(rng.integers(0, 255, (1, HEIGHT, WIDTH, 3), dtype=np.uint8), NUM_FRAMES, axis=0)
    for t in range(NUM_FRAMES):
        video[t, 8 + t : 24 + t, 10 + t : 30 + t] = (230, 30, 30)
    return video


def _box_mask(top: int, left: int, height: int, width: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[top : top + height, left : left + width] = True
    return mask


def _record(mask: np.ndarray, predicted_iou: float, stability_score: float) -> dict:
    """A record as Meta's generator makes them (binary_mask output mode)."""
    rows, cols = np.nonzero(mask)
    return {
        "segmentation": mask,
        "area": int(mask.sum()),
        "bbox": [int(cols.min()), int(rows.min()), int(np.ptp(cols)) + 1, int(np.ptp(rows)) + 1],
        "predicted_iou": predicted_iou,
        "point_coords": [[float(cols.mean()), float(rows.mean())]],
        "stability_score": stability_score,
        "crop_box": [0, 0, WIDTH, HEIGHT],
    }


class FixedGenerator:
    """A mask generator whose records are fixed per frame; it notes the frames it was run on."""

    def __init__(self, frames: np.ndarray, records: dict[int, list[dict]]) -> None:
        self.frames, self.records, self.calls = frames, records, []

    def generate(self, image: np.ndarray) -> list[dict]:
        frame_idx = next(t for t in range(len(self.frames)) if np.array_equal(self.frames[t], image))
        self.calls.append(frame_idx)
        return self.records.get(frame_idx, [])


def _run(tracker) -> dict[int, tuple[list[int], torch.Tensor]]:
    return {frame_idx: (obj_ids, logits) for frame_idx, obj_ids, logits in tracker}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def reseeded(model, frames):
    """Object 0 found on frame 0; on frame 4 the generator finds it again (IoU 1: not new), a part of it (covered:
    not new), a big object where it is thinnest (new there) and a small one (below min_new_area: not new).
    Random weights spread tracked masks over most of the frame, hence the high coverage threshold."""
    predictor = Sam2VideoPredictor(model, fill_hole_area=0, device="cpu")
    first = _box_mask(8, 10, 16, 20)
    plain = auto_masklets(predictor, FixedGenerator(frames, {0: [_record(first, 0.91, 0.97)]}), frames)
    alone = _run(plain)
    tracked_on_4 = (alone[4][1][0] > 0).numpy()
    assert 0 < tracked_on_4.mean() < 0.9, "object 0's tracked mask on frame 4 must mean something"
    corners = [(top, left) for top in range(HEIGHT - 12) for left in range(WIDTH - 14)]
    coverage = [tracked_on_4[top : top + 12, left : left + 14].mean() for top, left in corners]
    new = _box_mask(*corners[int(np.argmin(coverage))], 12, 14)
    assert min(coverage) < 0.8
    inside = _box_mask(*next(c for c in corners if tracked_on_4[c[0] : c[0] + 5, c[1] : c[1] + 5].all()), 5, 5)
    small = np.zeros((HEIGHT, WIDTH), bool)
    small[-3:, -3:] = True
    records = {
        0: [_record(first, 0.91, 0.97)],
        4: [_record(tracked_on_4, 0.88, 0.96), _record(inside, 0.9, 0.9), _record(new, 0.83, 0.94)]
        + [_record(small, 0.99, 0.99)],
        8: [_record(tracked_on_4, 0.88, 0.96)],
    }
    generator = FixedGenerator(frames, records)
    tracker = auto_masklets(predictor, generator, frames, reseed_every=4, new_object_coverage=0.9, min_new_area=20)
    return tracker, _run(tracker), alone, generator, new


def test_reseeding_adds_only_uncovered_objects_at_their_frame(reseeded):
    tracker, outputs, alone, generator, new = reseeded
    assert generator.calls == [0, 4, 8]
    assert sorted(outputs) == list(range(NUM_FRAMES))
    assert [outputs[t][0] for t in range(NUM_FRAMES)] == [[0]] * 4 + [[0, 1]] * 6
    assert [(m.obj_id, m.first_frame, m.predicted_iou) for m in tracker.masklets] == [(0, 0, 0.91), (1, 4, 0.83)]
    first, entered = tracker.masklets
    assert sorted(first.rles) == list(range(NUM_FRAMES)) and sorted(entered.rles) == list(range(4, NUM_FRAMES))
    assert _iou(entered.mask(4), new) > 0.8  # its mask prompt, through the model's resolution
    assert entered.stability_scores[4] == 0.94 and first.stability_scores[0] == 0.97  # the generator's
    for t in range(NUM_FRAMES):  # object 0 is tracked exactly as without reseeding
        torch.testing.assert_close(outputs[t][1][0], alone[t][1][0], atol=1e-4, rtol=0, msg=f"frame {t}")
        assert np.array_equal(first.mask(t), (outputs[t][1][0] > 0).numpy())
    assert first.frame_count == NUM_FRAMES and first.ended_frame is None
    visible = [first.mask(t).any() for t in range(NUM_FRAMES)]
    assert first.visibility_changes == visibility_changes(visible)


def test_objects_absent_for_end_after_absent_frames_stop(model, frames):
    """With object scores forced negative every tracked object is absent: each stops after 2 absent frames, and a
    reseed starts a new one on an empty session."""
    absent = copy.deepcopy(model)
    with torch.no_grad():
        absent.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(-20.0)
    predictor = Sam2VideoPredictor(absent, fill_hole_area=0, device="cpu")
    seed = [_record(_box_mask(8, 10, 16, 20), 0.9, 0.95)]
    generator = FixedGenerator(frames, {0: seed, 4: seed, 8: seed})
    tracker = auto_masklets(predictor, generator, frames, reseed_every=4, end_after_absent=2)
    outputs = _run(tracker)
    assert [outputs[t][0] for t in range(NUM_FRAMES)] == [[0], [0], [0], [], [1], [1], [1], [], [2], [2]]
    assert [(m.first_frame, m.ended_frame) for m in tracker.masklets] == [(0, 2), (4, 6), (8, None)]
    assert [sorted(m.rles) for m in tracker.masklets] == [[0, 1, 2], [4, 5, 6], [8, 9]]
    assert tracker.masklets[0].stability_scores == {0: 0.95, 1: None, 2: None}
    assert outputs[3][1].shape == (0, HEIGHT, WIDTH)


def test_auto_json_reads_back_exactly_with_the_sav_reader(reseeded, frames, tmp_path):
    tracker, _, _, _, _ = reseeded
    path = write_auto_masklet_json(
        tmp_path / "sav_000007_auto.json", tracker.masklets, "sav_000007", NUM_FRAMES, (HEIGHT, WIDTH), "Indoor"
    )
    read = read_masklet_json(path)
    assert (read.video_id, read.video_frame_count, read.video_height, read.video_width) == (
        "sav_000007",
        NUM_FRAMES,
        HEIGHT,
        WIDTH,
    )
    assert read.masklet_num == len(read.masklets) == 2
    for masklet, written in zip(read.masklets, tracker.masklets):
        assert masklet.masklet_type == "auto" and masklet.masklet_id == written.obj_id
        assert masklet.annotated_frames == [0, 4, 8]
        for k, frame in enumerate(masklet.annotated_frames):
            expected = written.mask(frame)
            assert np.array_equal(masklet.mask(k), np.zeros((HEIGHT, WIDTH), bool) if expected is None else expected)
            assert masklet.stability_scores[k] == written.stability_scores.get(frame)
        visible = [written.mask(frame) is not None and written.mask(frame).any() for frame in (0, 4, 8)]
        assert masklet.first_appeared_frame == visible.index(True)
        assert masklet.visibility_changes == visibility_changes(visible)
        assert masklet.frame_count == 3 and masklet.edited_frame_count == 0
    assert read.masklets[1].stability_scores[0] is None  # not yet found on frame 0
    assert read.masklets[1].stability_scores[1] == 0.94


def test_png_folders_hold_every_frame_of_every_masklet(reseeded, tmp_path):
    tracker, _, _, _, _ = reseeded
    folder = write_auto_masklet_pngs(tmp_path, tracker.masklets, "sav_000007", NUM_FRAMES, (HEIGHT, WIDTH))
    assert sorted(p.name for p in folder.iterdir()) == ["000", "001"]
    for masklet in tracker.masklets:
        for t in range(NUM_FRAMES):
            written = read_binary_mask_png(folder / f"{masklet.obj_id:03d}" / f"{frame_name(t)}.png")
            expected = masklet.mask(t)
            assert np.array_equal(written, np.zeros((HEIGHT, WIDTH), bool) if expected is None else expected)


def test_bad_arguments_are_clear_errors(model, frames):
    predictor = Sam2VideoPredictor(model, device="cpu")
    generator = FixedGenerator(frames, {})
    with pytest.raises(ValueError, match="reseed_every=0: give a number of frames >= 1"):
        auto_masklets(predictor, generator, frames, reseed_every=0)
    with pytest.raises(ValueError, match="end_after_absent=0"):
        auto_masklets(predictor, generator, frames, end_after_absent=0)
    with pytest.raises(IndexError, match="start_frame 10 is outside the video's 10 frames"):
        next(iter(auto_masklets(predictor, generator, frames, start_frame=10)))
