import numpy as np
import pytest

from napari_bloodseg.data import synthetic_rbc, synthetic_wbc


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
