#!/usr/bin/env python
"""Render the README screenshots of the docked widgets on segmented synthetic smears into docs/images/.

    xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python scripts/screenshots.py [--out docs/images]

Writes ``segment.png`` (Segment widget after a run), ``evaluate.png`` (scores, bar chart and error layer) and
``finetune.png`` (the shipped ``wbc-unet`` fine-tuned on corrected crops of a "new lab": cells twice the size it
was trained on). The model is the Segment widget's default, the shipped ``wbc-unet``. Only synthetic data is
used, so no dataset image ends up in the repository; models are written to a temporary folder (removed at the
end), never to the user's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from launch_napari import PLUGIN, grab, has_display, settle, wait_for

REPO = Path(__file__).resolve().parents[1]
N_CROPS = 3


def add_crops(viewer) -> list[str]:
    """Synthetic WBC crops with their expert masks, named as the reader would name a Dataset 1 folder."""
    from napari_bloodseg.data import synthetic_wbc
    from napari_bloodseg.plugin.layers import schema_layer_kwargs

    names = []
    for i in range(N_CROPS):
        name = f"{i + 1:03d}"
        image, mask = synthetic_wbc(size=120, seed=3 + i)  # Dataset 1 crop size: the models' magnification
        viewer.add_image(image, name=name, rgb=True)
        viewer.add_labels(mask, **schema_layer_kwargs("wbc", f"{name} mask", role="mask", source=name))
        names.append(name)
    return names


def add_corrected_new_lab(viewer, model: str, n: int = 6) -> list[str]:
    """Crops at twice the models' magnification, each with a prediction layer the user has corrected (here: the
    exact synthetic mask), as the Fine-tune widget finds them."""
    from napari_bloodseg.data import synthetic_wbc
    from napari_bloodseg.plugin.layers import schema_layer_kwargs

    names = []
    for i in range(n):
        name = f"lab2-{i + 1:02d}"
        image, mask = synthetic_wbc(size=240, seed=20 + i)
        viewer.add_image(image, name=name, rgb=True)
        kwargs = schema_layer_kwargs("wbc", f"{name} [{model}]", role="prediction", source=name, model=model)
        kwargs["metadata"]["bloodseg"]["corrected"] = True
        viewer.add_labels(mask, **kwargs)
        names.append(name)
    return names


def show_only(viewer, names: set[str]) -> None:
    for layer in viewer.layers:
        layer.visible = layer.name in names


def _narrow_docks(viewer, docks, width: int = 470) -> None:
    """Give the canvas more of the 1280 px window than napari's default dock width leaves it."""
    from qtpy.QtCore import Qt

    window = viewer.window._qt_window
    window.resizeDocks(list(docks.values()), [width] * len(docks), Qt.Orientation.Horizontal)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="render docs/images/*.png")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    p.add_argument("--finetune-seconds", type=int, default=30, help="time budget of the fine-tuning shot")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bloodseg-screenshots-") as models:  # removed afterwards
        os.environ["BLOODSEG_MODEL_DIR"] = models
        return render(args)


def render(args: argparse.Namespace) -> int:
    """The three shots, with BLOODSEG_MODEL_DIR pointing at a throw-away folder."""
    if not has_display():
        print('screenshots: no display; run under xvfb-run -a -s "-screen 0 1280x1024x24"', file=sys.stderr)
        return 2

    import napari

    viewer = napari.Viewer(title="napari-bloodseg", show=True)
    viewer.window._qt_window.resize(1280, 900)
    names = add_crops(viewer)
    docks, widgets = {}, {}
    for name, tabify in (("Segment", False), ("Evaluate", True), ("Correct", False)):
        docks[name], widgets[name] = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=tabify)
    segment, evaluate, correct = widgets["Segment"], widgets["Evaluate"], widgets["Correct"]

    if segment.run() is None or not wait_for(lambda: not segment.running, timeout=600):
        print("screenshots: segmentation did not finish", file=sys.stderr)
        return 1
    model = segment.model_spec()
    first = f"{names[0]} [{model}]"
    show_only(viewer, {names[0], first})
    viewer.layers.selection.active = viewer.layers[first]
    correct.set_target(viewer.layers[first])
    settle(viewer)
    _narrow_docks(viewer, docks)
    settle(viewer)
    docks["Segment"].raise_()
    written = []
    if grab(viewer, args.out / "segment.png"):
        written.append(args.out / "segment.png")

    evaluate.refresh_layers()
    evaluate.error_check.setChecked(True)
    if evaluate.evaluate() is None or not wait_for(lambda: evaluate.worker is None, timeout=600):
        print("screenshots: evaluation did not finish", file=sys.stderr)
        return 1
    show_only(viewer, {names[0], f"{first} errors"})
    docks["Correct"].hide()  # the whole dock height for tables and chart
    docks["Evaluate"].raise_()
    settle(viewer)
    if grab(viewer, args.out / "evaluate.png"):
        written.append(args.out / "evaluate.png")

    viewer.layers.clear()  # only the new lab's corrected crops are pairs to fine-tune on
    lab2 = add_corrected_new_lab(viewer, model)
    docks["Fine-tune"], finetune = viewer.window.add_plugin_dock_widget(PLUGIN, "Fine-tune", tabify=True)
    finetune.val_spin.setValue(0.34)  # 4 to train on, 2 to score before/after
    finetune.budget_spin.setValue(args.finetune_seconds)
    if finetune.run() is None or not wait_for(lambda: not finetune.running, timeout=900):
        print("screenshots: fine-tuning did not finish", file=sys.stderr)
        return 1
    show_only(viewer, {lab2[0], f"{lab2[0]} [{model}]"})
    docks["Fine-tune"].raise_()
    _narrow_docks(viewer, {"Fine-tune": docks["Fine-tune"]})
    settle(viewer)
    finetune.ensureWidgetVisible(finetune.apply_btn)  # scrolled to the curve, the before/after table and guard
    settle(viewer)
    if grab(viewer, args.out / "finetune.png"):
        written.append(args.out / "finetune.png")
    viewer.close()
    for path in written:
        print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0 if len(written) == 3 else 1


if __name__ == "__main__":
    sys.exit(main())
