"""Our video predictor against Meta's `SAM2VideoPredictor` (sam2 1.1.0) on the same random weights and frames."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision_standin
from PIL import Image

from sam2_plugins.auto_masklets import auto_masklets
from sam2_plugins.frames import frame_name, open_frames
from sam2_plugins.model import Sam2AutomaticMaskGenerator, Sam2VideoPredictor
from sam2_plugins.model.frame_features import preprocess_frame

reference_build = pytest.importorskip("sam2.build_sam")
reference_attention = pytest.importorskip("sam2.modeling.memory_attention")
reference_misc = pytest.importorskip("sam2.utils.misc")
torchvision_standin.install()  # Meta's mask generator imports torchvision, whose PyPI wheel cannot load here
reference_generator = pytest.importorskip("sam2.automatic_mask_generator")

pytestmark = pytest.mark.parity

IMAGE_SIZE = 128
NUM_FRAMES, HEIGHT, WIDTH = 8, 72, 96
MIN_IOU = 0.99
LOGIT_TOLERANCE = 1e-3


@pytest.fixture(scope="module", autouse=True)
def reference_memories_in_float32():
    """On CPU the reference keeps memories in bfloat16 and fails in F.linear without object pointers."""
    original = reference_attention.MemoryAttention.forward

    def forward(self, curr, memory, curr_pos=None, memory_pos=None, num_obj_ptr_tokens=0):
        return original(self, curr, memory.float(), curr_pos, memory_pos.float(), num_obj_ptr_tokens)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reference_attention.MemoryAttention, "forward", forward)
        yield


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A JPEG folder (the reference's input) of two moving shapes, and its decoded frames (ours)."""
    folder = tmp_path_factory.mktemp("frames")
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    for t in range(NUM_FRAMES):
        image = np.stack([cols * 2, rows * 3, np.full_like(cols, 90)], axis=-1).astype(np.uint8)
        image[10 + 2 * t : 40 + 2 * t, 15 + 3 * t : 45 + 3 * t] = (220, 40, 40)
        image[40:65, 60 - 2 * t : 85 - 2 * t] = (40, 200, 60)
        Image.fromarray(image).save(folder / f"{frame_name(t)}.jpg", quality=95)
    paths = [folder / f"{frame_name(t)}.jpg" for t in range(NUM_FRAMES)]
    frames = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in paths])
    return folder, frames


def _predictors(config: str, apply_postprocessing: bool, tmp_path: Path):
    """The reference and ours, loaded from one seeded random checkpoint in the official format."""
    folder = "sam2.1" if config.startswith("sam2.1") else "sam2"
    overrides = [f"++model.image_size={IMAGE_SIZE}"]
    if apply_postprocessing:
        overrides.append("++model.fill_hole_area=0")  # the reference skips hole filling without its CUDA kernel
    torch.manual_seed(0)
    reference = reference_build.build_sam2_video_predictor(
        f"configs/{folder}/{config}.yaml",
        None,
        device="cpu",
        apply_postprocessing=apply_postprocessing,
        hydra_overrides_extra=overrides,
    )
    with torch.no_grad():  # objects present on most frames, so that the masks compared are not empty
        reference.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(1.0)
    checkpoint = tmp_path / f"{config}.pt"
    torch.save({"model": reference.state_dict()}, checkpoint)
    ours = Sam2VideoPredictor.from_checkpoint(
        checkpoint,
        config=config,
        image_size=IMAGE_SIZE,
        apply_postprocessing=apply_postprocessing,
        fill_hole_area=0,
        device="cpu",
    )
    return reference, ours


def _assert_same_masks(reference_masks: torch.Tensor, our_masks: torch.Tensor, where: str) -> None:
    """(N, 1, H, W) reference logits against our (N, H, W): IoU per object and logits."""
    expected = reference_masks[:, 0].float()
    assert our_masks.shape == expected.shape, where
    ours_fg, expected_fg = our_masks > 0, expected > 0
    union = (ours_fg | expected_fg).sum(dim=(1, 2))
    iou = torch.where(union > 0, (ours_fg & expected_fg).sum(dim=(1, 2)) / union.clamp(min=1), 1.0)
    assert bool((iou >= MIN_IOU).all()), f"{where}: IoU {iou.tolist()}"
    torch.testing.assert_close(our_masks, expected, atol=LOGIT_TOLERANCE, rtol=0, msg=where)


def _assert_same_propagation(reference, state, session, **options) -> int:
    """Propagate both the same way; returns how many frames had a non-trivial mask."""
    expected = {
        frame_idx: masks
        for frame_idx, _, masks in reference.propagate_in_video(
            state,
            start_frame_idx=options.get("start_frame"),
            reverse=options.get("reverse", False),
            max_frame_num_to_track=options.get("max_frames"),
        )
    }
    seen, informative = [], 0
    for frame_idx, obj_ids, masks in session.propagate(**options):
        assert obj_ids == state["obj_ids"]
        _assert_same_masks(expected[frame_idx], masks, f"frame {frame_idx}")
        informative += int(0.01 < (masks > 0).float().mean() < 0.99)
        seen.append(frame_idx)
    assert seen == list(expected)
    return informative


def test_frames_are_preprocessed_like_the_reference_loader(video):
    folder, frames = video
    expected, _, _ = reference_misc._load_img_as_tensor(str(folder / "00003.jpg"), IMAGE_SIZE)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    torch.testing.assert_close(preprocess_frame(frames[3], IMAGE_SIZE), (expected.float() - mean) / std, atol=0, rtol=0)


def test_mask_prompts_match_the_reference(video, tmp_path):
    """VOS protocol on the JPEG folder: masks on the first frame, an object entering later, one added after
    propagation."""
    folder, _ = video
    reference, ours = _predictors("sam2.1_hiera_t", apply_postprocessing=False, tmp_path=tmp_path)
    state, session = reference.init_state(str(folder)), ours.init_video(open_frames(folder))
    masks = {obj_id: np.zeros((HEIGHT, WIDTH), bool) for obj_id in (1, 2, 3, 4)}
    masks[1][10:40, 15:45] = True
    masks[2][40:65, 60:85] = True
    masks[3][5:30, 50:90] = True
    masks[4][45:70, 5:30] = True
    for frame_idx, obj_id in ((0, 1), (0, 2), (3, 3)):
        _, _, expected = reference.add_new_mask(state, frame_idx, obj_id, masks[obj_id])
        _, ours_now = session.add_mask(frame_idx, obj_id, masks[obj_id])
        _assert_same_masks(expected, ours_now, f"mask prompt of object {obj_id}")
    assert _assert_same_propagation(reference, state, session) > 0

    _, _, expected = reference.add_new_mask(state, 5, 4, masks[4])
    _, ours_now = session.add_mask(5, 4, masks[4])
    _assert_same_masks(expected, ours_now, "object added after propagation")
    _assert_same_propagation(reference, state, session, start_frame=2)


@pytest.mark.parametrize("config", ["sam2.1_hiera_t", "sam2_hiera_t"])
def test_clicks_box_correction_and_reverse_match_the_reference(video, tmp_path, config):
    folder, frames = video
    reference, ours = _predictors(config, apply_postprocessing=True, tmp_path=tmp_path)
    state, session = reference.init_state(str(folder)), ours.init_video(frames)

    _, _, expected = reference.add_new_points_or_box(state, 0, 1, points=[[30, 25]], labels=[1])
    _, ours_now = session.add_points(0, 1, [[30, 25]], [1])
    _assert_same_masks(expected, ours_now, "first click")
    _, _, expected = reference.add_new_points_or_box(state, 0, 1, points=[[40, 12]], labels=[0], clear_old_points=False)
    _, ours_now = session.add_points(0, 1, [[40, 12]], [0], clear_old=False)
    _assert_same_masks(expected, ours_now, "second click")
    _, _, expected = reference.add_new_points_or_box(state, 0, 2, box=[60, 40, 85, 65])
    _, ours_now = session.add_box(0, 2, [60, 40, 85, 65])
    _assert_same_masks(expected, ours_now, "box")
    assert _assert_same_propagation(reference, state, session) > 0

    _, _, expected = reference.add_new_points_or_box(state, 5, 2, points=[[70, 52], [50, 30]], labels=[1, 0])
    _, ours_now = session.add_points(5, 2, [[70, 52], [50, 30]], [1, 0])
    _assert_same_masks(expected, ours_now, "correction after propagation")
    _assert_same_propagation(reference, state, session, start_frame=5, reverse=True)
    _assert_same_propagation(reference, state, session, start_frame=5, max_frames=2)


def test_auto_masklets_match_metas_generator_then_metas_predictor(video, tmp_path):
    """Reseeding off: Meta's generator on the start frame (1024 px, its image predictor's only size), its masks as
    `add_new_mask` prompts of Meta's video predictor, against `auto_masklets` with our generator and predictor on
    the same weights."""
    folder, frames = video
    reference, ours = _predictors("sam2.1_hiera_t", apply_postprocessing=False, tmp_path=tmp_path)
    checkpoint = tmp_path / "sam2.1_hiera_t.pt"
    image_model = reference_build.build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu")
    image_model.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    # random weights give near-whole-frame masks that NMS would merge into one: keep them all
    options = {"points_per_side": 1, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0}
    their_generator = reference_generator.SAM2AutomaticMaskGenerator(image_model, **options)
    our_generator = Sam2AutomaticMaskGenerator.from_checkpoint(checkpoint, image_size=1024, device="cpu", **options)
    records = their_generator.generate(frames[0])
    assert len(records) >= 2, "too few generated masks to test batching"
    state = reference.init_state(str(folder))
    for obj_id, record in enumerate(records):
        reference.add_new_mask(state, 0, obj_id, record["segmentation"])
    expected = {frame_idx: masks for frame_idx, _, masks in reference.propagate_in_video(state)}

    tracker = auto_masklets(ours, our_generator, frames)
    seen = []
    for frame_idx, obj_ids, masks in tracker:
        assert obj_ids == list(range(len(records)))
        _assert_same_masks(expected[frame_idx], masks, f"frame {frame_idx}")
        seen.append(frame_idx)
    assert seen == list(expected)
    assert [masklet.predicted_iou for masklet in tracker.masklets] == pytest.approx(
        [record["predicted_iou"] for record in records], abs=1e-3
    )
