"""finetune_sam2 through FiftyOne's operator executor on a real MongoDB: a synthetic SA-V import, seeded tiny
weights at 128 px, a few steps; the checkpoint loads strictly, the run is registered and apply_sam2 uses it."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import (  # noqa: F401
    execute,
    form_errors,
    fresh_dataset_name,
    import_synthetic_val,
    mongod,
    resolve_form,
)

import json

import pytest
import torch
from random_checkpoint import write_random_checkpoint

from sam2_plugins.fiftyone_plugin.finetune_sam2 import finetune_sam2
from sam2_plugins.fiftyone_plugin.forms import FINETUNE_METHOD
from sam2_plugins.fiftyone_plugin.sample_videos import sample_videos
from sam2_plugins.model import build_model

pytestmark = pytest.mark.fiftyone

MODEL = {"config": "sam2.1_hiera_t", "image_size": 128, "device": "cpu"}
TRAINING = {"steps": 2, "frames_per_clip": 3, "objects_per_clip": 2, "held_out_fraction": 0.34}
OPTIONS = {**MODEL, **TRAINING}


def test_sample_videos_read_the_imported_masklets(tmp_path, fresh_dataset_name):
    dataset = import_synthetic_val(tmp_path / "val", fresh_dataset_name, num_videos=2)
    videos = sample_videos(dataset, "ground_truth")
    assert [v.video_id for v in videos] == sorted(dataset.values("video_id"))
    video = videos[0]
    assert video.annotated_frames() == [0, 4, 8, 12, 16]  # SA-V val: 6 fps annotations of 24 fps frames
    first = video.first_frame(video.object_ids[0])
    mask = video.masks(first)[video.object_ids[0]]
    assert mask.shape == video.frame_size and mask.any()
    with video.frames() as frames:
        assert (frames.height, frames.width) == video.frame_size and len(frames) == 17


def test_finetune_writes_a_strict_checkpoint_a_run_and_feeds_apply_sam2(tmp_path, fresh_dataset_name):
    dataset = import_synthetic_val(tmp_path / "val", fresh_dataset_name, num_videos=3)
    source = write_random_checkpoint(tmp_path, image_size=128)
    out = tmp_path / "tuned.pt"
    result = execute("finetune_sam2", dataset=dataset, checkpoint=str(source), out=str(out), **MODEL, **TRAINING)

    # held out by video: one of three, scored before and after
    assert len(result["held_out_videos"]) == 1 and len(result["train_videos"]) == 2
    assert not set(result["held_out_videos"]) & set(result["train_videos"])
    assert 0 <= result["jf_before"] <= 100 and 0 <= result["jf_after"] <= 100
    # the official format, loading strictly; the weights moved
    tuned = torch.load(out, map_location="cpu", weights_only=True)
    assert set(tuned) == {"model"}
    build_model("sam2.1_hiera_t", image_size=128).load_state_dict(tuned["model"], strict=True)
    start = torch.load(source, map_location="cpu", weights_only=True)["model"]
    assert tuned["model"].keys() == start.keys()
    assert any(not torch.equal(tuned["model"][k], start[k]) for k in start)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["steps"] == 2 and sidecar["dataset"] == dataset.name
    assert not (tmp_path / "tuned.resume.pt").exists()

    # the registered run: config, loss curve, J&F before and after
    dataset.reload()
    assert dataset.list_runs(method=FINETUNE_METHOD) == ["finetune_sam2"]
    config = dataset.get_run_info("finetune_sam2").config
    assert config.checkpoint == str(out) and config.steps == 2 and config.held_out_videos == result["held_out_videos"]
    results = dataset.load_run_results("finetune_sam2")
    assert [record["step"] for record in results.loss] == [1, 2]
    assert results.jf_before == pytest.approx(result["jf_before"])
    assert results.jf_after == pytest.approx(result["jf_after"])

    # a second run under the same key needs overwrite
    assert "run_key" in form_errors("finetune_sam2", dataset, checkpoint=str(source), **MODEL, **TRAINING)

    # apply_sam2 offers the tuned checkpoint and runs with it
    offered = resolve_form("apply_sam2", dataset)["checkpoint"].view.choices
    assert {choice.value: choice.label for choice in offered}[str(out)] == "tuned: tuned.pt"
    predicted = execute("apply_sam2", dataset=dataset, checkpoint=str(out), pred_field="tuned", **MODEL)
    assert len(predicted["predicted"]) == 3
    assert dataset.count("frames.tuned.detections") > 0


class Killed(Exception):
    """Stands for a worker that died after training, before the checkpoint was written."""


def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, fresh_dataset_name):
    dataset = import_synthetic_val(tmp_path / "val", fresh_dataset_name, num_videos=3)
    source = str(write_random_checkpoint(tmp_path, image_size=128))
    whole = finetune_sam2(dataset, checkpoint=source, out=str(tmp_path / "whole.pt"), run_key="whole", **OPTIONS)

    def die_after_training(fraction: float, label: str) -> None:
        if label.startswith("held-out J&F after"):
            raise Killed

    out = tmp_path / "killed.pt"
    with pytest.raises(Killed):
        finetune_sam2(dataset, die_after_training, checkpoint=source, out=str(out), run_key="killed", **OPTIONS)
    assert (tmp_path / "killed.resume.pt").is_file() and not out.exists()
    assert "killed" not in dataset.list_runs()
    resumed = finetune_sam2(dataset, checkpoint=source, out=str(out), run_key="killed", **OPTIONS)
    assert resumed["resumed"] and not whole["resumed"]
    first = torch.load(tmp_path / "whole.pt", weights_only=True)["model"]
    second = torch.load(out, weights_only=True)["model"]
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert resumed["jf_after"] == pytest.approx(whole["jf_after"])
    assert len(dataset.load_run_results("killed").loss) == 2
