"""Fine-tune widget: teach a trained model from corrected segmentations, in a worker thread, with a live loss curve.

The training itself is :func:`napari_bloodseg.training.finetune.finetune` (the same as ``bloodseg finetune``): the
base model is never modified, the result is saved as a new user model only when training completes (Cancel or a
failed guard saves nothing), and pixels labelled 255 ("unlabelled" in the Correct widget) do not count in the loss.

Training data are (image, labels) layer pairs, paired by name like the Evaluate widget (``"001"`` with
``"001 [wbc-unet]"`` or ``"001 mask"``; pairs marked corrected or expert masks are ticked by default), or a folder
of image+mask pairs. After a run the new model appears in every model list (see :mod:`.model_events`), and
"Apply to remaining images" segments the image layers that were not used for training with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..schemas import get_schema
from .background import BackgroundRun
from .devices import DeviceCombo, failure_message
from .finetune_apply import left_out_note, model_kinds, remaining_of_kind
from .finetune_pairs import LayerPair, find_layer_pairs, pair_samples, split_for_finetune
from .layers import meta
from .model_events import gone_message, model_events, notify_models_changed
from .plot import LossCurve
from .scroll import ScrollPanel

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..models import ModelInfo
    from ..training import Sample, TrainConfig
    from ..training.finetune import FinetuneResult

HELP = (
    "Correct a few segmentations (Correct widget), tick them here, Fine-tune: the base model is never changed, the "
    "result is a new model. Pixels painted 'unlabelled' (255) do not count, so a partly corrected image is fine."
)


#: masks read to tell a folder's schema (all must agree)
FOLDER_SCHEMA_PEEK = 3


@dataclass
class _Job:
    base: str
    schema: str
    name: str
    cfg: TrainConfig
    guard: bool
    train: list[Sample] | None = None
    val: list[Sample] | None = None
    folder: str | None = None
    val_fraction: float | None = 0.2
    source: str = "napari layers"


@dataclass
class _Split:
    n_train: int
    n_val: int


@dataclass
class _Failure:
    message: str


#: the share of the progress bar the training loop fills; the checks after it (guard, weight mixing, the last
#: validation) fill the rest
TRAINING_SHARE = 0.9


class _CancelledRun:
    """The worker stopped at Cancel (nothing was saved)."""


class _Signals(QObject):
    """Per-step and per-epoch progress from the training loop (worker thread), queued to the GUI thread."""

    step = Signal(int, int, float)
    epoch = Signal(object)


def _num(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.3f}"


class FinetuneWidget(BackgroundRun, ScrollPanel):
    """Dock widget: corrected layers (or a folder) + trained base model → a new fine-tuned model. Cancel stops at
    the next training step; nothing is saved."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._init_background()
        self._signals = _Signals()  # no Qt parent: a worker may still emit while Qt destroys the widget
        self._signals.step.connect(self._on_step)
        self._signals.epoch.connect(self._on_epoch)
        self._models: list[ModelInfo] = []
        self._pairs: list[LayerPair] = []
        self._ticks: dict[str, bool] = {}
        self._seen_state: dict[str, bool] = {}
        self._auto_name = True
        self._auto_base = True  # follow the model that made the ticked segmentations until the user picks one
        self._used_images: list[str] = []
        self._apply_kinds: set[str] = set()  # the kinds of image the last run's model segments (finetune_apply)
        self._run: dict[str, Any] = {}
        #: the last successful result (for scripts and tests)
        self.last_result: FinetuneResult | None = None
        #: every step's loss of the last run, in order
        self.losses: list[float] = []

        # data
        self.layers_radio = QRadioButton("Layers")
        self.folder_radio = QRadioButton("Folder")
        self.layers_radio.setChecked(True)
        self._source_group = QButtonGroup(self)
        self._source_group.addButton(self.layers_radio)
        self._source_group.addButton(self.folder_radio)
        self.pair_list = QListWidget()
        self.pair_list.setMaximumHeight(110)
        self.pair_list.setToolTip(
            "Image ← segmentation pairs (paired by name); ticked pairs are the training data. Mark a layer "
            "corrected in the Correct widget (Shift+C) once you have fixed it."
        )
        self.pairs_label = QLabel()
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder of image + mask pairs")
        self.folder_btn = QPushButton("Browse …")
        # model
        self.base_combo = QComboBox()
        self.base_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.base_combo.setMinimumContentsLength(18)
        self.base_combo.setToolTip(
            "Trained model to start from (shipped or user); it is never modified. Until you pick one, the model "
            "that made the ticked segmentations is chosen, else the default model of their schema (expert masks, a "
            "folder's masks)"
        )
        self.base_info = QLabel()
        self.base_info.setWordWrap(True)
        self.name_edit = QLineEdit()
        self.name_edit.setToolTip("Name of the new model in the user model folder")
        # settings
        from ..training.finetune_defaults import FINETUNE_DEFAULTS  # not .finetune: that imports torch

        self.val_spin = QDoubleSpinBox()
        self.val_spin.setRange(0.05, 0.9)
        self.val_spin.setSingleStep(0.05)
        self.val_spin.setValue(0.2)
        self.val_spin.setToolTip(
            "Part of the images held out to score the model before and after (the best-scoring epoch is kept)"
        )
        self.all_train_check = QCheckBox("use all for training")
        self.all_train_check.setToolTip(
            "No validation part: no before/after scores, the last state is kept. With ~10 corrected images this "
            "gave the better model (docs/finetuning.md)"
        )
        self.keep_combo = QComboBox()
        self.keep_combo.addItem("best validation epoch", "best")
        self.keep_combo.addItem("last epoch", "last")
        self.keep_combo.setToolTip(
            "Which state to save. With one or two validation images the 'best' epoch is chosen noisily: the last "
            "is then often as good (docs/finetuning.md). Without a validation part the last is saved"
        )
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 10000)
        self.epochs_spin.setValue(FINETUNE_DEFAULTS["epochs"])
        self.budget_spin = QSpinBox()
        self.budget_spin.setRange(0, 24 * 3600)
        self.budget_spin.setValue(int(FINETUNE_DEFAULTS["max_minutes"] * 60))
        self.budget_spin.setSuffix(" s")
        self.budget_spin.setSpecialValueText("no limit")
        self.budget_spin.setToolTip("Time budget of the training loop; the learning rate anneals within it")
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(5)
        self.lr_spin.setRange(1e-5, 0.1)
        self.lr_spin.setSingleStep(1e-4)
        self.lr_spin.setValue(FINETUNE_DEFAULTS["lr"])
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 64)
        self.batch_spin.setValue(FINETUNE_DEFAULTS["batch_size"])
        self.batch_spin.setToolTip("Patches per step; lower it if memory runs out")
        self.device_combo = DeviceCombo()
        self.freeze_check = QCheckBox("Freeze encoder (train the decoder only; for very few images)")
        self.fast_check = QCheckBox("Faster arithmetic (bfloat16; this CPU computes it natively)")
        self.fast_check.setToolTip(
            "bfloat16 forward pass in channels-last layout: ~1.7x more steps in the same time budget on a CPU "
            "with AVX512-BF16 or AMX; weights stay fp32 (docs/finetuning.md). GPUs use mixed precision anyway."
        )
        self.fast_check.setVisible(False)  # until the device probe says training runs on a CPU with native bf16
        self.guard_check = QCheckBox("Protect the base model's own domain (guard)")
        self.guard_check.setChecked(True)
        self.guard_check.setToolTip(
            "When the base model's own images are on this machine, half of every batch comes from its training part "
            "and nothing is saved if its validation Dice drops by more than 0.01"
        )
        # run
        self.run_btn = QPushButton("Fine-tune")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.curve = LossCurve()
        self.status = QLabel("Tick corrected segmentations, pick a base model, Fine-tune")
        self.status.setWordWrap(True)
        self.metrics_table = QTableWidget(0, 4)
        self.metrics_table.setHorizontalHeaderLabels(["Dice", "before", "after", "change"])
        self.metrics_table.verticalHeader().setVisible(False)
        self.metrics_table.setMinimumHeight(60)
        self.metrics_table.setMaximumHeight(60)
        self.guard_label = QLabel()
        self.guard_label.setWordWrap(True)
        self.apply_btn = QPushButton("Apply to remaining images")
        self.apply_btn.setEnabled(False)
        self.apply_btn.setToolTip(
            "Segment the image layers not used for fine-tuning with the new model: those of the kind it segments "
            "(single-cell crops or smear fields); the others are named"
        )
        help_label = QLabel(HELP)
        help_label.setWordWrap(True)

        source_row = QHBoxLayout()
        source_row.addWidget(QLabel("<b>Training data</b>"))
        source_row.addWidget(self.layers_radio)
        source_row.addWidget(self.folder_radio)
        source_row.addStretch(1)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(self.folder_btn)
        self.folder_box = QWidget()
        self.folder_box.setLayout(folder_row)
        folder_row.setContentsMargins(0, 0, 0, 0)
        val_row = QHBoxLayout()
        val_row.addWidget(self.val_spin)
        val_row.addWidget(self.all_train_check)
        form = QFormLayout()
        form.addRow("Base model", self.base_combo)
        form.addRow("", self.base_info)
        form.addRow("New name", self.name_edit)
        form.addRow("Validation", val_row)
        form.addRow("Keep", self.keep_combo)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Time budget", self.budget_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Device", self.device_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_btn)
        buttons.addWidget(self.cancel_btn)
        layout = QVBoxLayout(self.content)
        layout.addLayout(source_row)
        layout.addWidget(self.pair_list)
        layout.addWidget(self.pairs_label)
        layout.addWidget(self.folder_box)
        layout.addLayout(form)
        layout.addWidget(self.freeze_check)
        layout.addWidget(self.fast_check)
        layout.addWidget(self.guard_check)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.curve)
        layout.addWidget(self.status)
        layout.addWidget(self.metrics_table)
        layout.addWidget(self.guard_label)
        layout.addWidget(self.apply_btn)
        layout.addWidget(help_label)
        layout.addStretch(1)

        self.base_combo.currentIndexChanged.connect(self._on_base_changed)
        self.base_combo.activated.connect(self._on_base_picked)
        self.device_combo.probed.connect(self._offer_fast)
        self.device_combo.currentIndexChanged.connect(self._offer_fast)
        self._offer_fast()
        self.refresh_models()
        self.refresh_pairs()
        self._on_source_toggled()
        self.layers_radio.toggled.connect(self._on_source_toggled)
        self.folder_btn.clicked.connect(self._browse_folder)
        self.folder_edit.editingFinished.connect(self._on_folder_typed)
        self.all_train_check.toggled.connect(self._on_all_train)
        self.name_edit.textEdited.connect(self._on_name_edited)
        self.pair_list.itemChanged.connect(self._on_item_changed)
        self.run_btn.clicked.connect(self.run)
        self.cancel_btn.clicked.connect(self.cancel)
        self.apply_btn.clicked.connect(self.apply_to_remaining)
        model_events().changed.connect(self._on_models_changed)
        model_events().renamed.connect(self._on_model_renamed)
        self.viewer.layers.events.inserted.connect(self._on_layers_changed)
        self.viewer.layers.events.removed.connect(self._on_layers_changed)
        self.viewer.layers.events.reordered.connect(self._on_layers_changed)
        for layer in self.viewer.layers:
            self._watch(layer)

    # -- models -------------------------------------------------------------------------------------------------
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

    # -- data ---------------------------------------------------------------------------------------------------
    def _on_source_toggled(self, *_: Any) -> None:
        """Show the chosen source's controls; an automatic base follows that source only (the layers' pairs must
        not move it away from the folder's schema, nor the folder from the pairs')."""
        layers = self.layers_radio.isChecked()
        self.pair_list.setVisible(layers)
        self.pairs_label.setVisible(layers)
        self.folder_box.setVisible(not layers)
        if layers:
            self._follow_pairs_model()
        elif text := self.folder_edit.text().strip():
            self._follow_folder_schema(Path(text))

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of corrected image + mask pairs")
        if folder:
            self.set_folder(folder)

    def set_folder(self, folder: str | Path | None) -> None:
        """Train from a folder of image+mask pairs (None: from layers again)."""
        if folder is None:
            self.layers_radio.setChecked(True)
            return
        self.folder_edit.setText(str(folder))
        if self.folder_radio.isChecked():
            self._follow_folder_schema(Path(folder))
        else:
            self.folder_radio.setChecked(True)  # follows the folder's schema (_on_source_toggled)

    def _on_folder_typed(self) -> None:
        text = self.folder_edit.text().strip()
        if text:
            self._follow_folder_schema(Path(text))

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

    def _watch(self, layer: Any) -> None:
        layer.events.name.connect(self._on_layers_changed)
        layer.events.metadata.connect(self._on_layers_changed)

    def _on_layers_changed(self, event: Any = None) -> None:
        value = getattr(event, "value", None)
        if value is not None and getattr(event, "type", "") == "inserted":
            self._watch(value)
        self.refresh_pairs()

    def refresh_pairs(self) -> None:
        """Re-list pairs; a pair is ticked by default (and again when it becomes corrected) if it is corrected or
        an expert mask; the user's own ticks are kept otherwise."""
        self._pairs = find_layer_pairs(self.viewer)
        self.pair_list.blockSignals(True)
        self.pair_list.clear()
        for pair in self._pairs:
            state = pair.corrected or pair.is_mask
            if pair.key not in self._ticks or self._seen_state.get(pair.key) != state:
                self._ticks[pair.key] = state
            self._seen_state[pair.key] = state
            item = QListWidgetItem(pair.text)
            item.setData(Qt.ItemDataRole.UserRole, pair.key)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if self._ticks[pair.key] else Qt.CheckState.Unchecked)
            self.pair_list.addItem(item)
        self.pair_list.blockSignals(False)
        self._update_pairs_label()
        self._follow_pairs_model()

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        self._ticks[str(item.data(Qt.ItemDataRole.UserRole))] = item.checkState() == Qt.CheckState.Checked
        self._update_pairs_label()
        self._follow_pairs_model()

    def _update_pairs_label(self) -> None:
        if not self._pairs:
            self.pairs_label.setText("no image ↔ segmentation pairs (they pair by name: '001' and '001 [model]')")
            return
        n = len(self.ticked_pairs())
        corrected = sum(p.corrected for p in self._pairs)
        self.pairs_label.setText(f"{n} of {len(self._pairs)} pair(s) ticked; {corrected} marked corrected")

    def ticked_pairs(self) -> list[LayerPair]:
        return [p for p in self._pairs if self._ticks.get(p.key)]

    def select_pairs(self, labels_names: list[str]) -> None:
        """Tick exactly the pairs of these labels layers (scripts, tests)."""
        self.layers_radio.setChecked(True)
        for pair in self._pairs:
            self._ticks[pair.key] = pair.labels.name in labels_names
        self.refresh_pairs()

    # -- running (running, cancel: BackgroundRun) ----------------------------------------------------------------
    @property
    def last_status(self) -> str:
        """``"running"``, ``"done"``, ``"cancelled"``, ``"refused"`` or ``"error"`` for the last run."""
        return str(self._run.get("status", ""))

    def _on_all_train(self, on: bool) -> None:
        self.val_spin.setEnabled(not on)
        self.keep_combo.setEnabled(not on)  # nothing to choose by: the last state is saved

    def _offer_fast(self, *_: Any) -> None:
        """'Faster arithmetic' is offered only where it is faster: training on a CPU that computes bfloat16
        natively (elsewhere it is emulated and slower; on a GPU mixed precision is already the default). Hidden
        until the device probe has looked."""
        probe = self.device_combo.probe
        self.fast_check.setVisible(bool(probe and probe.cpu_bf16(self.device_combo.device())))

    def _config(self) -> TrainConfig:
        from ..training.finetune_defaults import finetune_config

        budget = int(self.budget_spin.value())
        fast = self.fast_check.isChecked() and not self.fast_check.isHidden()  # ticked, then another device chosen
        return finetune_config(
            epochs=int(self.epochs_spin.value()),
            batch_size=int(self.batch_spin.value()),
            lr=float(self.lr_spin.value()),
            freeze="encoder" if self.freeze_check.isChecked() else "none",
            keep="last" if self.all_train_check.isChecked() else str(self.keep_combo.currentData()),
            seed=0,
            device=self.device_combo.device(),
            max_minutes=budget / 60 if budget > 0 else None,
            precision="bf16" if fast else "auto",
            channels_last=fast,
        )

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

    def _refuse(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self._run = {"status": "refused"}
        self.status.setText(f"Not started: {message}")
        show_error(f"Fine-tuning refused: {message}")

    def run(self) -> Any:
        """Check the inputs and start fine-tuning in a worker thread; returns the worker (None when refused)."""
        from napari.utils.notifications import show_warning

        from ..training.finetune_checks import FinetuneError, check_samples

        if self.running:
            show_warning("Fine-tuning is already running; cancel it first")
            return None
        info = self.base_info_of(self.base_name())
        if info is None:
            self._refuse("no trained base model: train one (bloodseg train) or import one in the Models widget")
            return None
        name = self.name_edit.text().strip()
        problem = self._check_name(name)
        if problem:
            self._refuse(problem)
            return None
        val_fraction = None if self.all_train_check.isChecked() else float(self.val_spin.value())
        job = _Job(
            info.name, info.schema, name, self._config(), self.guard_check.isChecked(), val_fraction=val_fraction
        )
        if self.layers_radio.isChecked():
            pairs = self.ticked_pairs()
            if not pairs:
                self._refuse("no pair ticked: tick corrected image ↔ segmentation pairs (or use a folder)")
                return None
            try:
                samples = pair_samples(pairs, info.schema, info.name)
                check_samples(samples, get_schema(info.schema).num_classes)
                job.train, job.val = split_for_finetune(samples, val_fraction)
            except (FinetuneError, ValueError) as exc:
                self._refuse(str(exc))
                return None
            self._used_images = [p.image.name for p in pairs]
            self._apply_kinds = model_kinds(info.schema, [p.image for p in pairs])
            job.source = "napari layers: " + ", ".join(self._used_images)
        else:
            folder = self.folder_edit.text().strip()
            if not folder or not Path(folder).is_dir():
                self._refuse(f"{folder or 'no folder given'}: not a folder of image + mask pairs")
                return None
            job.folder = job.source = folder
            self._used_images = []
            self._apply_kinds = model_kinds(info.schema, [])

        self.losses = []
        self.last_result = None
        self.curve.clear()
        self.metrics_table.setRowCount(0)
        self.guard_label.setText("")
        self.apply_btn.setEnabled(False)
        self._run = {"status": "running", "t0": time.perf_counter(), "step": 0, "budget": job.cfg.max_minutes}
        return self._start_worker(
            self._work,
            job,
            connect={"yielded": self._on_yielded, "errored": self._on_error, "finished": self._on_finished},
            message=f"Fine-tuning {info.name} → {name} …",
        )

    def _work(self, job: _Job):
        """Worker thread: (load and split a folder,) fine-tune, yield the result or a failure."""
        from ..inference import Cancelled
        from ..models import ModelFileError
        from ..training import load_samples
        from ..training.finetune import FinetuneError, finetune

        try:
            if job.folder is not None:
                samples = load_samples(job.folder, job.schema)
                job.train, job.val = split_for_finetune(samples, job.val_fraction)
            assert job.train is not None
            yield _Split(len(job.train), len(job.val or []))
            result = finetune(
                job.base,
                job.train,
                job.val or [],
                name=job.name,
                cfg=job.cfg,
                guard=job.guard,
                data_source=job.source,
                on_step=self._signals.step.emit,
                on_epoch=self._signals.epoch.emit,
                cancel=self._cancel.is_set,
            )
            yield result
        except Cancelled:
            yield _CancelledRun()
        except (FinetuneError, ModelFileError, ValueError, OSError, MemoryError) as exc:
            yield _Failure(failure_message(exc))

    # -- GUI-thread handlers ------------------------------------------------------------------------------------
    def _on_step(self, step: int, total: int, loss: float) -> None:
        self.losses.append(float(loss))
        self.curve.total_steps = total
        self.curve.add_step(step, loss)
        self._run["step"] = step
        now = time.perf_counter()
        start = self._run.setdefault("t_train", now)  # the budget is the training loop's: loading and the first
        fraction = step / max(total, 1)  # scores come before it (8-20 s on RBC fields: the bar jumped to 100 %)
        budget = self._run.get("budget")
        if budget:
            fraction = max(fraction, (now - start) / (budget * 60))
        # training fills the bar to TRAINING_SHARE; the guard's checks and the last scores take the rest
        self.progress.setValue(int(round(1000 * TRAINING_SHARE * min(fraction, 1.0))))
        if step == 1 and not self._cancel.is_set():
            self.status.setText("Training …")
        if step >= total and not self._cancel.is_set():  # a budget-cut run keeps "Training …" to its last step
            self.status.setText("Checking the new model (validation, base-domain guard) …")

    def _on_epoch(self, log: Any) -> None:
        self.curve.add_epoch(int(self._run.get("step", 0)), log.loss)
        text = f"epoch {log.epoch}: loss {log.loss:.4f}"
        if log.score is not None:
            text += f", validation Dice {log.score:.3f}"
        if not self._cancel.is_set():
            self.status.setText(text)

    def _on_yielded(self, item: Any) -> None:
        from napari.utils.notifications import show_error, show_info

        if isinstance(item, _Split):
            self._run["split"] = item
            val = f"{item.n_val} for validation" if item.n_val else "no validation part"
            self.status.setText(
                f"{item.n_train} image(s) to train on, {val}: scoring the base model and loading its own images "
                "for the guard …"
            )
        elif isinstance(item, _CancelledRun):
            self._run["status"] = "cancelled"
        elif isinstance(item, _Failure):
            self._run["status"] = "refused"
            self.status.setText(f"Nothing saved: {item.message}")
            show_error(f"Fine-tuning failed, nothing saved: {item.message}")
        else:
            self._run["status"] = "done"
            self.last_result = item
            self._show_result(item)
            notify_models_changed(item.card.name)
            show_info(f"Fine-tuned model saved as {item.card.name}")

    def _show_result(self, res: FinetuneResult) -> None:
        rows: list[tuple[str, float | None, float | None]] = []
        for prefix, before, after in (("", res.before, res.after), ("base domain: ", res.base_before, res.base_after)):
            if before and after:
                for cls, scores in after["per_class"].items():
                    rows.append((prefix + cls, before["per_class"].get(cls, {}).get("dice"), scores["dice"]))
        self.metrics_table.setRowCount(len(rows))
        for r, (label, before, after) in enumerate(rows):
            change = after - before if before is not None and after is not None else None
            cells = [label, _num(before), _num(after), "–" if change is None else f"{change:+.3f}"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.metrics_table.setItem(r, c, item)
        self.metrics_table.resizeColumnsToContents()
        height = self.metrics_table.horizontalHeader().height() + 4
        height += sum(self.metrics_table.rowHeight(r) for r in range(len(rows)))
        self.metrics_table.setMinimumHeight(min(max(height, 60), 240))
        self.metrics_table.setMaximumHeight(max(min(height, 240), 60))
        n_val = (res.after or {}).get("n_images", 0)
        if res.base_before and res.base_after:
            self.guard_label.setText(
                f"Guard: base-domain validation ({res.base_after.get('n_images', 0)} images) checked: "
                "the base model's own domain did not get worse beyond the limit"
                + (
                    f" once the fine-tuned weights were mixed {res.weight_mix:g} : {1 - res.weight_mix:g} with the "
                    "base (the full fine-tune went beyond it)"
                    if res.weight_mix < 1
                    else ""
                )
            )
        elif res.guard_skipped:  # why, as it is: not on this machine, or the base had no validation part
            self.guard_label.setText(f"Guard: {res.guard_skipped}")
        else:
            self.guard_label.setText("Guard: off")
        scale = float(res.card.training.get("scale", 1.0) or 1.0)
        text = f"Saved {res.card.name} (v{res.card.version}) in {res.seconds:.1f} s"
        text += f"; Dice on {n_val} validation image(s) above" if n_val else "; no validation part: no scores"
        if abs(scale - 1.0) > 1e-6:
            text += f"; images were rescaled ×{scale:.2f} to the base model's cell size"
        for caveat in res.caveats:
            text += f". <span style='color:#e0a040'>Note: {caveat}</span>"
        self.status.setText(text)
        self.apply_btn.setEnabled(True)

    def _on_error(self, exc: BaseException) -> None:
        """Unexpected: napari's worker shows it with its traceback; keep the widget usable."""
        self._run["status"] = "error"
        self.status.setText(f"Failed, nothing saved: {type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        status = self._run.get("status")
        if status == "cancelled" or (status == "running" and self._cancel.is_set()):
            self._run["status"] = "cancelled"
            self.status.setText("Cancelled, nothing saved")
        elif status == "done":
            self.progress.setValue(1000)
            if self._auto_name:
                self._set_default_name()
        self._worker_done()

    # -- after a run --------------------------------------------------------------------------------------------
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
