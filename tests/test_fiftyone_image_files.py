"""apply_sam2 on an image dataset reads only regular image files: a sample whose file is a FIFO or a link to a
device fails at once naming it, instead of hanging the run while memory grows.

The run goes in a subprocess (on this session's database) with a timeout, so a regression fails the test instead of
blocking the suite.
"""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import TEST_MODEL, fresh_dataset_name, mongod, random_checkpoint, worker_environment  # noqa: F401

import json
import os
import subprocess
import sys

import fiftyone as fo
import pytest
from PIL import Image

pytestmark = pytest.mark.fiftyone
HANG_TIMEOUT_S = 120

APPLY_SAM2 = """
import json, sys
import fiftyone as fo
import fiftyone.operators as foo
dataset = fo.load_dataset(sys.argv[1])
try:
    foo.execute_operator("@sam2-plugins/sam2/apply_sam2", {"dataset": dataset, "params": json.loads(sys.argv[2])})
except foo.executor.ExecutionError as error:
    print(str(error).strip().splitlines()[-1])
"""


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-symlink"])
def test_apply_sam2_refuses_an_image_that_is_not_a_regular_file(tmp_path, fresh_dataset_name, random_checkpoint, kind):
    image = tmp_path / "cells.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(image)
    hostile = tmp_path / "hostile.png"
    os.mkfifo(hostile) if kind == "fifo" else hostile.symlink_to("/dev/zero")
    dataset = fo.Dataset(fresh_dataset_name, persistent=True)
    box = fo.Detections(detections=[fo.Detection(label="cell", bounding_box=[0.1, 0.1, 0.5, 0.5])])
    dataset.add_samples([fo.Sample(filepath=str(path), boxes=box) for path in (image, hostile)])
    params = {"checkpoint": random_checkpoint, "prompt": "boxes", "pred_field": "sam2", **TEST_MODEL}
    result = subprocess.run(
        [sys.executable, "-c", APPLY_SAM2, fresh_dataset_name, json.dumps(params)],
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
        env=worker_environment(),
    )
    assert result.returncode == 0, result.stderr
    described = "a FIFO (named pipe)" if kind == "fifo" else "a character device (a symlink to /dev/zero)"
    assert result.stdout.strip() == (
        f"ValueError: {hostile}: is {described}, not a sample image file; reading it could block or never end: "
        "replace it with the sample image file itself"
    )
