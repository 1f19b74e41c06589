import math

import numpy as np
import pytest
import torch

from napari_bloodseg.inference import sliding_window, tile_starts
from napari_bloodseg.inference.tiling import blend_weights, ramp_1d, tile_spans


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "align"),
    [
        (1000, 512, 64, 1),
        (512, 512, 64, 1),
        (513, 512, 64, 16),
        (7, 4, 1, 1),
        (1000, 384, 64, 16),
        (530, 256, 56, 16),
        (2000, 1024, 64, 16),
        (8000, 1024, 64, 16),
        (4001, 1000, 100, 8),
    ],
)
def test_tile_spans_cover_on_the_network_grid(length, tile, overlap, align):
    spans = tile_spans(length, tile, overlap, align)
    starts = [s for s, _ in spans]
    sizes = [size for _, size in spans]
    assert starts[0] == 0 and spans[-1][0] + spans[-1][1] == length  # the last tile ends at the image end
    assert all(s % align == 0 for s in starts)  # same pooling grid as one pass over the whole image
    assert all(0 < size <= tile for size in sizes)
    if len(spans) > 1:
        assert all(a[0] + a[1] - b[0] >= overlap for a, b in zip(spans, spans[1:], strict=False))  # real overlap
        # the fewest tiles that can do it, sharing the length evenly: no sliver at the end
        assert len(spans) == math.ceil((length - overlap) / (tile - overlap)) or sizes[0] + align > tile
        assert sizes[-1] >= sizes[0] - len(spans) * align
    covered = np.zeros(length, bool)
    for s, size in spans:
        covered[s : s + size] = True
    assert covered.all()


def test_tile_starts_examples():
    assert tile_starts(1000, 512, 64) == [0, 312, 624]  # three tiles of 376, not 512 + 512 + a sliver
    assert tile_starts(300, 512, 64) == [0]
    assert tile_starts(1000, 384, 64, align=16) == [0, 320, 640]  # step 312 moved up to the 16 px grid
    assert tile_spans(1000, 384, 64, 16)[-1] == (640, 360)
    assert tile_spans(2000, 1024, 64, 16) == [(0, 720), (656, 720), (1312, 688)]


def test_ramp():
    r = ramp_1d(10, 3)
    # (i + 0.5) / 3 from the left edge, capped at 1
    np.testing.assert_allclose(r[:3], [0.5 / 3, 1.5 / 3, 2.5 / 3], rtol=1e-6)
    np.testing.assert_allclose(r, r[::-1])
    assert r.max() == 1.0 and r.min() > 0
    np.testing.assert_array_equal(ramp_1d(5, 0), np.ones(5))


def _pointwise(tiles: np.ndarray) -> torch.Tensor:
    """A stand-in network whose output at a pixel depends on that pixel only: p1 = red / 255."""
    red = torch.from_numpy(tiles[..., 0].astype(np.float32) / 255.0)
    return torch.stack([1 - red, red], dim=1)


class SliceOnly:
    """An image source that only supports row-band slicing and records the slices asked for (like zarr/dask)."""

    def __init__(self, arr: np.ndarray):
        self.arr, self.shape, self.slices = arr, arr.shape, []

    def __getitem__(self, key):
        assert isinstance(key, slice)
        self.slices.append((key.start, key.stop))
        return self.arr[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole image must never be loaded at once")


@pytest.mark.parametrize(
    ("length", "tile", "overlap"), [(2000, 1024, 64), (300, 128, 64), (100, 1024, 64), (90, 40, 20)]
)
def test_blend_weights_sum_to_one_at_every_pixel(length, tile, overlap):
    spans = tile_spans(length, tile, overlap)
    weights = blend_weights(spans, length, overlap)
    total = np.zeros(length)
    for (start, size), w in zip(spans, weights, strict=True):
        assert w.shape == (size,) and (w > 0).all()
        total[start : start + size] += w
    np.testing.assert_allclose(total, 1.0, rtol=1e-6)
    if len(spans) > 1:  # the ramp survives where tiles overlap: seams are blended, not cut
        assert weights[0][-1] < 0.05 and weights[1][0] < 0.05


@pytest.mark.parametrize(("h", "w", "tile", "overlap"), [(300, 500, 128, 32), (97, 61, 40, 12), (50, 50, 64, 16)])
def test_blending_reproduces_a_pointwise_model_exactly(rng, h, w, tile, overlap):
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    source = SliceOnly(image)
    out = np.full((2, h, w), np.nan, np.float32)
    bands = []

    def on_rows(y0, y1, p):
        assert p.shape == (2, y1 - y0, w)
        bands.append((y0, y1))
        out[:, y0:y1] = p

    calls = []
    sliding_window(
        source,
        _pointwise,
        2,
        tile=tile,
        overlap=overlap,
        batch_size=3,
        on_rows=on_rows,
        progress=lambda d, t: calls.append((d, t)),
    )
    # every pixel is a weighted average of identical per-tile values: exact up to float rounding
    np.testing.assert_allclose(out[1], image[..., 0] / 255.0, atol=1e-5)
    np.testing.assert_allclose(out.sum(0), 1.0, atol=1e-5)
    # bands arrive in order, each row exactly once, never taller than a tile (memory bound by width)
    assert bands[0][0] == 0 and bands[-1][1] == h
    assert all(a[1] == b[0] for a, b in zip(bands, bands[1:], strict=False))
    assert all(y1 - y0 <= tile for y0, y1 in bands)
    # one slice of the source per tile row
    assert len(source.slices) == len(bands)
    n_tiles = len(tile_starts(h, tile, overlap)) * len(tile_starts(w, tile, overlap))
    assert calls[-1] == (n_tiles, n_tiles)
    assert [d for d, _ in calls] == sorted({d for d, _ in calls})


def test_batches_hold_at_most_batch_size_tiles(rng):
    image = rng.integers(0, 256, size=(200, 300, 3), dtype=np.uint8)
    sizes = []

    def run(tiles):
        sizes.append(tiles.shape)
        return _pointwise(tiles)

    sliding_window(image, run, 2, tile=64, overlap=16, batch_size=2, on_rows=lambda *a: None)
    assert all(s[0] <= 2 and s[1] <= 64 and s[2] <= 64 and s[3] == 3 for s in sizes)
    # rows: 4 tiles of 62 share the 200 px; columns: 0, 48, ..., 240, the last 60 wide: never padded
    assert {s[1:3] for s in sizes} == {(62, 64), (62, 60)}


def test_blending_stays_on_the_device_of_the_probabilities(rng):
    # a GPU run blends on the GPU: here the "meta" device (shapes only) stands in for one
    image = rng.integers(0, 256, size=(150, 230, 3), dtype=np.uint8)
    seen = []

    def run(tiles):
        return torch.empty((tiles.shape[0], 2, tiles.shape[1], tiles.shape[2]), device="meta")

    sliding_window(
        image, run, 2, tile=64, overlap=16, batch_size=2, on_rows=lambda y0, y1, p: seen.append((p.device.type, y1))
    )
    assert {d for d, _ in seen} == {"meta"} and seen[-1][1] == 150
