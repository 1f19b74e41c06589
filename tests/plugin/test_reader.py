"""Reader: images → RGB image layers, expert masks → Labels in their schema, dataset folders → pairs;
bad input → a notification, never an exception, and the layers already open stay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_bloodseg.plugin.reader import get_reader, looks_like_mask, read_paths
from napari_bloodseg.schemas import RBC, WBC

PLUGIN = "napari-bloodseg"


@pytest.fixture
def smear(tmp_path, write_png, wbc_pair) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """NNN.bmp image + NNN.png 0/128/255 mask (Zheng Dataset 1 layout)."""
    from PIL import Image

    image, labels = wbc_pair
    img_path = tmp_path / "001.bmp"
    Image.fromarray(image).save(img_path)
    mask_path = write_png(tmp_path / "001.png", WBC.to_disk(labels))
    return img_path, mask_path, image, labels


def test_claims_images_and_folders_only(tmp_path, smear):
    (tmp_path / "notes.txt").write_text("hello")
    assert get_reader(str(smear[0])) is read_paths
    assert get_reader(str(tmp_path)) is read_paths
    assert get_reader(str(tmp_path / "notes.txt")) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert get_reader(str(empty)) is read_paths  # claimed to say "no images in this folder" (nobody else reads it)
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "sub").mkdir()  # a sub-folder (a zarr group's arrays): another reader's, perhaps
    (tmp_path / "array").mkdir()
    (tmp_path / "array" / ".zarray").write_text("{}")
    assert get_reader(str(tmp_path / "store")) is None
    assert get_reader(str(tmp_path / "array")) is None


def test_image_opens_rgb_and_mask_opens_labels_in_schema(tmp_path, smear, write_png):
    img_path, mask_path, image, labels = smear
    ((data, kwargs, kind),) = read_paths(str(img_path))
    assert kind == "image" and kwargs["rgb"] and kwargs["name"] == "001"
    np.testing.assert_array_equal(data, image)

    ((data, kwargs, kind),) = read_paths(str(mask_path))
    assert kind == "labels"
    np.testing.assert_array_equal(data, labels)
    assert kwargs["metadata"]["bloodseg"]["schema"] == "wbc"
    assert list(kwargs["features"]["class"]) == [*WBC.class_names, "unlabelled"]

    rbc = np.zeros((40, 50), np.uint8)
    rbc[10:20, 10:30] = 255
    ((data, kwargs, kind),) = read_paths(str(write_png(tmp_path / "rbc_mask.png", rbc)))
    assert kind == "labels" and kwargs["metadata"]["bloodseg"]["schema"] == RBC.name
    np.testing.assert_array_equal(data, rbc // 255)

    tiny = np.zeros((30, 30), np.uint8)  # label-space mask (0/1/2)
    tiny[5:10, 5:10] = 2
    tiny[10:15, 10:15] = 1
    ((data, kwargs, kind),) = read_paths(str(write_png(tmp_path / "tiny.png", tiny)))
    assert kind == "labels" and kwargs["metadata"]["bloodseg"]["schema"] == "wbc"
    np.testing.assert_array_equal(data, tiny)


def test_mask_heuristic():
    rng = np.random.default_rng(0)
    grey_photo = rng.integers(0, 256, (50, 50), dtype=np.uint8)
    assert not looks_like_mask(grey_photo)
    levels = rng.choice(np.array([0, 128, 255], np.uint8), (50, 50))
    assert looks_like_mask(levels)
    assert looks_like_mask(np.repeat(levels[..., None], 3, axis=-1))  # a grey mask saved as RGB
    colour = np.stack([levels, levels // 2, levels], axis=-1)
    assert not looks_like_mask(colour)
    stray = levels.copy()
    stray[0, :5] = [2, 7, 30, 41, 50]  # hand-made masks carry a few stray greys
    assert looks_like_mask(stray)
    assert looks_like_mask(np.stack([levels, np.full_like(levels, 255)], axis=-1))  # grey + alpha
    assert not looks_like_mask(np.full((50, 50, 3), 255, np.uint8))  # a blank white picture
    assert looks_like_mask(np.zeros((50, 50), np.uint8))  # a mask with no cell in it


def test_a_partly_corrected_mask_saved_as_tiff_reopens_as_the_same_labels(tmp_path, smear):
    """Unlabelled pixels make the file grey + alpha: as a TIFF, that opened as an image and lost them."""
    from napari_bloodseg.io import write_mask
    from napari_bloodseg.schemas import IGNORE_INDEX

    _, _, _, labels = smear
    partial = labels.copy()
    partial[:5] = IGNORE_INDEX
    for suffix in (".png", ".tif"):
        path = write_mask(tmp_path / f"partial{suffix}", partial, "wbc")
        ((data, kwargs, kind),) = read_paths(str(path))
        assert kind == "labels", suffix
        np.testing.assert_array_equal(data, partial)


def test_several_images_of_different_sizes_each_become_a_layer(viewer, tmp_path, write_png):
    from napari_bloodseg.data import synthetic_wbc

    paths = [write_png(tmp_path / f"img{s}.png", synthetic_wbc(size=s, seed=s)[0]) for s in (48, 64)]
    layers = viewer.open([str(p) for p in paths], plugin=PLUGIN)
    assert [(lyr.name, lyr.data.shape) for lyr in layers] == [("img48", (48, 48, 3)), ("img64", (64, 64, 3))]
    assert all(lyr.rgb for lyr in layers)


def test_dataset_folder_opens_pairs_named_for_evaluation(viewer, smear, tmp_path):
    from napari.layers import Image, Labels

    layers = viewer.open(str(tmp_path), plugin=PLUGIN)
    assert [(type(lyr), lyr.name) for lyr in layers] == [(Image, "001"), (Labels, "001 mask")]
    np.testing.assert_array_equal(layers[1].data, smear[3])
    assert layers[1].metadata["bloodseg"]["source"] == "001"


def test_images_and_masks_subfolders(tmp_path, write_png, wbc_pair):
    image, labels = wbc_pair
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    write_png(tmp_path / "images" / "a.png", image)
    write_png(tmp_path / "masks" / "a_mask.png", WBC.to_disk(labels))
    out = read_paths(str(tmp_path))
    assert [(kw["name"], kind) for _, kw, kind in out] == [("a", "image"), ("a mask", "labels")]
    np.testing.assert_array_equal(out[1][0], labels)


def test_corrupt_image_is_a_notification_and_keeps_layers(viewer, tmp_path, notes):
    viewer.add_image(np.zeros((8, 8)), name="already open")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    assert viewer.open(str(bad), plugin=PLUGIN) == []
    assert any("broken.png" in msg for msg in notes.errors)
    assert [lyr.name for lyr in viewer.layers] == ["already open"]


def test_non_image_files_are_notifications(viewer, tmp_path, notes, write_png, wbc_pair):
    from napari_bloodseg.plugin.reader import NOTHING

    viewer.add_image(np.zeros((8, 8)), name="already open")
    fake = tmp_path / "fake.jpg"
    fake.write_text("this is a text file")
    good = write_png(tmp_path / "good.png", wbc_pair[0])
    layers = viewer.open([str(fake), str(good)], plugin=PLUGIN)
    assert [lyr.name for lyr in layers] == ["good"]
    assert any("fake.jpg" in msg for msg in notes.errors)
    assert [lyr.name for lyr in viewer.layers] == ["already open", "good"]

    # napari never offers the plugin a .txt, but the reader function refuses one politely all the same
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    assert read_paths([str(text)]) == NOTHING
    assert any("notes.txt" in msg and "not an image" in msg for msg in notes.errors)


def test_wrong_size_mask_is_refused_but_its_image_opens(viewer, tmp_path, notes, write_png, wbc_pair):
    image, labels = wbc_pair
    write_png(tmp_path / "007.jpg", image)
    write_png(tmp_path / "007.png", WBC.to_disk(labels)[:-4])
    layers = viewer.open(str(tmp_path), plugin=PLUGIN)
    assert [lyr.name for lyr in layers] == ["007"]
    assert any("007.png" in msg and "mask is" in msg for msg in notes.errors)


def test_real_dataset1_pair(real_data):
    folder = real_data / "wbc" / "dataset1"
    (img, img_kw, img_kind), (mask, mask_kw, mask_kind) = read_paths([str(folder / "001.bmp"), str(folder / "001.png")])
    assert (img_kind, mask_kind) == ("image", "labels")
    assert img.shape[:2] == mask.shape and img.shape[2] == 3
    assert mask_kw["metadata"]["bloodseg"]["schema"] == "wbc"
    assert set(np.unique(mask)) <= {0, 1, 2} and len(np.unique(mask)) == 3


# -- big TIFFs open lazily ----------------------------------------------------------------------------------------


def _only_layer(path: Path) -> tuple:
    layers = read_paths(str(path))
    assert len(layers) == 1
    return layers[0]


def test_big_tiff_opens_as_lazy_multiscale_without_reading_it_whole(big_tiff, smear_field, lazy_threshold, monkeypatch):
    import napari_bloodseg.plugin.reader as reader

    def whole_file(*_a, **_k):
        raise AssertionError("a big TIFF must not be read whole")

    monkeypatch.setattr(reader, "_read_raw", whole_file)
    monkeypatch.setattr(np.memmap, "copy", whole_file)  # dask.array.from_array copies arrays that can copy
    data, kwargs, kind = _only_layer(big_tiff)

    assert kind == "image" and kwargs["rgb"] and kwargs["multiscale"]
    assert kwargs["name"] == "slide"
    assert kwargs["metadata"]["bloodseg"] == {"path": str(big_tiff), "role": "image", "lazy": True}
    assert isinstance(data, list) and not any(isinstance(level, np.ndarray) for level in data)
    # no pyramid in the file: strided levels, so napari never needs the whole full-resolution plane
    assert [level.shape for level in data] == [(1200, 1500, 3), (600, 750, 3)]
    np.testing.assert_array_equal(np.asarray(data[0][500:700, 900:1100]), smear_field[500:700, 900:1100])
    np.testing.assert_array_equal(np.asarray(data[1]), smear_field[::2, ::2])


@pytest.fixture
def tiled_tiff(tmp_path, smear_field, lazy_threshold, monkeypatch) -> Path:
    """``smear_field`` as a zlib-compressed, tiled TIFF without a pyramid, big enough for two levels beyond 2x."""
    pytest.importorskip("zarr")
    import tifffile

    from napari_bloodseg.plugin import reader

    monkeypatch.setattr(reader, "MIN_LEVEL_SIDE", 256)  # levels down to 8x (188 px a side)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, smear_field, tile=(256, 256), compression="zlib")
    return path


def _reduced(a: np.ndarray, times: int) -> np.ndarray:
    from napari_bloodseg.io.pyramid import reduce2

    for _ in range(times):
        a = reduce2(a)
    return a


def _spy_file_reads(monkeypatch) -> list[tuple[int, int, str]]:
    """(first row, last row + 1, thread) of every read of a streamed file's pixels."""
    import threading

    from napari_bloodseg.io.lazy import RGBView

    reads: list[tuple[int, int, str]] = []
    real = RGBView._read_rows

    def spy(self, rows, *args, **kwargs):
        start, stop, _ = rows.indices(self.shape[0])
        reads.append((start, stop, threading.current_thread().name))
        return real(self, rows, *args, **kwargs)

    monkeypatch.setattr(RGBView, "_read_rows", spy)
    return reads


def test_a_compressed_tiff_without_a_pyramid_gets_averaged_levels_from_one_pass(tiled_tiff, smear_field, monkeypatch):
    """Strided views of a tiled, compressed TIFF decoded every tile of the slide again for each look at the overview
    (a 105 MP slide froze napari 15-22 s, 3.3 GB). Coarse levels now come from one banded pass over the file, and
    are averages (no aliasing); 2x is averaged chunk by chunk from what napari shows of full resolution."""
    data, kwargs, kind = _only_layer(tiled_tiff)
    assert kind == "image" and kwargs["multiscale"]
    assert [level.shape[:2] for level in data] == [(1200, 1500), (600, 750), (300, 375), (150, 188)]
    np.testing.assert_array_equal(np.asarray(data[0][500:700, 900:1100]), smear_field[500:700, 900:1100])
    np.testing.assert_array_equal(np.asarray(data[1][100:300, 200:400]), _reduced(smear_field, 1)[100:300, 200:400])

    reads = _spy_file_reads(monkeypatch)
    np.testing.assert_array_equal(np.asarray(data[3]), _reduced(smear_field, 3))
    np.testing.assert_array_equal(np.asarray(data[2]), _reduced(smear_field, 2))
    np.testing.assert_array_equal(np.asarray(data[3][10:20]), _reduced(smear_field, 3)[10:20])
    assert sum(stop - start for start, stop, _ in reads) == 1200  # every row of the file read once, for all levels


def _grey_part(layer) -> float:
    """The part of a layer's thumbnail (drawn from its coarsest level) that is the grey of rows not built yet."""
    from napari_bloodseg.io.pyramid import PLACEHOLDER

    return float((np.asarray(layer.thumbnail)[..., :3] == PLACEHOLDER).all(axis=-1).mean())


def test_the_viewer_gets_coarse_levels_built_off_its_thread_and_drawn_when_built(
    viewer, tiled_tiff, smear_field, qtbot, monkeypatch
):
    import threading

    from napari_bloodseg.io.pyramid import Pyramid
    from napari_bloodseg.plugin import progressive

    reads = _spy_file_reads(monkeypatch)
    opened = threading.Event()
    real = Pyramid.build_band
    monkeypatch.setattr(Pyramid, "build_band", lambda self, i: opened.wait(10) and real(self, i))
    monkeypatch.setattr("napari_bloodseg.io.pyramid.BAND_PIXELS", 256 * 1500)  # 5 bands
    (layer,) = viewer.open(str(tiled_tiff), plugin=PLUGIN)
    pyramid = layer.data[-1].pyramid
    assert pyramid.progressive and pyramid.version == 0  # napari's GUI thread never waited for a band
    assert _grey_part(layer) > 0.5, "what is not built yet is drawn grey"
    opened.set()
    qtbot.waitUntil(lambda: pyramid.complete and not progressive._TIMERS, timeout=20_000)
    main = threading.main_thread().name
    built = [(start, stop) for start, stop, thread in reads if thread == "napari-bloodseg-pyramid"]
    assert sum(stop - start for start, stop in built) == 1200
    # the GUI thread read the mask sample (3 x 64 rows) and what it showed of full resolution or 2x, never the file
    # whole, for each coarse level it drew
    assert sum(stop - start for start, stop, thread in reads if thread == main) < 2 * 1200
    assert _grey_part(layer) == 0, "drawn again once built"
    np.testing.assert_array_equal(np.asarray(layer.data[-1]), _reduced(smear_field, 3))
    # Segment streams full resolution from the file, as before
    from napari_bloodseg.plugin.layers import image_rgb

    source = image_rgb(layer, lazy=True)
    assert not hasattr(source, "pyramid") and not hasattr(source, "dask")
    np.testing.assert_array_equal(source[700:900, 100:1400], smear_field[700:900, 100:1400])


def test_removing_the_layer_stops_its_pyramid_and_a_failure_is_a_warning(viewer, tiled_tiff, qtbot, notes, monkeypatch):
    import threading

    from napari_bloodseg.io.pyramid import Pyramid

    gate = threading.Event()
    real = Pyramid.build_band

    def slow(self, i):
        gate.wait(10)
        if i == 1:
            raise OSError("corrupt tile")
        real(self, i)

    monkeypatch.setattr(Pyramid, "build_band", slow)
    monkeypatch.setattr("napari_bloodseg.io.pyramid.BAND_PIXELS", 256 * 1500)  # 5 bands
    (layer,) = viewer.open(str(tiled_tiff), plugin=PLUGIN)
    pyramid = layer.data[-1].pyramid
    qtbot.wait(600)  # the layer is seen by the redraw timer
    viewer.layers.remove(layer)
    qtbot.waitUntil(lambda: pyramid.finished, timeout=5000)  # cancelled, with nothing built
    assert pyramid.version == 0
    gate.set()
    assert pyramid.wait(10) and pyramid.version <= 1 and not notes  # the band under way, then no more

    (layer,) = viewer.open(str(tiled_tiff), plugin=PLUGIN)
    qtbot.waitUntil(lambda: any("zoomed-out views" in m for _, m in notes), timeout=20_000)
    (severity, message) = [(s, m) for s, m in notes if "zoomed-out views" in m][0]
    assert severity == "warning" and "tiled.tif" in message and "corrupt tile" in message


def test_pyramid_tiff_uses_its_own_levels(tmp_path, smear_field, lazy_threshold):
    pytest.importorskip("zarr")
    import tifffile

    half = 255 - np.ascontiguousarray(smear_field[::2, ::2])  # not a strided copy: must come from the file
    path = tmp_path / "pyramid.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(smear_field, subifds=1, tile=(256, 256), compression="zlib")
        tw.write(half, subfiletype=1, tile=(256, 256), compression="zlib")
    data, kwargs, kind = _only_layer(path)
    assert kind == "image" and kwargs["multiscale"]
    assert len(data) == 2 and not any(isinstance(level, np.ndarray) for level in data)
    np.testing.assert_array_equal(np.asarray(data[1]), half)
    np.testing.assert_array_equal(np.asarray(data[0][1000:1200, :300]), smear_field[1000:1200, :300])


def test_small_unstreamable_or_mask_tiffs_open_as_before(tmp_path, big_tiff, smear_field, lazy_threshold, monkeypatch):
    import tifffile

    import napari_bloodseg.plugin.reader as reader

    # below the threshold: read whole, as always
    monkeypatch.setattr(reader, "LAZY_MIN_PIXELS", smear_field.shape[0] * smear_field.shape[1] + 1)
    data, kwargs, _ = _only_layer(big_tiff)
    assert type(data) is np.ndarray and "multiscale" not in kwargs
    monkeypatch.setattr(reader, "LAZY_MIN_PIXELS", lazy_threshold)

    # one compressed strip holding the whole image cannot be read in parts
    strip = tmp_path / "one_strip.tif"
    tifffile.imwrite(strip, smear_field, compression="zlib", rowsperstrip=smear_field.shape[0])
    monkeypatch.setattr(reader, "MAX_CHUNK_BYTES", smear_field.nbytes // 2)
    data, _, kind = _only_layer(strip)
    assert kind == "image" and type(data) is np.ndarray
    np.testing.assert_array_equal(data, smear_field)

    # a big mask stays a Labels layer in its schema
    labels = (smear_field[..., 0] < 128).astype(np.uint8)
    tifffile.imwrite(tmp_path / "slide_mask.tif", RBC.to_disk(labels))
    data, kwargs, kind = _only_layer(tmp_path / "slide_mask.tif")
    assert kind == "labels" and kwargs["metadata"]["bloodseg"]["schema"] == "rbc"
    np.testing.assert_array_equal(data, labels)


def test_viewer_shows_a_big_tiff_without_loading_full_resolution(viewer, big_tiff, lazy_threshold, monkeypatch):
    import dask.array as da

    shapes: list[tuple[int, ...]] = []
    real = da.Array.__array__

    def spy(self, *args, **kwargs):
        shapes.append(tuple(self.shape))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(da.Array, "__array__", spy)
    (layer,) = viewer.open(str(big_tiff), plugin=PLUGIN)
    viewer.reset_view()
    assert layer.multiscale and layer.rgb and layer.metadata["bloodseg"]["lazy"]
    assert shapes, "napari must have read something to show"
    assert (1200, 1500, 3) not in shapes


def test_a_palette_mask_from_an_annotation_tool_opens_as_labels(tmp_path):
    from PIL import Image

    labels = np.zeros((30, 30), np.uint8)
    labels[5:25, 5:25] = 1
    labels[10:20, 10:20] = 2
    im = Image.fromarray(labels, mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (253 * 3))  # VOC colours: red, green
    im.save(tmp_path / "001.png")
    ((data, kwargs, kind),) = read_paths(str(tmp_path / "001.png"))
    assert kind == "labels" and kwargs["metadata"]["bloodseg"]["schema"] == "wbc"  # was: an RGB image layer
    np.testing.assert_array_equal(data, labels)


def test_a_jpeg_mask_opens_as_labels_and_a_grey_photo_as_an_image(tmp_path):
    """A WBC mask saved as JPEG (quality 75) rings at its edges: many grey values, nearly all near 0/128/255.
    It opened as an image; the CLI read it as a mask all along."""
    from PIL import Image as PILImage

    from napari_bloodseg.data import synthetic_wbc
    from napari_bloodseg.plugin.reader import read_paths

    image, labels = synthetic_wbc(size=120, seed=4)
    PILImage.fromarray(np.choose(labels, [0, 128, 255]).astype(np.uint8)).save(tmp_path / "001.jpg", quality=75)
    ((data, kwargs, kind),) = read_paths(str(tmp_path / "001.jpg"))
    assert kind == "labels" and kwargs["metadata"]["bloodseg"]["schema"] == "wbc"
    assert (np.asarray(data) == labels).mean() > 0.99
    PILImage.fromarray(image).convert("L").save(tmp_path / "grey.jpg", quality=75)
    ((_, _, kind),) = read_paths(str(tmp_path / "grey.jpg"))
    assert kind == "image"


def test_a_palette_image_of_a_few_colours_opens_as_an_image(tmp_path, wbc_pair):
    """Palette indices beyond every schema's classes: a picture; it was taken for a mask and refused."""
    from PIL import Image

    Image.fromarray(wbc_pair[0]).quantize(12).save(tmp_path / "pal.png")
    ((data, _, kind),) = read_paths(str(tmp_path / "pal.png"))
    assert kind == "image" and data.shape == (*wbc_pair[0].shape[:2], 3)


def test_a_folder_without_images_says_so(viewer, tmp_path, notes):
    (tmp_path / "x.png").mkdir()  # a folder named like an image: claimed by its suffix
    assert viewer.open(str(tmp_path / "x.png"), plugin=PLUGIN) == []
    assert any("x.png: no images in this folder" in msg for msg in notes.errors)


def _grey_smear_crop(seed: int = 0) -> np.ndarray:
    """A grey smear crop as a monochrome camera gives it: a smooth bright background just under white (near 255
    but never on it), camera noise, and a darker round cell with a soft edge."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:300, :300].astype(np.float64)
    background = 251.0 + 1.5 * np.sin(xx / 60.0) + 1.0 * np.cos(yy / 45.0)
    r = np.hypot(yy - 150, xx - 140)
    cell = np.clip((42.0 - r) / 4.0, 0.0, 1.0) * (70.0 + 40.0 * r / 42.0)  # darker at the centre, soft edge
    return np.clip(background - cell + rng.normal(0.0, 1.2, r.shape), 0, 254).round().astype(np.uint8)


def test_a_grey_smear_crop_with_a_bright_background_opens_as_an_image(tmp_path, write_png):
    """Over 90 % of such a crop is within 8 of 255, which once made it a WBC mask (91 % 'nucleus'); a mask's
    pixels are exactly on its levels, a photo's background only near them."""
    grey = _grey_smear_crop()
    near = np.abs(grey.astype(int)[..., None] - np.array([0, 128, 255])).min(axis=-1) <= 8
    assert near.mean() >= 0.9 and np.unique(grey).size > 64  # what the old rule took for a JPEG mask
    assert not looks_like_mask(grey)
    ((data, _, kind),) = read_paths(str(write_png(tmp_path / "smear_grey_crop.png", grey)))
    assert kind == "image" and data.shape == (300, 300, 3)


def test_every_real_mask_opens_as_a_mask_and_every_real_image_as_an_image(shared_data):
    """The public datasets' masks (Dataset 2's with their few stray greys included) still open as masks after the
    rule got stricter, and their images as images; a sample, to stay fast."""
    from napari_bloodseg.plugin.reader import read_file

    d1 = sorted((shared_data / "wbc" / "dataset1").glob("*.png"))[::9][:30]
    d2 = sorted((shared_data / "wbc" / "dataset2-dev").glob("*.png"))
    rbc = sorted((shared_data / "rbc").glob("*.png"))[::9][:10]
    masks = d1 + d2 + rbc
    assert len(d1) >= 20 and len(d2) >= 5 and len(rbc) >= 5
    for mask in masks:
        images = [p for p in mask.parent.glob(f"{mask.stem}.*") if p.suffix.lower() in (".bmp", ".jpg")]
        assert len(images) == 1, mask
        assert read_file(mask)[2] == "labels", mask
        assert read_file(images[0])[2] == "image", images[0]


def test_a_big_colour_image_is_told_from_a_sample_of_its_rows(monkeypatch):
    """A colour smear is decided from strided rows, never by converting the whole image (a 36 MP JPEG took 2.2 s
    on napari's GUI thread); a grey image whose only colour lies between the sampled rows still reads every row,
    so the answer is the whole image's."""
    import napari_bloodseg.plugin.reader as reader

    seen: list[int] = []
    real = reader._channel_spread

    def spy(rgb):
        seen.append(rgb.shape[0] * rgb.shape[1])
        return real(rgb)

    monkeypatch.setattr(reader, "_channel_spread", spy)
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (3000, 1000, 3), dtype=np.uint8)
    assert not looks_like_mask(colour)
    assert 0 < sum(seen) <= 0.05 * 3000 * 1000

    levels = rng.choice(np.array([0, 128, 255], np.uint8), (3000, 1000))
    grey = np.repeat(levels[..., None], 3, axis=-1)
    seen.clear()
    assert looks_like_mask(grey)
    assert sum(seen) >= 3000 * 1000  # a sample that looks grey decides nothing: every row is looked at
    grey[1, 500] = (255, 0, 0)  # row 1 is not in the sample (every 46th row from 0)
    assert not looks_like_mask(grey)


def test_a_big_folder_opens_its_first_pairs_and_says_where_the_whole_folder_goes(viewer, tmp_path, notes, write_png):
    """24 pairs (48 layers) froze napari ~9 s; the warning says how many opened and what takes a whole folder."""
    from napari_bloodseg.data import synthetic_wbc
    from napari_bloodseg.plugin.reader import MAX_FOLDER_PAIRS

    assert MAX_FOLDER_PAIRS == 8
    for i in range(10):
        image, labels = synthetic_wbc(size=32, seed=i)
        write_png(tmp_path / f"{i:03d}.bmp", image)
        write_png(tmp_path / f"{i:03d}.png", WBC.to_disk(labels))
    layers = read_paths(str(tmp_path))
    assert [kw["name"] for _, kw, _ in layers][-2:] == ["007", "007 mask"] and len(layers) == 16
    (warning,) = notes.warnings
    assert "first 8 of 10 image/mask pairs" in warning
    assert "Fine-tune's Folder source" in warning and "bloodseg evaluate" in warning


def test_a_stack_of_same_size_pages_is_refused_in_words_not_as_a_shape(viewer, tmp_path, notes, wbc_pair):
    """tifffile calls such pages Q (unnamed), which were read as channels and refused with the array's shape."""
    import tifffile

    rgb = wbc_pair[0]
    tifffile.imwrite(tmp_path / "stack3.tif", np.stack([rgb, rgb[::-1], rgb[:, ::-1]]))
    assert viewer.open(str(tmp_path / "stack3.tif"), plugin=PLUGIN) == []
    (error,) = notes.errors
    assert "stack3.tif: a stack of pages" in error and "save the one to segment as its own file" in error
    assert "shape" not in error


def test_a_folder_of_no_images_gets_the_readers_reason(viewer, tmp_path, notes):
    """An empty folder, or one of notes, was refused by napari's generic "refused the file"; a folder with something
    another reader opens (napari reads .csv) stays theirs: None means "not mine"."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("x")
    for name in ("empty", "notes"):
        assert viewer.open(str(tmp_path / name), plugin=PLUGIN) == []
        assert any(f"{name}: no images in this folder" in msg for msg in notes.errors), notes
    (tmp_path / "table").mkdir()
    (tmp_path / "table" / "points.csv").write_text("y,x\n1,2\n")
    assert get_reader(str(tmp_path / "table")) is None


def test_a_tiff_with_a_page_of_another_size_opens_its_first_image_with_a_warning(viewer, tmp_path, notes, wbc_pair):
    """The other page is named in a notification (it opened without a word), at every open: as a Python warning
    napari showed it the first time only (audit22 L1)."""
    import tifffile
    from napari.utils.notifications import notification_manager

    image, _ = wbc_pair
    with tifffile.TiffWriter(tmp_path / "field.tif") as tw:
        tw.write(image)
        tw.write(image[:60, :80])
    with notification_manager:  # warnings become notifications, as napari.run() has them
        (layer,) = viewer.open(str(tmp_path / "field.tif"), plugin=PLUGIN)
        viewer.open(str(tmp_path / "field.tif"), plugin=PLUGIN)  # again, in the same session
    np.testing.assert_array_equal(layer.data, image)
    said = (
        "warning",
        f"{tmp_path / 'field.tif'}: read its first image ({image.shape[1]} x {image.shape[0]} pixels) only; the "
        "file holds 1 more image, left out: page 2 (80 x 60 pixels). Save each image to segment as its own file",
    )
    assert [(s, m) for s, m in notes if "left out" in m] == [said, said]


def test_other_warnings_of_an_open_pass_through_as_warnings(tmp_path, write_png, wbc_pair, monkeypatch):
    """Only the left-out images are turned into notifications; any other warning reaches napari's hook as before."""
    import warnings

    import napari_bloodseg.plugin.reader as reader

    real = reader.read_file

    def noisy(path):
        warnings.warn("something else", UserWarning, stacklevel=1)
        return real(path)

    monkeypatch.setattr(reader, "read_file", noisy)
    path = write_png(tmp_path / "001.png", wbc_pair[0])
    with pytest.warns(UserWarning, match="something else"):
        assert len(read_paths(str(path))) == 1


def test_a_big_tiff_with_a_page_of_another_size_is_warned_about_once_per_open(tiled_tiff, smear_field, tmp_path, notes):
    import tifffile

    path = tmp_path / "slide_and_label.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(smear_field, tile=(256, 256), compression="zlib")
        tw.write(smear_field[:100, :300])
    for _ in range(2):
        data, kwargs, _ = _only_layer(path)
        np.asarray(data[-1])  # its coarse levels read the file through a handle of their own
    assert kwargs["multiscale"] and len(notes.warnings) == 2
    assert all("page 2 (300 x 100 pixels)" in message for message in notes.warnings)
