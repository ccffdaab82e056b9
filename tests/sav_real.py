"""Meta's real SA-V train annotation (sav_000001_manual.json) as a train root, with an mp4 and an auto file made here.

Its mp4 is not distributed with the fixture: ffmpeg's ``testsrc`` of the same size (848 high x 480 wide) and frame
count (483) stands in. The auto file follows the nesting of Meta's ``sav_000001_auto.json``: 9 masklets (ids 0..8,
overlapping the manual ids) on the same 121 annotated frames, an empty RLE where a masklet is absent, stability
scores nested [annotated frame][masklet].
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from sam2_plugins.sample_data import ellipse, masklet_json

VIDEO_ID = "sav_000001"
HEIGHT, WIDTH, NUM_FRAMES, ANNOTATED_FRAMES = 848, 480, 483, 121
AUTO_MASKLETS = 9


def write_test_mp4(path: Path, height: int = HEIGHT, width: int = WIDTH, num_frames: int = NUM_FRAMES) -> Path:
    """A small H.264 ``testsrc`` video (low bitrate: its pixels do not matter, its size and frame count do)."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={width}x{height}:rate=24"]
        + ["-frames:v", str(num_frames), "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "50k"]
        + ["-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    return path


def auto_masks(frame: int) -> list[np.ndarray]:
    """The 9 automatic masklets on annotated frame ``frame``: drifting ellipses, some absent on some frames."""
    masks = []
    for i in range(AUTO_MASKLETS):
        center = (90 + 80 * i + 0.8 * frame, 60 + 40 * (i % 9) + 0.5 * frame * (-1) ** i)
        radii = (25 + 4 * i, 18 + 3 * (i % 4))
        absent = (i == 0 and 30 <= frame < 40) or (i == 8 and frame % 10 == 3)
        masks.append(np.zeros((HEIGHT, WIDTH), bool) if absent else ellipse(HEIGHT, WIDTH, center, radii))
    return masks


def write_real_sav_train(root: Path, manual_json: Path) -> Path:
    """``root/sav_000/`` with the real manual file, a stand-in mp4 and an auto file; returns the shard folder."""
    shard = root / "sav_000"
    shard.mkdir(parents=True)
    shutil.copyfile(manual_json, shard / f"{VIDEO_ID}_manual.json")
    write_test_mp4(shard / f"{VIDEO_ID}.mp4")
    auto = masklet_json(VIDEO_ID, (auto_masks(k) for k in range(ANNOTATED_FRAMES)), "auto", NUM_FRAMES)
    (shard / f"{VIDEO_ID}_auto.json").write_text(json.dumps(auto))
    return shard
