"""Models widget: list installed models; rename, delete, export and import user models.

The operations are :mod:`napari_bloodseg.models.manage` (as ``bloodseg models rename|delete|export|import``).
Shipped models are read-only (they can be exported, and a copy imported); refusals come back as notifications.
Every change is announced on :mod:`.model_events`, so the Segment and Fine-tune widgets re-list their models.
Files in the user folder that are no usable model (a broken card, weights without their card) are named under the
list, and *Delete unusable* removes them (:mod:`.models_unusable`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .model_events import model_events, notify_model_renamed, notify_models_changed
from .models_unusable import UnusableFile, not_listed

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..models import ModelInfo

COLUMNS = ("name", "schema", "architecture", "source", "version")
#: what may go wrong in a model operation: shown to the user as a notification, never as a traceback
_EXPECTED = (ValueError, OSError)  # ModelFileError is a ValueError; FileExistsError an OSError


class ModelsWidget(QWidget):
    """Dock widget: a table of models and Rename / Delete / Export / Import buttons."""

    def __init__(self, napari_viewer: napari.Viewer | None = None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._models: list[ModelInfo] = []
        self._unusable: list[UnusableFile] = []

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setMinimumHeight(120)
        self.folder_label = QLabel()
        self.folder_label.setWordWrap(True)
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.rename_btn = QPushButton("Rename …")
        self.delete_btn = QPushButton("Delete …")
        self.export_btn = QPushButton("Export …")
        self.import_btn = QPushButton("Import …")
        self.refresh_btn = QPushButton("Refresh")
        self.clean_btn = QPushButton("Delete unusable …")
        self.status = QLabel()
        self.status.setWordWrap(True)

        row1 = QHBoxLayout()
        for btn in (self.rename_btn, self.delete_btn, self.export_btn):
            row1.addWidget(btn)
        row2 = QHBoxLayout()
        row2.addWidget(self.import_btn)
        row2.addWidget(self.refresh_btn)
        row2.addWidget(self.clean_btn)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>Models</b> (shipped ones are read-only)"))
        layout.addWidget(self.table, 1)
        layout.addWidget(self.folder_label)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addWidget(self.status)

        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.rename_btn.clicked.connect(self._rename_clicked)
        self.delete_btn.clicked.connect(self._delete_clicked)
        self.export_btn.clicked.connect(self._export_clicked)
        self.import_btn.clicked.connect(self._import_clicked)
        self.refresh_btn.clicked.connect(self.refresh)
        self.clean_btn.clicked.connect(self._clean_clicked)
        model_events().changed.connect(self._on_models_changed)
        self.refresh()

    # -- listing ------------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-scan shipped and user models, keeping the selected one when it still exists."""
        from ..models import list_models, user_model_dir

        current = self.selected_name()
        try:
            self._models = list_models()
            skipped, self._unusable = not_listed(m.name for m in self._models if m.source == "user")
        except Exception as exc:  # noqa: BLE001 - a broken model folder must not break the widget
            self._models, self._unusable = [], []
            self.status.setText(f"Could not list models: {exc}")
        else:
            if skipped:  # a damaged model must not vanish from the list without a word
                self.status.setText("Not listed: " + "; ".join(skipped))
            elif self.status.text().startswith("Not listed: "):  # mended or removed by hand since
                self.status.setText("")
        self.table.setRowCount(len(self._models))
        for r, info in enumerate(self._models):
            for c, key in enumerate(COLUMNS):
                item = QTableWidgetItem(str(getattr(info, key)))
                item.setToolTip(str(info.path) if info.path else "")
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self.folder_label.setText(f"User models: {user_model_dir()}")
        names = self.names()
        if current in names:
            self.select(current)
        self._update_buttons()

    def _on_models_changed(self, *_: Any) -> None:
        self.refresh()

    def names(self) -> list[str]:
        return [m.name for m in self._models]

    def info(self, name: str | None) -> ModelInfo | None:
        return next((m for m in self._models if m.name == name), None)

    def selected_name(self) -> str | None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        if len(rows) != 1:
            return None
        r = rows.pop()
        return self._models[r].name if 0 <= r < len(self._models) else None

    def select(self, name: str) -> None:
        """Select a model's row by name (scripts, tests)."""
        self.table.clearSelection()
        if name in self.names():
            self.table.selectRow(self.names().index(name))
        self._update_buttons()

    def _update_buttons(self) -> None:
        info = self.info(self.selected_name())
        user = info is not None and info.source == "user"
        self.rename_btn.setEnabled(user)
        self.delete_btn.setEnabled(user)
        self.export_btn.setEnabled(info is not None)
        tip = "" if user or info is None else "shipped models are read-only: export one and import a copy to change it"
        self.rename_btn.setToolTip(tip)
        self.delete_btn.setToolTip(tip)
        deletable = self.unusable_files()
        self.clean_btn.setEnabled(bool(deletable))
        self.clean_btn.setToolTip(
            "Delete the files of the user model folder that are no usable model: "
            + ", ".join(u.path.name for u in deletable)
            if deletable
            else "No unusable files in the user model folder"
        )

    def unusable_files(self) -> list[UnusableFile]:
        """The files of the user model folder named under "Not listed" that *Delete unusable* removes."""
        return [u for u in self._unusable if u.deletable]

    # -- operations (no dialogs: scripts and tests call these) ---------------------------------------------------
    def _done(self, message: str, changed: str = "") -> None:
        from napari.utils.notifications import show_info

        self.status.setText(message)
        show_info(message)
        notify_models_changed(changed)  # refreshes this table too

    def _failed(self, what: str, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        self.status.setText(f"{what} failed: {exc}")
        show_error(f"{what} failed: {exc}")

    def rename(self, old: str, new: str) -> Path | None:
        from ..models.manage import rename_model

        new = new.strip()
        try:
            path = rename_model(old, new)
        except _EXPECTED as exc:
            self._failed(f"Renaming {old}", exc)
            return None
        from napari.utils.notifications import show_info

        message = f"Renamed {old} to {new}"
        self.status.setText(message)
        show_info(message)
        notify_model_renamed(old, new)  # widgets showing the old name follow; refreshes this table too
        self.select(new)
        return path

    def delete(self, name: str) -> bool:
        from ..models.manage import delete_model

        try:
            delete_model(name)
        except _EXPECTED as exc:
            self._failed(f"Deleting {name}", exc)
            return False
        self._done(f"Deleted {name}", name)
        return True

    def delete_unusable(self) -> list[str]:
        """Delete the files :meth:`unusable_files` names (by name, as ``bloodseg models delete``) that are still
        unusable now; returns the names deleted. The folder is checked again first: a card put back since the list
        was made makes a usable model, which deleting by name would remove whole (audit22 M2)."""
        from ..models import list_models
        from ..models.manage import delete_model

        planned = self.unusable_files()
        try:
            listed = [m.name for m in list_models() if m.source == "user"]
            now = {u.path: u for u in not_listed(listed)[1] if u.deletable}
        except Exception as exc:  # noqa: BLE001 - unsure what is unusable now: delete nothing
            self._failed("Checking the user model folder", exc)
            return []
        usable = {name.casefold() for name in listed}
        deleted: list[str] = []
        failed: list[str] = []
        kept: list[str] = []
        for unusable in planned:
            current = now.get(unusable.path)
            if current is None:  # mended (a usable model now) or changed since listed: not what was confirmed
                how = "now a usable model" if unusable.name.casefold() in usable else "changed since listed"
                kept.append(f"{unusable.path.name} ({how})")
                continue
            try:
                delete_model(current.name)
            except _EXPECTED as exc:
                self._failed(f"Deleting {unusable.path.name}", exc)
                failed.append(self.status.text())
                continue
            deleted.append(current.name)
        parts = [f"Deleted unusable files: {', '.join(deleted)}"] if deleted else []
        if kept:
            parts.append("left alone: " + ", ".join(kept))
        if parts:
            message = "; ".join(parts)
            self._done(message[0].upper() + message[1:], deleted[-1] if deleted else "")
            if failed:
                self.status.setText("; ".join([self.status.text(), *failed]))
        return deleted

    def export(self, name: str, folder: str | Path) -> Path | None:
        from ..models.manage import export_model

        try:
            path = export_model(name, folder)
        except _EXPECTED as exc:
            self._failed(f"Exporting {name}", exc)
            return None
        self.status.setText(f"Exported {name} to {path.parent}")
        from napari.utils.notifications import show_info

        show_info(f"Exported {name} to {path.parent}")
        return path

    def name_problem(self, name: str) -> str | None:
        """Why a model imported now could not be called ``name`` (unusable, a shipped model's, taken), or None."""
        from ..models import user_model_dir
        from ..models.manage import check_model_name, name_clash, taken_message

        try:
            check_model_name(name)
        except ValueError as exc:
            return str(exc)
        clash = name_clash(user_model_dir(), name)
        return None if clash is None else taken_message(user_model_dir(), name, clash)

    def free_name(self, name: str) -> str:
        """A name to suggest instead of ``name``: ``<name>-copy``, ``<name>-copy-2``, ... whichever is free."""
        from ..models.manage import MAX_NAME_LENGTH

        base = re.sub(r"[^A-Za-z0-9._+-]+", "-", name).lstrip("._+-")[: MAX_NAME_LENGTH - 10] or "model"
        candidate, n = f"{base}-copy", 2
        while self.name_problem(candidate) is not None and n < 1000:
            candidate, n = f"{base}-copy-{n}", n + 1
        return candidate

    def import_(self, path: str | Path, name: str | None = None) -> Path | None:
        from ..models.manage import import_model

        try:
            target = import_model(path, name)
        except _EXPECTED as exc:
            self._failed(f"Importing {Path(path).name}", exc)
            return None
        self._done(f"Imported {target.name}", target.name)
        self.select(target.name)
        return target

    # -- buttons (dialogs) --------------------------------------------------------------------------------------
    def ask_name(self, message: str, suggestion: str) -> str | None:
        """The name typed in a dialog prefilled with ``suggestion``; None when cancelled (tests replace this)."""
        text, ok = QInputDialog.getText(self, "Import model", message, text=suggestion)
        return text.strip() if ok else None

    def import_file(self, path: str | Path) -> Path | None:
        """Import ``path`` as the Import button does: under the file's own name, or, when that name cannot be
        taken (a copy of a shipped model, a model imported before), under a name asked for, until a free one is
        given or the dialog cancelled."""
        from ..models.files import load_model, model_paths

        name = Path(model_paths(path)[1]).stem
        problem = self.name_problem(name)
        if problem is None:
            return self.import_(path)
        try:  # a broken file is said first: no name is asked for a model that cannot be imported anyway
            if not any(p.is_file() for p in model_paths(path)):
                raise ValueError(path)
            load_model(path)
        except _EXPECTED:
            return self.import_(path)
        suggestion = self.free_name(name)
        while problem is not None:
            answer = self.ask_name(f"{problem}.\nImport {Path(path).name} as:", suggestion)
            if answer is None:
                self.status.setText(f"Import of {Path(path).name} cancelled")
                return None
            name = suggestion = answer
            problem = self.name_problem(name)
        return self.import_(path, name)

    def _rename_clicked(self) -> None:
        old = self.selected_name()
        if old is None:
            return
        new, ok = QInputDialog.getText(self, "Rename model", f"New name for {old}:", text=old)
        if ok and new.strip() and new.strip() != old:
            self.rename(old, new)

    def _delete_clicked(self) -> None:
        name = self.selected_name()
        if name is None:
            return
        answer = QMessageBox.question(
            self,
            "Delete model",
            f"Delete the user model {name}? Its files are removed.",
            QMessageBox.Yes | QMessageBox.No,
        )
        if answer == QMessageBox.Yes:
            self.delete(name)

    def _clean_clicked(self) -> None:
        self.refresh()  # the question names what is unusable now, not when the list was last made
        files = self.unusable_files()
        if not files:
            self.status.setText("No unusable files left in the user model folder")
            return
        answer = QMessageBox.question(
            self,
            "Delete unusable files",
            "Delete these files from the user model folder? They are no usable model:\n"
            + "\n".join(f"{u.path.name}: {u.reason}" for u in files),
            QMessageBox.Yes | QMessageBox.No,
        )
        if answer == QMessageBox.Yes:
            self.delete_unusable()

    def _export_clicked(self) -> None:
        name = self.selected_name()
        if name is None:
            return
        folder = QFileDialog.getExistingDirectory(self, f"Export {name} to folder")
        if folder:
            self.export(name, folder)

    def _import_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import a model file", "", "bloodseg models (*.safetensors *.json);;All files (*)"
        )
        if path:
            self.import_file(path)
