"""Where a finished image's result lands (GUI thread): the ``"<image> [<model>]"`` Labels layer, in the schema's
colours with class names, and its uncertainty layer.

Running again updates that layer, unless "new layer" is ticked or a person has painted on it or marked it
corrected: hand edits are never overwritten, the result goes to an untouched earlier result of that image and
model, or to a new layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .layers import META_KEY, find_layer, meta, schema_layer_kwargs
from .segment_work import SegmentResult

if TYPE_CHECKING:  # pragma: no cover
    from napari.layers import Labels


class ResultCommitting:
    """Mixin for the Segment widget: puts results in ``viewer``, as ``new_layer_check`` says; a label file a
    result no longer needs goes back to ``_label_files``."""

    def _commit(self, res: SegmentResult) -> Labels:
        """Add or update ``"<image> [<model>]"`` (and its uncertainty layer) from one finished image."""

        from .editing import bind_class_keys, watch_edits

        name = f"{res.image_name} [{res.model}]"
        kwargs = schema_layer_kwargs(res.schema, name, role="prediction", source=res.image_name, model=res.model)
        kwargs["metadata"][META_KEY].update(device=res.device, seconds=round(res.seconds, 3))
        if res.labels_file:
            kwargs["metadata"][META_KEY]["labels_file"] = res.labels_file
        if res.image_file:
            kwargs["metadata"][META_KEY]["image_path"] = res.image_file
        existing = None if self.new_layer_check.isChecked() else self._layer_to_update(name, res)
        layer: Labels
        if existing is not None:
            layer = existing
            layer.data = res.labels
            # placed where the image is now: a re-run after the image layer was moved or rescaled kept the old place
            layer.scale, layer.translate = res.scale, res.translate
            layer.colormap = kwargs["colormap"]
            layer.features = kwargs["features"]
            old_file = meta(layer).pop("labels_file", None)
            meta(layer).update(kwargs["metadata"][META_KEY])
            if old_file != res.labels_file:
                self._label_files.remove(old_file)
            layer.events.metadata()
        else:
            layer = self.viewer.add_labels(res.labels, scale=res.scale, translate=res.translate, **kwargs)
            bind_class_keys(layer)
        watch_edits(layer)  # these labels are the network's: later painting marks them edited
        if res.uncertainty is not None:
            self._commit_uncertainty(res, layer.name)
        elif existing is not None:  # an earlier run's uncertainty would no longer describe these labels
            stale = find_layer(self.viewer, f"{layer.name} uncertainty")
            if stale is not None and meta(stale).get("role") == "uncertainty":
                self.viewer.layers.remove(stale)
        return layer

    def _layer_to_update(self, name: str, res: SegmentResult) -> Labels | None:
        """The layer a re-run replaces: ``name`` unless a person changed it (marked it corrected, or painted on
        it, perhaps while this run went on), else an earlier result of the same image and model that nobody
        changed; None (said, with why) when the result must go to a new layer so nothing of theirs is lost."""
        from napari.layers import Labels
        from napari.utils.notifications import show_info

        from .editing import is_corrected, is_edited, stroke_in_progress

        first = find_layer(self.viewer, name)
        if not isinstance(first, Labels):
            return None

        def untouched(layer: Labels) -> bool:
            return not is_corrected(layer) and not is_edited(layer)

        if untouched(first):
            return first
        for layer in reversed(list(self.viewer.layers)):
            info = meta(layer)
            key = (info.get("role"), info.get("source"), info.get("model"))
            same = key == ("prediction", res.image_name, res.model)
            if isinstance(layer, Labels) and layer is not first and same and untouched(layer):
                return layer
        why = (
            "is marked corrected"
            if is_corrected(first)
            else "is being painted on"
            if stroke_in_progress(first)
            else "has hand edits"
        )
        show_info(f"{name} {why}: the new result goes to a new layer instead, so they are kept")
        return None

    def _commit_uncertainty(self, res: SegmentResult, labels_name: str) -> None:
        from napari.layers import Image

        name = f"{labels_name} uncertainty"
        existing = find_layer(self.viewer, name)
        if isinstance(existing, Image) and not self.new_layer_check.isChecked():
            existing.data = res.uncertainty
            existing.scale, existing.translate = res.scale, res.translate
            return
        self.viewer.add_image(
            res.uncertainty,
            name=name,
            colormap="magma",
            contrast_limits=(0.0, 1.0),
            blending="additive",
            opacity=0.7,
            visible=False,
            scale=res.scale,
            translate=res.translate,
            metadata={META_KEY: {"role": "uncertainty", "source": res.image_name, "model": res.model}},
        )
