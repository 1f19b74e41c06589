#!/usr/bin/env python
"""Open napari with napari-bloodseg's Segment, Correct and Evaluate widgets docked and a synthetic smear loaded.

This is what ``make napari`` runs. Without a display (``$DISPLAY`` / ``$WAYLAND_DISPLAY`` unset on Linux) it
says so and exits with status 2; under a virtual X server, ``--screenshot PATH`` renders the window to PATH and
exits instead of starting the event loop::

    xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python scripts/launch_napari.py --screenshot napari.png
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

PLUGIN = "napari-bloodseg"
SAMPLES = {"wbc": "synthetic-wbc", "rbc": "synthetic-rbc"}


def has_display() -> bool:
    """Qt needs a display on Linux (X11 or Wayland) unless told to draw offscreen."""
    if not sys.platform.startswith("linux"):
        return True
    if os.environ.get("QT_QPA_PLATFORM", "").startswith(("offscreen", "minimal")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sample", choices=sorted(SAMPLES), default="wbc", help="synthetic sample to open (default wbc)")
    p.add_argument("--segment", action="store_true", help="run the Segment widget once on the sample at start")
    p.add_argument("--screenshot", type=Path, metavar="PATH", help="render the window to PATH (PNG) and exit")
    return p.parse_args(argv)


def wait_for(condition, timeout: float = 120.0) -> bool:
    """Turn the Qt event loop until ``condition()`` holds (the widget's worker reports back through it)."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        app.processEvents()
        time.sleep(0.02)
    return True


def build_viewer(sample: str, segment: bool, show: bool = True):
    """The viewer with the sample loaded and the widgets docked: (viewer, {name: dock}, {name: plugin widget})."""
    import napari

    viewer = napari.Viewer(title="napari-bloodseg", show=show)
    viewer.open_sample(PLUGIN, SAMPLES[sample])
    widgets, docks = {}, {}
    # Segment and Evaluate share a tabbed dock (Segment in front), Correct sits below them
    for name, tabify in (("Segment", False), ("Evaluate", True), ("Correct", False)):
        docks[name], widgets[name] = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=tabify)
    # the Segment widget picks the shipped model for the sample's kind of image itself (a crop: wbc-unet, a
    # field: rbc-deconvnet), and keeps following what the user opens until they choose a model
    if segment:
        seg = widgets["Segment"]
        if seg.run() is not None:
            wait_for(lambda: not seg.running)
    return viewer, docks, widgets


def dismiss_toasts(window) -> None:
    """Close notification pop-ups (start-up deprecation notice, 'untrained model' warning) before a screenshot."""
    try:
        from napari._qt.dialogs.qt_notification import NapariQtNotification
    except ImportError:  # pragma: no cover - private module moved: keep the toasts rather than fail
        return
    for toast in window.findChildren(NapariQtNotification):
        toast.close()


def settle(viewer, rounds: int = 25) -> None:
    """Let docks lay out and the canvas draw; then fit the view to the data."""
    from qtpy.QtWidgets import QApplication

    for i in range(rounds):
        QApplication.processEvents()
        time.sleep(0.02)
        if i == rounds // 2:
            viewer.reset_view()


def grab(viewer, path: Path) -> bool:
    """Save the whole window (docks included; a hidden window would give a black canvas) as PNG."""
    window = viewer.window._qt_window
    dismiss_toasts(window)
    settle(viewer, 10)
    path.parent.mkdir(parents=True, exist_ok=True)
    return window.grab().save(str(path))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not has_display():
        print(
            "launch_napari: no display ($DISPLAY is not set), so napari cannot open a window.\n"
            "  On a desktop, run it from a graphical session; over SSH use `ssh -X`.\n"
            "  Headless, render a screenshot instead:\n"
            '    xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python scripts/launch_napari.py '
            "--screenshot napari.png",
            file=sys.stderr,
        )
        return 2
    from napari_bloodseg.inference.allocator import keep_freed_memory

    keep_freed_memory()  # our own napari process: segmentation reuses freed memory, as the CLI does
    viewer, docks, _ = build_viewer(args.sample, args.segment)
    if args.screenshot is not None:
        viewer.window._qt_window.resize(1280, 900)
        settle(viewer)
        docks["Segment"].raise_()
        ok = grab(viewer, args.screenshot)
        viewer.close()
        if not ok:
            print(f"launch_napari: could not write {args.screenshot}", file=sys.stderr)
            return 1
        print(f"screenshot written to {args.screenshot}")
        return 0
    import napari

    settle(viewer, 5)
    docks["Segment"].raise_()
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
