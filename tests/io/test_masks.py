import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_bloodseg.io import MaskError, read_mask, write_mask
from napari_bloodseg.schemas import IGNORE_INDEX, RBC, WBC

LABELS = np.array([[0, 1, 2, 2], [1, 1, 0, 2], [0, 0, 0, 1]], np.uint8)
GREY = np.array([[0, 128, 255, 255], [128, 128, 0, 255], [0, 0, 0, 128]], np.uint8)  # LABELS on disk


def _save_grey(path, grey):
    Image.fromarray(np.asarray(grey, np.uint8), mode="L").save(path)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
def test_write_mask_uses_schema_grey_levels(tmp_path, suffix):
    path = write_mask(tmp_path / f"m{suffix}", LABELS, "wbc")
    raw = tifffile.imread(path) if suffix != ".png" else np.asarray(Image.open(path))
    assert raw.dtype == np.uint8
    np.testing.assert_array_equal(raw, GREY)
    labels, schema = read_mask(path, "wbc")
    assert schema is WBC
    np.testing.assert_array_equal(labels, LABELS)


def test_write_rbc_mask(tmp_path):
    labels = np.array([[0, 1], [1, 0]], np.uint8)
    write_mask(tmp_path / "r.png", labels, RBC)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "r.png")), [[0, 255], [255, 0]])
    out, schema = read_mask(tmp_path / "r.png")  # schema guessed: no mid-grey
    assert schema is RBC
    np.testing.assert_array_equal(out, labels)


def test_stray_grey_values_snap_to_nearest_level(tmp_path):
    # hand-made masks carry anti-aliasing/JPEG residue: 2 and 50 are background, 100 cytoplasm, 200 nucleus
    _save_grey(tmp_path / "stray.png", [[0, 2, 50, 100, 128, 200, 255]])
    labels, schema = read_mask(tmp_path / "stray.png")
    assert schema is WBC  # 100 and 128 are mid-grey
    assert labels.tolist() == [[0, 0, 0, 1, 1, 2, 2]]
    labels, _ = read_mask(tmp_path / "stray.png", "wbc")
    assert labels.tolist() == [[0, 0, 0, 1, 1, 2, 2]]


def test_rbc_stray_values(tmp_path):
    _save_grey(tmp_path / "s.png", [[0, 3, 120, 140, 250, 255]])
    labels, _ = read_mask(tmp_path / "s.png", "rbc")
    assert labels.tolist() == [[0, 0, 0, 1, 1, 1]]


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_rgb_saved_masks_are_accepted(tmp_path, mode):
    rgb = np.repeat(GREY[..., None], 3, -1)
    if mode == "RGBA":
        rgb = np.concatenate([rgb, np.full(GREY.shape + (1,), 255, np.uint8)], -1)
    Image.fromarray(rgb, mode=mode).save(tmp_path / "c.png")
    labels, schema = read_mask(tmp_path / "c.png")
    assert schema is WBC
    np.testing.assert_array_equal(labels, LABELS)


def test_coloured_mask_uses_channel_maximum(tmp_path):
    # e.g. a mask painted in pure red (255, 0, 0) for the nucleus and (128, 0, 0) for cytoplasm
    rgb = np.zeros(GREY.shape + (3,), np.uint8)
    rgb[..., 0] = GREY
    Image.fromarray(rgb).save(tmp_path / "red.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "red.png", "wbc")[0], LABELS)


def test_16bit_mask(tmp_path):
    tifffile.imwrite(tmp_path / "m16.tif", GREY.astype(np.uint16) * 257)  # 0 / 32896 / 65535
    labels, schema = read_mask(tmp_path / "m16.tif")
    assert schema is WBC
    np.testing.assert_array_equal(labels, LABELS)


def test_label_space_mask_kept(tmp_path):
    _save_grey(tmp_path / "ls.png", LABELS)  # already 0/1/2, as a Labels layer would save it
    labels, schema = read_mask(tmp_path / "ls.png")
    assert schema is WBC
    np.testing.assert_array_equal(labels, LABELS)


def test_size_mismatch_is_refused_naming_both_sizes(tmp_path):
    write_mask(tmp_path / "007.png", np.zeros((10, 12), np.uint8), "wbc")
    with pytest.raises(MaskError, match=r"007\.png: mask is 10x12 but its image is 10x13"):
        read_mask(tmp_path / "007.png", "wbc", shape=(10, 13))
    # an (H, W, 3) image shape is fine too
    assert read_mask(tmp_path / "007.png", "wbc", shape=(10, 12, 3))[0].shape == (10, 12)


def test_unreadable_mask(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(MaskError, match=r"bad\.png: cannot read image"):
        read_mask(tmp_path / "bad.png")
    with pytest.raises(MaskError, match="no such file"):
        read_mask(tmp_path / "missing.png")
    (tmp_path / "002.png").mkdir()  # was "no such file", although it exists
    with pytest.raises(MaskError, match=r"002\.png: a folder, not a file$"):
        read_mask(tmp_path / "002.png")
    (tmp_path / "003.png").write_bytes(b"")  # was "cannot identify image file"
    with pytest.raises(MaskError, match=r"003\.png: empty file \(0 bytes\)$"):
        read_mask(tmp_path / "003.png")


def test_write_refuses_existing_file_unless_overwrite(tmp_path):
    path = write_mask(tmp_path / "m.png", LABELS, "wbc")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        write_mask(path, np.zeros_like(LABELS), "wbc")
    assert path.read_bytes() == before
    write_mask(path, np.zeros_like(LABELS), "wbc", overwrite=True)
    assert not np.asarray(Image.open(path)).any()
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]  # no temp files left behind


def test_partial_labels_round_trip_as_transparent_pixels(tmp_path):
    labels = LABELS.copy()
    labels[0, 1] = IGNORE_INDEX  # "not annotated"
    write_mask(tmp_path / "i.png", labels, "wbc")
    raw = np.asarray(Image.open(tmp_path / "i.png").convert("LA"))
    # grey keeps the schema's levels (the unlabelled pixel as background), alpha 0 marks "not annotated"
    expected_grey = GREY.copy()
    expected_grey[0, 1] = 0
    np.testing.assert_array_equal(raw[..., 0], expected_grey)
    assert raw[0, 1, 1] == 0 and (np.delete(raw[..., 1].ravel(), 1) == 255).all()
    out, schema = read_mask(tmp_path / "i.png")
    assert schema is WBC
    np.testing.assert_array_equal(out, labels)


def test_partial_labels_in_tiff_declare_their_alpha_and_older_files_still_read(tmp_path):
    """tifffile's default for an (H, W, 2) array is H pages of W x 2, which other software shows as a stack; the
    alpha is declared now, and files this tool wrote the old way read as before."""
    labels, grey = np.tile(LABELS, (4, 4)), np.tile(GREY, (4, 4))  # taller than 4 rows, as masks are
    labels[0, 1] = IGNORE_INDEX
    write_mask(tmp_path / "i.tif", labels, "wbc")
    with tifffile.TiffFile(tmp_path / "i.tif") as tif:
        assert tif.series[0].axes == "YXS" and tuple(tif.pages[0].extrasamples) == (2,)
    np.testing.assert_array_equal(read_mask(tmp_path / "i.tif")[0], labels)
    grey_alpha = np.dstack([np.where(labels == IGNORE_INDEX, 0, grey), np.where(labels == IGNORE_INDEX, 0, 255)])
    tifffile.imwrite(tmp_path / "old.tif", grey_alpha.astype(np.uint8), compression="zlib")  # the old writer
    np.testing.assert_array_equal(read_mask(tmp_path / "old.tif")[0], labels)


def test_fully_labelled_mask_has_no_alpha(tmp_path):
    write_mask(tmp_path / "f.png", LABELS, "wbc")
    assert Image.open(tmp_path / "f.png").mode == "L"


def test_write_refuses_bad_input(tmp_path):
    with pytest.raises(MaskError, match=r"values \[2\] outside the rbc schema \(0\.\.1, 255: unlabelled\)"):
        write_mask(tmp_path / "x.png", np.array([[0, 2]], np.uint8), "rbc")
    with pytest.raises(MaskError, match=r"values \[-1\] outside"):  # "ignore" as -1 was written as background
        write_mask(tmp_path / "x.png", np.array([[0, -1]], np.int16), "rbc")
    for bad in (0.85, np.nan):  # 0.85 was written as 0, NaN as background
        with pytest.raises(MaskError, match="whole class values"):
            write_mask(tmp_path / "x.png", np.array([[0.0, bad]]), "wbc")
    with pytest.raises(MaskError, match="must be 2-D"):
        write_mask(tmp_path / "x.png", np.zeros((2, 2, 3), np.uint8), "wbc")
    with pytest.raises(MaskError, match=r"x\.jpg: masks are written as \.png or \.tif, not \.jpg"):
        write_mask(tmp_path / "x.jpg", LABELS, "wbc")  # lossy JPEG would corrupt the grey levels
    assert list(tmp_path.iterdir()) == []


def test_real_dataset2_masks_with_stray_values(shared_data):
    folder = shared_data / "wbc" / "dataset2-dev"
    masks = sorted(folder.glob("*.png"))
    assert len(masks) == 20
    stray = 0
    for path in masks:
        raw = np.asarray(Image.open(path))
        stray += not set(np.unique(raw).tolist()) <= {0, 128, 255}
        labels, schema = read_mask(path, shape=(300, 300))
        assert schema is WBC
        assert labels.shape == (300, 300) and set(np.unique(labels).tolist()) <= {0, 1, 2}
        # snapping moves only the stray pixels: every clean pixel keeps its level
        clean = np.isin(raw, (0, 128, 255))
        np.testing.assert_array_equal(labels[clean], WBC.from_disk(raw[clean]))
        assert {1, 2} <= set(np.unique(labels).tolist())  # every crop holds a cell with a nucleus
    assert stray >= 1  # the folder really exercises the snapping


def test_real_rbc_mask(shared_data):
    path = sorted((shared_data / "rbc").glob("*.png"))[0]
    with Image.open(path.with_suffix(".jpg")) as im:
        shape = im.height, im.width
    labels, schema = read_mask(path, shape=shape)
    assert schema is RBC
    assert set(np.unique(labels).tolist()) == {0, 1}


def test_a_colour_photograph_is_not_read_as_a_mask(tmp_path):
    from PIL import Image

    from napari_bloodseg.data import synthetic_wbc
    from napari_bloodseg.io import MaskError, read_mask
    from napari_bloodseg.io.masks import looks_like_photo

    image, labels = synthetic_wbc(96, seed=0)
    Image.fromarray(image).save(tmp_path / "photo.png")
    with pytest.raises(MaskError, match="photo.png: a colour image, not a mask"):
        read_mask(tmp_path / "photo.png", "wbc")
    coded = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255]], np.uint8)[labels]  # a colour-coded mask: 3 colours
    grey_rgb = np.repeat(np.array([0, 128, 255], np.uint8)[labels][..., None], 3, axis=-1)
    assert looks_like_photo(image) and not looks_like_photo(coded) and not looks_like_photo(grey_rgb)


def test_palette_masks_are_read_as_class_indices(tmp_path):
    im = Image.fromarray(LABELS, mode="P")  # annotation tools: pixel = class, VOC colours in the palette
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (253 * 3))
    im.save(tmp_path / "voc.png")
    labels, schema = read_mask(tmp_path / "voc.png")
    assert schema is WBC  # was: both colours' channel maximum 128, so no nucleus at all
    np.testing.assert_array_equal(labels, LABELS)
    grey = Image.fromarray(GREY, mode="L").convert("P")  # a grey palette is grey levels, as before
    grey.save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "grey.png")[0], LABELS)


def test_tiff_masks_palette_indices_and_miniswhite_values(tmp_path):
    """A palette TIFF of class indices reads as classes, as a palette PNG does; a MinIsWhite mask keeps its stored
    values (ImageJ's inverted-LUT masks store 255 for the object), where a MinIsWhite image is shown inverted."""
    cmap = np.zeros((3, 256), np.uint16)
    cmap[:, 1], cmap[:, 2] = (65535, 0, 0), (0, 65535, 0)  # VOC-like colours for classes 1 and 2
    tifffile.imwrite(tmp_path / "voc.tif", LABELS, photometric="palette", colormap=cmap)
    labels, schema = read_mask(tmp_path / "voc.tif")
    assert schema is WBC
    np.testing.assert_array_equal(labels, LABELS)
    tifffile.imwrite(tmp_path / "white.tif", GREY, photometric="miniswhite")
    np.testing.assert_array_equal(read_mask(tmp_path / "white.tif")[0], LABELS)
    tifffile.imwrite(tmp_path / "voc8.tif", LABELS, photometric="palette", colormap=cmap // 257)  # 8-bit table
    np.testing.assert_array_equal(read_mask(tmp_path / "voc8.tif")[0], LABELS)


def test_colour_coded_masks_are_refused_not_merged(tmp_path):
    rgb = np.zeros(GREY.shape + (3,), np.uint8)
    rgb[LABELS == 1] = (255, 0, 0)  # red cytoplasm
    rgb[LABELS == 2] = (0, 0, 255)  # blue nucleus: the channel maximum made both nucleus
    Image.fromarray(rgb).save(tmp_path / "coded.png")
    with pytest.raises(MaskError, match="colour-coded mask"):
        read_mask(tmp_path / "coded.png", "wbc")


def test_an_rgba_masks_transparency_is_not_unlabelled(tmp_path):
    rgba = np.dstack([GREY, GREY, GREY, np.where(GREY > 0, 255, 0).astype(np.uint8)])  # overlay: clear background
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "overlay.png")
    labels, _ = read_mask(tmp_path / "overlay.png", "wbc")
    np.testing.assert_array_equal(labels, LABELS)  # background, not IGNORE: it counts in the scores


@pytest.mark.parametrize("noise", [0, 1])
def test_label_value_masks_bent_by_jpeg_keep_their_classes(tmp_path, noise):
    bent = LABELS + (LABELS == 2) * noise  # JPEG turns some 2s into 3s
    labels, schema = read_mask(_save_grey(tmp_path / "l.png", bent) or tmp_path / "l.png")
    assert schema is WBC
    np.testing.assert_array_equal(labels, LABELS)  # was: every value snapped to grey level 0, background


def test_16bit_and_float_masks_keep_their_levels(tmp_path):
    cyto_only = np.where(GREY == 255, 0, GREY).astype(np.uint16) * 257  # 0 / 32896 only
    tifffile.imwrite(tmp_path / "c16.tif", cyto_only)
    labels, _ = read_mask(tmp_path / "c16.tif", "wbc")
    assert set(np.unique(labels)) == {0, 1}  # was: rescaled by its own maximum, so cytoplasm became nucleus
    tifffile.imwrite(tmp_path / "f.tif", GREY.astype(np.float32) / 255.0)  # 0 / 0.5 / 1
    np.testing.assert_array_equal(read_mask(tmp_path / "f.tif", "wbc")[0], LABELS)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_the_schema_written_is_the_schema_read_where_grey_levels_cannot_tell(tmp_path, suffix):
    """Grey 0/255 is nucleus in a WBC mask and cell in an RBC one: a WBC correction holding no cytoplasm reopened
    as RBC (and switched back to WBC in the Correct widget, its nucleus became cytoplasm)."""
    from napari_bloodseg.io.masks import read_mask, write_mask
    from napari_bloodseg.schemas import IGNORE_INDEX

    labels = np.full((20, 30), IGNORE_INDEX, np.uint8)
    labels[:10] = 0
    labels[12:16, 5:9] = 2  # nucleus corrected, the rest of the cell left unlabelled
    write_mask(tmp_path / f"wbc{suffix}", labels, "wbc")
    back, schema = read_mask(tmp_path / f"wbc{suffix}")
    assert schema.name == "wbc"
    np.testing.assert_array_equal(back, labels)
    cells = (labels == 2).astype(np.uint8)
    write_mask(tmp_path / f"rbc{suffix}", cells, "rbc")
    back, schema = read_mask(tmp_path / f"rbc{suffix}")
    assert schema.name == "rbc" and back.max() == 1
    Image.fromarray(cells * 255).save(tmp_path / "plain.png")  # an expert's 0/255 mask, no mark: guessed RBC
    assert read_mask(tmp_path / "plain.png")[1].name == "rbc"


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_prediction_records_its_model_and_other_masks_do_not(tmp_path, rng, suffix):
    """``predict --overwrite`` replaces only files that say they are predictions: an exported correction (written
    without ``predicted_by``) or an expert's mask must not look like one."""
    from napari_bloodseg.io.lazy import write_mask_banded
    from napari_bloodseg.io.masks import predicted_by, stored_marks

    labels = rng.integers(0, 3, (20, 30), dtype=np.uint8)
    pred = write_mask(tmp_path / f"pred{suffix}", labels, "wbc", predicted_by="wbc-unet")
    fixed = write_mask(tmp_path / f"fixed{suffix}", labels, "wbc")
    banded = write_mask_banded(tmp_path / f"banded{suffix}", labels, "wbc", rows=7, predicted_by="wbc-segnet")
    Image.fromarray(WBC.to_disk(labels)).save(tmp_path / "expert.png")
    assert (predicted_by(pred), predicted_by(fixed), predicted_by(banded)) == ("wbc-unet", None, "wbc-segnet")
    assert predicted_by(tmp_path / "expert.png") is None and stored_marks(tmp_path / "expert.png") == {}
    assert stored_marks(fixed) == {"bloodseg:schema": "wbc"}
    np.testing.assert_array_equal(read_mask(pred)[0], labels)


def _jpeg(a: np.ndarray, quality: int = 75) -> np.ndarray:
    import io

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf))


def test_a_grey_photograph_is_not_read_as_a_mask(tmp_path):
    # its 256 shades were snapped to 0/128/255 and scored as an expert's mask (exit 0); colour ones were refused
    from napari_bloodseg.data import synthetic_rbc, synthetic_wbc

    grey = np.asarray(Image.fromarray(synthetic_wbc(120, seed=0)[0]).convert("L"))
    _save_grey(tmp_path / "photo.png", grey)
    with pytest.raises(MaskError, match=r"photo\.png: a grey picture .*not a mask"):
        read_mask(tmp_path / "photo.png", "wbc")
    Image.fromarray(np.dstack([grey] * 3)).save(tmp_path / "rgb.png")  # grey in three equal channels
    with pytest.raises(MaskError, match="rgb.png: a grey picture"):
        read_mask(tmp_path / "rgb.png")
    tifffile.imwrite(tmp_path / "deep.tif", grey.astype(np.uint16) * 257)
    with pytest.raises(MaskError, match="deep.tif: a grey picture"):
        read_mask(tmp_path / "deep.tif")
    field = np.asarray(Image.fromarray(synthetic_rbc(seed=0)[0]).convert("L"))
    tifffile.imwrite(tmp_path / "slide.tif", np.tile(field, (3, 2)))  # 1800 x 1600: judged on tiles of it
    with pytest.raises(MaskError, match="slide.tif: a grey picture"):
        read_mask(tmp_path / "slide.tif")


def test_a_mask_of_flat_levels_off_the_format_is_refused_naming_the_odd_level(tmp_path):
    """Audit #19: 0/64/255 (a mask whose cytoplasm was saved as 64) was called "smooth shades"."""
    from napari_bloodseg.data import synthetic_wbc

    labels = synthetic_wbc(120, seed=0)[1]
    _save_grey(tmp_path / "odd.png", np.array([0, 64, 255], np.uint8)[labels])
    with pytest.raises(MaskError, match=r"odd\.png: flat grey levels 0, 64, 255, of which 64 is not a mask level"):
        read_mask(tmp_path / "odd.png", "wbc")


def test_lossy_resized_and_odd_masks_are_not_taken_for_photographs(tmp_path):
    from napari_bloodseg.data import synthetic_rbc, synthetic_wbc
    from napari_bloodseg.io.masks import looks_like_grey_photo

    labels = synthetic_wbc(120, seed=1)[1]
    grey = WBC.to_disk(labels)
    small = np.asarray(Image.fromarray(grey).resize((60, 60), Image.BILINEAR))
    big = np.asarray(Image.fromarray(grey).resize((240, 240), Image.BILINEAR))
    stray = grey.copy()
    stray[np.random.default_rng(0).random(grey.shape) < 0.01] = 40  # 1 % stray pixels of a hand-made mask
    field = RBC.to_disk(synthetic_rbc(seed=0)[1])
    for name, a in {
        "jpeg": _jpeg(grey),
        "jpeg50": _jpeg(grey, 50),
        "half": small,
        "half-jpeg": _jpeg(small),
        "double": big,
        "stray": stray,
        "rbc-jpeg": _jpeg(field),
        "slide-jpeg": _jpeg(np.tile(field, (3, 2))),
    }.items():
        assert not looks_like_grey_photo(a), name
        _save_grey(tmp_path / f"{name}.png", a)
        assert read_mask(tmp_path / f"{name}.png")[0].max() >= 1, name
    # a partial correction: unlabelled (transparent) pixels are not judged, whatever grey lies under them
    photo = np.asarray(Image.fromarray(synthetic_wbc(120, seed=0)[0]).convert("L"))
    under = np.where(labels > 0, grey, photo)
    Image.fromarray(np.dstack([under, np.where(labels > 0, 255, 0).astype(np.uint8)]), mode="LA").save(
        tmp_path / "partial.png"
    )
    out, _ = read_mask(tmp_path / "partial.png", "wbc")
    assert (out == IGNORE_INDEX).any() and set(np.unique(out[labels > 0]).tolist()) <= {1, 2}
