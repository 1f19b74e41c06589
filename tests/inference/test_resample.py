"""Band-wise resizing equals whole-image resizing (to float rounding), whatever the band cuts."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_bloodseg.inference import resize_image
from napari_bloodseg.inference.resample import ResizedRows, RowUpsampler, aa_taps

SIZES = [((300, 301), (135, 135)), ((240, 320), (120, 160)), ((97, 50), (200, 120)), ((64, 64), (63, 65))]


@pytest.mark.parametrize(("src", "dst"), SIZES)
def test_resized_rows_equal_resize_image(rng, src, dst):
    image = rng.integers(0, 256, (*src, 3), dtype=np.uint8)
    whole, banded = resize_image(image, dst), ResizedRows(image, dst)[:]
    assert banded.dtype == np.uint8 and banded.shape == (*dst, 3)
    diff = np.abs(whole.astype(int) - banded.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # rounding of the last float digit only
    as_float = image.astype(np.float32) / 255
    np.testing.assert_allclose(ResizedRows(as_float, dst)[:], resize_image(as_float, dst), atol=1e-4)


def test_resized_rows_slices_match_the_whole(rng):
    image = rng.integers(0, 256, (301, 203, 3), dtype=np.uint8)
    view = ResizedRows(image, (150, 100))
    whole = view[:]
    np.testing.assert_array_equal(np.concatenate([view[0:7], view[7:90], view[90:150]]), whole)
    np.testing.assert_array_equal(view[10:20, 5:9], whole[10:20, 5:9])
    assert view.shape == (150, 100, 3) and view.ndim == 3 and len(view) == 150
    with pytest.raises(IndexError):
        view[0:10:2]


def test_resized_rows_read_only_the_rows_under_the_filter(rng):
    reads = []

    class Source:
        shape, dtype = (400, 50, 3), np.dtype(np.uint8)

        def __getitem__(self, key):
            reads.append(key.indices(400))
            return np.zeros((key.stop - key.start, 50, 3), np.uint8)

    ResizedRows(Source(), (200, 25))[100:110]
    ((start, stop, _),) = reads
    assert 195 <= start and stop <= 225  # ten output rows at half size need ~20 source rows, plus the filter


def test_aa_taps_weights_are_normalised_and_local():
    idx, w = aa_taps(100, 40, 0, 40)
    np.testing.assert_allclose(w.sum(0), 1.0, rtol=1e-6)
    centres = (np.arange(40) + 0.5) * 2.5
    used = np.where(w > 0, idx, -1)
    assert np.all(np.abs(np.where(used >= 0, used + 0.5 - centres, 0)) <= 2.5)


@pytest.mark.parametrize(("src", "dst"), [((50, 60), (203, 147)), ((120, 80), (120, 161)), ((90, 90), (40, 40))])
def test_row_upsampler_equals_interpolate(src, dst):
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(3, *src, generator=gen), 0)
    ref = F.interpolate(probs[None], size=dst, mode="bilinear", align_corners=False)[0]
    labels, out = np.full(dst, 9, np.uint8), np.zeros((3, *dst), np.float32)
    up = RowUpsampler(src, dst, labels, out)
    for y0, y1 in [(0, 1), (1, 17), (17, 18), (18, src[0])]:  # bands of any height, one row included
        up.feed(y0, y1, probs[:, y0:y1])
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-5)
    np.testing.assert_array_equal(labels, ref.max(0).indices.numpy())
