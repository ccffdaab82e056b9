"""import_sav through FiftyOne's operator executor, on a real MongoDB: exact masks, resumable, bad inputs."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import execute, form_errors, fresh_dataset_name, mongod, resolve_form, sav_sample  # noqa: F401

import json
import shutil
import time
from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest
from fiftyone.operators.executor import ExecutionError
from file_trees import tree

from sam2_plugins.datasets.sav_eval import EVAL_ANNOTATIONS_FOLDER, EVAL_FRAMES_FOLDER
from sam2_plugins.fiftyone_plugin.completion import mark_finished
from sam2_plugins.fiftyone_plugin.import_sav import SAV_SPLIT_FOLDER, SavImportError, import_sav, overwrite_losses
from sam2_plugins.fiftyone_plugin.tracks import MaskletSummary
from sam2_plugins.frames import frame_name
from sam2_plugins.masks import decode_rle, encode_rle
from sam2_plugins.sample_data import ANNOTATION_STRIDE

pytestmark = pytest.mark.fiftyone


def rendered_ground_truth(sample: fo.Sample) -> dict[tuple[int, int], np.ndarray]:
    """``{(frame_number, index): mask}`` rendered by FiftyOne's own Detection.to_segmentation."""
    size = (sample.metadata.frame_width, sample.metadata.frame_height)
    masks = {}
    for number, frame in sample.frames.items():
        if frame.ground_truth is not None:
            for detection in frame.ground_truth.detections:
                key = (number, detection.index)
                assert key not in masks, f"duplicate track {detection.index} on frame {number}"
                masks[key] = detection.to_segmentation(frame_size=size).mask > 0
    return masks


def stored_samples(dataset: fo.Dataset, video_id: str) -> list[dict]:
    """Every stored sample of the video as a dict: ids, fields, modification times, frames and their labels."""
    return [
        sample.to_dict(include_frames=True, include_private=True)
        for sample in dataset.match(fo.ViewField("video_id") == video_id)
    ]


def assert_no_orphan_frames(dataset: fo.Dataset) -> None:
    """The frames collection holds only the frames of the dataset's samples (a replaced sample took its own)."""
    assert dataset.stats()["frames_count"] == dataset.count("frames")


def test_val_import_is_pixel_exact_and_complete(sav_sample, fresh_dataset_name):
    root, videos = sav_sample["val"]
    result = execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    assert result["imported"] == [v.video_id for v in videos] and not result["failed"]
    dataset = fo.load_dataset(fresh_dataset_name)
    for video in videos:
        sample = dataset.match(fo.ViewField("video_id") == video.video_id).first()
        assert sample.metadata.total_frame_count == len(video.frames)
        assert sample.filepath.endswith(".mp4")
        assert fo.VideoMetadata.build_for(sample.filepath).total_frame_count == len(video.frames)
        # predictions read the original JPEGs, frame number = SA-V index + 1
        assert [f.filepath.rsplit("/", 1)[1] for f in sample.frames.values()] == [
            f"{frame_name(t)}.jpg" for t in range(len(video.frames))
        ]
        expected = {
            (t + 1, obj): video.masks[obj, t]
            for obj in range(len(video.masks))
            for t in video.annotated_frames
            if video.masks[obj, t].any()
        }
        rendered = rendered_ground_truth(sample)
        assert rendered.keys() == expected.keys()
        for key, mask in expected.items():
            assert np.array_equal(rendered[key], mask), key
        # evaluation frames per object include the annotated frames where it is absent
        for masklet in sample.sav_masklets:
            assert masklet["annotated_frames"] == [t + 1 for t in video.annotated_frames]
        absent = [t for t in video.annotated_frames if not video.masks[3, t].any()]
        assert absent and all(sample.frames[t + 1].ground_truth is not None for t in absent)


def test_train_import_manual_and_auto(sav_sample, fresh_dataset_name):
    root, videos = sav_sample["train"]
    result = execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    assert sorted(result["imported"]) == [v.video_id for v in videos]
    dataset = fo.load_dataset(fresh_dataset_name)
    schema = dataset.get_frame_field_schema(flat=True)
    assert {"ground_truth.detections.masklet_id", "ground_truth.detections.stability_score"} <= set(schema)
    for video in videos:
        sample = dataset.match(fo.ViewField("video_id") == video.video_id).first()
        manual = json.loads(next(root.glob(f"*/{video.video_id}_manual.json")).read_text())
        auto_path = next(root.glob(f"*/{video.video_id}_auto.json"), None)
        files = [manual] + ([json.loads(auto_path.read_text())] if auto_path else [])
        expected, stability = {}, {}
        index = 0
        for content in files:
            for i, masklet_id in enumerate(content["masklet_id"]):
                for k, frame in enumerate(content["masklet"]):
                    mask = decode_rle(frame[i])
                    if mask.any():
                        expected[(ANNOTATION_STRIDE * k + 1, index)] = (mask, masklet_id, content["masklet_type"][i])
                        if content["masklet_type"][i] == "auto":  # scores nest like masklet: [frame][masklet]
                            stability[(ANNOTATION_STRIDE * k + 1, index)] = content["masklet_stability_score"][k][i]
                index += 1
        rendered = rendered_ground_truth(sample)
        assert rendered.keys() == expected.keys()
        for key, (mask, _, _) in expected.items():
            assert np.array_equal(rendered[key], mask), key
        for number, frame in sample.frames.items():
            for d in frame.ground_truth.detections if frame.ground_truth else []:
                _, masklet_id, masklet_type = expected[(number, d.index)]
                assert (d.masklet_id, d.masklet_type) == (masklet_id, masklet_type)
                assert d.get_field("stability_score") if masklet_type == "auto" else True
                if masklet_type == "auto":
                    assert d.stability_score == stability[(number, d.index)]
        assert sample.video_environment == manual["video_environment"]
        assert sample.masklet_num == sum(len(c["masklet_id"]) for c in files)
        assert [m["size_abs"] for m in sample.sav_masklets[: len(manual["masklet_id"])]] == manual["masklet_size_abs"]


def test_rerun_skips_finished_videos_and_resumes_a_cut_off_one(sav_sample, fresh_dataset_name):
    root, videos = sav_sample["train"]
    execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name, max_videos=2)
    dataset = fo.load_dataset(fresh_dataset_name)
    assert len(dataset) == 2
    cut_off = dataset.first()  # as if the job died after adding the sample but before marking it done
    cut_off.sam2_completed = []
    cut_off.save()
    labels_before = dataset.count("frames.ground_truth.detections")
    result = execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    assert result["imported"] == [cut_off.video_id, videos[2].video_id]
    assert len(result["skipped"]) == 1
    assert len(dataset) == 3 and len(dataset.distinct("video_id")) == 3
    assert dataset.limit(2).count("frames.ground_truth.detections") <= labels_before
    again = execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    assert again["imported"] == [] and len(again["skipped"]) == 3


def test_without_auto_masklets(sav_sample, fresh_dataset_name):
    root, _ = sav_sample["train"]
    execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name, include_auto=False)
    types = fo.load_dataset(fresh_dataset_name).distinct("frames.ground_truth.detections.masklet_type")
    assert types == ["manual"]


def test_bad_videos_are_reported_and_skipped(sav_sample, fresh_dataset_name, tmp_path):
    source, videos = sav_sample["train"]
    root = tmp_path / "train"
    shutil.copytree(source, root)
    corrupt, no_video, wrong_size = (v.video_id for v in videos)
    next(root.glob(f"*/{corrupt}_manual.json")).write_text('{"video_id": "sav_000001", "masklet": [[')
    next(root.glob(f"*/{no_video}.mp4")).unlink()
    manual = next(root.glob(f"*/{wrong_size}_manual.json"))
    content = json.loads(manual.read_text())
    content["masklet"][1][0] = encode_rle(np.ones((10, 12), bool))
    manual.write_text(json.dumps(content))
    with pytest.raises(ExecutionError, match="no video imported, all 3 failed") as raised:
        execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    message = str(raised.value)
    assert f"{corrupt}: " in message and "corrupt JSON" in message and f"{corrupt}_manual.json" in message
    assert f"{no_video}: " in message and f"{no_video}.mp4: video missing" in message
    assert f"{wrong_size}: " in message and "12x10" in message
    assert not fo.dataset_exists(fresh_dataset_name)  # the dataset this import created is not left behind empty
    with pytest.raises(SavImportError) as sdk_raised:  # the SDK raises the same error
        import_sav(root, dataset_name=fresh_dataset_name)
    assert str(sdk_raised.value) in message


def test_a_corrupt_mp4_and_a_missing_val_folder_fail_alone_while_the_rest_imports(
    sav_sample, fresh_dataset_name, tmp_path
):
    source, videos = sav_sample["train"]
    root = tmp_path / "train"
    shutil.copytree(source, root)
    corrupt = videos[1].video_id
    mp4 = next(root.glob(f"*/{corrupt}.mp4"))
    mp4.write_bytes(mp4.read_bytes()[:300])  # a cut-off download: ffprobe cannot read it
    result = execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    assert result["imported"] == [videos[0].video_id, videos[2].video_id]
    assert list(result["failed"]) == [corrupt] and f"{mp4}: not a readable video" in result["failed"][corrupt]
    assert result["failures"] == [f"{corrupt}: {result['failed'][corrupt]}"]
    assert result["summary"] == "2 imported, 0 skipped, 1 failed"
    _, report = import_sav(root, dataset_name=fresh_dataset_name)  # the SDK reports the same
    assert (report.imported, report.skipped, report.failed) == ([], result["imported"], result["failed"])

    val_source, val_videos = sav_sample["val"]
    val_root = tmp_path / "val"
    shutil.copytree(val_source, val_root)
    missing = val_videos[0].video_id
    shutil.rmtree(val_root / EVAL_FRAMES_FOLDER / missing)
    result = execute("import_sav", dataset_dir=str(val_root), dataset_name=f"{fresh_dataset_name}-val")
    assert result["imported"] == [v.video_id for v in val_videos[1:]] and list(result["failed"]) == [missing]
    assert f"{val_root / EVAL_FRAMES_FOLDER / missing}: missing folder" in result["failed"][missing]
    fo.delete_dataset(f"{fresh_dataset_name}-val")


def test_overwrite_names_the_prediction_fields_and_marks_it_deletes(sav_sample, fresh_dataset_name):
    root, _ = sav_sample["val"]
    execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    dataset = fo.load_dataset(fresh_dataset_name)
    form = resolve_form("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name, overwrite=True)
    assert "overwrite_warning" not in form  # nothing but the import's own fields yet
    sample = dataset.first()
    sample.frames[1]["sam2"] = fo.Detections()
    sample["jf_JF"] = 50.0
    sample.save()
    mark_finished(sample, "apply_sam2/sam2")
    assert overwrite_losses(dataset) == (["jf_JF", "frames.sam2"], ["apply_sam2/sam2"])
    form = resolve_form("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name, overwrite=True)
    warning = form["overwrite_warning"].view
    assert (
        "deletes" in warning.label
        and warning.description == "fields: jf_JF, frames.sam2; finished marks: apply_sam2/sam2"
    )
    assert "overwrite_warning" not in resolve_form("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    result = execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name, overwrite=True, max_videos=1)
    assert result["replaced"] == [sample.video_id] == result["imported"]
    assert result["deleted"] == warning.description
    [replaced] = stored_samples(dataset, sample.video_id)
    assert replaced.get("jf_JF") is None and replaced["sam2_completed"] == ["import_sav"]
    assert all(frame.get("sam2") is None for frame in replaced["frames"].values())


def test_form_refuses_a_folder_that_does_not_exist(mongod, tmp_path):
    errors = form_errors("import_sav", dataset_dir=str(tmp_path / "nowhere"))
    assert errors == {"dataset_dir": f"{tmp_path / 'nowhere'}: no such folder; give the path of {SAV_SPLIT_FOLDER}"}
    with pytest.raises(ExecutionError, match="Validation error. Path: dataset_dir. Reason: .*no such folder"):
        execute("import_sav", dataset_dir=str(tmp_path / "nowhere"), dataset_name="never-created")
    assert not fo.dataset_exists("never-created")
    assert form_errors("import_sav", dataset_dir=str(tmp_path)) == {}


def test_meta_real_manual_file_imports_pixel_exactly_with_auto_stability_scores(sav_real_train, fresh_dataset_name):
    from pycocotools import mask as coco_mask

    result = execute("import_sav", dataset_dir=str(sav_real_train), dataset_name=fresh_dataset_name)
    assert result["imported"] == ["sav_000001"] and not result["failed"]
    sample = fo.load_dataset(fresh_dataset_name).first()
    assert (sample.metadata.frame_height, sample.metadata.frame_width) == (848, 480)
    assert sample.metadata.total_frame_count == 483
    shard = sav_real_train / "sav_000"
    files = [json.loads((shard / f"sav_000001_{kind}.json").read_text()) for kind in ("manual", "auto")]
    assert files[0]["masklet_stability_score"] == [None] * 5  # Meta's real manual layout
    expected, stability = {}, {}
    for content, offset in zip(files, (0, len(files[0]["masklet_id"]))):  # auto tracks follow the manual ones
        for k, frame in enumerate(content["masklet"]):
            for i, rle in enumerate(frame):
                mask = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
                if mask.any():
                    expected[(ANNOTATION_STRIDE * k + 1, offset + i)] = mask
                    if content["masklet_type"][i] == "auto":
                        stability[(ANNOTATION_STRIDE * k + 1, offset + i)] = content["masklet_stability_score"][k][i]
    rendered = rendered_ground_truth(sample)
    assert rendered.keys() == expected.keys() and len(expected) > 121 * 5
    for key, mask in expected.items():
        assert np.array_equal(rendered[key], mask), key
    scores = {
        (number, d.index): d.get_field("stability_score") if d.has_field("stability_score") else None
        for number, frame in sample.frames.items()
        for d in (frame.ground_truth.detections if frame.ground_truth else [])
    }
    assert {key: score for key, score in scores.items() if score is not None} == stability
    assert len(set(stability.values())) == len(stability)  # each frame and masklet its own score
    assert all(scores[key] is None for key in expected if key[1] < 5)  # manual masklets carry none
    manual = [MaskletSummary.from_dict(m) for m in sample.sav_masklets[:5]]
    assert [m.first_appeared_frame for m in manual] == [1, 1, 1, ANNOTATION_STRIDE * 113 + 1, 1]
    assert [m.size_abs for m in manual] == files[0]["masklet_size_abs"]
    assert all(m.annotated_frames == list(range(1, 484, ANNOTATION_STRIDE)) for m in manual)


def test_failed_val_overwrite_keeps_the_previous_sample_and_its_mp4(sav_sample, fresh_dataset_name, tmp_path):
    source, videos = sav_sample["val"]
    root = tmp_path / "val"
    shutil.copytree(source, root)
    video_id = videos[0].video_id
    execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name, max_videos=1)
    dataset = fo.load_dataset(fresh_dataset_name)
    [previous] = stored_samples(dataset, video_id)
    mp4 = Path(previous["filepath"])
    mp4_bytes = mp4.read_bytes()
    last_frame = root / EVAL_FRAMES_FOLDER / video_id / f"{frame_name(len(videos[0].frames) - 1)}.jpg"
    jpeg = last_frame.read_bytes()
    last_frame.write_bytes(b"not a jpeg")  # the encode fails on the last frame, after writing the others
    with pytest.raises(ExecutionError, match=f"{video_id}: {last_frame}: unreadable image"):
        execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name, max_videos=1, overwrite=True)
    assert stored_samples(dataset, video_id) == [previous]
    assert mp4.read_bytes() == mp4_bytes and list(mp4.parent.iterdir()) == [mp4]
    last_frame.write_bytes(jpeg)
    replaced = execute(
        "import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name, max_videos=1, overwrite=True
    )
    assert replaced["imported"] == [video_id]
    [new] = stored_samples(dataset, video_id)
    assert new["_id"] != previous["_id"] and new["filepath"] == str(mp4)
    assert fo.VideoMetadata.build_for(str(mp4)).total_frame_count == len(videos[0].frames)
    assert_no_orphan_frames(dataset)


def test_missing_manual_annotation_is_reported_and_auto_files_read_only_when_included(
    sav_sample, fresh_dataset_name, tmp_path
):
    source, videos = sav_sample["train"]
    root = tmp_path / "train"
    shutil.copytree(source, root)
    no_manual, corrupt_auto, manual_only = (v.video_id for v in videos)
    next(root.glob(f"*/{no_manual}_manual.json")).unlink()
    next(root.glob(f"*/{corrupt_auto}_auto.json")).write_text("{corrupt")
    result = execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name, include_auto=False)
    assert result["imported"] == [corrupt_auto, manual_only]
    assert list(result["failed"]) == [no_manual]
    assert f"{no_manual}_manual.json: manual annotation missing" in result["failed"][no_manual]
    dataset = fo.load_dataset(fresh_dataset_name)
    kept = stored_samples(dataset, corrupt_auto)
    assert len(kept) == 1 and any(frame.get("ground_truth") for frame in kept[0]["frames"].values())
    [replaced_id] = dataset.match(fo.ViewField("video_id") == manual_only).values("id")
    replaced_masks = rendered_ground_truth(dataset[replaced_id])
    again = execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name, overwrite=True)
    assert again["imported"] == [manual_only] and set(again["failed"]) == {no_manual, corrupt_auto}
    assert f"{corrupt_auto}_auto.json: corrupt JSON" in again["failed"][corrupt_auto]
    # the failed overwrite left the previous sample, its frame labels and its finished mark as they were
    assert stored_samples(dataset, corrupt_auto) == kept
    # the successful one replaced the sample: one sample, a new one, with the same masks
    [new_id] = dataset.match(fo.ViewField("video_id") == manual_only).values("id")
    assert new_id != replaced_id
    new_masks = rendered_ground_truth(dataset[new_id])
    assert new_masks.keys() == replaced_masks.keys() and all(
        np.array_equal(new_masks[key], mask) for key, mask in replaced_masks.items()
    )
    assert_no_orphan_frames(dataset)
    assert len(execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name)["skipped"]) == 2
    for manual in root.glob("*/*_manual.json"):
        manual.unlink()
    with pytest.raises(ExecutionError, match="no train video with its manual annotation"):
        execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name)


def test_list_lines_that_are_paths_or_repeat_a_video_fail_naming_the_line_and_nothing_leaves_the_folders(
    sav_sample, fresh_dataset_name, tmp_path
):
    source, videos = sav_sample["val"]
    root = tmp_path / "work" / "sav_val"
    shutil.copytree(source, root)
    escaped = tmp_path / "work" / "esc"  # where "../../esc" leads from JPEGImages_24fps and Annotations_6fps
    shutil.copytree(root / EVAL_FRAMES_FOLDER / videos[0].video_id, escaped)
    shutil.copytree(root / EVAL_ANNOTATIONS_FOLDER / videos[0].video_id, escaped, dirs_exist_ok=True)
    list_file = root / "sav_val.txt"
    first, second = (v.video_id for v in videos)
    list_file.write_text(f"../../esc\n{first}\n{second}\n\n{second}\n")
    before = tree(tmp_path)
    result = execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    assert result["imported"] == [first]
    assert result["failed"] == {
        "../../esc": f"{list_file}, line 1: video id '../../esc' holds a path separator, so it cannot name a file or "
        "folder; rename it to a plain name such as 'sav_000001' or '001'",
        second: f"{list_file}: video {second} is listed on lines 3 and 5; list it once",
    }
    assert result["summary"] == "1 imported, 0 skipped, 2 failed"
    assert tree(tmp_path) == before
    datasets_dir = Path(fo.config.default_dataset_dir)
    dataset = fo.load_dataset(fresh_dataset_name)
    assert dataset.values("filepath") == [str(datasets_dir / "sam2-plugins" / dataset.slug / f"{first}.mp4")]
    assert not list(datasets_dir.parent.rglob("esc.mp4"))  # "../../esc" would have written <datasets>/esc.mp4


def test_a_dataset_name_with_slashes_keeps_the_mp4s_in_fiftyones_dataset_folder(sav_sample, mongod):
    root, videos = sav_sample["val"]
    name = f"../../hostile {time.monotonic_ns()}"  # FiftyOne takes any name; its slug is a safe folder name
    execute("import_sav", dataset_dir=str(root), dataset_name=name, max_videos=1)
    dataset = fo.load_dataset(name)
    [mp4] = dataset.values("filepath")
    assert Path(mp4) == Path(fo.config.default_dataset_dir, "sam2-plugins", dataset.slug, f"{videos[0].video_id}.mp4")
    assert dataset.slug.startswith("hostile-")
    dataset.delete()


def test_a_video_id_in_two_train_shards_fails_naming_both_files(sav_sample, fresh_dataset_name, tmp_path):
    source, videos = sav_sample["train"]
    root = tmp_path / "train"
    shutil.copytree(source, root)
    execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    dataset = fo.load_dataset(fresh_dataset_name)
    twice = videos[0].video_id
    kept = stored_samples(dataset, twice)
    original = next(root.glob(f"*/{twice}.mp4"))
    other_shard = root / "sav_009"  # a later shard holding another video under the same id
    other_shard.mkdir()
    for path in original.parent.glob(f"{twice}*"):
        shutil.copy(path, other_shard / path.name)
    result = execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name, overwrite=True)
    assert result["failed"] == {
        twice: f"{original} and {other_shard / original.name}: video {twice} is in two shards; keep the one that "
        "belongs to its annotations and delete the other (a video id names one video)"
    }
    assert result["imported"] == [v.video_id for v in videos[1:]] and result["skipped"] == []
    assert stored_samples(dataset, twice) == kept  # the sample imported before the copy appeared is left as it was


def test_a_gap_in_the_jpeg_numbering_fails_the_video_naming_the_missing_frames(
    sav_sample, fresh_dataset_name, tmp_path
):
    source, videos = sav_sample["val"]
    root = tmp_path / "val"
    shutil.copytree(source, root)
    gap, whole = (v.video_id for v in videos)
    frames = root / EVAL_FRAMES_FOLDER / gap
    for jpeg in frames.iterdir():  # JPEGs 00000, 00001 and 00005 left
        if jpeg.stem not in ("00000", "00001", "00005"):
            jpeg.unlink()
    for masks in (root / EVAL_ANNOTATIONS_FOLDER / gap).iterdir():  # masks on frames 0 and 5
        (masks / "00004.png").rename(masks / "00005.png")
        for png in masks.iterdir():
            if png.stem not in ("00000", "00005"):
                png.unlink()
    result = execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    assert result["failed"] == {
        gap: f"{frames}: 3 frame(s) missing before frame 00005: 00002, 00003, 00004; SA-V numbers every 24 fps "
        "frame, so masks would land on the wrong frames: re-download this video"
    }
    assert result["imported"] == [whole] and result["summary"] == "1 imported, 0 skipped, 1 failed"
    assert fo.load_dataset(fresh_dataset_name).distinct("video_id") == [whole]


def test_object_folders_of_one_masklet_id_fail_the_video_naming_both_and_unicode_digits_do_not_crash(
    sav_sample, fresh_dataset_name, tmp_path
):
    """``1`` and ``001`` were both masklet 1, so an export merged them into one folder; ``²`` (a digit to
    str.isdigit, not to int) made the whole import fail with int()'s ValueError."""
    source, videos = sav_sample["val"]
    root = tmp_path / "val"
    shutil.copytree(source, root)
    clash, superscript = (v.video_id for v in videos)
    clash_objects = root / EVAL_ANNOTATIONS_FOLDER / clash
    (clash_objects / "000").rename(clash_objects / "1")
    superscript_objects = root / EVAL_ANNOTATIONS_FOLDER / superscript
    last = sorted(superscript_objects.iterdir())[-1]
    last.rename(superscript_objects / "²")
    result = execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    assert result["failed"] == {
        clash: f"{clash_objects}: object folders '001' and '1' both give masklet id 1, so they would be exported as "
        "one object; rename one of them"
    }
    assert result["imported"] == [superscript]
    [sample] = fo.load_dataset(fresh_dataset_name)
    objects = sorted(p.name for p in superscript_objects.iterdir())
    assert objects[-1] == "²" and [int(name) for name in objects[:-1]] == list(range(len(objects) - 1))
    masklet_ids = [MaskletSummary.from_dict(m).masklet_id for m in sample.sav_masklets]
    assert masklet_ids == list(range(len(objects)))  # '²' is masklet len - 1, its position
    labels = {
        d.label: d.masklet_id
        for frame in sample.frames.values()
        if frame.ground_truth
        for d in frame.ground_truth.detections
    }
    assert labels["²"] == len(objects) - 1
