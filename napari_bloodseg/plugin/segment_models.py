"""The Segment widget's Model row: the models listed, the one chosen, and following the model list as it changes.

A model renamed in the Models widget stays chosen under its new name (during a run too: the run's results land
under the new name); a deleted one is named in a warning notification with the model chosen now. Until the user
picks a model, the choice follows the kind of image open (smear fields: RBC, single-cell crops: WBC).
"""

from __future__ import annotations

from typing import Any

from .model_choices import ModelChoice, default_choice, image_kind, model_choices
from .model_events import gone_message


def _still_there(spec: str) -> bool:
    """Whether a model chosen by its file path can still be found."""
    from ..models import ModelFileError, find_model

    try:
        find_model(spec)
    except (ModelFileError, OSError, ValueError):
        return False
    return True


class SegmentModels:
    """Mixin for the Segment widget: owns ``_choices`` (what ``model_combo`` lists), ``_model_picked`` and
    ``_renamed`` (models renamed during the current run, old name -> new)."""

    def refresh_models(self, keep: str | None = None) -> None:
        """Re-list models, keeping the current choice (or ``keep``) when it still exists, and saying so when the
        chosen model went away rather than switching to another model without a word."""
        current = keep or (self.model_spec() if self._choices else None)
        earlier, self._choices = self._choices, model_choices()
        listed = {c.spec for c in self._choices}
        # a model file chosen by its path (set_model) is not an installed model: it stays while the file is there
        self._choices += [c for c in earlier if c.source == "file" and c.spec not in listed and _still_there(c.spec)]
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for choice in self._choices:
            self.model_combo.addItem(choice.label, choice.spec)
        self.model_combo.blockSignals(False)
        specs = [c.spec for c in self._choices]
        if current in specs:
            self.model_combo.setCurrentIndex(specs.index(current))
        elif current is None:
            self.model_combo.setCurrentIndex(default_choice(self._choices))
        else:
            self.model_combo.setCurrentIndex(default_choice(self._choices, image_kind(self.selected_images()) or "wbc"))
            self._say_model_gone(current)
        self._show_model_info()

    def _say_model_gone(self, gone: str) -> None:
        """The chosen model was deleted (or renamed by another program): a notification names it and the model
        chosen now, so the next Segment does not quietly run another model; during a run it is also added to the
        status line the run ends with (the run goes on with the weights it loaded)."""
        from napari.utils.notifications import show_warning

        message = gone_message(gone, self.model_spec() if self._choices else None)
        show_warning(message)
        if self.running:
            self._run_stats.setdefault("notes", []).append(message)
        else:
            self.status.setText(message)

    def _on_models_changed(self, *_: Any) -> None:
        self.refresh_models()

    def _on_model_renamed(self, old: str, new: str) -> None:
        if self.running:  # results still to come from ``old`` land under its new name
            self._renamed = {k: new if v == old else v for k, v in self._renamed.items()} | {old: new}
        if self._choices and self.model_spec() == old:
            self.refresh_models(keep=new)

    def _on_model_picked(self, *_: Any) -> None:
        self._model_picked = True

    def suggest_model(self, *_: Any) -> None:
        """Until the user picks a model, follow the images open: smear fields get the RBC default
        (``rbc-deconvnet``), single-cell crops the WBC one, and the status line says why."""
        if self._model_picked or self.running or not self._choices:
            return
        kind = image_kind(self.selected_images())
        if kind is None:
            return
        idx = default_choice(self._choices, kind)
        if idx == self.model_combo.currentIndex() or self._choices[idx].schema != kind:
            return
        self.model_combo.setCurrentIndex(idx)
        what = "smear fields" if kind == "rbc" else "single-cell crops"
        self.status.setText(
            f"Model set to {self._choices[idx].spec} for {what}; choose another above to keep your own choice"
        )

    def _show_model_info(self, *_: Any) -> None:
        from ..schemas import get_schema

        choice = self.current_choice()
        if choice is None:
            self.model_info.setText("")
            return
        names = ", ".join(get_schema(choice.schema).class_names)
        text = f"schema <b>{choice.schema}</b> ({names}); {choice.architecture}, version {choice.version}"
        if choice.source == "untrained":
            text += "<br><span style='color:#e0a040'>untrained: random weights, output is meaningless</span>"
        self.model_info.setText(text)

    def current_choice(self) -> ModelChoice | None:
        i = self.model_combo.currentIndex()
        return self._choices[i] if 0 <= i < len(self._choices) else None

    def model_spec(self) -> str:
        return str(self.model_combo.currentData())

    def set_model(self, spec: str) -> None:
        """Choose a model by spec (name, path or architecture); a path not yet listed is added."""
        idx = self.model_combo.findData(spec)
        if idx < 0:
            from ..models import find_model

            info = find_model(spec)
            choice = ModelChoice(spec, info.schema, info.architecture, info.source, str(info.version))
            self._choices.append(choice)
            self.model_combo.addItem(choice.label, spec)
            idx = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(idx)
        self._model_picked = True

    def set_device(self, name: str) -> None:
        self.device_combo.set_device(name)
