"""Fine-tuning pieces against Meta's training code, and `sam2-plugins finetune` end to end: checkpoints that load
strictly in Meta's sam2 and ours, the sidecar, and a killed run resumed to the same weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from meta_training import import_meta_training
from PIL import Image
from random_checkpoint import write_random_checkpoint

import sam2_plugins
from sam2_plugins.cli import main
from sam2_plugins.model import build_model
from sam2_plugins.model.predictor import load_model
from sam2_plugins.sample_data import ellipse, write_davis, write_sav_train, write_sav_val
from sam2_plugins.training.checkpoints import resume_path
from sam2_plugins.training.optimizer import OptimizerRecipe, build_optimizer, trunk_layer_scale
from sam2_plugins.training.prompting import PromptRecipe, PromptSampler, uniform_error_click

sam2_utils = pytest.importorskip("sam2.modeling.sam2_utils")
reference_build = pytest.importorskip("sam2.build_sam")

CONFIG, IMAGE_SIZE = "sam2.1_hiera_t", 64


def _masks(count: int = 3, size: int = 64) -> torch.Tensor:
    """(O, 1, S, S) bool: ellipses, one of them empty (an object absent from the frame)."""
    masks = [ellipse(size, size, (20 + 8 * i, 30 - 5 * i), (9, 12)) for i in range(count - 1)]
    masks.append(np.zeros((size, size), bool))
    return torch.from_numpy(np.stack(masks))[:, None]


def test_clicks_and_boxes_are_meta_draws_for_the_same_seed() -> None:
    target = _masks()
    predicted = torch.roll(target, shifts=5, dims=-1)
    torch.manual_seed(7)
    ours = uniform_error_click(target, predicted)
    torch.manual_seed(7)
    meta = sam2_utils.sample_random_points_from_errors(target, predicted)
    assert torch.equal(ours[0], meta[0]) and torch.equal(ours[1], meta[1])
    assert set(ours[1][:2, 0].tolist()) <= {0, 1} and ours[1][2, 0] == 0  # an absent object: a negative click

    sampler = PromptSampler(PromptRecipe())
    torch.manual_seed(3)
    box = sampler._noisy_box(target)
    torch.manual_seed(3)
    meta_coords, meta_labels = sam2_utils.sample_box_points(target)
    torch.testing.assert_close(box.coords, meta_coords)
    assert torch.equal(box.labels, meta_labels)


def test_layer_decay_and_schedule_are_metas() -> None:
    training = import_meta_training()
    from fvcore.common.param_scheduler import CosineParamScheduler

    assert training.optimizer  # Meta's optimizer module imports (its layer_decay_param_modifier is the rule)
    meta = reference_build.build_sam2(
        f"configs/sam2.1/{CONFIG}.yaml", None, device="cpu", hydra_overrides_extra=[f"++model.image_size={IMAGE_SIZE}"]
    )
    ours = build_model(CONFIG, image_size=IMAGE_SIZE)
    trunk = meta.image_encoder.trunk
    layers = trunk.get_num_layers() + 1
    for name, _ in ours.named_parameters():
        expected = 1.0
        if name.startswith("image_encoder.trunk") and "pos_embed" not in name:
            expected = 0.9 ** (layers - trunk.get_layer_id(name))
        assert trunk_layer_scale(ours, name, 0.9) == pytest.approx(expected), name

    recipe = OptimizerRecipe()
    optimizer, schedule = build_optimizer(ours, recipe, total_steps=10)
    head = next(g for g in optimizer.param_groups if g["lr"] == recipe.lr and g["weight_decay"] == 0.1)
    cosine = CosineParamScheduler(recipe.lr, recipe.lr / 10)
    for step in range(10):
        assert head["lr"] == pytest.approx(cosine(step / 10), rel=1e-9)
        optimizer.step()
        schedule.step()
    no_decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert id(ours.memory_attention.norm.weight) in no_decay and id(ours.obj_ptr_proj.layers[0].bias) in no_decay
    assert id(ours.obj_ptr_proj.layers[0].weight) not in no_decay


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Tiny SA-V train and val sets and a seeded random checkpoint."""
    root = tmp_path_factory.mktemp("finetune")
    write_sav_train(root / "train", num_videos=2, num_frames=9, size=(48, 64))
    write_sav_val(root / "val", num_videos=1, num_frames=9, size=(48, 64))
    return root / "train", root / "val", write_random_checkpoint(root, CONFIG, IMAGE_SIZE)


def _arguments(dataset: tuple[Path, Path, Path], out: Path, *extra: str) -> list[str]:
    train, _, checkpoint = dataset
    return [
        "finetune",
        "--train_root", str(train),
        "--checkpoint", str(checkpoint),
        "--out", str(out),
        "--image_size", str(IMAGE_SIZE),
        "--frames_per_clip", "2",
        "--objects_per_clip", "2",
        "--device", "cpu",
        *extra,
    ]  # fmt: skip


def test_finetune_errors_name_the_input(dataset, tmp_path: Path, capsys) -> None:
    assert main(_arguments(dataset, tmp_path / "tuned.ckpt", "--steps", "1")) == 1
    assert "tuned.ckpt: the fine-tuned checkpoint must be a .pt file" in capsys.readouterr().err
    missing = tmp_path / "no_such_dataset"
    arguments = _arguments(dataset, tmp_path / "tuned.pt", "--steps", "1")
    arguments[arguments.index("--train_root") + 1] = str(missing)
    assert main(arguments) == 1
    assert f"{missing}: no such folder; pass the folder of a VOS dataset" in capsys.readouterr().err
    assert main(_arguments(dataset, tmp_path / "tuned.pt", "--steps", "1", "--point_probability", "1.5")) == 1
    assert "point_probability must lie in [0, 1], got 1.5" in capsys.readouterr().err
    assert main(_arguments(dataset, tmp_path / "tuned.resume.pt", "--steps", "1")) == 1
    assert "tuned.resume.pt: names ending in .resume.pt are training states" in capsys.readouterr().err
    assert not (tmp_path / "tuned.pt").exists()


def assert_loads_strictly_with_the_encoder_frozen(out: Path, source_checkpoint: Path) -> None:
    """`out` is {"model": state_dict} that Meta's build_sam2 and ours load strictly, trained from
    `source_checkpoint` with the image encoder frozen (the default)."""
    saved = torch.load(out, map_location="cpu", weights_only=True)
    assert list(saved) == ["model"]
    meta = reference_build.build_sam2(
        f"configs/sam2.1/{CONFIG}.yaml",
        str(out),
        device="cpu",
        hydra_overrides_extra=[f"++model.image_size={IMAGE_SIZE}"],
    )  # Meta's loader is strict: a missing or unexpected key raises
    ours = load_model(out, CONFIG, image_size=IMAGE_SIZE)
    assert set(meta.state_dict()) == set(ours.state_dict()) == set(saved["model"])
    source = torch.load(source_checkpoint, map_location="cpu", weights_only=True)["model"]
    changed = [key for key in source if not torch.equal(source[key], saved["model"][key])]
    assert changed and not any(key.startswith("image_encoder.") for key in changed)


def test_finetune_writes_a_checkpoint_meta_and_we_load_strictly(dataset, tmp_path: Path, capsys) -> None:
    out = tmp_path / "tuned.pt"
    masks_only = ("--point_probability", "0")
    assert main(_arguments(dataset, out, "--steps", "2", "--val_root", str(dataset[1]), *masks_only)) == 0
    printed = capsys.readouterr().out
    assert "step 2/2  loss" in printed and "mean of last 2" in printed and "steps/s, 0:00 left" in printed
    held_out = "held-out J&F (0-100; 1 videos, 4 objects, each prompted with its mask on its first frame):  before"
    assert held_out in printed

    assert_loads_strictly_with_the_encoder_frozen(out, dataset[2])

    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["config"] == CONFIG and sidecar["source_checkpoint"] == str(dataset[2])
    assert sidecar["steps"] == 2 and len(sidecar["history"]) == 2 and sidecar["train_layout"] == "sav-train"
    assert sidecar["settings"]["prompts"]["point_probability"] == 0.0
    assert set(sidecar["metrics"]) == {"jf_before", "jf_after", "jf_gain"}
    assert f"before {sidecar['metrics']['jf_before']:.2f}" in printed
    assert sidecar["device"] == "cpu" and sidecar["processes"] == 1
    assert sidecar["versions"] == {"sam2_plugins": sam2_plugins.__version__, "torch": torch.__version__}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tuned.json", "tuned.pt"]  # no state, no lock left


def test_a_dataset_folder_trains_on_one_split_and_scores_another(tmp_path: Path, capsys) -> None:
    root = tmp_path / "davis"
    write_davis(root, num_videos=2, num_frames=6, size=(48, 64), split="train")
    (root / "ImageSets" / "2017" / "train.txt").write_text("davis-1\n")
    (root / "ImageSets" / "2017" / "val.txt").write_text("davis-2\n")
    out = tmp_path / "tuned.pt"
    splits = ("--train_split", "train", "--val_root", str(root), "--val_split", "val")
    checkpoint = write_random_checkpoint(tmp_path, CONFIG, IMAGE_SIZE)
    assert main(_arguments((root, None, checkpoint), out, "--steps", "1", "--point_probability", "0", *splits)) == 0
    captured = capsys.readouterr()
    assert "training on 1 davis videos" in captured.out and "held-out J&F (0-100; 1 videos" in captured.out
    assert "held-out videos are training videos too" not in captured.err
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert (sidecar["train_videos"], sidecar["val_videos"]) == (["davis-1"], ["davis-2"])
    assert (sidecar["train_split"], sidecar["val_split"]) == ("train", "val")


def test_a_second_run_writing_the_same_checkpoint_is_refused(dataset, tmp_path: Path, capsys) -> None:
    out = tmp_path / "tuned.pt"
    command = [sys.executable, "-m", "sam2_plugins.cli", *_arguments(dataset, out, "--steps", "1000", "-q")]
    command += ["--checkpoint_every", "1"]
    first = subprocess.Popen(command, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        while not resume_path(out).exists():
            assert first.poll() is None, "the first run ended before writing its training state"
            time.sleep(0.05)
        assert main(_arguments(dataset, out, "--steps", "1", "--overwrite")) == 1
        assert f"{out}: another fine-tuning run is writing it" in capsys.readouterr().err
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the killed run's lock went with it: the next run gets past it, to the unfinished state it left
    assert main(_arguments(dataset, out, "--steps", "1")) == 1
    assert "tuned.resume.pt holds an unfinished run: pass --resume" in capsys.readouterr().err
    assert not out.with_name("tuned.finetune.lock").exists()  # the killed run's file, removed by the run that held it


def test_a_killed_run_resumes_to_the_same_weights(dataset, tmp_path: Path, capsys) -> None:
    steps = ["--steps", "4", "--checkpoint_every", "1", "-q"]
    whole = tmp_path / "whole.pt"
    assert main(_arguments(dataset, whole, *steps)) == 0

    killed = tmp_path / "killed.pt"
    command = [sys.executable, "-m", "sam2_plugins.cli", *_arguments(dataset, killed, *steps)]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        while not resume_path(killed).exists():
            assert process.poll() is None, "the run ended before writing its training state"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not killed.exists() and resume_path(killed).exists()

    assert main(_arguments(dataset, killed, *steps)) == 1
    assert "killed.resume.pt holds an unfinished run: pass --resume" in capsys.readouterr().err
    assert main(_arguments(dataset, killed, *steps, "--resume", "--lr", "0.0001")) == 1
    assert "was started with other settings (optimizer differ)" in capsys.readouterr().err
    assert main(_arguments(dataset, killed, *steps, "--resume")) == 0
    expected = torch.load(whole, map_location="cpu", weights_only=True)["model"]
    resumed = torch.load(killed, map_location="cpu", weights_only=True)["model"]
    for key, value in expected.items():
        assert torch.equal(resumed[key], value), key
    assert (
        json.loads(killed.with_suffix(".json").read_text())["history"]
        == json.loads(whole.with_suffix(".json").read_text())["history"]
    )


def test_finetune_keeps_what_it_did_not_write(dataset, tmp_path: Path, capsys) -> None:
    source = tmp_path / "source.pt"
    source.write_bytes(dataset[2].read_bytes())
    arguments = _arguments(dataset, source, "--steps", "1", "-q")
    arguments[arguments.index("--checkpoint") + 1] = str(source)
    assert main(arguments) == 1
    assert f"{source}: is the checkpoint training starts from; pass another --out" in capsys.readouterr().err
    assert source.read_bytes() == dataset[2].read_bytes()

    notes = tmp_path / "tuned.json"
    notes.write_text('{"my": "notes"}')
    assert main(_arguments(dataset, tmp_path / "tuned.pt", "--steps", "1", "-q")) == 1
    assert f"{notes} exists (a finished run, or another file): pass --overwrite" in capsys.readouterr().err
    assert notes.read_text() == '{"my": "notes"}' and not (tmp_path / "tuned.pt").exists()
    assert main(_arguments(dataset, tmp_path / "tuned.pt", "--steps", "1", "-q", "--overwrite")) == 0
    assert json.loads(notes.read_text())["steps"] == 1

    for lr in ("0", "-1", "nan"):
        assert main(_arguments(dataset, tmp_path / "other.pt", "--steps", "1", "--lr", lr)) == 1
        assert f"lr must be a positive number, got {float(lr)}" in capsys.readouterr().err


def test_a_diverging_run_stops_and_writes_nothing(dataset, tmp_path: Path, capsys) -> None:
    out = tmp_path / "tuned.pt"
    assert main(_arguments(dataset, out, "--steps", "6", "--lr", "1e12", "--no_augment", "-q")) == 1
    error = capsys.readouterr().err
    assert "training diverged; lower the learning rate (now 1e+12)" in error
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_ctrl_c_saves_the_state_and_resume_continues_to_the_same_weights(dataset, tmp_path: Path, capsys) -> None:
    steps = ["--steps", "4", "--checkpoint_every", "10"]
    whole = tmp_path / "whole.pt"
    assert main(_arguments(dataset, whole, *steps, "-q")) == 0

    stopped = tmp_path / "stopped.pt"
    command = [sys.executable, "-m", "sam2_plugins.cli", *_arguments(dataset, stopped, *steps)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    for line in process.stdout:
        if line.startswith("step 1/4"):
            process.send_signal(signal.SIGINT)
            break
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert "run the same command with --resume to continue" in stderr and "Traceback" not in stderr
    assert not stopped.exists() and resume_path(stopped).exists()  # saved although checkpoint_every is 10

    other_data = _arguments(dataset, stopped, *steps, "--resume", "--val_root", str(dataset[1]))
    assert main(other_data) == 1
    assert "was started with other data (val_root, val_videos differ)" in capsys.readouterr().err
    assert main(_arguments(dataset, stopped, *steps, "--resume", "-q")) == 0
    expected = torch.load(whole, map_location="cpu", weights_only=True)["model"]
    resumed = torch.load(stopped, map_location="cpu", weights_only=True)["model"]
    assert all(torch.equal(resumed[key], value) for key, value in expected.items())


def test_annotations_without_objects_are_an_error_not_a_hang(tmp_path: Path, capsys) -> None:
    root = tmp_path / "davis"
    write_davis(root, num_videos=1, num_frames=6, size=(48, 64))
    for png in (root / "Annotations" / "480p").rglob("*.png"):
        with Image.open(png) as image:
            blank = Image.new("P", image.size, 0)
            blank.putpalette(image.getpalette())
        blank.save(png)
    arguments = _arguments((root, None, write_random_checkpoint(tmp_path, CONFIG, IMAGE_SIZE)), tmp_path / "t.pt")
    assert main([*arguments, "--steps", "1"]) == 1
    assert "their annotations hold no masks; check the ground truth" in capsys.readouterr().err


def test_augmentation_moves_frames_and_masks_together() -> None:
    from sam2_plugins.training.augmentation import Augmentation, ColourJitter

    masks = torch.from_numpy(np.stack([ellipse(64, 64, (20 + 3 * t, 18), (8, 12)) for t in range(3)]))[:, None]
    images = masks.float().expand(-1, 3, -1, -1) * 0.8 + 0.1  # the object bright on a dark background
    still = ColourJitter(0.0, 0.0, 0.0)
    flip = Augmentation(flip_probability=1.0, degrees=0.0, shear=0.0, clip_jitter=still, frame_jitter=still)
    flipped_images, flipped_masks = flip.apply(images, masks, np.random.default_rng(0))
    assert torch.equal(flipped_masks, masks.flip(-1))
    torch.testing.assert_close(flipped_images, images.flip(-1))

    warp = Augmentation(flip_probability=0.0, grayscale_probability=0.0, clip_jitter=still, frame_jitter=still)
    warped_images, warped_masks = warp.apply(images, masks, np.random.default_rng(3))
    assert not torch.equal(warped_masks, masks)  # moved, and the same way in images and masks on every frame
    inside = warped_images[:, :1][warped_masks]
    outside = warped_images[:, :1][~warped_masks]
    assert inside.mean() > 0.85 and outside.mean() < 0.15

    jitter = Augmentation(flip_probability=0.0, degrees=0.0, shear=0.0, grayscale_probability=1.0)
    gray, kept = jitter.apply(torch.rand(3, 3, 16, 16), masks[:, :, :16, :16], np.random.default_rng(1))
    assert torch.equal(kept, masks[:, :, :16, :16]) and gray.min() >= 0 and gray.max() <= 1


def test_clips_are_consecutive_annotated_frames_with_objects_on_the_first(dataset) -> None:
    from sam2_plugins.datasets import get_layout
    from sam2_plugins.training.clips import ClipSampler

    videos = get_layout("sav-train").videos(dataset[0])
    sampler = ClipSampler(videos, image_size=IMAGE_SIZE, frames_per_clip=2, objects_per_clip=2, seed=4)
    for _ in range(4):
        clip = sampler.sample()
        video = next(v for v in videos if v.video_id == clip.video_id)
        annotated = video.annotated_frames()
        start = annotated.index(clip.frames[0])
        assert clip.frames == annotated[start : start + 2] and len(clip.objects) <= 2
        assert clip.images.shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE) and clip.masks.shape[:2] == (2, len(clip.objects))
        assert clip.masks[0].flatten(1).any(dim=1).all()  # every object is visible on the first frame
    with pytest.raises(ValueError, match="no video has 9 annotated frames"):
        ClipSampler(videos, image_size=IMAGE_SIZE, frames_per_clip=9)
