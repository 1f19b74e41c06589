"""Coarse levels that fill in while the viewer stays responsive.

A big TIFF without a pyramid of its own gets coarse levels from :class:`napari_bloodseg.io.pyramid.Pyramid`, built
in a background thread. napari reads layers on its GUI thread, so while a viewer is open the reader makes the
pyramid progressive (rows not built yet read as grey at once, :func:`viewer_open`), and :func:`redraw_while_building`
redraws the layers showing it as bands finish: the overview of a 105 MP zlib-tiled slide fills in within about a
second, without the 15-22 s freeze of decoding it on the GUI thread.
"""

from __future__ import annotations

import sys
from typing import Any

from ..io.pyramid import Pyramid

#: how often a layer whose pyramid is being built is redrawn (only when bands finished since)
REFRESH_MS = 250
#: the running timers (a QTimer without a parent lives as long as a reference to it)
_TIMERS: set[Any] = set()


def _viewers() -> list[Any]:
    """Every open napari viewer (the file may have been opened in any of them)."""
    napari = sys.modules.get("napari")
    if napari is None:
        return []
    instances = list(getattr(napari.Viewer, "_instances", ()))  # private: napari keeps no public list of viewers
    current = napari.current_viewer()
    return instances or ([current] if current is not None else [])


def viewer_open() -> bool:
    """A napari viewer is open: the reader is serving it, on its GUI thread, so reads must never wait."""
    return bool(_viewers())


def layers_showing(pyramid: Pyramid) -> list[Any]:
    """The multiscale layers whose coarse levels are ``pyramid``'s."""
    return [
        layer
        for viewer in _viewers()
        for layer in viewer.layers
        if getattr(layer, "multiscale", False) and getattr(layer.data[-1], "pyramid", None) is pyramid
    ]


def redraw(layer: Any) -> None:
    """Read the layer's data again, its coarsest level included: napari (0.9) keeps a copy of that level, the
    thumbnail's, and ``refresh`` alone draws the copy (grey where it was read before its rows were built)."""
    reset = getattr(layer, "_reset_thumbnail_level_data", None)  # private, so: if this napari has it
    if callable(reset):
        reset()
        layer.refresh()
    else:
        layer.data = layer.data_raw  # what drops the copy through public API, at the cost of a data event


def _notify_warning(message: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(message)


def redraw_while_building(pyramid: Pyramid, name: str) -> None:
    """Poll ``pyramid`` from the GUI thread (called there, by the reader) and redraw its layers as bands finish.

    Stops when it is finished (a failure is a warning naming ``name``), or when its layer was removed, which
    cancels the build: nothing would show it."""
    from qtpy.QtCore import QTimer

    timer = QTimer()
    timer.setInterval(REFRESH_MS)
    state = {"version": 0, "seen": False}

    def stop() -> None:
        timer.stop()
        _TIMERS.discard(timer)

    def tick() -> None:
        layers = layers_showing(pyramid)
        if layers:
            state["seen"] = True
        elif state["seen"] or pyramid.finished:  # removed, or never added (nothing to draw): no more work
            pyramid.cancel()
            stop()
            return
        finished = pyramid.finished  # read before the version: a band finished in between is drawn next time
        if pyramid.version != state["version"]:
            state["version"] = pyramid.version
            for layer in layers:
                redraw(layer)
        if finished:
            stop()
            if pyramid.error is not None:
                _notify_warning(
                    f"napari-bloodseg: {name}: the zoomed-out views could not be made ({pyramid.error}); "
                    "what is left grey there is read from the file when zoomed in"
                )

    timer.timeout.connect(tick)
    _TIMERS.add(timer)
    timer.start()
