"""The dock's Fine-tune section in a real viewer on a 1366x768 screen: train on the labels accepted in the session
with the dock's buttons, the tuned checkpoint written beside the image (strict-loading, in the checkpoint list), the
session tracking again with the tuned weights; Cancel; too few labelled frames. Seeded random weights
(tests/random_checkpoint.py), 128 px, a few steps: plumbing and weights, not accuracy."""

import json

import numpy as np
import pytest
import tifffile
import torch
from napari_ui import (  # noqa: F401  (checkpoint, laptop: fixtures)
    checkpoint,
    click,
    click_frame,
    laptop,
    start_session,
    wait_idle,
)
from random_checkpoint import CONFIG, IMAGE_SIZE

from sam2_plugins.frames import open_frames
from sam2_plugins.model import Sam2VideoPredictor, build_model
from sam2_plugins.napari_plugin.tracking import paint_masks
from sam2_plugins.napari_plugin.widget import CHECKPOINT_FILE
from sam2_plugins.sample_data import synthetic_video

pytestmark = pytest.mark.napari

FRAMES = 6
WAIT_MS = 300_000


@pytest.fixture
def session(laptop, checkpoint, qtbot, tmp_path):
    """A session on a moving-shapes TIFF opened from disk, object 1 clicked on frame 0 and propagated, then its
    labels corrected to the drawn truth on every frame (what the user accepted)."""
    viewer, widget = laptop
    video = synthetic_video("scene", seed=3, num_frames=FRAMES, size=(IMAGE_SIZE, IMAGE_SIZE))
    source = tmp_path / "scene.tif"
    tifffile.imwrite(source, video.frames, photometric="rgb")
    (image,) = viewer.open(str(source))
    start_session(widget, image, checkpoint, qtbot)
    truth = video.masks[0]
    y, x = np.argwhere(truth[0]).mean(axis=0)
    clicked = click_frame(viewer, widget, qtbot, 0, y, x)
    click(widget, widget.propagate_form.call_button, qtbot)
    wait_idle(widget, qtbot)
    widget.labels_layer.data[:] = truth.astype(np.uint16)  # the user's corrections
    widget.labels_layer.refresh()
    return widget, clicked


def fill(section, steps: int, frames_per_clip: int = 3, learning_rate: float = 1e-3) -> None:
    form = section.form
    form.steps.value, form.frames_per_clip.value, form.objects_per_clip.value = steps, frames_per_clip, 1
    form.learning_rate.value = learning_rate


def test_finetune_writes_a_strict_checkpoint_beside_the_image_and_tracks_again_with_it(
    session, checkpoint, qtbot, tmp_path
):
    widget, (y, x) = session
    section = widget.finetune
    out = tmp_path / "scene_sam2_tuned.pt"
    assert section.form.out.value == out, "the tuned checkpoint goes beside the image by default"
    before = {key: value.clone() for key, value in widget._predictor.model.state_dict().items()}
    fill(section, steps=2)

    click(widget, section.form.call_button, qtbot)
    assert section.training and section.cancel_button.enabled and not section.form.enabled
    qtbot.waitUntil(lambda: not section.training, timeout=WAIT_MS)
    wait_idle(widget, qtbot)
    assert widget.status.toPlainText() == (
        f"Fine-tuned weights saved to {out} (offered as 'tuned: {out.name}' in the checkpoint list); every object "
        "propagated again with them."
    )
    assert section.progress_bar.value == section.progress_bar.max == 2

    tuned = torch.load(out, map_location="cpu", weights_only=True)
    assert set(tuned) == {"model"} and set(tuned["model"]) == set(before)
    build_model(CONFIG, image_size=IMAGE_SIZE).load_state_dict(tuned["model"], strict=True)
    changed = {key for key in before if not torch.equal(before[key], tuned["model"][key])}
    assert changed, "training changed the weights"
    assert not any(key.startswith("image_encoder.") for key in changed), "the image encoder stays frozen"
    assert any(key.startswith("sam_mask_decoder.") for key in changed)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["steps"] == 2 and sidecar["config"] == CONFIG and sidecar["session_frames"] == list(range(FRAMES))
    assert sidecar["objects"] == ["1"] and len(sidecar["history"]) == 2
    assert not (tmp_path / "scene_sam2_tuned.resume.pt").exists()
    for key, value in widget._predictor.model.state_dict().items():
        torch.testing.assert_close(value, tuned["model"][key], rtol=0, atol=0, msg=key)

    choices = widget.session_form.checkpoint.choices
    assert str(out) in choices and CHECKPOINT_FILE in choices
    assert widget.session_form.checkpoint.native.itemText(choices.index(str(out))) == f"tuned: {out.name}"
    widget.reset_choices()
    assert str(out) in widget.session_form.checkpoint.choices, "the tuned checkpoint stays offered"

    # the session tracked the click again with the tuned weights: the labels equal a fresh predictor's on them, and
    # differ from what the weights it started from give
    np.testing.assert_array_equal(widget.labels_layer.data, twin_labels(out, widget, (y, x)))
    assert not np.array_equal(widget.labels_layer.data, twin_labels(checkpoint, widget, (y, x)))

    # picked in the list, the tuned checkpoint starts a session
    tracking = widget.controller.tracking
    widget.session_form.checkpoint.value = str(out)
    click(widget, widget.session_form.call_button, qtbot)
    qtbot.waitUntil(lambda: widget.controller.tracking is not tracking, timeout=WAIT_MS)
    wait_idle(widget, qtbot)
    for key, value in widget._predictor.model.state_dict().items():
        torch.testing.assert_close(value, tuned["model"][key], rtol=0, atol=0, msg=key)


def twin_labels(weights, widget, click) -> np.ndarray:
    """The labels a fresh predictor with ``weights`` gives for the session's click on frame 0, propagated."""
    twin = Sam2VideoPredictor.from_checkpoint(str(weights), config=CONFIG, image_size=IMAGE_SIZE, device="cpu")
    session = twin.init_video(open_frames(widget.image_layer.data))
    session.add_points(0, 1, [click[::-1]], [1])
    labels = np.zeros((FRAMES, IMAGE_SIZE, IMAGE_SIZE), np.uint16)
    for frame, obj_ids, logits in session.propagate(start_frame=0):
        paint_masks(labels[frame], obj_ids, logits.numpy())
    return labels


def test_cancel_stops_training_and_writes_nothing(session, qtbot, tmp_path):
    widget, _ = session
    section = widget.finetune
    fill(section, steps=500)
    click(widget, section.form.call_button, qtbot)
    qtbot.waitUntil(lambda: section.progress_bar.value >= 1, timeout=WAIT_MS)
    click(widget, section.cancel_button, qtbot)
    qtbot.waitUntil(lambda: not section.training, timeout=WAIT_MS)
    assert widget.status.toPlainText() == "Fine-tuning cancelled; nothing was written."
    assert section.progress_bar.value < 500
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.json"))
    assert section.form.enabled and not section.cancel_button.enabled


def test_too_few_labelled_frames_is_an_error_naming_the_layer(session, qtbot):
    widget, _ = session
    widget.labels_layer.data[2:] = 0  # the user kept two frames
    fill(widget.finetune, steps=2, frames_per_clip=3)
    click(widget, widget.finetune.form.call_button, qtbot)
    assert widget.status.toPlainText() == (
        f"Fine-tune failed: {widget.labels_layer.name} holds labels on 2 frames, fewer than the 3 frames per clip: "
        "propagate and correct more frames, or lower frames per clip"
    )
    assert not widget.finetune.training
