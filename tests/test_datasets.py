"""The VOS layouts (sam2_plugins.datasets): real DAVIS palette PNGs and SA-V folders read through one interface,
predictions written byte for byte as Meta's vos_inference.py writes them, hostile names and stray files refused."""

import importlib.util
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from sam2_plugins.datasets import LAYOUTS, detect_layout, get_layout
from sam2_plugins.masks import MaskFormatError, davis_palette
from sam2_plugins.sample_data import label_map, write_davis, write_lvos, write_mose, write_sav_val, write_youtube_vos

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
    protocols = {name: layout.protocol for name, layout in LAYOUTS.items()}
    assert protocols == {
        **{"sav-train": "sav", "sav-val": "sav", "davis": "davis", "davis-2016": "davis2016", "mose": "mose"},
        **{"lvos": "lvos", "youtube-vos": "youtube-vos"},
    }
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
    with pytest.raises(ValueError, match=r"val.txt: video id '../../etc' holds a path separator"):
        layout.videos(root)
    skipped = {}
    videos = layout.videos(root, on_skip=skipped.__setitem__)
    assert [v.video_id for v in videos] == ["blackswan"] and sorted(skipped) == ["../../etc", "cows"]
    assert "JPEGImages/480p/cows: missing for video cows listed in" in skipped["cows"]
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


SCENES = {  # writer, split, layout name; object "3" (label 3) enters at frame 5
    "davis": (write_davis, "val"),
    "mose": (write_mose, "valid"),
    "youtube-vos": (write_youtube_vos, "valid"),
    "lvos": (write_lvos, "val"),
}


@pytest.mark.parametrize("name", SCENES)
def test_each_layout_reads_the_same_synthetic_scene_back(tmp_path, name):
    writer, split = SCENES[name]
    drawn = writer(tmp_path / name, num_videos=2, num_frames=9, size=(32, 48))
    layout = detect_layout(tmp_path / name)
    assert layout.name == name
    videos = layout.videos(tmp_path / name)
    assert [v.video_id for v in videos] == [d.video_id for d in drawn]
    assert {(v.split, v.layout) for v in videos} == {(split, name)}
    video, scene = videos[1], drawn[1]
    first_frame_only = name == "mose"  # MOSE valid: the first frame's masks only; object 3 is not there yet
    assert video.object_ids == (["1", "2", "4"] if first_frame_only else ["1", "2", "3", "4"])
    assert video.palette == davis_palette()
    for frame in video.annotated_frames():
        labels = label_map(scene, frame, None if name != "youtube-vos" else [2] if frame == 5 else [0, 1, 3])
        masks = video.masks(frame)
        assert sorted(masks) == [str(label) for label in np.unique(labels) if label]
        for obj, mask in masks.items():
            assert np.array_equal(mask, labels == int(obj)), (frame, obj)
    if not first_frame_only:
        assert video.first_frame("3") == 5 and video.first_frame("1") == 0
    with video.frames() as frames:
        assert len(frames) == 9 and np.abs(frames[4].astype(int) - scene.frames[4]).mean() < 6  # JPEG


def test_youtube_vos_valid_annotates_each_object_where_it_first_appears(tmp_path):
    write_youtube_vos(tmp_path, num_videos=1, num_frames=9, size=(32, 48))
    [video] = get_layout("youtube-vos").videos(tmp_path, "valid")
    assert video.frame_names == [f"{5 * t:05d}" for t in range(9)]
    assert video.annotated_frames() == [0, 5]
    assert video.annotated_frames("1") == [0] and video.annotated_frames("3") == [5]
    assert list(video.masks(5)) == ["3"] and video.object_range("3") is None
    meta = tmp_path / "valid" / "meta.json"
    data = json.loads(meta.read_text())
    data["videos"][video.video_id]["objects"]["9"] = {"frames": ["00010", "00015"]}
    meta.write_text(json.dumps(data))
    [video] = get_layout("youtube-vos").videos(tmp_path, "valid")
    assert video.object_ids == ["1", "2", "3", "4", "9"] and video.annotated_frames("9") == []
    with pytest.raises(MaskFormatError, match=r"object 9 of .*meta.json is in none of the PNGs of its frames"):
        video.first_frame("9")
    with pytest.raises(
        FileNotFoundError, match=r"test/meta.json: not found; split 'test' is not here \(splits found: valid"
    ):
        get_layout("youtube-vos").videos(tmp_path, "test")


def test_lvos_ranges_come_from_the_meta_json(tmp_path):
    drawn = write_lvos(tmp_path, num_videos=1, num_frames=12, size=(32, 48))
    [video] = get_layout("lvos").videos(tmp_path)
    assert video.frame_names[:2] == ["00000001", "00000002"]
    assert video.object_range("3") == (5, 11) and video.object_range("4") == (0, 11)  # "4" hidden on 7..9: in range
    assert video.annotated_frames("3") == list(range(5, 12)) and video.annotated_frames() == list(range(12))
    assert "4" not in video.masks(8) and not drawn[0].masks[3, 8].any()
    meta = tmp_path / "val" / "val_meta.json"
    data = json.loads(meta.read_text())
    data["videos"][video.video_id]["objects"]["3"]["frame_range"] = {"start": 6, "end": "00000011"}
    meta.write_text(json.dumps(data))
    [video] = get_layout("lvos").videos(tmp_path)
    assert video.object_range("3") == (5, 10)  # a number names the frame numbered so (00000006 is frame 5)
    data["videos"][video.video_id]["objects"]["3"]["frame_range"]["end"] = "00000099"
    meta.write_text(json.dumps(data))
    [video] = get_layout("lvos").videos(tmp_path)
    with pytest.raises(MaskFormatError, match=r"val_meta.json: frame_range of object 3 of video lvos0001: refers to"):
        video.object_range("3")
    meta.write_text('{"videos": [')
    with pytest.raises(MaskFormatError, match=r"val_meta.json: corrupt JSON .* re-download or re-export this file"):
        get_layout("lvos").videos(tmp_path)


def test_meta_json_video_ids_that_are_paths_are_refused(tmp_path):
    write_youtube_vos(tmp_path, num_videos=1, num_frames=6, size=(32, 48))
    meta = tmp_path / "valid" / "meta.json"
    data = json.loads(meta.read_text())
    data["videos"]["../../escape"] = {"objects": {"1": {"frames": ["00000"]}}}
    meta.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"meta.json: video id '../../escape' holds a path separator"):
        get_layout("youtube-vos").videos(tmp_path)
    skipped = {}
    assert len(get_layout("youtube-vos").videos(tmp_path, on_skip=skipped.__setitem__)) == 1
    assert list(skipped) == ["../../escape"]


@pytest.mark.parametrize(("name", "folder"), [("youtube-vos", "Annotations/"), ("mose", "")])
def test_hidden_test_sets_zip_every_frame_as_their_server_takes_it(tmp_path, name, folder):
    writer = SCENES[name][0]
    drawn = writer(tmp_path / "data", num_videos=2, num_frames=6, size=(32, 48))
    layout = get_layout(name)
    videos = layout.videos(tmp_path / "data")
    for video, scene in zip(videos, drawn):
        predicted = {t: {str(i + 1): scene.masks[i, t] for i in range(4)} for t in range(6)}
        layout.write_predictions(tmp_path / "predictions", video, predicted)
    zip_path = layout.write_submission(tmp_path / "predictions", videos, tmp_path / "submission.zip")
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        assert names == [f"{folder}{v.video_id}/{frame}.png" for v in videos for frame in v.frame_names]
        png = archive.read(names[7])
    assert png == (tmp_path / "predictions" / videos[1].video_id / f"{videos[1].frame_names[1]}.png").read_bytes()
    (tmp_path / "predictions" / videos[1].video_id / f"{videos[1].frame_names[3]}.png").unlink()
    with pytest.raises(FileNotFoundError, match=rf"{videos[1].frame_names[3]}.png: missing; the {name} server needs"):
        layout.write_submission(tmp_path / "predictions", videos, tmp_path / "submission.zip")
    with zipfile.ZipFile(zip_path) as archive:
        assert len(archive.namelist()) == 12  # the previous zip is left whole
    with pytest.raises(ValueError, match="no evaluation server zip is known for the sav-val layout"):
        get_layout("sav-val").write_submission(tmp_path / "predictions", videos, tmp_path / "x.zip")


def test_sav_train_masklets_are_vos_objects(sav_real_train, shared_fixtures):
    """Meta's real manual masklets: objects, annotated frames, masks and first frames straight from its JSON."""
    data = json.loads((shared_fixtures / "sav_real" / "sav_000001_manual.json").read_text())
    layout = detect_layout(sav_real_train)
    assert layout.name == "sav-train" and layout.protocol == "sav"
    [video] = layout.videos(sav_real_train)
    ids = [int(i) for i in data["masklet_id"]]
    assert video.object_ids == [f"{i:03d}" for i in ids] and video.split == "train"
    assert video.annotated_frames(video.object_ids[0]) == list(range(0, 483, 4)) == video.annotated_frames()
    for i, obj in enumerate(video.object_ids):
        assert video.first_frame(obj) == 4 * int(data["masklet_first_appeared_frame"][i])
    masks = video.masks(40)
    for i, obj in enumerate(video.object_ids):
        rle = data["masklet"][10][i]
        expected = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
        assert np.array_equal(masks[obj], expected)
    assert video.masks(41) == {} and len(video.frame_names) == 483


def test_the_original_davis_2016_download_binary_masks_and_pair_lists(davis_root, tmp_path):
    """DAVIS 2016 as first published: 0/255 gray masks, ImageSets/480p/val.txt of image/annotation path pairs."""
    root = tmp_path / "DAVIS"
    shutil.copytree(davis_root / "JPEGImages", root / "JPEGImages")
    for png in sorted((davis_root / "Annotations" / "480p" / "blackswan").glob("*.png")):
        (root / "Annotations" / "480p" / "blackswan").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.where(png_array(png) > 0, 255, 0).astype(np.uint8)).save(
            root / "Annotations" / "480p" / "blackswan" / png.name
        )
    (root / "ImageSets" / "480p").mkdir(parents=True)
    pairs = [f"/JPEGImages/480p/blackswan/{t:05d}.jpg /Annotations/480p/blackswan/{t:05d}.png\n" for t in range(50)]
    (root / "ImageSets" / "480p" / "val.txt").write_text("".join(pairs))
    layout = detect_layout(root)
    assert layout.name == "davis-2016" and layout.protocol == "davis2016"
    [video] = layout.videos(root)
    assert video.object_ids == ["1"] and video.palette is None
    gray = png_array(root / "Annotations" / "480p" / "blackswan" / "00020.png")
    assert np.array_equal(video.masks(20)["1"], gray == 255)
    folder = layout.write_predictions(tmp_path / "out", video, {20: video.masks(20)})
    written = Image.open(folder / "00020.png")
    assert written.mode == "P" and bytes(written.getpalette()) == davis_palette()
    assert np.array_equal(np.array(written), (gray == 255).astype(np.uint8))
    (root / "ImageSets" / "480p" / "val.txt").write_text("blackswan/00000.jpg\n")
    with pytest.raises(ValueError, match=r"val.txt, line 1: 'blackswan/00000.jpg' is not '/JPEGImages/480p/<seq"):
        layout.videos(root)


def test_object_folders_named_to_escape_are_refused(tmp_path):
    write_sav_val(tmp_path, num_videos=1, num_frames=5, size=(32, 48))
    [video] = get_layout("sav-val").videos(tmp_path)
    (video.annotations_folder / "001\n").mkdir()
    with pytest.raises(ValueError, match=r"Annotations_6fps/sav_900001: object folder '001\\n' holds the control"):
        assert video.object_ids


def test_inputs_read_as_vos_inference_reads_them(davis_root, tmp_path):
    """The first frame's masks and palette, palette and per-object folders, equal Meta's load_masks_from_dir."""
    meta = meta_vos_inference()
    for video in get_layout("davis").videos(davis_root):
        theirs, palette = meta.load_masks_from_dir(
            str(davis_root / "Annotations" / "480p"), video.video_id, "00000", False
        )
        ours = video.masks(0)
        assert sorted(ours) == [str(obj) for obj in sorted(theirs)] and bytes(palette) == video.palette
        assert all(np.array_equal(ours[str(obj)], mask) for obj, mask in theirs.items())
    write_sav_val(tmp_path, num_videos=1, num_frames=5, size=(32, 48))
    [video] = get_layout("sav-val").videos(tmp_path)
    theirs, palette = meta.load_masks_from_dir(str(tmp_path / "Annotations_6fps"), video.video_id, "00004", True)
    ours = video.masks(4)
    assert sorted(theirs) == [int(obj) for obj in ours] and palette is None is video.palette
    assert all(np.array_equal(ours[f"{obj:03d}"], mask) for obj, mask in theirs.items())
