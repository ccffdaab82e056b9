"""The SA-V prediction writer both front-ends use, and the write-then-rename helper under it."""

import numpy as np
import pytest

from sam2_plugins.atomic import atomic_write
from sam2_plugins.evaluate import evaluate_folders
from sam2_plugins.frames import frame_name, open_frames
from sam2_plugins.masks import MaskFormatError, read_binary_mask_png, read_mask_png, write_binary_png
from sam2_plugins.sav import write_sav_object_masks
from sam2_plugins.sav_writer import write_sav_predictions
from sam2_plugins.video_writer import write_mp4

RNG = np.random.default_rng(7)


def test_frame_names_are_five_digits():
    assert [frame_name(i) for i in (0, 42, 99999)] == ["00000", "00042", "99999"]


def test_frames_in_any_order_empty_frames_filled_and_read_back_by_the_evaluator(tmp_path):
    masks = RNG.random((2, 5, 6, 7)) < 0.4
    with write_sav_predictions(tmp_path, "video", 5, (6, 7), objects=["000", "auto_003"]) as writer:
        for t in (4, 1, 2):
            writer.add(t, "001", masks[0, t])
        writer.add(3, "002", masks[1, 3])
    video = tmp_path / "video"
    assert sorted(p.name for p in video.iterdir()) == ["000", "001", "002", "auto_003"]
    for obj in ("000", "001", "002", "auto_003"):  # every object a PNG on every frame
        assert sorted(p.name for p in (video / obj).iterdir()) == [f"{frame_name(t)}.png" for t in range(5)]
    for t in range(5):
        expected = masks[0, t] if t in (1, 2, 4) else np.zeros((6, 7), bool)
        assert np.array_equal(read_binary_mask_png(video / "001" / f"{frame_name(t)}.png"), expected)
        assert not read_binary_mask_png(video / "000" / f"{frame_name(t)}.png").any()
    stored = read_mask_png(video / "002" / "00000.png")
    assert stored.dtype == np.uint8 and stored.shape == (6, 7)
    # the filled PNGs are the files the mask writer makes of an empty mask
    write_binary_png(tmp_path / "empty.png", np.zeros((6, 7), bool))
    assert (video / "002" / "00000.png").read_bytes() == (tmp_path / "empty.png").read_bytes()
    gt = {frame_name(t): masks[0, t] for t in range(5)}
    write_sav_object_masks(tmp_path / "gt", "video", "001", gt)
    result = evaluate_folders(tmp_path / "gt", tmp_path, skip_first_and_last=False).to_json(per_frame=True)
    assert list(result["objects"]["video/001"]["frames"]) == [frame_name(t) for t in range(5)]
    assert list(tmp_path.glob(".*")) == []  # no temporary folder left


def test_rewrite_replaces_the_video_whole_and_a_failed_one_keeps_the_previous(tmp_path):
    mask = np.ones((4, 4), bool)
    with write_sav_predictions(tmp_path, "v", 2, (4, 4)) as writer:
        writer.add(0, "001", mask)
        writer.add(1, "002", mask)
    with write_sav_predictions(tmp_path, "v", 2, (4, 4)) as writer:
        writer.add(0, "001", ~mask)
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["001"]  # the stale object is gone
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*.png")}
    with pytest.raises(RuntimeError, match="cut off"), write_sav_predictions(tmp_path, "v", 2, (4, 4)) as writer:
        writer.add(0, "003", mask)
        raise RuntimeError("cut off")
    assert {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*.png")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]


def test_bad_masks_frames_and_object_names_are_clear_errors(tmp_path):
    with write_sav_predictions(tmp_path, "v", 3, (4, 5)) as writer:
        with pytest.raises(MaskFormatError, match=r"001/00000.png: mask of shape \(5, 4\) for frames of .* \(4, 5\)"):
            writer.add(0, "001", np.ones((5, 4), bool))
        with pytest.raises(IndexError, match=r"001/00003.png: frame 3 is outside the video's 3 frames"):
            writer.add(3, "001", np.ones((4, 5), bool))
        with pytest.raises(ValueError, match="object name '../x' is not a folder name"):
            writer.add(0, "../x", np.ones((4, 5), bool))
    assert list((tmp_path / "v").iterdir()) == []


def test_atomic_write_keeps_the_suffix_and_the_previous_file_on_failure(tmp_path):
    mp4 = tmp_path / "clip.mp4"
    frames = RNG.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8)
    with atomic_write(mp4) as partial:
        assert partial.suffix == ".mp4" and partial.parent == tmp_path
        write_mp4(frames, partial)  # PyAV picks the container from the suffix
    with open_frames(mp4) as video:
        assert len(video) == 3
    written = mp4.read_bytes()
    with pytest.raises(ValueError, match="encode failed"), atomic_write(mp4) as partial:
        partial.write_bytes(b"half")
        raise ValueError("encode failed")
    assert mp4.read_bytes() == written and sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
