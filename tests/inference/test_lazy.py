"""Streaming prediction: lazily opened images (memmap, zarr, dask) and on-disk label outputs equal in-memory runs."""

import numpy as np
import pytest
import tifffile
import torch
import torch.nn.functional as F

from napari_bloodseg.data import synthetic_rbc
from napari_bloodseg.inference import Predictor
from napari_bloodseg.inference.resample import ResizedRows
from napari_bloodseg.io import read_image
from napari_bloodseg.io.lazy import RGBView, close_output, open_label_output, open_lazy, predict_file

TILE, OVERLAP = 128, 32


@pytest.fixture(scope="module")
def field() -> np.ndarray:
    return synthetic_rbc((300, 420), seed=4)[0]


@pytest.fixture
def predictor(live_model, field) -> Predictor:
    return Predictor(live_model("unet", 2, field[:256, :256]), device="cpu", tile_size=TILE, overlap=OVERLAP)


@pytest.fixture
def reference(predictor, field) -> np.ndarray:
    labels = predictor.predict(field).labels
    assert 0.1 < labels.mean() < 0.9  # both classes present: equality below is not trivial
    return labels


def test_uncompressed_tiff_streams_from_a_memmap(tmp_path, field, predictor, reference):
    path = tmp_path / "field.tif"
    tifffile.imwrite(path, field)
    image = open_lazy(path)
    assert isinstance(image, np.memmap) and image.shape == field.shape
    np.testing.assert_array_equal(predictor.predict(image).labels, reference)


def test_compressed_tiled_tiff_streams_through_zarr(tmp_path, field, predictor, reference):
    pytest.importorskip("zarr")
    path = tmp_path / "field.tif"
    tifffile.imwrite(path, field, tile=(64, 64), compression="zlib")
    image = open_lazy(path)
    assert not isinstance(image, np.ndarray) and image.shape == field.shape and image.dtype == np.uint8
    np.testing.assert_array_equal(predictor.predict(image).labels, reference)


def test_pyramid_tiff_opens_full_resolution(tmp_path, field):
    pytest.importorskip("zarr")
    path = tmp_path / "pyramid.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(field, subifds=1, tile=(64, 64), compression="zlib")
        tw.write(np.ascontiguousarray(field[::2, ::2]), subfiletype=1, tile=(64, 64), compression="zlib")
    np.testing.assert_array_equal(np.asarray(open_lazy(path)), field)
    assert open_lazy(path, level=1).shape == (150, 210, 3)


def test_dask_and_npy_inputs(tmp_path, field, predictor, reference):
    np.save(tmp_path / "field.npy", field)
    image = open_lazy(tmp_path / "field.npy")
    assert isinstance(image, np.memmap)
    np.testing.assert_array_equal(predictor.predict(image).labels, reference)
    da = pytest.importorskip("dask.array")
    np.testing.assert_array_equal(predictor.predict(da.from_array(field, chunks=(100, 100, 3))).labels, reference)


@pytest.mark.parametrize("suffix", [".tif", ".npy", ".zarr"])
def test_out_writes_labels_to_disk(tmp_path, field, predictor, reference, suffix):
    if suffix == ".zarr":
        zarr = pytest.importorskip("zarr")
    tifffile.imwrite(tmp_path / "field.tif", field)
    dst = tmp_path / f"labels{suffix}"
    pred = predict_file(predictor, tmp_path / "field.tif", dst)
    assert pred.labels.shape == reference.shape
    if suffix == ".tif":
        on_disk = tifffile.imread(dst)
    elif suffix == ".npy":
        on_disk = np.load(dst)
    else:
        on_disk = zarr.open_array(str(dst), mode="r")[:]
    np.testing.assert_array_equal(on_disk, reference)
    with pytest.raises(FileExistsError):
        open_label_output(dst, reference.shape)


def test_out_memmap_with_scale(tmp_path, field, predictor):
    ref = predictor.predict(field, scale=0.5).labels
    out = open_label_output(tmp_path / "labels.npy", field.shape[:2])
    pred = predictor.predict(field, scale=0.5, out=out)
    close_output(out)
    assert pred.labels is out
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), ref)


def test_out_of_the_wrong_shape_is_refused(predictor, field):
    with pytest.raises(ValueError, match="out has shape"):
        predictor.predict(field, out=np.zeros((10, 10), np.uint8))


class _Spy:
    """An array-like that records every row range read from / written to it."""

    def __init__(self, array):
        self.array, self.reads, self.writes = array, [], []
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        rows = key[0] if isinstance(key, tuple) else key
        self.reads.append(rows.indices(self.shape[0]))
        return self.array[key]

    def __setitem__(self, key, value):
        rows = key[0] if isinstance(key, tuple) else key
        self.writes.append(rows.indices(self.shape[0]))
        self.array[key] = value


def test_reads_and_writes_one_band_at_a_time(field, predictor, reference):
    image, out = _Spy(field), _Spy(np.zeros(field.shape[:2], np.uint8))
    predictor.predict(image, out=out)
    np.testing.assert_array_equal(out.array, reference)
    assert len(image.reads) > 1 and all(stop - start <= TILE for start, stop, _ in image.reads)
    assert all(stop - start <= TILE for start, stop, _ in out.writes)
    assert sorted(out.writes) == out.writes and out.writes[0][0] == 0 and out.writes[-1][1] == field.shape[0]


def test_streams_one_band_at_a_time_at_another_scale(field, predictor):
    """A model at its own input scale (rbc-deconvnet: 0.5) or a user scale: resized in and out band by band, with the
    labels of resizing the whole image first and upsampling whole probabilities (float16 rounding aside)."""
    image, out = _Spy(field), _Spy(np.zeros(field.shape[:2], np.uint8))
    predictor.predict(image, scale=0.75, out=out)
    small = ResizedRows(field, (225, 315))[:]  # equal to resize_image to rounding: test_resample.py
    probs = torch.from_numpy(predictor.predict(small, return_probs=True).probs).float()[None]
    whole = F.interpolate(probs, size=field.shape[:2], mode="bilinear", align_corners=False)[0].argmax(0).numpy()
    assert (out.array == whole).mean() > 0.999 and 0.05 < whole.mean() < 0.95
    assert len(image.reads) > 1 and all(stop - start <= 2 * TILE + 8 for start, stop, _ in image.reads)
    assert len(out.writes) > 1 and sorted(out.writes) == out.writes and out.writes[-1][1] == field.shape[0]


@pytest.mark.parametrize(
    "make",
    [
        lambda rgb: rgb[..., 0].astype(np.uint16) * 257,  # 16-bit grey
        lambda rgb: np.ascontiguousarray(np.moveaxis(rgb, -1, 0)),  # channel-first RGB (planar TIFF)
        lambda rgb: np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], -1),  # RGBA
        lambda rgb: rgb.astype(np.float32) / 255,  # float in [0, 1]
        lambda rgb: rgb.astype(np.uint16) * 3,  # 16-bit with a narrow range (scaled by 255, not 65535)
        lambda rgb: np.where(rgb[..., :1] < 30, np.nan, rgb.astype(np.float32)),  # float 0-255 with NaN gaps
    ],
    ids=["grey16", "planar", "rgba", "float", "narrow16", "float-nan"],
)
def test_odd_layouts_convert_like_read_image(tmp_path, field, make):
    raw = make(field[:100, :150])
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, raw, photometric="rgb" if raw.ndim == 3 and 3 in (raw.shape[0], raw.shape[-1]) else None)
    view = open_lazy(path)
    assert isinstance(view, RGBView) and view.shape == (100, 150, 3) and view.dtype == np.uint8
    whole = read_image(path, as_float=False)
    np.testing.assert_array_equal(np.asarray(view), whole)
    np.testing.assert_array_equal(view[40:60], whole[40:60])  # a band is scaled like the whole image
    np.testing.assert_array_equal(view[7, 3:9], whole[7, 3:9])
    np.testing.assert_array_equal(view[-1], whole[-1])


def test_nan_gaps_neither_set_the_range_nor_break_bands(tmp_path, field):
    raw = field[:100, :150].astype(np.float32)  # 0-255 floats: scaled by 255, not 1
    raw[:10] = np.nan  # a no-data band at the top, as outside a stitched scan
    tifffile.imwrite(tmp_path / "gaps.tif", raw, photometric="rgb")
    view = open_lazy(tmp_path / "gaps.tif")
    np.testing.assert_array_equal(view[50:60], field[50:60, :150])
    assert not np.asarray(view)[:10].any()


def test_other_formats_are_read_whole(tmp_path, field):
    from PIL import Image

    Image.fromarray(field).save(tmp_path / "field.png")
    image = open_lazy(tmp_path / "field.png")
    assert isinstance(image, np.ndarray)
    np.testing.assert_array_equal(image, field)


def test_predict_file_writes_grey_levels_and_nothing_when_cancelled(tmp_path, field, predictor, reference):
    from napari_bloodseg.inference import Cancelled

    tifffile.imwrite(tmp_path / "field.tif", field)
    predict_file(predictor, tmp_path / "field.tif", tmp_path / "mask.tif", schema="rbc")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "mask.tif"), reference * 255)  # RBC grey: 0/255
    with pytest.raises(Cancelled):
        predict_file(predictor, tmp_path / "field.tif", tmp_path / "cut.tif", cancel=lambda: True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["field.tif", "mask.tif"]  # no partial file


@pytest.mark.parametrize(
    "write",
    [
        lambda p, a: tifffile.imwrite(p, a),
        lambda p, a: tifffile.imwrite(p, a, compression="zlib", tile=(64, 64)),
        lambda p, a: tifffile.imwrite(
            p, np.ascontiguousarray(np.moveaxis(a, -1, 0)), photometric="rgb", planarconfig="separate"
        ),
        lambda p, a: tifffile.imwrite(p, a[..., 0]),
    ],
    ids=["plain", "compressed-tiled", "planar", "grey"],
)
def test_image_size_reads_no_pixels(tmp_path, field, monkeypatch, write):
    from napari_bloodseg.io import lazy

    write(tmp_path / "f.tif", field)
    monkeypatch.setattr(lazy, "open_lazy", lambda *a, **k: pytest.fail("pixels read for the size"))
    assert lazy.image_size(tmp_path / "f.tif") == field.shape[:2]


def test_image_size_is_as_shown_after_a_tiff_orientation_turn(tmp_path, field):
    from napari_bloodseg.io import lazy, read_image

    tifffile.imwrite(tmp_path / "turned.tif", field, extratags=[(274, 3, 1, 6, True)])  # a quarter turn to show
    assert lazy.image_size(tmp_path / "turned.tif") == read_image(tmp_path / "turned.tif").shape[:2]
    assert lazy.image_size(tmp_path / "turned.tif") == field.shape[1::-1]


def test_predict_file_drops_edge_slivers_like_the_in_memory_path(tmp_path, field, predictor, reference):
    from napari_bloodseg.models import ModelCard

    card = ModelCard(
        name="m", config=predictor.model.config, schema="rbc", cell_size_px=40.0, edge_cell_min_fraction=0.45
    )
    ruled = Predictor(predictor.model, card, device="cpu", tile_size=TILE, overlap=OVERLAP)
    in_memory = ruled.predict(field).labels
    dropped = reference.astype(bool) & ~in_memory.astype(bool)
    assert dropped.any() and (in_memory <= reference).all()  # some pixels dropped, none added
    tifffile.imwrite(tmp_path / "field.tif", field)
    predict_file(ruled, tmp_path / "field.tif", tmp_path / "mask.tif", schema="rbc")  # edits strips on disk
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "mask.tif"), in_memory * 255)
