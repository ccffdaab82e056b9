"""finetune_sam2 through FiftyOne's operator executor on a real MongoDB: a synthetic SA-V import, seeded tiny
weights at 128 px, a few steps; the checkpoint loads strictly, the run is registered and apply_sam2 uses it."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import (  # noqa: F401
    execute,
    form_errors,
    fresh_dataset_name,
    import_synthetic_val,
    mongod,
    panel_event,
    resolve_form,
)

import json
from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest
import torch
from PIL import Image
from random_checkpoint import write_random_checkpoint

from sam2_plugins.fiftyone_plugin.finetune_sam2 import finetune_sam2
from sam2_plugins.fiftyone_plugin.forms import FINETUNE_METHOD
from sam2_plugins.fiftyone_plugin.jf_charts import score_text
from sam2_plugins.fiftyone_plugin.jf_panel import JFPanel
from sam2_plugins.fiftyone_plugin.masks import mask_to_detection
from sam2_plugins.fiftyone_plugin.sample_images import image_gt_error, sample_images
from sam2_plugins.fiftyone_plugin.sample_videos import sample_videos
from sam2_plugins.model import build_model
from sam2_plugins.model.predictor import load_model
from sam2_plugins.sample_data import ellipse
from sam2_plugins.training.clips import ClipSampler
from sam2_plugins.training.held_out_iou import held_out_iou

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


HEIGHT, WIDTH = 96, 128
IMAGE_OPTIONS = {**MODEL, "steps": 2, "objects_per_clip": 2, "held_out_fraction": 0.25}


def _drawn_images(folder, count: int = 4) -> list[tuple[str, list[np.ndarray]]]:
    """``count`` 96x128 PNGs of textured background with two or three coloured ellipses; each with its masks."""
    rng = np.random.default_rng(3)
    drawn = []
    for number in range(count):
        image = rng.integers(0, 90, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        masks = []
        for colour in rng.permutation([(230, 40, 40), (40, 220, 60), (50, 80, 240)])[: 2 + number % 2]:
            centre = rng.uniform((20, 24), (HEIGHT - 20, WIDTH - 24))
            mask = ellipse(HEIGHT, WIDTH, centre, rng.uniform(8, 18, 2)) & ~np.any(masks, axis=0)
            image[mask] = colour
            masks.append(mask)
        path = folder / f"shapes{number}.png"
        Image.fromarray(image).save(path)
        drawn.append((str(path), masks))
    return drawn


def image_dataset(folder, name: str) -> tuple[fo.Dataset, list[tuple[str, list[np.ndarray]]]]:
    """An image dataset of the drawn images: ``ground_truth`` Detections with instance masks (plus a box without
    one) and ``segmentation`` label maps of the same objects."""
    drawn = _drawn_images(folder)
    dataset = fo.Dataset(name)
    for path, masks in drawn:
        detections = [mask_to_detection(mask, label="shape") for mask in masks]
        detections.append(fo.Detection(label="box only", bounding_box=[0.1, 0.1, 0.2, 0.2]))
        labels = np.zeros((HEIGHT, WIDTH), np.uint8)
        for value, mask in enumerate(masks, start=1):
            labels[mask] = value
        dataset.add_sample(
            fo.Sample(
                filepath=path,
                ground_truth=fo.Detections(detections=detections),
                segmentation=fo.Segmentation(mask=labels),
            )
        )
    dataset.compute_metadata()
    return dataset, drawn


def test_sample_images_are_one_frame_videos_of_the_instance_masks(tmp_path, fresh_dataset_name):
    dataset, drawn = image_dataset(tmp_path, fresh_dataset_name)
    for field in ("ground_truth", "segmentation"):
        images = sample_images(dataset, field)
        assert [image.video_id for image in images] == [Path(path).name for path, _ in drawn]
        for image, (path, masks) in zip(images, drawn):
            assert image.frame_size == (HEIGHT, WIDTH) and image.annotated_frames() == [0]
            assert len(image.object_ids) == len(masks)  # the box without a mask is no object
            got = image.masks(0)
            assert all(np.array_equal(got[obj], mask) for obj, mask in zip(image.object_ids, masks))
            assert image.first_frame(image.object_ids[0]) == 0
            with image.frames() as frames:
                assert len(frames) == 1 and np.array_equal(frames[0], np.array(Image.open(path)))
    # the library samples them as clips of one frame, as Meta samples SA-1B images
    clip = ClipSampler(sample_images(dataset, "ground_truth"), 128, frames_per_clip=1, objects_per_clip=2).sample()
    assert clip.images.shape == (1, 3, 128, 128) and clip.masks.shape[:2] == (1, 2) and clip.masks.any()
    assert "'nothing' is not a field of image dataset" in image_gt_error(dataset, "nothing")
    assert "'filepath' holds no Detections or Segmentation" in image_gt_error(dataset, "filepath")
    assert image_gt_error(dataset, "ground_truth") is None


def test_finetune_on_images_writes_a_strict_checkpoint_and_a_run_scored_by_iou(tmp_path, fresh_dataset_name):
    dataset, _ = image_dataset(tmp_path, fresh_dataset_name)
    source = write_random_checkpoint(tmp_path, image_size=128)
    out = tmp_path / "tuned_images.pt"
    options = {"checkpoint": str(source), "out": str(out), "run_key": "images", **IMAGE_OPTIONS}
    result = execute("finetune_sam2", dataset=dataset, **options)

    assert len(result["held_out_images"]) == 1 and len(result["train_images"]) == 3
    assert not set(result["held_out_images"]) & set(result["train_images"])
    assert 0 <= result["iou_before"] <= 100 and 0 <= result["iou_after"] <= 100
    assert result["iou_gain"] == pytest.approx(result["iou_after"] - result["iou_before"])
    assert "jf_before" not in result and "held-out IoU" in result["summary"]
    tuned = torch.load(out, map_location="cpu", weights_only=True)
    assert set(tuned) == {"model"}
    build_model("sam2.1_hiera_t", image_size=128).load_state_dict(tuned["model"], strict=True)
    start = torch.load(source, map_location="cpu", weights_only=True)["model"]
    assert any(not torch.equal(tuned["model"][k], start[k]) for k in start)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["media_type"] == "image" and sidecar["settings"]["frames_per_clip"] == 1

    # iou_after is the score of the weights written: the held-out image scored again from the checkpoint
    held_out = [
        image for image in sample_images(dataset, "ground_truth") if image.video_id in result["held_out_images"]
    ]
    model = load_model(str(out), "sam2.1_hiera_t", image_size=128, apply_postprocessing=False)
    assert held_out_iou(model, held_out, device="cpu") == pytest.approx(result["iou_after"], abs=1e-6)

    dataset.reload()
    config = dataset.get_run_info("images").config
    assert config.method == FINETUNE_METHOD and config.media_type == "image" and config.frames_per_clip == 1
    assert config.held_out_images == result["held_out_images"] and config.checkpoint == str(out)
    results = dataset.load_run_results("images")
    assert [record["step"] for record in results.loss] == [1, 2]
    assert results.iou_before == pytest.approx(result["iou_before"])
    assert results.iou_after == pytest.approx(result["iou_after"])

    # a Segmentation field trains too; the form offers both fields and hides frames per clip
    form = resolve_form("finetune_sam2", dataset, gt_field="segmentation", run_key="seg")
    assert "frames_per_clip" not in form and {c.value for c in form["gt_field"].view.choices} == {
        "ground_truth",
        "segmentation",
    }
    assert not form["gt_field"].invalid
    assert "not a field" in form_errors("finetune_sam2", dataset, gt_field="nothing")["gt_field"]
    segmented = finetune_sam2(
        dataset, **{**options, "gt_field": "segmentation", "out": str(tmp_path / "seg.pt"), "run_key": "seg"}
    )
    assert segmented["held_out_images"] == result["held_out_images"] and "iou_after" in segmented


def test_finetune_refuses_patches_frames_clips_and_mixed_views(tmp_path, fresh_dataset_name):
    images, _ = image_dataset(tmp_path, fresh_dataset_name)
    source = str(write_random_checkpoint(tmp_path, image_size=128))
    options = {"checkpoint": source, **IMAGE_OPTIONS}
    with pytest.raises(ValueError, match="this is a patches view .* target the image dataset, or a view of its"):
        finetune_sam2(images.to_patches("ground_truth"), **options)

    videos = import_synthetic_val(tmp_path / "val", f"{fresh_dataset_name}-videos", num_videos=2)
    with pytest.raises(ValueError, match="this is a frames view"):
        finetune_sam2(videos.to_frames(sample_frames=False), **options)
    with pytest.raises(ValueError, match="this is a clips view"):
        finetune_sam2(videos.to_clips("frames.ground_truth"), **options)

    grouped = fo.Dataset(f"{fresh_dataset_name}-grouped")
    grouped.add_group_field("group", default="image")
    for image, video in zip(images, videos):
        group = fo.Group()
        grouped.add_samples(
            [
                fo.Sample(filepath=image.filepath, ground_truth=image.ground_truth, group=group.element("image")),
                fo.Sample(filepath=video.filepath, group=group.element("video")),
            ]
        )
    mixing = "trains on images or on videos, one kind at a time; this is a {} of dataset"
    with pytest.raises(ValueError, match=mixing.format("grouped dataset")):
        finetune_sam2(grouped, **options)
    with pytest.raises(ValueError, match=mixing.format("view mixing images and videos")):
        finetune_sam2(grouped.select_group_slices(_allow_mixed=True), **options)
    assert mixing.format("grouped dataset") in resolve_form("finetune_sam2", grouped)["view_error"].view.label
    assert not grouped.list_runs()
    # what the message says to do works: the image slices train (their metadata computed on the way)
    slices = grouped.select_group_slices(media_type="image")
    tuned = finetune_sam2(slices, out=str(tmp_path / "slices.pt"), **{**options, "steps": 1})
    assert len(tuned["train_images"]) == 1 and len(tuned["held_out_images"]) == 1 and "iou_after" in tuned
    assert grouped.list_runs() == ["finetune_sam2"]


def test_the_panel_shows_each_fine_tuning_run_of_the_dataset(tmp_path, fresh_dataset_name):
    dataset, _ = image_dataset(tmp_path, fresh_dataset_name)
    panel, state = JFPanel(), {}
    ctx = panel_event(dataset, panel.on_load, state)
    rendered = panel.render(ctx).type.properties
    assert state["finetune_key"] is None and "finetune_key" not in rendered
    assert "`finetune_sam2`" in rendered["finetune_empty"].default  # the one-line hint names the operator

    source = str(write_random_checkpoint(tmp_path, image_size=128))
    first = finetune_sam2(dataset, checkpoint=source, out=str(tmp_path / "first.pt"), run_key="first", **IMAGE_OPTIONS)
    options = {**IMAGE_OPTIONS, "steps": 3, "held_out_fraction": 0, "freeze_image_encoder": False, "lr": 1e-4}
    finetune_sam2(dataset, checkpoint=source, out=str(tmp_path / "second.pt"), run_key="second", **options)

    # the newest run first: nothing held out, three steps, the image encoder trained
    ctx = panel_event(dataset, panel.on_load, state)
    rendered = panel.render(ctx).type.properties
    assert state["finetune_key"] == "second" and rendered["finetune_key"].type.values == ["second", "first"]
    summary = state["finetune_summary"]
    assert f"**Tuned checkpoint** `{tmp_path / 'second.pt'}`" in summary and "**Held-out score**: none" in summary
    assert "**Steps** 3 · **image size** 128 px · **learning rate** 0.0001" in summary
    assert "**Frozen** none" in summary and "**Trained on** 4 images: `shapes0.png`, `shapes1.png`" in summary
    loss = ctx.panel.data._data["loss"]
    assert loss[0]["name"] == "loss" and loss[0]["x"] == [1, 2, 3]
    assert loss[0]["y"] == [record["loss"] for record in dataset.load_run_results("second").loss]
    assert {trace["name"] for trace in loss[1:]} >= {"loss_mask", "loss_dice", "loss_iou", "loss_class"}
    assert (
        rendered["loss"].view.layout["xaxis"]["range"] == [0.5, 3.5]
        and rendered["loss"].view.layout["xaxis"]["dtick"] == 1
    )

    # picking the other run shows its config, its held-out IoU before and after, and its loss curve
    ctx = panel_event(dataset, panel.on_change_finetune_key, state, value="first")
    summary = state["finetune_summary"]
    before, after = score_text(first["iou_before"]), score_text(first["iou_after"])
    gain = f"{first['iou_after'] - first['iou_before'] + 0.0:+.1f}"
    assert f"**Held-out IoU (one click per object)** {before} before → **{after}** after (gain {gain})" in summary
    assert f"**Held out** 1 image: `{first['held_out_images'][0]}`" in summary
    assert f"**Source checkpoint** `{source}` (sam2.1_hiera_t)" in summary and "**Frozen** image encoder" in summary
    assert "**clips** 1 frame (each image a clip), up to 2 objects" in summary
    assert ctx.panel.data._data["loss"][0]["x"] == [1, 2]
