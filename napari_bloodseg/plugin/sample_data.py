"""File > Open Sample: synthetic WBC crop and RBC field (offline, exact masks), and the public Zheng WBC Dataset 1.

The synthetic samples open as an image plus its expert mask layer (``"<name> mask"``), so a user can segment,
evaluate and export without any data of their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..data import fetch_zheng_wbc, synthetic_rbc, synthetic_wbc
from .layers import META_KEY, schema_layer_kwargs

LayerData = tuple[Any, ...]
#: Zheng Dataset 1 has 300 crops; opening them all as layers would swamp napari, so the sample opens a few.
ZHENG_SAMPLE_PAIRS = 6


def _pair(name: str, image, mask, schema: str) -> list[LayerData]:
    image_meta = {"name": name, "rgb": True, "metadata": {META_KEY: {"role": "image", "synthetic": True}}}
    return [
        (image, image_meta, "image"),
        (mask, schema_layer_kwargs(schema, f"{name} mask", role="mask", source=name), "labels"),
    ]


def synthetic_wbc_sample() -> list[LayerData]:
    """A 120 px synthetic white-cell crop (cytoplasm + nucleus) and its exact mask: the size of a Dataset 1 crop,
    the magnification the shipped WBC models work at, in Dataset 2's stain colours and grain (docs/benchmarks.md:
    the shipped models score cell Dice ~0.99 and nucleus 0.94-0.97 on such crops, as on real Dataset 2 cells)."""
    image, mask = synthetic_wbc(size=120, seed=3)
    return _pair("synthetic WBC", image, mask, "wbc")


def synthetic_rbc_sample() -> list[LayerData]:
    """A 1200x1600 synthetic smear field and its cell mask: the size, look and ~100 px cells of the RBC fields
    (measured, docs/benchmarks.md; plain discs only, so ``rbc-deconvnet`` scores IoU ~0.96 here, ~0.90 on real
    fields)."""
    image, mask = synthetic_rbc(size=(1200, 1600), seed=1)
    return _pair("synthetic RBC field", image, mask, "rbc")


def zheng_wbc_dataset1() -> list[LayerData]:
    """The first crops of Zheng et al. (2018) Dataset 1 with their expert masks (downloaded once, then cached).

    The download (tens of MB) runs in a thread with a progress bar while napari stays responsive. Offline,
    raises ConnectionError with a hint; napari shows it as an error notification.
    """
    from ..io.pairs import find_pairs
    from .reader import read_pairs

    try:
        folder = fetch_responsive(fetch_zheng_wbc, "wbc-dataset1")
    except ConnectionError as exc:
        raise ConnectionError(
            f"Zheng WBC Dataset 1 could not be downloaded ({exc}). Check the internet connection, or open a "
            "local copy of the dataset folder with File > Open Folder; the synthetic samples work offline."
        ) from None
    errors: list[str] = []
    layers = read_pairs(find_pairs(folder)[:ZHENG_SAMPLE_PAIRS], errors)
    if errors:
        from napari.utils.notifications import show_error

        show_error("napari-bloodseg: " + "; ".join(errors))
    if not layers:
        raise ValueError(f"{folder}: no readable image/mask pairs")
    from napari.utils.notifications import show_info

    show_info(f"Opened {len(layers) // 2} Zheng WBC crops; the whole dataset is in {folder}")
    return layers


_DOWNLOADING = threading.Lock()


def fetch_responsive(fetch: Callable[..., Path], name: str) -> Path:
    """``fetch(name, progress=...)`` in a worker thread while the Qt event loop keeps running, with a napari
    progress bar. napari calls sample loaders synchronously and needs their layers back, so the loader waits here,
    in a nested event loop, instead of blocking napari for the whole download."""
    from qtpy.QtWidgets import QApplication

    if QApplication.instance() is None:
        return fetch(name, progress=None)
    if not _DOWNLOADING.acquire(blocking=False):
        raise RuntimeError("a dataset download is already running; wait for it to finish")
    try:
        return _fetch_in_thread(fetch, name)
    finally:
        _DOWNLOADING.release()


def _fetch_in_thread(fetch: Callable[..., Path], name: str) -> Path:
    from napari.utils import progress
    from qtpy.QtCore import QEventLoop, QTimer

    seen = {"done": 0, "total": 0}
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["path"] = fetch(name, progress=lambda done, total: seen.update(done=done, total=total))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the GUI thread below
            outcome["error"] = exc

    thread = threading.Thread(target=work, name=f"bloodseg-download-{name}", daemon=True)
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(100)
    with progress(total=0, desc=f"Downloading {name}") as bar:

        def tick() -> None:
            done, total = seen["done"], seen["total"]
            if total and bar.total != total:
                bar.total = total
            if done > bar.n:
                bar.update(done - bar.n)  # through update(), so napari's activity dock redraws
                size = f" of {total / 1e6:.0f}" if total else ""
                bar.set_description(f"Downloading {name}: {done / 1e6:.1f}{size} MB")
            if not thread.is_alive():
                loop.quit()

        timer.timeout.connect(tick)
        thread.start()
        timer.start()
        if thread.is_alive():
            loop.exec_()
        timer.stop()
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["path"]
