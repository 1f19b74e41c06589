"""The band-by-band PNG writer: any PNG reader gets the exact pixels back, whatever the band and chunk sizes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import napari_bloodseg.io.banded_png as banded_png
from napari_bloodseg.io.banded_png import write_png_bands


def _png(image: np.ndarray, rows: int, *, alpha: bool) -> Image.Image:
    buf = io.BytesIO()
    write_png_bands(buf, image.shape[:2], (image[y : y + rows] for y in range(0, len(image), rows)), alpha=alpha)
    buf.seek(0)
    png = Image.open(buf)
    png.load()  # checks every chunk's CRC and the zlib stream
    return png


@pytest.mark.parametrize("rows", [1, 5, 64])
def test_noise_round_trips_grey_and_grey_alpha(rng, rows):
    """Noise exercises the 'Up' filter's wrap-around (a byte minus a bigger one above it)."""
    grey = rng.integers(0, 256, (37, 29), dtype=np.uint8)
    png = _png(grey, rows, alpha=False)
    assert png.mode == "L" and png.size == (29, 37)
    np.testing.assert_array_equal(np.asarray(png), grey)
    both = rng.integers(0, 256, (37, 29, 2), dtype=np.uint8)
    png = _png(both, rows, alpha=True)
    assert png.mode == "LA"
    np.testing.assert_array_equal(np.asarray(png), both)


def test_many_idat_chunks_read_back(rng, monkeypatch):
    monkeypatch.setattr(banded_png, "CHUNK_BYTES", 4096)
    grey = rng.integers(0, 256, (600, 400), dtype=np.uint8)  # 240 kB that do not compress
    buf = io.BytesIO()
    write_png_bands(buf, grey.shape, (grey[y : y + 16] for y in range(0, 600, 16)), alpha=False)
    assert buf.getvalue().count(b"IDAT") > 5
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(buf.getvalue()))), grey)


def test_a_mask_compresses_to_almost_nothing():
    mask = np.zeros((2000, 3000), np.uint8)
    mask[500:1500, 1000:2000] = 255
    buf = io.BytesIO()
    write_png_bands(buf, mask.shape, (mask[y : y + 256] for y in range(0, 2000, 256)), alpha=False)
    assert len(buf.getvalue()) < 20_000  # 6 MB of pixels


def test_wrong_row_counts_and_sizes_are_refused(rng):
    grey = rng.integers(0, 256, (10, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="6 rows given for a PNG of 10"):
        write_png_bands(io.BytesIO(), grey.shape, iter([grey[:6]]), alpha=False)
    with pytest.raises(ValueError, match="more than the 10 rows"):
        write_png_bands(io.BytesIO(), grey.shape, iter([grey, grey[:1]]), alpha=False)
    with pytest.raises(ValueError, match="1 to 2\\*\\*31"):
        write_png_bands(io.BytesIO(), (0, 4), iter([]), alpha=False)


def test_text_beyond_latin1_goes_into_an_international_chunk(tmp_path):
    """A model named in another script (a card loaded by path): the streamed PNG failed after the whole run."""
    import io

    from PIL import Image

    from napari_bloodseg.io.banded_png import write_png_bands

    buf = io.BytesIO()
    write_png_bands(buf, (2, 3), iter([np.zeros((2, 3), np.uint8)]), alpha=False, text={"k": "细胞模型", "a": "é"})
    buf.seek(0)
    assert Image.open(buf).info == {"k": "细胞模型", "a": "é"}
