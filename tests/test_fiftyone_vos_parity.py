"""import_sav -> apply_sam2 (ground-truth masks) -> export_sav_predictions against Meta's ``vos_inference.py``.

Meta's script (../shared/reference/sam2_tools, run on CPU as its README says) and the FiftyOne route, on the same
SA-V val-layout videos and seeded random weights, with their default switches: the same PNG files and the same
masks. Objects visible on the first frame follow Meta's default run; an object entering later follows its
``--track_object_appearing_later_in_video`` run, which prompts each object on its first annotated frame.
"""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import execute, mongod  # noqa: F401

import importlib.util
import shutil
from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest
from PIL import Image
from test_predictor_parity import (
    IMAGE_SIZE,
    reference_memories_in_float32,  # noqa: F401  (autouse: Meta's CPU memories)
)
from test_predictor_parity import _predictors as reference_and_ours

from sam2_plugins.datasets.sav_eval import EVAL_ANNOTATIONS_FOLDER, EVAL_FRAMES_FOLDER
from sam2_plugins.fiftyone_plugin.apply_sam2 import ApplySam2Params
from sam2_plugins.sample_data import write_sav_val

pytestmark = [pytest.mark.fiftyone, pytest.mark.parity]

VOS_INFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "sam2_tools" / "vos_inference.py"
CONFIG = "sam2.1_hiera_t"


@pytest.fixture(scope="module")
def vos_inference():
    """Meta's script, imported as a module (its ``main`` builds a CUDA predictor; its functions take ours)."""
    if not VOS_INFERENCE.is_file():
        pytest.fail(f"{VOS_INFERENCE} is missing: the suite needs ../shared/reference beside the checkout")
    spec = importlib.util.spec_from_file_location("vos_inference", VOS_INFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference_and_checkpoint(tmp_path_factory):
    """Meta's predictor as ``vos_inference.py --per_obj_png_file`` builds it (post-processing off, masks may
    overlap) with seeded random weights, and the same weights as an official-format checkpoint."""
    folder = tmp_path_factory.mktemp("weights")
    reference, _ = reference_and_ours(CONFIG, apply_postprocessing=False, tmp_path=folder)
    return reference, str(folder / f"{CONFIG}.pt")


def _metas_run(run, reference, val_root: Path, video_id: str, out: Path) -> dict[str, np.ndarray]:
    """One of ``vos_inference.py``'s runs (``run``: its default or its later-object function) with
    ``--per_obj_png_file`` on ``video_id`` of an SA-V val root; its masks by file."""
    frames, annotations = val_root / EVAL_FRAMES_FOLDER, val_root / EVAL_ANNOTATIONS_FOLDER
    run(reference, str(frames), str(annotations), str(out), video_id, per_obj_png_file=True)
    return _masks(out)


def _masks(root: Path) -> dict[str, np.ndarray]:
    """Every PNG under ``root`` by its relative path, as a boolean mask."""
    return {str(path.relative_to(root)): np.asarray(Image.open(path)) > 0 for path in sorted(root.rglob("*.png"))}


def _our_route(val_root: Path, name: str, checkpoint: str, out: Path) -> dict[str, np.ndarray]:
    execute("import_sav", dataset_dir=str(val_root), dataset_name=name)
    dataset = fo.load_dataset(name)
    model = {"checkpoint": checkpoint, "config": CONFIG, "image_size": IMAGE_SIZE, "device": "cpu"}
    execute("apply_sam2", dataset=dataset, prompt="gt_masks", pred_field="sam2", **model)
    execute("export_sav_predictions", dataset=dataset, pred_field="sam2", output_dir=str(out))
    return _masks(out)


def _assert_same_files_and_masks(ours: dict[str, np.ndarray], metas: dict[str, np.ndarray]) -> None:
    assert sorted(ours) == sorted(metas)
    differing = [path for path in metas if not np.array_equal(ours[path], metas[path])]
    assert not differing, f"{len(differing)} of {len(metas)} masks differ, e.g. {differing[:5]}"
    assert sum(mask.any() for mask in metas.values()) > len(metas) // 2  # the masks compared are not empty


def test_objects_on_the_first_frame_give_metas_default_run(mongod, vos_inference, reference_and_checkpoint, tmp_path):
    reference, checkpoint = reference_and_checkpoint
    val_root = tmp_path / "sav_val"
    videos = write_sav_val(val_root, num_videos=1, num_frames=9, seed=300)
    video_id = videos[0].video_id
    shutil.rmtree(val_root / EVAL_ANNOTATIONS_FOLDER / video_id / "002")  # the object entering at frame 5
    metas = _metas_run(vos_inference.vos_inference, reference, val_root, video_id, tmp_path / "meta")
    ours = _our_route(val_root, "vos_parity_first_frame", checkpoint, tmp_path / "ours")
    assert {path.split("/")[1] for path in ours} == {"000", "001", "003"}
    _assert_same_files_and_masks(ours, metas)


def test_an_object_entering_later_gives_metas_later_object_run(
    mongod, vos_inference, reference_and_checkpoint, tmp_path
):
    reference, checkpoint = reference_and_checkpoint
    val_root = tmp_path / "sav_val"
    videos = write_sav_val(val_root, num_videos=1, num_frames=13, seed=301)
    video_id = videos[0].video_id
    later_run = vos_inference.vos_separate_inference_per_object
    metas = _metas_run(later_run, reference, val_root, video_id, tmp_path / "meta")
    ours = _our_route(val_root, "vos_parity_later_object", checkpoint, tmp_path / "ours")
    entering = [path for path in ours if path.startswith(f"{video_id}/002/")]
    assert not any(ours[path].any() for path in entering[:8])  # first annotated and prompted on frame 8
    assert ours[f"{video_id}/002/00008.png"].any()
    _assert_same_files_and_masks(ours, metas)


def test_post_processing_is_off_for_ground_truth_prompts_and_on_for_user_prompts_unless_asked():
    assert ApplySam2Params(prompt="gt_masks").apply_postprocessing is False
    assert ApplySam2Params(prompt="gt_clicks").model_spec().apply_postprocessing is False
    assert ApplySam2Params(prompt="user_boxes").apply_postprocessing is True
    assert ApplySam2Params(prompt="gt_boxes", apply_postprocessing=True).model_spec().apply_postprocessing is True
