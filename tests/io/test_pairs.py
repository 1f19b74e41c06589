from pathlib import Path

import pytest

from napari_bloodseg.io import find_pairs


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"")


def _names(pairs):
    return [(img.name, mask.name if mask else None) for img, mask in pairs]


def test_dataset1_layout_bmp_and_png_in_one_folder(tmp_path):
    # Zheng et al. Dataset 1: NNN.bmp image + NNN.png mask side by side
    _touch(tmp_path, "002.png", "001.bmp", "001.png", "002.bmp", "003.bmp", "readme.txt")
    assert _names(find_pairs(tmp_path)) == [("001.bmp", "001.png"), ("002.bmp", "002.png"), ("003.bmp", None)]


def test_rbc_layout_jpg_and_png(tmp_path):
    _touch(tmp_path, "0a3b-field.jpg", "0a3b-field.png", "ffee.jpg", "ffee.png")
    assert _names(find_pairs(tmp_path)) == [("0a3b-field.jpg", "0a3b-field.png"), ("ffee.jpg", "ffee.png")]


def test_images_and_masks_subfolders(tmp_path):
    _touch(tmp_path / "images", "a.png", "b.png", "c.tif")
    _touch(tmp_path / "masks", "a.png", "b_mask.png", "zz.png")
    assert _names(find_pairs(tmp_path)) == [("a.png", "a.png"), ("b.png", "b_mask.png"), ("c.tif", None)]
    # the images really come from images/, the masks from masks/
    pairs = find_pairs(tmp_path)
    assert pairs[0][0].parent.name == "images" and pairs[0][1].parent.name == "masks"


def test_subfolder_names_are_case_insensitive(tmp_path):
    _touch(tmp_path / "Images", "x.bmp")
    _touch(tmp_path / "Labels", "x.png")
    assert _names(find_pairs(tmp_path)) == [("x.bmp", "x.png")]


def test_explicit_mask_folder(tmp_path):
    _touch(tmp_path / "imgs_here", "1.png", "2.png")
    _touch(tmp_path / "gt_there", "1_gt.png")
    assert _names(find_pairs(tmp_path / "imgs_here", tmp_path / "gt_there")) == [("1.png", "1_gt.png"), ("2.png", None)]


@pytest.mark.parametrize("tag", ["_mask", "_masks", "_label", "_labels", "_gt", "-mask", "_seg", "_MASK"])
def test_tagged_masks_in_one_folder(tmp_path, tag):
    _touch(tmp_path, "001.png", f"001{tag}.png", "002.jpg", f"002{tag}.tif", "003.png")
    assert _names(find_pairs(tmp_path)) == [
        ("001.png", f"001{tag}.png"),
        ("002.jpg", f"002{tag}.tif"),
        ("003.png", None),
    ]


def test_images_only(tmp_path):
    _touch(tmp_path, "b.png", "a.png")
    assert _names(find_pairs(tmp_path)) == [("a.png", None), ("b.png", None)]


def test_not_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        find_pairs(tmp_path / "missing")


def test_real_dataset1_pairs(shared_data):
    pairs = find_pairs(shared_data / "wbc" / "dataset1")
    assert len(pairs) == 270
    assert all(img.suffix == ".bmp" and mask is not None and mask.stem == img.stem for img, mask in pairs)


def test_jpeg_masks_in_a_masks_folder_and_hidden_files_skipped(tmp_path):
    _touch(tmp_path / "images", "001.jpg", "002.jpg", "._001.jpg")
    _touch(tmp_path / "masks", "001.jpg", "002.png", "._002.png")
    assert _names(find_pairs(tmp_path)) == [("001.jpg", "001.jpg"), ("002.jpg", "002.png")]


def test_two_mask_folders_are_refused_not_picked_by_listing_order(tmp_path):
    """``ds/labels`` (predictions written there) beside ``ds/masks``: taking the first folder the disk lists scored
    a model against its own predictions (1.0 everywhere)."""
    from napari_bloodseg.io.pairs import LayoutError

    _touch(tmp_path / "images", "001.bmp")
    _touch(tmp_path / "masks", "001.png")
    _touch(tmp_path / "labels", "001.png")
    with pytest.raises(LayoutError, match=r"has labels/ and masks/: which holds the expert masks is not clear"):
        find_pairs(tmp_path)
    assert _names(find_pairs(tmp_path / "images", tmp_path / "masks")) == [("001.bmp", "001.png")]  # named


def test_two_masks_of_one_image_are_refused_not_one_dropped(tmp_path):
    from napari_bloodseg.io.pairs import LayoutError

    _touch(tmp_path / "ds" / "images", "001.bmp", "002.bmp")
    _touch(tmp_path / "ds" / "masks", "001-mask.png", "001.png", "002-mask.png")
    with pytest.raises(LayoutError, match=r"more than one mask for one image \(001-mask.png, 001.png\)"):
        find_pairs(tmp_path / "ds")
    _touch(tmp_path / "flat", "001.png", "001_mask.png", "001_gt.png")  # one folder: NNN.png + tagged masks
    with pytest.raises(LayoutError, match=r"001_gt.png, 001_mask.png"):
        find_pairs(tmp_path / "flat")
    _touch(tmp_path / "ok" / "masks", "001-mask.png", "stray.png")  # a mask of no image present is no doubt
    _touch(tmp_path / "ok" / "images", "001.bmp")
    assert _names(find_pairs(tmp_path / "ok")) == [("001.bmp", "001-mask.png")]


def test_dataset1_layout_with_a_tagged_mask_too_is_two_masks_not_a_second_image(tmp_path):
    """001.bmp + 001.png + 001-mask.png: 001.png was taken as a second image of the tagged mask, and train and
    finetune learnt from the expert mask as if it were a micrograph."""
    from napari_bloodseg.io.pairs import LayoutError

    _touch(tmp_path / "d1", "001.bmp", "001.png", "001-mask.png", "002.bmp", "002.png")
    with pytest.raises(LayoutError, match=r"more than one mask for one image \(001.png, 001-mask.png\)"):
        find_pairs(tmp_path / "d1")
    _touch(tmp_path / "pngs", "001.png", "001_mask.png")  # beside no other image, 001.png is the image
    assert _names(find_pairs(tmp_path / "pngs")) == [("001.png", "001_mask.png")]


def test_a_folder_named_like_masks_without_mask_files_is_no_second_masks_folder(tmp_path):
    """COCO's annotations/instances.json or YOLO's labels/*.txt beside masks/ is not a choice of expert masks."""
    _touch(tmp_path / "images", "001.bmp")
    _touch(tmp_path / "masks", "001.png")
    _touch(tmp_path / "annotations", "instances.json")
    _touch(tmp_path / "labels", "001.txt")
    assert _names(find_pairs(tmp_path)) == [("001.bmp", "001.png")]
