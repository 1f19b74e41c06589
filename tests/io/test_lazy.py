"""io.lazy: lazy TIFF opening (the layouts whole-file reading refuses or converts), and the banded mask writer:
an on-disk label array → the same grey-level mask ``write_mask`` writes, without ever holding the labels whole;
refusals leave nothing behind. (Streaming prediction: ``tests/inference/test_lazy.py``.)"""

from __future__ import annotations

import numpy as np
import pytest

from napari_bloodseg.io import ImageReadError, read_image, read_mask
from napari_bloodseg.io.lazy import open_label_output, open_lazy, write_mask_banded
from napari_bloodseg.io.masks import write_mask


class _Rows:
    """A label array-like that records the rows read and refuses whole conversion."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels, self.shape, self.dtype, self.reads = labels, labels.shape, labels.dtype, []

    def __getitem__(self, key):
        self.reads.append(key.indices(self.shape[0])[:2])
        return self.labels[key]

    def __array__(self, *_a, **_k):
        raise AssertionError("labels converted whole")


@pytest.fixture
def labels(rng) -> np.ndarray:
    return rng.integers(0, 3, (53, 41), dtype=np.uint8)


def test_banded_mask_equals_write_mask(tmp_path, labels):
    src = _Rows(labels)
    out = write_mask_banded(tmp_path / "banded.tif", src, "wbc", rows=10)
    assert max(y1 - y0 for y0, y1 in src.reads) == 10 and src.reads[-1][1] == 53
    write_mask(tmp_path / "whole.png", labels, "wbc")
    banded, schema = read_mask(out)
    whole, _ = read_mask(tmp_path / "whole.png")
    assert schema.name == "wbc"
    np.testing.assert_array_equal(banded, labels)
    np.testing.assert_array_equal(banded, whole)


def test_banded_mask_from_a_memmap_and_overwrite(tmp_path, labels):
    mm = open_label_output(tmp_path / "labels.tif", labels.shape)
    mm[:] = labels > 0
    target = tmp_path / "mask.tif"
    write_mask_banded(target, mm, "rbc")
    with pytest.raises(FileExistsError):
        write_mask_banded(target, mm, "rbc")
    write_mask_banded(target, mm, "rbc", overwrite=True)
    np.testing.assert_array_equal(read_mask(target)[0], labels > 0)


def test_banded_png_equals_write_mask_partial_labels_included(tmp_path, labels):
    """A PNG written band by band holds what ``write_mask`` writes: grey levels, and unlabelled (255) pixels as
    transparent ones when there are any (a plain grey PNG when not)."""
    from PIL import Image

    partial = labels.copy()
    partial[5:9, 10:30] = 255
    for name, lab in (("full", labels), ("partial", partial)):
        src = _Rows(lab)
        write_mask_banded(tmp_path / f"{name}.png", src, "wbc", rows=7)
        assert max(y1 - y0 for y0, y1 in src.reads) == 7 and src.reads[-1][1] == 53
        write_mask(tmp_path / f"{name}-whole.png", lab, "wbc")
        banded, whole = (Image.open(tmp_path / f"{name}{s}.png") for s in ("", "-whole"))
        assert banded.mode == whole.mode == ("LA" if name == "partial" else "L")
        np.testing.assert_array_equal(np.asarray(banded), np.asarray(whole))
        np.testing.assert_array_equal(read_mask(tmp_path / f"{name}.png")[0], lab)


def test_refusals_leave_nothing(tmp_path, labels):
    bad = labels.copy()
    bad[40, 3] = 255  # a TIFF mask has no alpha channel for unlabelled pixels
    with pytest.raises(ValueError, match="not classes"):
        write_mask_banded(tmp_path / "bad.tif", bad, "wbc", rows=8)
    bad[40, 3] = 7  # not a class, not 'unlabelled': refused before a byte is written
    with pytest.raises(ValueError, match=r"\[7\] are not classes"):
        write_mask_banded(tmp_path / "bad.png", bad, "wbc", rows=8)
    negative = labels.astype(np.int16)
    negative[52, 40] = -1
    with pytest.raises(ValueError, match=r"\[-1\] are not classes"):
        write_mask_banded(tmp_path / "neg.png", negative, "wbc", rows=8)
    with pytest.raises(ValueError, match=".png or .tif"):
        write_mask_banded(tmp_path / "mask.jpg", labels, "wbc")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_banded_masks_record_their_schema(tmp_path, suffix):
    """A WBC correction with nucleus and no cytoplasm is grey 0/255, as an RBC mask is: the file must say WBC, as
    ``write_mask``'s do, or it reopens as red cells (and its nucleus becomes cytoplasm when switched back)."""
    from napari_bloodseg.io.masks import stored_schema

    nucleus_only = np.zeros((30, 20), np.uint8)
    nucleus_only[5:15, 5:15] = 2
    out = write_mask_banded(tmp_path / f"m{suffix}", nucleus_only, "wbc", rows=8)
    assert stored_schema(out) == "wbc"
    labels, schema = read_mask(out)
    assert schema.name == "wbc"
    np.testing.assert_array_equal(labels, nucleus_only)


def test_predict_stream_labels_in_grey_levels_record_their_schema(tmp_path):
    from napari_bloodseg.io.masks import stored_schema

    out = open_label_output(tmp_path / "pred.tif", (10, 10), schema="wbc")
    out[:] = 255
    del out
    assert stored_schema(tmp_path / "pred.tif") == "wbc"
    assert stored_schema(open_label_output(tmp_path / "plain.tif", (4, 4)).filename) is None  # label values: no mark


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_banded_writing_reports_progress_and_a_cancel_leaves_the_old_file(tmp_path, labels, suffix):
    from napari_bloodseg.cancellation import Cancelled

    steps: list[tuple[int, int]] = []
    target = write_mask_banded(tmp_path / f"m{suffix}", labels, "wbc", rows=10, progress=lambda *a: steps.append(a))
    passes = 2 if suffix == ".png" else 1  # a PNG reads the labels once to check them, once to write
    assert steps == [(k, 6 * passes) for k in range(1, 6 * passes + 1)]
    before = target.read_bytes()
    asked = []

    def cancel() -> bool:
        asked.append(1)
        return len(asked) > 3

    with pytest.raises(Cancelled, match=f"writing m{suffix} cancelled"):
        write_mask_banded(target, np.zeros_like(labels), "wbc", rows=10, overwrite=True, cancel=cancel)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_part_of_the_file_that_cannot_be_read_names_the_file():
    import zlib

    from napari_bloodseg.io import ImageReadError
    from napari_bloodseg.io.lazy import RGBView

    class Truncated:
        shape, dtype = (64, 32, 3), np.dtype(np.uint8)

        def __getitem__(self, key):
            raise zlib.error("Error -5 while decompressing data: incomplete or truncated stream")

    view = RGBView(Truncated(), "/data/scan.tif")
    with pytest.raises(ImageReadError, match=r"/data/scan\.tif: cannot read rows 0-16 \(error: Error -5"):
        view[0:16]


@pytest.mark.parametrize("suffix", [".tif", ".npy"])
def test_a_full_disk_is_an_error_before_any_pixel_is_written(tmp_path, monkeypatch, suffix):
    """A memory map of a sparse file met a full disk only when a page was written: SIGBUS, no message, and
    napari gone with it. The blocks are now claimed first."""
    import errno
    import os

    from napari_bloodseg.io.lazy import open_label_output

    if not hasattr(os, "posix_fallocate"):
        pytest.skip("no posix_fallocate on this platform: nothing is reserved")

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError, match=r"No space left on device \(the labels need 1.0 MB\)"):
        open_label_output(tmp_path / f"out{suffix}", (1000, 1000))
    assert list(tmp_path.iterdir()) == []


def test_a_file_system_that_cannot_reserve_still_gets_its_output(tmp_path, monkeypatch):
    import errno
    import os

    from napari_bloodseg.io.lazy import open_label_output

    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported, raising=False)
    out = open_label_output(tmp_path / "out.tif", (20, 30))
    out[:] = 2
    assert out.shape == (20, 30)


def test_streaming_refuses_a_stack_and_converts_stored_colours_as_reading_whole_does(tmp_path, rng):
    """A z-stack streamed as channels-first RGB: segmented as one false-colour image, where reading it whole refused."""
    import tifffile

    tifffile.imwrite(tmp_path / "z.tif", rng.integers(0, 255, (3, 40, 50), dtype=np.uint8), metadata={"axes": "ZYX"})
    with pytest.raises(ImageReadError, match=r"stack of planes \(Z=3"):
        open_lazy(tmp_path / "z.tif")
    grey = rng.integers(0, 255, (40, 50), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "w.tif", 255 - grey, photometric="miniswhite")
    np.testing.assert_array_equal(
        np.asarray(open_lazy(tmp_path / "w.tif")), read_image(tmp_path / "w.tif", as_float=False)
    )
    assert (np.asarray(open_lazy(tmp_path / "w.tif"))[..., 0] == grey).all()


@pytest.mark.parametrize(
    "layout",
    ["rgba8", "rgba16", "rgbx", "lead1", "planar2"],
)
def test_streamed_pixels_equal_whole_file_pixels(tmp_path, rng, layout):
    """Whole and streamed reads of one file must give the same image: transparency onto white, an RGB TIFF's extra
    data dropped (and still streamed, not read whole), a leading length-1 axis, a planar RGB two pixels wide."""
    import tifffile

    from napari_bloodseg.io.lazy import RGBView

    rgb = rng.integers(0, 256, (30, 20, 3), dtype=np.uint8)
    alpha = np.where(np.arange(20) < 8, 0, 255).astype(np.uint8)[None].repeat(30, 0)[..., None]
    path = tmp_path / f"{layout}.tif"
    if layout == "rgba8":
        tifffile.imwrite(path, np.concatenate([rgb, alpha], -1), photometric="rgb", extrasamples=[2])
    elif layout == "rgba16":
        data = np.concatenate([rgb, alpha], -1).astype(np.uint16) * 257
        tifffile.imwrite(path, data, photometric="rgb", extrasamples=[2])
    elif layout == "rgbx":
        tifffile.imwrite(path, np.concatenate([rgb, alpha], -1), photometric="rgb", extrasamples=[0])
    elif layout == "lead1":
        tifffile.imwrite(path, rgb[None], photometric="rgb")
    else:
        tifffile.imwrite(path, np.moveaxis(rgb[:, :2], -1, 0), photometric="rgb", planarconfig="separate")
    whole = read_image(path, as_float=False)
    streamed = open_lazy(path)
    np.testing.assert_array_equal(np.asarray(streamed), whole)
    np.testing.assert_array_equal(streamed[5:9], whole[5:9])
    if layout == "rgbx":
        assert isinstance(streamed, RGBView)  # read in parts: extra data needs no converting
    if layout.startswith("rgba"):
        assert (whole[:, :8] == 255).all()  # transparent: white, as a cut-out cell on a smear background


def test_an_empty_file_or_a_folder_named_as_an_image_is_said_to_be_so(tmp_path):
    (tmp_path / "empty.tif").write_bytes(b"")
    (tmp_path / "dir.npy").mkdir()
    with pytest.raises(ImageReadError, match=r"empty.tif: empty file \(0 bytes\)"):
        open_lazy(tmp_path / "empty.tif")
    with pytest.raises(ImageReadError, match=r"dir.npy: a folder, not a file"):
        open_lazy(tmp_path / "dir.npy")
    with pytest.raises(ImageReadError, match=r"gone.tif: no such file"):
        open_lazy(tmp_path / "gone.tif")


def test_a_region_read_decodes_only_the_columns_it_covers(tmp_path, rng):
    """napari reads a big slide in 1024 x 1024 chunks: each read the whole width of the rows it covered, 10 times
    the tiles of a 10240-px-wide tiled TIFF. The source is now asked for the region's columns only; one with alpha
    still gives whole rows, whose compositing onto white is decided from the whole band."""
    from napari_bloodseg.io.lazy import RGBView

    class Keys:
        def __init__(self, a: np.ndarray) -> None:
            self.a, self.shape, self.dtype, self.keys = a, a.shape, a.dtype, []

        def __getitem__(self, key):
            self.keys.append(key)
            return self.a[key]

    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    src = Keys(rgb)
    view = RGBView(src, "slide")
    np.testing.assert_array_equal(view[10:20, 30:45], rgb[10:20, 30:45])
    np.testing.assert_array_equal(view[10:20, 5:47:3, 1], rgb[10:20, 5:47:3, 1])
    np.testing.assert_array_equal(view[7, 48], rgb[7, 48])
    np.testing.assert_array_equal(view[7, -2:], rgb[7, -2:])
    np.testing.assert_array_equal(view[3:5], rgb[3:5])
    assert [k[1] for k in src.keys] == [slice(30, 45), slice(5, 47), slice(48, 49), slice(48, 50), slice(None)]

    rgba = np.concatenate([rgb, np.full((40, 50, 1), 255, np.uint8)], -1)
    rgba[:, :10, 3] = 0
    src = Keys(rgba)
    np.testing.assert_array_equal(RGBView(src, "cut-out")[0:5, 0:4], 255)  # transparent: white, as read whole
    assert src.keys[0][1] == slice(None)


def test_streaming_a_tiff_warns_about_the_images_it_leaves_out_once(tmp_path, rng):
    """As reading it whole does; a second handle on the file (the reader's pyramid) and a pyramid level say
    nothing more."""
    import warnings

    import tifffile

    from napari_bloodseg.io.images import LeftOutImagesWarning

    rgb = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    with tifffile.TiffWriter(tmp_path / "two.tif") as tw:
        tw.write(rgb, tile=(16, 16), compression="zlib")
        tw.write(rgb[:20, :30])
    with pytest.warns(
        LeftOutImagesWarning,
        match=r"two\.tif: read its first image \(48 x 64 pixels\) only.*"
        r"left out: page 2 \(30 x 20 pixels\)",
    ):
        np.testing.assert_array_equal(np.asarray(open_lazy(tmp_path / "two.tif")), rgb)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_lazy(tmp_path / "two.tif", quiet=True)
