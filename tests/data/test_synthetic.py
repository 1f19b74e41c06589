import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_bloodseg.data import synthetic_rbc, synthetic_wbc
from napari_bloodseg.io import find_pairs, read_image, read_mask
from napari_bloodseg.schemas import get_schema


@pytest.mark.parametrize(("size", "shape"), [(120, (120, 120)), ((88, 116), (88, 116)), (300, (300, 300))])
def test_wbc_shapes_and_labels(size, shape):
    for seed in range(4):
        image, mask = synthetic_wbc(size, seed=seed)
        assert image.shape == (*shape, 3) and image.dtype == np.uint8
        assert mask.shape == shape and mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) == {0, 1, 2}  # background, cytoplasm, nucleus all present


@pytest.mark.parametrize("shape", [(600, 800), (160, 200), (257, 131)])
def test_rbc_shapes_and_labels(shape):
    image, mask = synthetic_rbc(shape, seed=1)
    assert image.shape == (*shape, 3) and image.dtype == np.uint8
    assert mask.shape == shape and mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) == {0, 1}
    assert 0.05 < mask.mean() < 0.6  # a monolayer: cells and background both present


def test_deterministic_per_seed():
    for make, size in ((synthetic_wbc, 100), (synthetic_rbc, (120, 160))):
        a, b, c = make(size, seed=7), make(size, seed=7), make(size, seed=8)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert not np.array_equal(a[1], c[1])


def test_rbc_density():
    sparse = synthetic_rbc((300, 300), seed=2, density=0.3)[1].mean()
    dense = synthetic_rbc((300, 300), seed=2, density=1.0)[1].mean()
    assert sparse < dense


def test_images_match_their_masks():
    # the stain colours follow the labels: the nucleus is the darkest, red cells have less green than plasma
    image, mask = synthetic_wbc(120, seed=4)
    brightness = image.astype(float).mean(-1)
    assert brightness[mask == 2].mean() < brightness[mask == 1].mean() - 40
    field, cells = synthetic_rbc((200, 240), seed=4)
    green = field[..., 1].astype(float)
    assert green[cells == 1].mean() < green[cells == 0].mean() - 30


def test_wbc_grain_is_dataset2s():
    # a grainless cytoplasm reads as a red cell to the shipped models: cytoplasm and nucleus carry Dataset 2's grain
    # (measured at the crop's scale, within 25 %), red cells and plasma only the sensor noise
    from scipy import ndimage as ndi

    from napari_bloodseg.data.synthetic import _D2_GRAIN

    grain = {"cyto": [], "nucleus": [], "background": []}
    for seed in range(6):
        image, mask = synthetic_wbc(120, seed=seed)
        img = image.astype(np.float32) / 255
        fine = img - ndi.gaussian_filter(img, (2, 2, 0))
        for name, region in (("cyto", mask == 1), ("nucleus", mask == 2), ("background", mask == 0)):
            grain[name].append(fine[ndi.binary_erosion(region, iterations=3)].std(0))
    for name in ("cyto", "nucleus"):
        ratio = np.mean(grain[name], 0) / _D2_GRAIN[name]
        assert np.all((ratio > 0.75) & (ratio < 1.25)), (name, ratio)
    assert np.all(np.mean(grain["cyto"], 0) > 1.4 * np.mean(grain["background"], 0))


def test_rbc_field_looks_like_the_real_ones():
    # figures measured on 20 of rbc-deconvnet's training fields (benchmarks/synthetic_realism_rbc.py): grey-white
    # plasma, violet cells ~100 px across with a dark ring, and the optics' soft edge, half-way at the mask's edge
    from scipy import ndimage as ndi

    from napari_bloodseg.training.data import Sample, typical_cell_size

    image, mask = synthetic_rbc((1200, 1600), seed=0)
    img = image.astype(np.float32) / 255
    cells = mask > 0
    d_in, d_out = ndi.distance_transform_edt(cells), ndi.distance_transform_edt(~cells)
    plasma, ring = img[d_out > 10].mean(0), img[(d_in > 10) & (d_in < 20)].mean(0)
    assert np.abs(plasma - [0.905, 0.912, 0.901]).max() < 0.03
    assert np.abs(ring - [0.353, 0.350, 0.506]).max() < 0.05
    lum = img.mean(-1)
    inside, outside = lum[(d_in > 0.5) & (d_in <= 1.5)].mean(), lum[(d_out > 0.5) & (d_out <= 1.5)].mean()
    halfway = (inside - ring.mean()) / (plasma.mean() - ring.mean())  # real: 0.645 at -1 px -> 0.47 of the step
    assert 0.35 < halfway < 0.6 and outside > inside + 0.05  # soft, not a cut-out disc
    assert typical_cell_size([Sample("f", image, mask)]) == pytest.approx(100, rel=0.08)


def test_blur_keeps_each_border_its_own():
    # a cell touching the right border must not bleed into the left one (the blur once wrapped round)
    from napari_bloodseg.data.synthetic import _blur

    img = np.zeros((8, 10, 3), np.float32)
    img[:, -1] = 1.0
    out = _blur(img)
    assert out.shape == img.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0], 0.0)
    np.testing.assert_allclose(out[:, -1], 2 / 3)  # the border column repeats outward: (0 + 1 + 1) / 3
    np.testing.assert_allclose(out[:, -2], 1 / 3)


SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"


def _load_script():
    path = SAMPLE_DIR.parent / "scripts" / "make_sample_data.py"
    spec = importlib.util.spec_from_file_location("make_sample_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (SAMPLE_DIR / "README.md").exists(), reason="sample_data/ not generated in this checkout")
def test_shipped_sample_data_is_what_the_script_makes(tmp_path):
    pairs = find_pairs(SAMPLE_DIR)
    assert len(pairs) == 4 and all(mask is not None for _, mask in pairs)
    assert sum(p.stat().st_size for p in SAMPLE_DIR.iterdir()) < 1_000_000
    for image_path, mask_path in pairs:
        image = read_image(image_path, as_float=False)
        schema = "rbc" if "rbc" in image_path.name else "wbc"
        labels, _ = read_mask(mask_path, schema, shape=image.shape)
        grey = np.asarray(Image.open(mask_path))
        assert set(np.unique(grey).tolist()) == set(get_schema(schema).grey_levels)  # on-disk convention
    _load_script().make(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in SAMPLE_DIR.iterdir())
    for fresh in tmp_path.iterdir():
        kept = SAMPLE_DIR / fresh.name
        if fresh.suffix == ".md":
            assert fresh.read_text() == kept.read_text()
        else:  # decoded pixels, so a different zlib/libjpeg build does not matter
            a, b = (np.asarray(Image.open(p)).astype(int) for p in (fresh, kept))
            assert np.abs(a - b).max() <= (3 if fresh.suffix == ".jpg" else 0), fresh.name
