"""The SA-V prediction writer both front-ends use, and the write-then-rename helper under it."""

import re
from pathlib import Path

import numpy as np
import pytest
from file_trees import tree

from sam2_plugins.atomic import atomic_write
from sam2_plugins.datasets.davis import write_davis_label_maps
from sam2_plugins.datasets.sav_eval import write_sav_object_masks
from sam2_plugins.evaluate import evaluate_folders
from sam2_plugins.frames import frame_name, open_frames
from sam2_plugins.masks import MaskFormatError, read_binary_mask_png, read_mask_png, write_binary_png
from sam2_plugins.sav_masklets import write_auto_masklet_pngs
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
        with pytest.raises(ValueError, match="object name '../x' holds a path separator, so it cannot name a file"):
            writer.add(0, "../x", np.ones((4, 5), bool))
    assert list((tmp_path / "v").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]  # nothing written beside it by '../x'


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


@pytest.mark.parametrize(
    "video", [".", "..", "../../x", "", "a/b", "a\\b", "v\x00", "v\n1", ".v.partial", ".v.previous"]
)
def test_hostile_video_names_are_refused_before_anything_is_written(tmp_path, video):
    out = tmp_path / "work" / "out"
    with write_sav_predictions(out, "v", 2, (4, 4), objects=["001"]):
        pass
    (out / "keep.txt").write_text("a user's file")
    before = tree(tmp_path)
    refused = f"video name {re.escape(repr(video))} .*so it cannot name a file or folder"
    with pytest.raises(ValueError, match=refused), write_sav_predictions(out, video, 2, (4, 4)) as writer:
        writer.add(0, "001", np.ones((4, 4), bool))
    with pytest.raises(ValueError, match=refused):  # the automatic masklets' writer goes through it too
        write_auto_masklet_pngs(out, [], video, 2, (4, 4))
    assert tree(tmp_path) == before


def test_a_rewrite_replaces_only_the_frame_pngs_and_keeps_a_users_files(tmp_path):
    mask = np.ones((4, 4), bool)
    with write_sav_predictions(tmp_path, "v", 3, (4, 4)) as writer:
        writer.add(0, "001", mask)
        writer.add(1, "002", mask)
    video = tmp_path / "v"
    kept = {
        "notes.txt": b"the user's notes",
        "001/README": b"about object 1",
        "002/00001.png.orig": b"a backup",
        "002/review/00001.png": b"a reviewed mask, one level down",
    }
    for name, content in kept.items():
        (video / name).parent.mkdir(exist_ok=True)
        (video / name).write_bytes(content)
    (video / "elsewhere").symlink_to(tmp_path.parent, target_is_directory=True)
    with write_sav_predictions(tmp_path, "v", 2, (4, 4)) as writer:  # object 002 no longer predicted, 2 frames
        writer.add(1, "001", mask)
    files = tree(video)
    written = {path for path in files if len(path.parts) == 2 and re.fullmatch(r"\d+\.png", path.name)}
    assert written == {Path("001/00000.png"), Path("001/00001.png")}
    assert {str(path): content for path, content in files.items() if path not in written} == {
        **kept,
        "elsewhere": f"link to {tmp_path.parent}",
    }
    assert np.array_equal(read_binary_mask_png(video / "001" / "00001.png"), mask)
    assert not read_binary_mask_png(video / "001" / "00000.png").any()
    assert sorted(p.name for p in (video / "002").iterdir()) == ["00001.png.orig", "review"]  # its PNGs went
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]  # no temporary folder left


def test_links_files_in_the_way_and_a_cut_off_rewrite_are_refused_and_nothing_is_lost(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "00000.png").write_bytes(b"not ours")
    out = tmp_path / "out"
    out.mkdir()
    (out / "linked").symlink_to(outside, target_is_directory=True)
    (out / "a_file").write_text("a user's file")
    with write_sav_predictions(out, "v", 1, (4, 4), objects=["001"]):
        pass
    (out / "v" / "002").write_text("a user's file named like an object")
    (out / ".w.previous").mkdir()
    before = tree(tmp_path)
    cases = [
        ("linked", "001", r"out/linked: a symbolic link; predictions are never written through links"),
        ("a_file", "001", r"out/a_file: a file where a prediction folder goes"),
        ("v", "002", r"out/v/002: not a frame PNG, where this writer puts a prediction; move it away"),
        ("w", "001", r"out/.w.previous: left by a rewrite of .*out/w that was cut off"),
    ]
    for video, obj, message in cases:
        with pytest.raises(FileExistsError, match=message), write_sav_predictions(out, video, 1, (4, 4)) as writer:
            writer.add(0, obj, np.ones((4, 4), bool))
        assert tree(tmp_path) == before, video


def test_ground_truth_writers_refuse_hostile_names_and_links_out_of_the_root(tmp_path):
    root = tmp_path / "gt"
    root.mkdir()
    mask = np.ones((2, 2), bool)
    for video, obj, frame, what in [("../x", "001", "00000", "video"), ("v", "..", "00000", "object")]:
        with pytest.raises(ValueError, match=f"{what} name .* so it cannot name a file or folder"):
            write_sav_object_masks(root, video, obj, {frame: mask})
    with pytest.raises(ValueError, match=r"frame name '../../00000' holds a path separator"):
        write_sav_object_masks(root, "v", "001", {"../../00000": mask})
    with pytest.raises(ValueError, match=r"video name '.' names a folder itself"):
        write_davis_label_maps(root, ".", {"00000": mask.astype(np.uint8)})
    (root / "linked").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ValueError, match=r"gt/linked/001: leads to .*, outside .*gt \(a symbolic link\)"):
        write_sav_object_masks(root, "linked", "001", {"00000": mask})
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["gt", "linked"]
