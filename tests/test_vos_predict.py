"""`sam2-plugins predict` as a user runs it: dataset folders in, Meta's PNG files out, resumed after a kill, split
into cluster jobs, clear errors."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from random_checkpoint import IMAGE_SIZE, write_random_checkpoint

from sam2_plugins.cli import main
from sam2_plugins.datasets.sav_eval import EVAL_ANNOTATIONS_FOLDER, EVAL_FRAMES_FOLDER
from sam2_plugins.masks import davis_palette
from sam2_plugins.sample_data import write_davis, write_sav_val, write_youtube_vos

NUM_FRAMES = 6
SIZE = (48, 64)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("checkpoint"))


def predict(checkpoint: Path, *arguments: str) -> int:
    return main(["predict", "--sam2_checkpoint", str(checkpoint), "--image_size", str(IMAGE_SIZE), *arguments])


def pngs(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*.png"))}


def test_sav_val_dataset_gives_per_object_palette_pngs_and_resumes(checkpoint, tmp_path, capsys):
    videos = write_sav_val(tmp_path / "sav_val", num_videos=2, num_frames=NUM_FRAMES, size=SIZE)
    out = tmp_path / "out"
    assert predict(checkpoint, "--dataset", str(tmp_path / "sav_val"), "--output_mask_dir", str(out)) == 0
    printed = capsys.readouterr().out
    assert "sav-val layout" in printed
    for number, video in enumerate(videos, start=1):
        assert f"[{number}/2] {video.video_id}: {NUM_FRAMES} frames in" in printed
        objects = sorted(p.name for p in (tmp_path / "sav_val" / EVAL_ANNOTATIONS_FOLDER / video.video_id).iterdir())
        assert sorted(p.name for p in (out / video.video_id).iterdir()) == objects
        for obj in objects:
            files = sorted((out / video.video_id / obj).iterdir())
            assert [p.name for p in files] == [f"{t:05d}.png" for t in range(NUM_FRAMES)]
            image = Image.open(files[1])
            assert image.mode == "P" and bytes(image.getpalette()) == davis_palette()  # gray input: Meta's default
            assert set(np.unique(np.asarray(image))) <= {0, 1}
    written = pngs(out)

    assert predict(checkpoint, "--dataset", str(tmp_path / "sav_val"), "--output_mask_dir", str(out)) == 0
    printed = capsys.readouterr().out
    assert printed.count("is there from an earlier run") == 2 and "wrote 0 of 2 videos" in printed
    assert pngs(out) == written


def test_meta_inputs_with_later_objects_and_shards(checkpoint, tmp_path, capsys):
    """DAVIS-layout folders given as Meta's --base_video_dir/--input_mask_dir; the third object enters on frame 5."""
    videos = write_davis(tmp_path / "davis", num_videos=3, num_frames=NUM_FRAMES, size=SIZE)
    frames, masks = tmp_path / "davis" / "JPEGImages" / "480p", tmp_path / "davis" / "Annotations" / "480p"
    inputs = ["--base_video_dir", str(frames), "--input_mask_dir", str(masks)]

    assert predict(checkpoint, *inputs, "--output_mask_dir", str(tmp_path / "default")) == 1
    error = capsys.readouterr().err
    assert "object 3 first appears on frame 00005" in error and "--track_object_appearing_later_in_video" in error
    assert not (tmp_path / "default" / videos[0].video_id).exists()

    later = [*inputs, "--track_object_appearing_later_in_video"]
    for shard in ("0/2", "1/2"):
        assert predict(checkpoint, *later, "--output_mask_dir", str(tmp_path / "shards"), "--shard", shard) == 0
    assert predict(checkpoint, *later, "--output_mask_dir", str(tmp_path / "whole")) == 0
    assert "wrote 2 of 2 videos" in capsys.readouterr().out  # shard 0/2: videos 1 and 3
    assert pngs(tmp_path / "shards") == pngs(tmp_path / "whole")
    for video in videos:
        label_maps = [np.asarray(Image.open(tmp_path / "whole" / video.video_id / f"{t:05d}.png")) for t in range(6)]
        assert not any((labels == 3).any() for labels in label_maps[:5]), "object 3 tracked before it starts"
        palette = Image.open(masks / video.video_id / "00000.png").getpalette()
        assert Image.open(tmp_path / "whole" / video.video_id / "00003.png").getpalette() == palette


def test_youtube_vos_objects_start_on_their_first_annotated_frame(checkpoint, tmp_path):
    videos = write_youtube_vos(tmp_path / "ytvos", num_videos=1, num_frames=NUM_FRAMES, size=SIZE)
    out = tmp_path / "out"
    dataset = ["--dataset", str(tmp_path / "ytvos"), "--output_mask_dir", str(out)]
    assert predict(checkpoint, *dataset, "--track_object_appearing_later_in_video") == 0
    folder = out / videos[0].video_id
    assert sorted(p.name for p in folder.iterdir()) == [f"{5 * t:05d}.png" for t in range(NUM_FRAMES)]
    entering = 3  # synthetic_video's object 2 (label 3) appears on frame 5
    first = np.asarray(Image.open(folder / "00000.png"))
    assert entering not in np.unique(first)
    entered = np.asarray(Image.open(folder / "00025.png"))
    prompt = np.asarray(Image.open(tmp_path / "ytvos" / "valid" / "Annotations" / videos[0].video_id / "00025.png"))
    overlap = np.count_nonzero((entered == entering) & (prompt == entering))
    assert overlap / np.count_nonzero((entered == entering) | (prompt == entering)) > 0.8  # its prompt, from there on


def test_killed_run_resumes_without_redoing_finished_videos(checkpoint, tmp_path):
    write_sav_val(tmp_path / "sav_val", num_videos=3, num_frames=NUM_FRAMES, size=SIZE)
    out = tmp_path / "out"
    command = [
        str(Path(sys.executable).with_name("sam2-plugins")),
        "predict",
        "--dataset",
        str(tmp_path / "sav_val"),
        "--output_mask_dir",
        str(out),
        "--sam2_checkpoint",
        str(checkpoint),
        "--image_size",
        str(IMAGE_SIZE),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    first_line = ""
    while "[1/3]" not in first_line:
        first_line = process.stdout.readline()
        assert first_line or process.poll() is None, "predict ended before its first video"
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert 1 <= len(done) < 3, done  # killed mid-run: what is there is complete
    finished_files = {name: pngs(out / name) for name in done}
    mtimes = {name: [p.stat().st_mtime_ns for p in (out / name).rglob("*.png")] for name in done}
    time.sleep(0.01)

    assert main([*command[1:]]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(["sav_900001", "sav_900002", "sav_900003"])
    for name in done:
        assert pngs(out / name) == finished_files[name]
        assert [p.stat().st_mtime_ns for p in (out / name).rglob("*.png")] == mtimes[name]
    frames = sorted((tmp_path / "sav_val" / EVAL_FRAMES_FOLDER / "sav_900003").iterdir())
    assert len(list((out / "sav_900003").rglob("*.png"))) == 4 * len(frames)  # 4 objects on every frame


def test_errors_name_the_fix(checkpoint, tmp_path, capsys):
    write_sav_val(tmp_path / "sav_val", num_videos=1, num_frames=NUM_FRAMES, size=SIZE)
    out = ["--output_mask_dir", str(tmp_path / "out")]
    assert predict(checkpoint, "--dataset", str(tmp_path / "sav_val"), "--base_video_dir", str(tmp_path), *out) == 1
    assert "not both" in capsys.readouterr().err
    assert predict(checkpoint, "--base_video_dir", str(tmp_path / "nowhere"), "--input_mask_dir", str(tmp_path), *out)
    assert "nowhere: no such folder (--base_video_dir)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        predict(checkpoint, "--dataset", str(tmp_path / "sav_val"), *out, "--shard", "2/2")
    assert "i from 0 to N - 1" in capsys.readouterr().err
    listed = tmp_path / "list.txt"
    listed.write_text("sav_900001\nsav_999999\n")
    frames, masks = tmp_path / "sav_val" / EVAL_FRAMES_FOLDER, tmp_path / "sav_val" / EVAL_ANNOTATIONS_FOLDER
    meta = ["--base_video_dir", str(frames), "--input_mask_dir", str(masks), "--video_list_file", str(listed)]
    assert predict(checkpoint, *meta, *out) == 1
    assert "sav_999999" in capsys.readouterr().err and not (tmp_path / "out").exists()
