"""SA-V readers/writers, DAVIS writers, COCO RLE decoding and mask PNGs, on small fixtures written here."""

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from sam2_plugins.datasets.davis import write_davis_label_maps
from sam2_plugins.datasets.sav_eval import read_eval_split, write_sav_object_masks
from sam2_plugins.datasets.sav_train import list_train_videos, read_masklet_json
from sam2_plugins.evaluate import evaluate_folders
from sam2_plugins.frames import FrameSourceError, frame_name
from sam2_plugins.masks import (
    MaskFormatError,
    decode_rle,
    encode_rle,
    read_binary_mask_png,
    read_mask_png,
    rle_counts,
    write_binary_png,
    write_palette_png,
)
from sam2_plugins.sample_data import masklet_json
from sam2_plugins.video_writer import write_mp4

RNG = np.random.default_rng(1)


def random_mask(shape=(12, 17), density=0.4) -> np.ndarray:
    return RNG.random(shape) < density


# ---------------------------------------------------------------- RLE


def test_rle_round_trip_compressed_and_list_forms():
    for mask in [random_mask(), np.zeros((5, 7), bool), np.ones((5, 7), bool), random_mask((64, 3), 0.02)]:
        rle = encode_rle(mask)
        assert isinstance(rle["counts"], str)
        np.testing.assert_array_equal(decode_rle(rle), mask)
        runs = rle_counts(rle, "test")
        assert sum(runs) == mask.size
        np.testing.assert_array_equal(decode_rle({"size": rle["size"], "counts": runs}), mask)


def test_rle_list_counts_are_column_major_runs():
    # 2x3, column-major order: 1 background, 3 foreground, 2 background.
    expected = np.array([[0, 1, 0], [1, 1, 0]], bool)
    np.testing.assert_array_equal(decode_rle({"size": [2, 3], "counts": [1, 3, 2]}), expected)


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ({"size": [12, 17], "counts": None}, "truncated"),  # replaced below by a truncated string
        ({"size": [12, 17], "counts": "!!!!"}, "invalid character"),
        ({"counts": "abc"}, "needs 'size'"),
        ({"size": [2, 3], "counts": [1, 3, 1]}, "cover 5 pixels, not 2x3=6"),
    ],
)
def test_bad_rle_is_a_clear_error(rle, message):
    if rle["counts"] is None:
        rle = dict(rle, counts=encode_rle(random_mask())["counts"][:-2])
    with pytest.raises(MaskFormatError, match=message):
        decode_rle(rle, "video.json: masklet[3]")


# ---------------------------------------------------------------- PNG


def test_binary_png_writer_round_trip(tmp_path):
    mask = random_mask()
    write_binary_png(tmp_path / "a" / "m.png", mask)
    stored = read_mask_png(tmp_path / "a" / "m.png")
    assert stored.dtype == np.uint8 and set(np.unique(stored)) == {0, 255}
    np.testing.assert_array_equal(read_binary_mask_png(tmp_path / "a" / "m.png"), mask)


def test_palette_png_writer_round_trip_and_davis_colours(tmp_path):
    labels = RNG.integers(0, 4, (9, 11))
    write_palette_png(tmp_path / "p.png", labels)
    image = Image.open(tmp_path / "p.png")
    assert image.mode == "P"
    np.testing.assert_array_equal(np.array(image), labels)
    assert image.getpalette()[:12] == [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]
    with pytest.raises(MaskFormatError, match="values 0..255"):
        write_palette_png(tmp_path / "q.png", np.full((2, 2), 300))


def test_mask_png_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_mask_png(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with pytest.raises(MaskFormatError, match="bad.png: unreadable"):
        read_mask_png(tmp_path / "bad.png")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(MaskFormatError, match="rgb.png: mask has shape"):
        read_mask_png(tmp_path / "rgb.png")


# ---------------------------------------------------------------- SA-V train


VIDEO_FIELDS = (
    "video_id",
    "video_duration",
    "video_frame_count",
    "video_height",
    "video_width",
    "video_resolution",
    "video_environment",
    "video_split",
    "masklet_num",
)
MASKLET_FIELDS = {  # JSON list -> Masklet attribute
    "masklet_id": "masklet_id",
    "masklet_type": "masklet_type",
    "masklet_size_rel": "size_rel",
    "masklet_size_abs": "size_abs",
    "masklet_size_bucket": "size_bucket",
    "masklet_visibility_changes": "visibility_changes",
    "masklet_first_appeared_frame": "first_appeared_frame",
    "masklet_frame_count": "frame_count",
    "masklet_edited_frame_count": "edited_frame_count",
}


def masklet_file(video_id: str, masks: np.ndarray, masklet_type: str, num_frames: int = 9) -> dict:
    """A ``_manual``/``_auto`` JSON dict in the real layout for masks (N objects, K annotated frames, H, W)."""
    return masklet_json(video_id, np.moveaxis(masks, 1, 0), masklet_type, num_frames)


def assert_every_field_kept(record, raw: dict) -> None:
    """The reader kept every field of the JSON ``raw``, and decodes every mask as pycocotools does."""
    for name in VIDEO_FIELDS:
        assert getattr(record, name) == raw[name], name
    assert len(record.masklets) == len(raw["masklet_id"])
    for i, masklet in enumerate(record.masklets):
        for name, attribute in MASKLET_FIELDS.items():
            assert getattr(masklet, attribute) == raw[name][i], (name, i)
        assert isinstance(masklet.first_appeared_frame, int)
        scores = raw["masklet_stability_score"]
        if masklet.masklet_type == "manual":
            assert scores[i] is None and masklet.stability_scores is None
        else:  # nested like "masklet": [annotated frame][masklet]
            assert masklet.stability_scores == [scores[k][i] for k in range(len(raw["masklet"]))]
        assert masklet.rles == [frame[i] for frame in raw["masklet"]]
        for k, frame in enumerate(raw["masklet"]):
            reference = coco_mask.decode({"size": frame[i]["size"], "counts": frame[i]["counts"].encode()})
            assert np.array_equal(masklet.mask(k), reference.astype(bool)), (i, k)


@pytest.fixture
def train_root(tmp_path):
    """Two shards: video A with manual and auto masklets (same ids), video B with manual only."""
    frames = np.zeros((9, 16, 16, 3), np.uint8)
    manual = RNG.random((2, 3, 16, 16)) < 0.3
    auto = RNG.random((2, 3, 16, 16)) < 0.3
    for shard, video_id, with_auto in [("sav_000", "sav_000001", True), ("sav_001", "sav_000002", False)]:
        (tmp_path / shard).mkdir()
        write_mp4(frames, tmp_path / shard / f"{video_id}.mp4")
        (tmp_path / shard / f"{video_id}_manual.json").write_text(json.dumps(masklet_file(video_id, manual, "manual")))
        if with_auto:
            (tmp_path / shard / f"{video_id}_auto.json").write_text(json.dumps(masklet_file(video_id, auto, "auto")))
    return tmp_path, manual, auto


def test_train_shards_every_field_and_lazy_masks(train_root):
    root, manual, auto = train_root
    videos = list_train_videos(root)
    assert [(v.video_id, v.auto_path is not None) for v in videos] == [("sav_000001", True), ("sav_000002", False)]
    manual_file, auto_file = videos[0].annotations()
    for record in (manual_file, auto_file):
        assert_every_field_kept(record, json.loads(record.path.read_text()))
    assert (manual_file.video_id, manual_file.video_height, manual_file.video_width) == ("sav_000001", 16, 16)
    assert manual_file.masklets[1].annotated_frames == [0, 4, 8]  # annotation k is video frame 4k
    np.testing.assert_array_equal(manual_file.masklets[1].mask(2), manual[1, 2])
    # Manual and auto ids overlap: the type keeps them apart.
    assert [m.key for m in manual_file.masklets + auto_file.masklets] == ["manual_0", "manual_1", "auto_0", "auto_1"]
    scores = [m.stability_scores for m in auto_file.masklets]
    assert len({score for masklet in scores for score in masklet}) == 6  # one per (annotated frame, masklet)
    np.testing.assert_array_equal(auto_file.masklets[0].mask(1), auto[0, 1])
    with videos[0].frames() as frames:
        assert len(frames) == 9 and (frames.height, frames.width) == (16, 16)


def test_real_manual_file_every_field_pixel_exact(sav_real_train):
    """Meta's own sav_000001_manual.json: floats for first appearances, a null stability score per masklet."""
    [video] = list_train_videos(sav_real_train)
    manual, auto = video.annotations()
    raw = json.loads(manual.path.read_text())
    assert raw["masklet_stability_score"] == [None] * 5 and raw["masklet_first_appeared_frame"][3] == 113.0
    assert_every_field_kept(manual, raw)
    assert (manual.video_height, manual.video_width, manual.video_frame_count) == (848, 480, 483)
    assert [len(m.rles) for m in manual.masklets] == [121] * 5
    assert manual.masklets[3].annotated_frames[-1] == 480
    for masklet in manual.masklets:  # first_appeared_frame counts annotated frames, not video frames
        visible = [k for k in range(len(masklet.rles)) if masklet.mask(k).any()]
        assert visible[0] == masklet.first_appeared_frame
    assert [m.key for m in auto.masklets] == [f"auto_{i}" for i in range(9)]


def test_auto_file_in_the_real_nesting_scores_each_frame_and_masklet(sav_real_train):
    [video] = list_train_videos(sav_real_train)
    _, auto = video.annotations()
    raw = json.loads(auto.path.read_text())
    assert len(raw["masklet_stability_score"]) == 121 and {len(row) for row in raw["masklet_stability_score"]} == {9}
    assert_every_field_kept(auto, raw)
    empty = [(k, i) for i, m in enumerate(auto.masklets) for k in range(len(m.rles)) if not m.mask(k).any()]
    assert empty  # an absent auto masklet is an empty RLE, not a null
    assert auto.masklets[8].stability_scores[3] == raw["masklet_stability_score"][3][8]


def test_annotations_past_the_end_of_the_mp4_or_of_another_size_are_errors(train_root):
    root, _, _ = train_root
    video = list_train_videos(root)[1]
    write_mp4(np.zeros((8, 16, 16, 3), np.uint8), video.video_path)  # annotations reach frame 8
    with pytest.raises(MaskFormatError, match=r"sav_000002_manual.json: 3 annotated frames .* reach video frame 8, "):
        video.annotations()
    write_mp4(np.zeros((9, 16, 18, 3), np.uint8), video.video_path)
    with pytest.raises(MaskFormatError, match=r"sav_000002_manual.json: annotations are 16x16 but .* is 18x16"):
        video.annotations()


def test_stability_scores_in_another_nesting_are_a_clear_error(train_root):
    root, _, _ = train_root
    path = root / "sav_000" / "sav_000001_auto.json"
    data = json.loads(path.read_text())
    by_masklet = [list(row) for row in zip(*data["masklet_stability_score"])]  # [masklet][frame]: not SA-V's
    path.write_text(json.dumps({**data, "masklet_stability_score": by_masklet}))
    with pytest.raises(MaskFormatError, match=r"sav_000001_auto.json: masklet_stability_score must hold one null"):
        read_masklet_json(path)
    path.write_text(json.dumps({**data, "masklet_first_appeared_frame": [0.5, 0]}))
    with pytest.raises(MaskFormatError, match=r"masklet_first_appeared_frame\[0\] is 0.5, not a whole number"):
        read_masklet_json(path)


def test_truncated_rle_fails_only_when_decoded_and_names_it(train_root):
    root, _, _ = train_root
    path = root / "sav_000" / "sav_000001_manual.json"
    data = json.loads(path.read_text())
    data["masklet"][1][0]["counts"] = data["masklet"][1][0]["counts"][:-3]
    path.write_text(json.dumps(data))
    masklet = read_masklet_json(path).masklets[0]
    masklet.mask(0)
    with pytest.raises(MaskFormatError, match=r"sav_000001_manual.json: masklet\[1\] of manual_0"):
        masklet.mask(1)


def test_bad_train_annotations_are_clear_errors(train_root):
    root, _, _ = train_root
    path = root / "sav_000" / "sav_000001_manual.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "masklet_type": ["manual"]}))
    with pytest.raises(MaskFormatError, match="masklet_type has 1 entries, masklet_id has 2"):
        read_masklet_json(path)
    path.write_text(json.dumps({k: v for k, v in data.items() if k != "video_height"}))
    with pytest.raises(MaskFormatError, match="'video_height'"):
        read_masklet_json(path)
    path.write_text(json.dumps(data)[:-20])
    with pytest.raises(MaskFormatError, match="sav_000001_manual.json: corrupt JSON"):
        read_masklet_json(path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        list_train_videos(root / "missing")


def test_train_videos_with_a_missing_file_are_skipped_with_a_warning(train_root):
    root, _, _ = train_root
    (root / "sav_000" / "sav_000001_manual.json").unlink()
    with pytest.warns(UserWarning, match=r"sav_000001_manual.json: manual annotation missing, video .*sav_000001.mp4"):
        videos = list_train_videos(root)
    assert [v.video_id for v in videos] == ["sav_000002"]
    skipped = {}
    (root / "sav_001" / "sav_000002.mp4").unlink()
    with pytest.raises(FileNotFoundError, match="no train video with its manual annotation"):
        list_train_videos(root, on_skip=skipped.__setitem__)
    assert "sav_000001_manual.json: manual annotation missing" in skipped["sav_000001"]
    assert "sav_000002.mp4: video missing" in skipped["sav_000002"]


def test_a_video_id_in_two_shards_or_unfit_for_a_file_name_is_reported_naming_the_files(train_root):
    root, _, _ = train_root
    for name in ("sav_000001.mp4", "sav_000001_manual.json"):  # the same video id in the second shard
        (root / "sav_001" / name).write_bytes((root / "sav_000" / name).read_bytes())
    (root / "sav_001" / "..mp4").write_bytes(b"")  # video id '.'
    (root / "sav_001" / "._manual.json").write_text("{}")
    skipped = {}
    videos = list_train_videos(root, on_skip=skipped.__setitem__)
    assert [v.video_id for v in videos] == ["sav_000002"]  # neither copy of sav_000001: which is right is unknown
    assert skipped == {
        "sav_000001": f"{root / 'sav_000' / 'sav_000001.mp4'} and {root / 'sav_001' / 'sav_000001.mp4'}: video "
        "sav_000001 is in two shards; keep the one that belongs to its annotations and delete the other (a video id "
        "names one video)",
        ".": f"{root / 'sav_001' / '..mp4'}: video id '.' names a folder itself, so it cannot name a file or folder; "
        "rename it to a plain name such as 'sav_000001' or '001'",
    }


def test_include_auto_false_does_not_read_the_auto_file(train_root):
    root, _, _ = train_root
    video = list_train_videos(root)[0]
    video.auto_path.write_text("{corrupt")
    assert [f.path for f in video.annotations(include_auto=False)] == [video.manual_path]
    with pytest.raises(MaskFormatError, match="sav_000001_auto.json: corrupt JSON"):
        video.annotations()


# ---------------------------------------------------------------- SA-V val/test and DAVIS


def test_val_split_overlapping_and_late_objects(tmp_path):
    (tmp_path / "sav_val.txt").write_text("vid_b\nvid_a\n")
    person = np.zeros((8, 10), bool)
    person[1:7, 2:8] = True
    hand = np.zeros((8, 10), bool)
    hand[4:6, 3:5] = True  # inside the person: objects overlap
    names = ["00000", "00004", "00008"]
    for video in ("vid_a", "vid_b"):
        frames = tmp_path / "JPEGImages_24fps" / video
        frames.mkdir(parents=True)
        for t in range(9):
            Image.fromarray(np.full((8, 10, 3), 20 * t, np.uint8)).save(frames / f"{frame_name(t)}.jpg")
        annotations = tmp_path / "Annotations_6fps"
        write_sav_object_masks(annotations, video, "000", dict.fromkeys(names, person))
        write_sav_object_masks(annotations, video, "001", {"00000": np.zeros_like(hand), "00004": hand, "00008": hand})
    videos = read_eval_split(tmp_path)
    assert [v.video_id for v in videos] == ["vid_b", "vid_a"]  # the split file's order
    video = videos[0]
    assert video.object_ids == ["000", "001"] and video.annotated_frames("001") == [int(name) for name in names]
    masks = video.masks(4)
    assert (masks["000"] & masks["001"]).sum() == hand.sum()
    with video.frames() as frames:
        assert len(frames) == 9
    (tmp_path / "sav_val.txt").write_text("vid_a\nvid_c\n")
    with pytest.raises(FileNotFoundError, match="vid_c"):
        read_eval_split(tmp_path)
    with pytest.raises(FileNotFoundError, match="sav_val.txt or sav_test.txt"):
        read_eval_split(tmp_path / "JPEGImages_24fps")


def write_val_video(root, video_id, frame_numbers, mask_numbers):
    """``video_id`` in ``root``'s SA-V val layout: JPEGs with the given numbers and object 000 masked on others."""
    frames = root / "JPEGImages_24fps" / video_id
    frames.mkdir(parents=True)
    for t in frame_numbers:
        Image.fromarray(np.full((8, 10, 3), 20 * t, np.uint8)).save(frames / f"{frame_name(t)}.jpg")
    masks = {frame_name(t): random_mask((8, 10)) for t in mask_numbers}
    write_sav_object_masks(root / "Annotations_6fps", video_id, "000", masks)


def test_video_ids_of_the_list_that_are_paths_or_listed_twice_are_refused_naming_the_line(tmp_path):
    root = tmp_path / "sav_val"
    write_val_video(root, "vid_a", range(5), [0, 4])
    (tmp_path / "esc").mkdir()  # where "../../esc" leads from JPEGImages_24fps and Annotations_6fps
    list_file = root / "sav_val.txt"
    list_file.write_text("../../esc\nvid_a\n\nvid_a\n")
    with pytest.raises(ValueError, match=rf"{list_file}, line 1: video id '../../esc' holds a path separator"):
        read_eval_split(root)
    skipped = {}
    assert read_eval_split(root, on_skip=skipped.__setitem__) == []
    assert skipped == {
        "../../esc": f"{list_file}, line 1: video id '../../esc' holds a path separator, so it cannot name a "
        "file or folder; rename it to a plain name such as 'sav_000001' or '001'",
        "vid_a": f"{list_file}: video vid_a is listed on lines 2 and 4; list it once",
    }
    list_file.write_text("vid_a\n")
    [video] = read_eval_split(root)
    with video.frames() as frames:
        video.check_fits(frames)  # frames 0..4, masks on 0 and 4


@pytest.mark.parametrize(
    ("frame_numbers", "mask_numbers", "error", "message"),
    [
        ([0, 1, 5], [0, 5], FileNotFoundError, r"3 frame\(s\) missing before frame 00005: 00002, 00003, 00004; SA-V"),
        ([1, 2, 3], [1], FileNotFoundError, r"1 frame\(s\) missing before frame 00003: 00000; SA-V numbers every"),
        ([0, 1, 2], [0, 4], MaskFormatError, r"000/00004.png: a mask on frame 4, but .*vid ends at frame 00002"),
    ],
)
def test_frames_are_indexed_by_number_a_gap_is_refused_naming_the_missing_frames(
    tmp_path, frame_numbers, mask_numbers, error, message
):
    (tmp_path / "sav_val.txt").write_text("vid\n")
    write_val_video(tmp_path, "vid", frame_numbers, mask_numbers)
    [video] = read_eval_split(tmp_path)
    with video.frames() as frames, pytest.raises(error, match=message):
        video.check_fits(frames)


def test_frames_or_masks_not_named_by_one_number_are_refused_naming_them(tmp_path):
    (tmp_path / "sav_val.txt").write_text("vid\n")
    write_val_video(tmp_path, "vid", range(3), [0, 2])
    [video] = read_eval_split(tmp_path)
    frames_folder = tmp_path / "JPEGImages_24fps" / "vid"
    (frames_folder / "2.jpg").write_bytes((frames_folder / "00002.jpg").read_bytes())
    with (
        video.frames() as frames,
        pytest.raises(FrameSourceError, match=r"vid: frame 2 is in 2 files, \['00002', '2'\]"),
    ):
        video.check_fits(frames)
    (frames_folder / "2.jpg").rename(frames_folder / "cover.jpg")
    with (
        video.frames() as frames,
        pytest.raises(FrameSourceError, match="vid: frame 'cover' is not named by its index"),
    ):
        video.check_fits(frames)
    (frames_folder / "cover.jpg").unlink()
    masks = tmp_path / "Annotations_6fps" / "vid" / "000"
    (masks / "2.png").write_bytes((masks / "00002.png").read_bytes())
    with video.frames() as frames, pytest.raises(MaskFormatError, match=r"000/2.png and 00002.png: two masks on one"):
        video.check_fits(frames)
    (masks / "2.png").rename(masks / "first.png")
    with video.frames() as frames, pytest.raises(MaskFormatError, match=r"000/first.png: not named by a frame index"):
        video.check_fits(frames)


def test_davis_writer_round_trips_through_the_evaluator(tmp_path):
    labels = np.zeros((6, 6), np.uint8)
    labels[:3, :3] = 1
    labels[3:, 3:] = 5
    later = np.where(labels == 5, 5, 0).astype(np.uint8)
    maps = {"00000": labels, "00001": later, "00002": np.zeros_like(labels)}
    for root in ("gt", "pred"):
        assert write_davis_label_maps(tmp_path / root, "v", maps) == tmp_path / root / "v"
    result = evaluate_folders(tmp_path / "gt", tmp_path / "pred", skip_first_and_last=False).to_json(per_frame=True)
    assert set(result["objects"]) == {"v/001", "v/005"} and result["global"]["J&F"] == 100.0
    assert list(result["objects"]["v/001"]["frames"]) == ["00000", "00001", "00002"]
