"""io.pyramid: coarse levels of a big image without a pyramid, from one banded pass over it (read once, band by
band, on demand or in the background; grey where not built yet when progressive)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_bloodseg.io.pyramid import PLACEHOLDER, Pyramid, reduce2


class _Source:
    """An (H, W, 3) image that records the row ranges read from it."""

    def __init__(self, image: np.ndarray) -> None:
        self.image, self.shape, self.dtype, self.reads = image, image.shape, image.dtype, []
        self.threads: set[str] = set()

    def __getitem__(self, key):
        rows = key[0] if isinstance(key, tuple) else key
        self.reads.append(rows.indices(self.shape[0])[:2])
        self.threads.add(threading.current_thread().name)
        return self.image[key]


@pytest.fixture
def image(rng) -> np.ndarray:
    return rng.integers(0, 256, (203, 150, 3), dtype=np.uint8)


def _reduced(a: np.ndarray, times: int) -> np.ndarray:
    for _ in range(times):
        a = reduce2(a)
    return a


def test_reduce2_is_the_rounded_mean_of_2x2_blocks_with_odd_edges_repeated(rng):
    a = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = reduce2(a)
    assert out.shape == a[::2, ::2].shape and out.dtype == np.uint8
    padded = np.pad(a, ((0, 1), (0, 1), (0, 0)), mode="edge").astype(np.float64)
    mean = (padded[0::2, 0::2] + padded[1::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 1::2]) / 4
    np.testing.assert_array_equal(out, np.floor(mean + 0.5).astype(np.uint8))
    assert reduce2(np.full((4, 4, 3), 255, np.uint8)).min() == 255  # no overflow


def test_levels_are_read_once_band_by_band_and_only_where_asked(image):
    src = _Source(image)
    pyramid = Pyramid(src, [4, 8], band_pixels=40 * 150)
    assert pyramid.band_rows == 40 and pyramid.n_bands == 6  # multiples of the coarsest factor, ~band_pixels
    fine, coarse = pyramid.level(4), pyramid.level(8)
    assert fine.shape == image[::4, ::4].shape and coarse.shape == image[::8, ::8].shape

    np.testing.assert_array_equal(fine[12:18, 5:9], _reduced(image, 2)[12:18, 5:9])
    assert src.reads == [(40, 80)]  # level-4 rows 12-17 are full-resolution rows 48-71: one band
    np.testing.assert_array_equal(np.asarray(coarse), _reduced(image, 3))
    np.testing.assert_array_equal(np.asarray(fine), _reduced(image, 2))
    assert sorted(src.reads) == [(y, min(y + 40, 203)) for y in range(0, 203, 40)]  # each band once, no more
    assert pyramid.complete and pyramid.version == 6


def test_bands_follow_the_files_tiles_and_stay_bounded():
    src = _Source(np.zeros((2000, 1000, 3), np.uint8))
    assert Pyramid(src, [4, 16], align=512, band_pixels=600_000).band_rows == 512  # whole tiles, one tile row
    assert Pyramid(src, [4, 16], align=512, band_pixels=1_100_000).band_rows == 1024
    assert Pyramid(src, [4, 16], align=3, band_pixels=100_000).band_rows == 96  # lcm(3, 16) = 48, twice
    # tiles too tall for the band budget: bands on the coarsest factor's rows, memory stays bounded
    assert Pyramid(src, [4, 16], align=2000, band_pixels=100_000).band_rows == 96
    with pytest.raises(ValueError, match="powers of 2"):
        Pyramid(src, [3])


def test_a_progressive_pyramid_never_reads_the_source_in_the_readers_thread(image):
    src = _Source(image)
    pyramid = Pyramid(src, [4, 8], band_pixels=40 * 150, progressive=True)
    level = pyramid.level(8)
    assert (level[:] == PLACEHOLDER).all() and (level[3] == PLACEHOLDER).all() and not src.reads
    pyramid.build_band(1)  # full-resolution rows 40-79: level-8 rows 5-9
    out = level[:]
    np.testing.assert_array_equal(out[5:10], _reduced(image, 3)[5:10])
    assert (np.delete(out, np.s_[5:10], axis=0) == PLACEHOLDER).all()
    assert pyramid.version == 1 and not pyramid.finished

    pyramid.start()
    assert pyramid.wait(30) and pyramid.complete and pyramid.error is None
    assert src.threads == {threading.current_thread().name, "napari-bloodseg-pyramid"}
    np.testing.assert_array_equal(np.asarray(level), _reduced(image, 3))
    np.testing.assert_array_equal(level[7, 2:5, 1], _reduced(image, 3)[7, 2:5, 1])


def test_a_failing_band_stops_the_background_pass_and_is_kept(image):
    class Corrupt(_Source):
        def __getitem__(self, key):
            if key.start >= 80:
                raise OSError("corrupt tile")
            return super().__getitem__(key)

    pyramid = Pyramid(Corrupt(image), [4], band_pixels=40 * 150, progressive=True)
    pyramid.start()
    assert pyramid.wait(30) and not pyramid.complete
    assert isinstance(pyramid.error, OSError) and pyramid.version == 2
    assert (pyramid.level(4)[20:] == PLACEHOLDER).all()


def test_a_cancelled_pass_stops_between_bands(image):
    pyramid = Pyramid(_Source(image), [4], band_pixels=40 * 150, progressive=True)
    pyramid.cancel()
    pyramid.start()
    assert pyramid.wait(30) and pyramid.finished and pyramid.version == 0
