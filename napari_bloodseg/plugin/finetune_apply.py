"""Which open images "Apply to remaining images" gives a fine-tuned model, and what it says about the others.

A model segments the kind of image it learnt from: a WBC model run on a smear field (or an RBC one on a single-cell
crop) gives a layer of nonsense. So only the images not used for training that are of its kind are segmented,
and the others are named with why (GUI audit L2: a WBC fine-tune was applied to an open RBC field without a word).
The rule is plain functions (no widget needed to test it); :class:`ApplyToRemaining` is the widget's side.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .layers import meta
from .model_choices import image_kind

if TYPE_CHECKING:  # pragma: no cover
    from napari.layers import Image, Layer

#: how an image of each kind (:func:`~napari_bloodseg.models.zoo.schema_for_image`) is called: one, several
KIND_NAMES = {"wbc": ("a single-cell crop", "single-cell crops"), "rbc": ("a smear field", "smear fields")}


def model_kinds(schema: str, trained_on: Iterable[Image]) -> set[str]:
    """The kinds of image a fine-tuned model segments: its schema's, and those of the images it was trained on
    (an RBC model taught on small field crops, a WBC one on big crops, is for such images too)."""
    return {schema} | {kind for image in trained_on if (kind := image_kind([image])) is not None}


def remaining_of_kind(layers: Iterable[Layer], used: Iterable[str], kinds: set[str]) -> tuple[list[str], list[str]]:
    """(image layers to segment, image layers left out for their kind), by name: those not in ``used`` and no
    uncertainty map, in layer order."""
    from napari.layers import Image

    skip = set(used)
    fit: list[str] = []
    left_out: list[str] = []
    for layer in layers:
        if isinstance(layer, Image) and meta(layer).get("role") != "uncertainty" and layer.name not in skip:
            (fit if image_kind([layer]) in kinds else left_out).append(layer.name)
    return fit, left_out


def left_out_note(model: str, kinds: set[str], left_out: list[str]) -> str:
    """Why ``left_out`` are not segmented: ``"wbc-ft1 segments single-cell crops: left out field (a smear field)"``."""
    what = " and ".join(KIND_NAMES[k][1] for k in sorted(kinds, reverse=True))
    other = {"wbc", "rbc"} - kinds
    kind = KIND_NAMES[other.pop()][0 if len(left_out) == 1 else 1] if len(other) == 1 else "another kind"
    return f"{model} segments {what}: left out {', '.join(left_out)} ({kind})"


class ApplyToRemaining:
    """Mixin for the Fine-tune widget: "Apply to remaining images" through the Segment widget, with the images the
    last run used (``_used_images``) and the kinds its model segments (``_apply_kinds``)."""

    def segment_widget(self, create: bool = True) -> Any:
        """The Segment widget docked in this viewer (docked now when ``create`` and there is none)."""
        from .segment_widget import SegmentWidget

        window = getattr(self.viewer, "window", None)
        try:
            docked = list(window.dock_widgets.values()) if window is not None else []
        except (AttributeError, RuntimeError):
            docked = []
        for widget in docked:
            if isinstance(widget, SegmentWidget):
                return widget
        if create and window is not None:
            _, widget = window.add_plugin_dock_widget("napari-bloodseg", "Segment")
            return widget
        return None

    def remaining_images(self) -> list[str]:
        """Image layers not used for the last fine-tuning (all of them when it came from a folder) that are of the
        kind its model segments (:mod:`.finetune_apply`)."""
        return self._remaining()[0]

    def _remaining(self) -> tuple[list[str], list[str], set[str]]:
        """(images to segment, images left out for their kind, the kinds the last run's model segments)."""
        kinds = set(self._apply_kinds)
        if self.last_result is not None:
            kinds.add(self.last_result.card.schema)
        fit, left_out = remaining_of_kind(self.viewer.layers, self._used_images, kinds or {"wbc", "rbc"})
        return fit, left_out, kinds

    def apply_to_remaining(self) -> Any:
        """Segment the remaining image layers of the new model's kind with it (the Segment widget's run), naming
        those left out for their kind; returns the Segment widget's worker."""
        from napari.utils.notifications import show_info, show_warning

        if self.last_result is None:
            show_warning("Fine-tune a model first")
            return None
        model = self.last_result.card.name
        names, left_out, kinds = self._remaining()
        note = left_out_note(model, kinds, left_out) if left_out else ""
        if not names:
            show_info(
                f"No remaining image to apply {model} to; {note}"
                if note
                else "No remaining image layers: every image was used for fine-tuning"
            )
            return None
        seg = self.segment_widget()
        if seg is None:
            show_warning("Open the Segment widget to apply the new model")
            return None
        if note:
            show_info(note)
        seg.refresh_models()
        seg.set_model(model)
        seg.select_images(names)
        return seg.run()
