import json
import math

import numpy as np
import pytest

from napari_bloodseg.evaluation import build_report, format_table, images_in, mask_index, report_json, score_pairs

TARGET = np.array([[0, 0, 1, 1], [0, 1, 1, 2], [0, 1, 2, 2]])
PRED = np.array([[0, 1, 1, 1], [0, 0, 1, 2], [1, 1, 2, 1]])  # cytoplasm J 0.5, nucleus J 2/3 (see test_metrics)

REPORT_KEYS = {"model", "schema", "n_images", "seconds", "device", "per_class", "pixel_accuracy", "images"}
CLASS_KEYS = {"jaccard", "dice", "jaccard_sem", "dice_sem"}


def test_report_shape_and_values():
    names, scores = score_pairs([("001", PRED, TARGET), ("002", TARGET, TARGET)], "wbc")
    assert names == ["001", "002"]
    report = build_report(names, scores, "wbc", model="unet", seconds=1.5, device="cpu (2 threads)")
    assert REPORT_KEYS <= set(report)
    assert (report["model"], report["schema"], report["n_images"], report["device"]) == (
        "unet",
        "wbc",
        2,
        "cpu (2 threads)",
    )
    assert report["seconds"] == 1.5
    assert list(report["per_class"]) == ["cytoplasm", "nucleus", "cell"]
    for entry in report["per_class"].values():
        assert CLASS_KEYS <= set(entry)
    assert report["per_class"]["cytoplasm"]["jaccard"] == pytest.approx(0.75)
    assert report["per_class"]["cytoplasm"]["jaccard_sem"] == pytest.approx(0.25)
    assert report["per_class"]["nucleus"]["jaccard"] == pytest.approx((2 / 3 + 1) / 2)
    assert [im["name"] for im in report["images"]] == ["001", "002"]
    assert report["images"][0]["per_class"]["cytoplasm"]["jaccard"] == pytest.approx(0.5)
    assert report["images"][1]["per_class"]["nucleus"]["dice"] == 1.0
    json.loads(json.dumps(report))  # plain JSON types only


def test_rbc_report_has_only_cell():
    names, scores = score_pairs([("f", np.array([[0, 1]]), np.array([[0, 1]]))], "rbc")
    report = build_report(names, scores, "rbc")
    assert list(report["per_class"]) == ["cell"]
    assert math.isnan(report["per_class"]["cell"]["jaccard_sem"])  # one image: SEM undefined
    assert json.loads(report_json(report))["per_class"]["cell"]["jaccard_sem"] is None  # null in the JSON
    assert "1.0000 ±    -" in format_table(report)  # a dash in the table, not "± 0.0000"


def test_empty_report_and_errors():
    report = build_report([], [], "wbc", errors=["x.png: broken"])
    assert report["n_images"] == 0 and report["per_class"] == {} and report["images"] == []
    assert math.isnan(report["pixel_accuracy"])
    assert report["errors"] == ["x.png: broken"]


def test_format_table():
    names, scores = score_pairs([("a", PRED, TARGET)], "wbc")
    text = format_table(build_report(names, scores, "wbc", model="m", seconds=2.5, device="cpu"))
    lines = text.splitlines()
    assert lines[0] == "1 image, schema wbc, model m, device cpu, 2.5 s"
    assert lines[2].split()[:4] == ["cytoplasm", "0.5000", "±", "-"]  # no SEM from one image
    assert lines[3].split()[:2] == ["nucleus", "0.6667"]
    assert lines[4].split()[:2] == ["cell", "0.7000"]
    assert lines[-1] == "overall pixel accuracy 0.6667"
    names, scores = score_pairs([("a", PRED, TARGET), ("b", TARGET, TARGET)], "wbc")
    two = format_table(build_report(names, scores, "wbc", model="m", seconds=2.5, device="cpu")).splitlines()
    assert two[0].startswith("2 images,") and two[2].split()[:4] == ["cytoplasm", "0.7500", "±", "0.2500"]


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"")


def test_images_in_skips_masks_of_paired_folder(tmp_path):
    _touch(tmp_path / "d1", "001.bmp", "001.png", "002.bmp", "002.png")
    _touch(tmp_path / "plain", "b.png", "a.png")
    _touch(tmp_path, "single.jpg")
    out = images_in([tmp_path / "d1", tmp_path / "plain", tmp_path / "single.jpg"])
    assert [p.name for p in out] == ["001.bmp", "002.bmp", "a.png", "b.png", "single.jpg"]


def test_mask_index(tmp_path):
    _touch(tmp_path / "d1", "001.bmp", "001.png", "002.bmp", "002.png")
    assert {k: v.name for k, v in mask_index(tmp_path / "d1").items()} == {"001": "001.png", "002": "002.png"}
    _touch(tmp_path / "masks_only", "001_mask.png", "002.png", "notes.txt")
    assert {k: v.name for k, v in mask_index(tmp_path / "masks_only").items()} == {
        "001": "001_mask.png",
        "002": "002.png",
    }
    with pytest.raises(FileNotFoundError):
        mask_index(tmp_path / "missing")


def test_an_image_among_the_masks_hides_no_other_mask(tmp_path):
    """``001.bmp`` copied into a folder of masks made it a dataset whose only mask was 001's: 002-004 were
    reported as having no expert mask although their files were there."""
    _touch(tmp_path / "m", "001.png", "002.png", "003.png", "004_mask.png", "001.bmp")
    index = {k: v.name for k, v in mask_index(tmp_path / "m").items()}
    assert index == {"001": "001.png", "002": "002.png", "003": "003.png", "004": "004_mask.png"}
    # a dataset folder with an image not annotated yet: that image is not its own mask
    _touch(tmp_path / "d1p", "001.bmp", "001.png", "002.bmp", "002.png", "003.bmp")
    assert sorted(mask_index(tmp_path / "d1p")) == ["001", "002"]


def test_images_in_reads_zarr_stores_not_folders_named_so_and_arrays_beside_images_are_theirs(tmp_path):
    from PIL import Image

    zarr = pytest.importorskip("zarr")
    plain = tmp_path / "smears.zarr"  # a folder of images that happens to be named .zarr
    plain.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(plain / "001.png")
    assert images_in([plain]) == [plain / "001.png"]
    store = tmp_path / "field.zarr"
    zarr.open_array(str(store), mode="w", shape=(8, 8, 3), dtype="u1")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(mixed / "001.bmp")
    np.save(mixed / "001.npy", np.zeros(3))  # that image's data, not another image
    np.save(mixed / "002.npy", np.zeros((8, 8, 3), np.uint8))
    assert images_in([store, mixed]) == [store, mixed / "001.bmp", mixed / "002.npy"]
