"""The VOS layouts (sam2_plugins.datasets): real DAVIS palette PNGs and SA-V folders read through one interface,
predictions written byte for byte as Meta's vos_inference.py writes them, hostile names and stray files refused."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2_plugins.datasets import LAYOUTS, detect_layout, get_layout
from sam2_plugins.masks import MaskFormatError, davis_palette
from sam2_plugins.sample_data import write_sav_val

REPO_ROOT = Path(__file__).resolve().parents[1]
VOS_INFERENCE = REPO_ROOT.parent / "shared" / "reference" / "sam2_tools" / "vos_inference.py"
SEQUENCES = ["bmx-trees", "blackswan", "bike-packing"]  # the list file's order, not sorted


def meta_vos_inference():
    """Meta's tools/vos_inference.py imported as a module (its writers run as shipped)."""
    spec = importlib.util.spec_from_file_location("vos_inference", VOS_INFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_array(path: Path) -> np.ndarray:
    return np.array(Image.open(path))


@pytest.fixture(scope="module")
def davis_root(shared_fixtures, tmp_path_factory) -> Path:
    """A DAVIS 2017 folder whose annotations are the real OSVOS palette PNGs (byte copies), with JPEG frames of
    their size, and ImageSets/2017/val.txt listing the three sequences."""
    root = tmp_path_factory.mktemp("davis")
    for sequence in SEQUENCES:
        source = shared_fixtures / "davis_real" / "osvos" / sequence
        annotations = root / "Annotations" / "480p" / sequence
        shutil.copytree(source, annotations)
        frames = root / "JPEGImages" / "480p" / sequence
        frames.mkdir(parents=True)
        for png in sorted(source.glob("*.png")):
            labels = png_array(png)
            Image.fromarray(np.stack([labels * 60] * 3, axis=-1).astype(np.uint8)).save(frames / f"{png.stem}.jpg")
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("".join(f"{s}\n" for s in SEQUENCES))
    return root


def test_layouts_are_known_by_name_and_an_unknown_folder_names_them(tmp_path):
    assert set(LAYOUTS) == {"sav-train", "sav-val", "davis", "davis-2016", "mose", "lvos", "youtube-vos"}
    assert get_layout("davis").protocol == "davis" and get_layout("sav-val").protocol == "sav"
    with pytest.raises(ValueError, match="unknown dataset layout 'davis2017'; the layouts are: sav-val, sav-train"):
        get_layout("davis2017")
    (tmp_path / "photos").mkdir()
    with pytest.raises(FileNotFoundError, match=r"photos: not a VOS dataset folder .* davis \(DAVIS: JPEGImages/480p/"):
        detect_layout(tmp_path / "photos")
    with pytest.raises(FileNotFoundError, match="nothing: no such folder"):
        detect_layout(tmp_path / "nothing")


def test_davis_reads_real_palette_pngs_in_the_list_files_order(davis_root, shared_fixtures):
    layout = detect_layout(davis_root)
    assert layout.name == "davis" and layout.protocol == "davis"
    videos = layout.videos(davis_root)
    assert [v.video_id for v in videos] == SEQUENCES
    assert {v.split for v in videos} == {"val"} and {v.layout for v in videos} == {"davis"}
    bike = videos[2]
    source = shared_fixtures / "davis_real" / "osvos" / "bike-packing"
    assert bike.frame_names == [f"{t:05d}" for t in range(69)] and bike.frame_size == (480, 910)
    assert bike.annotated_frames() == list(range(69)) and bike.annotated_frames("2") == list(range(69))
    assert bike.object_ids == ["1", "2"] and videos[1].object_ids == ["1"]
    assert bike.first_frame("1") == 0 and bike.object_range("1") is None
    assert bike.palette == bytes(Image.open(source / "00000.png").getpalette())
    for frame in (0, 37, 68):
        labels = png_array(source / f"{frame:05d}.png")
        masks = bike.masks(frame)
        assert sorted(masks) == [str(label) for label in np.unique(labels) if label]
        for obj, mask in masks.items():
            assert mask.dtype == bool and np.array_equal(mask, labels == int(obj))
        assert list(bike.masks(frame, ["2"])) == (["2"] if (labels == 2).any() else [])
    with bike.frames() as frames:
        assert len(frames) == 69


def test_davis_2016_merges_the_objects_into_one(davis_root, shared_fixtures):
    (davis_root / "ImageSets" / "2016").mkdir(exist_ok=True)
    (davis_root / "ImageSets" / "2016" / "val.txt").write_text("bike-packing\n")
    [bike] = get_layout("davis-2016").videos(davis_root)
    labels = png_array(shared_fixtures / "davis_real" / "osvos" / "bike-packing" / "00010.png")
    assert bike.object_ids == ["1"] and np.array_equal(bike.masks(10)["1"], labels > 0)
    assert detect_layout(davis_root).name == "davis"  # ImageSets/2017 is there: the 2017 layout


def test_davis_predictions_are_the_bytes_vos_inference_writes(davis_root, tmp_path):
    """Label maps with the input palette, the smaller id winning where objects overlap, every frame written."""
    meta = meta_vos_inference()
    layout = get_layout("davis")
    bike = layout.videos(davis_root)[2]
    rng = np.random.default_rng(3)
    predicted = {t: {"1": rng.random((480, 910)) < 0.3, "2": rng.random((480, 910)) < 0.3} for t in range(0, 69, 2)}
    folder = layout.write_predictions(tmp_path / "ours", bike, predicted)
    assert folder == tmp_path / "ours" / "bike-packing"
    empty = np.zeros((480, 910), bool)
    for t in range(69):
        masks = predicted.get(t, {"1": empty, "2": empty})
        meta.save_masks_to_dir(
            str(tmp_path / "meta"), "bike-packing", f"{t:05d}", {1: masks["1"], 2: masks["2"]}, 480, 910, False,
            bike.palette,
        )  # fmt: skip
    ours = sorted(folder.iterdir())
    assert [p.name for p in ours] == [f"{t:05d}.png" for t in range(69)]
    for path in ours:
        assert path.read_bytes() == (tmp_path / "meta" / "bike-packing" / path.name).read_bytes(), path.name
    overlap = predicted[0]["1"] & predicted[0]["2"]
    assert (png_array(folder / "00000.png")[overlap] == 1).all()


def test_davis_errors_name_the_file_and_the_fix(davis_root, tmp_path):
    root = tmp_path / "davis"
    shutil.copytree(davis_root, root)
    layout = get_layout("davis")
    with pytest.raises(FileNotFoundError, match=r"ImageSets/2017/test-dev.txt: not found; DAVIS 2017 splits here: val"):
        layout.videos(root, "test-dev")
    (root / "ImageSets" / "2017" / "val.txt").write_text("blackswan\n../../etc\ncows\n")
    with pytest.raises(ValueError, match=r"val.txt: sequence '../../etc' holds a path separator"):
        layout.videos(root)
    skipped = {}
    videos = layout.videos(root, on_skip=skipped.__setitem__)
    assert [v.video_id for v in videos] == ["blackswan"] and sorted(skipped) == ["../../etc", "cows"]
    assert "JPEGImages/480p/cows: missing for sequence cows listed in" in skipped["cows"]
    with pytest.raises(MaskFormatError, match=r"00000.png: object '7x' cannot be a label of a palette PNG"):
        layout.write_predictions(tmp_path / "out", videos[0], {0: {"7x": np.ones((480, 854), bool)}})
    assert not (tmp_path / "out" / "blackswan").exists()
    annotations = root / "Annotations" / "480p" / "blackswan"
    shutil.copy(annotations / "00000.png", annotations / "x.png")
    [video] = layout.videos(root, on_skip=skipped.__setitem__)
    with pytest.raises(
        MaskFormatError, match=r"blackswan/x.png: refers to frame 'x', which is not among the 50 frames"
    ):
        assert video.object_ids


def test_sav_val_reads_per_object_folders_and_objects_appearing_later(tmp_path):
    written = write_sav_val(tmp_path / "sav_val", num_videos=2, num_frames=13, size=(48, 64))
    layout = detect_layout(tmp_path / "sav_val")
    assert layout.name == "sav-val" and layout.protocol == "sav"
    videos = layout.videos(tmp_path / "sav_val")
    assert [v.video_id for v in videos] == [w.video_id for w in written]
    video, drawn = videos[0], written[0]
    assert video.split == "val" and video.layout == "sav-val" and video.palette is None
    assert video.object_ids == ["000", "001", "002", "003"]
    assert video.annotated_frames() == [0, 4, 8, 12] == video.annotated_frames("002")
    assert video.first_frame("002") == 8  # drawn from frame 5 on: first annotated where visible is 8
    assert video.first_frame("000") == 0
    for frame in (0, 8):
        masks = video.masks(frame)
        assert sorted(masks) == video.object_ids  # a file for every object, empty or not
        for i, obj in enumerate(video.object_ids):
            assert np.array_equal(masks[obj], drawn.masks[i, frame])
    assert video.masks(5) == {}


def test_sav_val_predictions_are_the_bytes_vos_inference_writes_per_object(tmp_path):
    meta = meta_vos_inference()
    write_sav_val(tmp_path / "sav_val", num_videos=1, num_frames=9, size=(48, 64))
    layout = get_layout("sav-val")
    [video] = layout.videos(tmp_path / "sav_val")
    rng = np.random.default_rng(5)
    predicted = {t: {obj: rng.random((48, 64)) < 0.4 for obj in video.object_ids} for t in range(9)}
    folder = layout.write_predictions(tmp_path / "ours", video, predicted)
    for t, masks in predicted.items():
        meta.save_masks_to_dir(
            str(tmp_path / "meta"), video.video_id, f"{t:05d}", {int(o): m for o, m in masks.items()}, 48, 64, True,
            video.palette or meta.DAVIS_PALETTE,
        )  # fmt: skip
    assert bytes(davis_palette()) == meta.DAVIS_PALETTE
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.png"))
    assert names == [f"{obj}/{t:05d}.png" for obj in video.object_ids for t in range(9)]
    for name in names:
        assert (folder / name).read_bytes() == (tmp_path / "meta" / video.video_id / name).read_bytes(), name
