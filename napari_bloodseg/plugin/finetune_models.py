"""The Fine-tune widget's base model and new name: the trained models listed, the base that follows the training
data until the user picks one, the default name ``<base>-ftN`` and its checks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..schemas import get_schema
from .layers import meta
from .model_events import gone_message

if TYPE_CHECKING:  # pragma: no cover
    from ..models import ModelInfo

#: masks read to tell a folder's schema (all must agree)
FOLDER_SCHEMA_PEEK = 3


class FinetuneModels:
    """Mixin for the Fine-tune widget: ``_models`` (the trained models listed), ``_auto_base`` (follow the training
    data until the user picks a base) and ``_auto_name`` (the name follows the base until the user types one)."""

    def refresh_models(self, keep: str | None = None) -> None:
        """Re-list trained models (shipped + user), keeping the current choice (or ``keep``) when it still exists,
        and saying so when the chosen base went away."""
        from ..models import list_models
        from ..models.zoo import default_index

        current = keep or self.base_name()
        try:
            self._models = list_models()
        except Exception:  # noqa: BLE001 - a broken model folder must not break the widget
            self._models = []
        self.base_combo.blockSignals(True)
        self.base_combo.clear()
        for info in self._models:
            self.base_combo.addItem(
                f"{info.name}  ({info.schema}, {info.architecture}, v{info.version}, {info.source})", info.name
            )
        self.base_combo.blockSignals(False)
        names = [m.name for m in self._models]
        if current in names:
            self.base_combo.setCurrentIndex(names.index(current))
        else:
            if (pick := default_index([(m.name, m.schema) for m in self._models])) is not None:
                self.base_combo.setCurrentIndex(pick)
            if current is not None and not self.running:
                self.status.setText(gone_message(current, self.base_name()))
        self._on_base_changed()

    def _on_models_changed(self, *_: Any) -> None:
        self.refresh_models()

    def _on_model_renamed(self, old: str, new: str) -> None:
        if self.base_name() == old:
            self.refresh_models(keep=new)

    def base_name(self) -> str | None:
        data = self.base_combo.currentData() if self.base_combo.count() else None
        return str(data) if data is not None else None

    def base_info_of(self, name: str | None) -> ModelInfo | None:
        return next((m for m in self._models if m.name == name), None)

    def set_base(self, name: str) -> None:
        """Choose the base model by name (scripts, tests)."""
        idx = self.base_combo.findData(name)
        if idx < 0:
            self.refresh_models()
            idx = self.base_combo.findData(name)
        if idx < 0:
            raise ValueError(f"{name} is not a trained model")
        self._auto_base = False
        self.base_combo.setCurrentIndex(idx)

    def _on_base_picked(self, *_: Any) -> None:
        self._auto_base = False

    def _follow_pairs_model(self) -> None:
        """Until the user picks a base, use the model that produced the ticked segmentations (if installed), else
        the default model of the schema they are in: expert masks record no model, and RBC masks used to leave the
        base on wbc-unet, to be refused at Fine-tune (as the folder source does, :meth:`_follow_folder_schema`)."""
        if not self._auto_base or not self.layers_radio.isChecked():
            return
        ticked = self.ticked_pairs()
        for pair in ticked:
            model = meta(pair.labels).get("model")
            idx = self.base_combo.findData(model) if model else -1
            if idx >= 0:
                if idx != self.base_combo.currentIndex():
                    self.base_combo.setCurrentIndex(idx)
                return
        schemas = {meta(pair.labels).get("schema") for pair in ticked}
        if len(schemas) == 1 and (schema := schemas.pop()):
            self._follow_schema(str(schema))

    def _follow_folder_schema(self, folder: Path) -> None:
        """Until the user picks a base, start on the default model of the schema the folder's masks are in (a
        folder of RBC fields used to stay on wbc-unet and be refused at Fine-tune)."""
        from ..io import find_pairs, read_mask

        if not self._auto_base or not self.folder_radio.isChecked():
            return
        try:
            masks = [m for _, m in find_pairs(folder) if m is not None][:FOLDER_SCHEMA_PEEK]
            schemas = {read_mask(m)[1].name for m in masks}
        except Exception:  # noqa: BLE001 - an unreadable folder is reported when Fine-tune reads it
            return
        if len(schemas) == 1:
            self._follow_schema(schemas.pop())

    def _follow_schema(self, schema: str) -> None:
        """Start on ``schema``'s default model (:func:`~napari_bloodseg.models.zoo.default_index`), if one of that
        schema is installed."""
        from ..models.zoo import default_index

        pick = default_index([(m.name, m.schema) for m in self._models], schema)
        if pick is not None and self._models[pick].schema == schema and pick != self.base_combo.currentIndex():
            self.base_combo.setCurrentIndex(pick)

    def _on_base_changed(self, *_: Any) -> None:
        info = self.base_info_of(self.base_name())
        if info is None:
            self.base_info.setText(
                "<span style='color:#e0a040'>no trained model installed: train one (bloodseg train) or import "
                "one in the Models widget</span>"
            )
        else:
            names = ", ".join(get_schema(info.schema).class_names)
            self.base_info.setText(f"<b>{info.schema}</b> classes: {names}")
        if self._auto_name:
            self._set_default_name()

    def _set_default_name(self) -> None:
        from ..models.manage import next_free_name

        name = self.base_name()
        self.name_edit.setText(next_free_name(name) if name else "")
        self._auto_name = True

    def _on_name_edited(self, text: str) -> None:
        self._auto_name = not text.strip()

    def _check_name(self, name: str) -> str | None:
        from ..models import ModelFileError, user_model_dir
        from ..models.manage import check_model_name, name_clash, taken_message

        try:
            check_model_name(name)  # shipped models' and architectures' names, in any case, are refused here
        except ModelFileError as exc:
            return str(exc)
        if (clash := name_clash(folder := user_model_dir(), name)) is not None:
            return taken_message(folder, name, clash)
        return None
