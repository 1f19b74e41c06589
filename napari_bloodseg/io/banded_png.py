"""A grey (or grey + alpha) 8-bit PNG written band by band, for label images too big to hold in memory.

PIL needs the whole image to write a PNG; the format itself does not: rows go through one zlib stream into IDAT
chunks. Rows use PNG's "Up" filter (each row minus the one above), which turns a mask's long runs of identical rows
into zeros that compress to almost nothing. Any PNG reader reads it (PIL, image viewers, browsers).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping
from typing import BinaryIO

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GREY, _GREY_ALPHA = 0, 4  # PNG colour types
_UP = 2  # PNG filter type: byte minus the byte above
#: IDAT chunks are cut at about this many compressed bytes (any size is valid; readers buffer one chunk)
CHUNK_BYTES = 1 << 20


def _chunk(f: BinaryIO, kind: bytes, data: bytes) -> None:
    f.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def write_png_bands(
    f: BinaryIO,
    shape: tuple[int, int],
    bands: Iterator[np.ndarray],
    *,
    alpha: bool,
    text: Mapping[str, str] | None = None,
) -> None:
    """Write a PNG of ``shape`` (H, W) to the open binary file ``f`` from ``bands``: uint8 arrays of whole rows,
    (rows, W) grey or, with ``alpha``, (rows, W, 2) grey + alpha, top to bottom, covering all H rows. ``text``
    goes into tEXt chunks (Latin-1 keys of 1-79 characters; iTXt for values beyond Latin-1), which PIL reads back
    into ``Image.info``."""
    h, w = int(shape[0]), int(shape[1])
    if not (0 < h < 2**31 and 0 < w < 2**31):
        raise ValueError(f"a PNG is 1 to 2**31 - 1 pixels on a side, not {w} x {h}")
    channels = 2 if alpha else 1
    f.write(PNG_SIGNATURE)
    _chunk(f, b"IHDR", struct.pack(">IIBBBBB", w, h, 8, _GREY_ALPHA if alpha else _GREY, 0, 0, 0))
    for key, value in (text or {}).items():
        if not 1 <= len(key) <= 79:
            raise ValueError(f"a PNG text key is 1 to 79 characters, not {key!r}")
        try:
            _chunk(f, b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
        except UnicodeEncodeError:  # a model named in another script: international text (UTF-8), as PIL does
            _chunk(f, b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8"))
    packer = zlib.compressobj(6)
    pending: list[bytes] = []
    size = 0
    above = np.zeros(w * channels, dtype=np.uint8)
    done = 0
    for band in bands:
        rows = np.ascontiguousarray(band, dtype=np.uint8).reshape(len(band), w * channels)
        if done + len(rows) > h:
            raise ValueError(f"more than the {h} rows announced")
        previous = np.vstack([above[None], rows[:-1]])
        lines = np.empty((len(rows), 1 + w * channels), dtype=np.uint8)
        lines[:, 0] = _UP
        np.subtract(rows, previous, out=lines[:, 1:])  # uint8 wraps around: PNG's modulo-256 difference
        if len(rows):
            above = rows[-1].copy()
        done += len(rows)
        piece = packer.compress(lines.tobytes())
        if piece:
            pending.append(piece)
            size += len(piece)
        if size >= CHUNK_BYTES:
            _chunk(f, b"IDAT", b"".join(pending))
            pending, size = [], 0
    if done != h:
        raise ValueError(f"{done} rows given for a PNG of {h}")
    pending.append(packer.flush())
    _chunk(f, b"IDAT", b"".join(pending))
    _chunk(f, b"IEND", b"")
