"""Slide-sized labels written as a mask band by band (the Export widget and napari's writer for layers read from
disk): seconds, file size and peak memory growth for PNG and TIFF, and that the PNG reads back exact.

    .venv/bin/python benchmarks/banded_export.py [--height 10000 --width 12000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from napari_bloodseg.data import synthetic_rbc
from napari_bloodseg.io.lazy import open_label_output, write_mask_banded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--height", type=int, default=10000)
    ap.add_argument("--width", type=int, default=12000)
    args = ap.parse_args()
    h, w = args.height, args.width
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        labels = open_label_output(d / "labels.tif", (h, w))  # what Segment writes for a slide: a memmap
        _, tile = synthetic_rbc((1000, 1200), seed=0)
        for y in range(0, h, 1000):
            for x in range(0, w, 1200):
                labels[y : y + 1000, x : x + 1200] = tile[: h - y, : w - x]
        labels.flush()
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"{h} x {w} RBC labels ({h * w / 1e6:.0f} MP) on disk\n")
        print("| format | seconds | file MB |\n|---|---|---|")
        for suffix in (".png", ".tif"):
            t = time.perf_counter()
            write_mask_banded(d / f"mask{suffix}", labels, "rbc")
            size = (d / f"mask{suffix}").stat().st_size / 1e6
            print(f"| {suffix} | {time.perf_counter() - t:.2f} | {size:.1f} |", flush=True)
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
        print(f"\npeak RSS growth over both writes: {grown:.0f} MB (mapped pages of the labels included)")
        Image.MAX_IMAGE_PIXELS = None
        back = np.asarray(Image.open(d / "mask.png"))
        print("PNG reads back exact:", bool(np.array_equal(back > 0, np.asarray(labels) > 0)))


if __name__ == "__main__":
    main()
