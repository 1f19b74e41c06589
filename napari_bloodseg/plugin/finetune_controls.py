"""The Fine-tune panel's controls and their layout: training data (layers or a folder), base model and new name,
settings, Fine-tune/Cancel, progress, loss curve, status, the before/after table, the guard line, Apply. What they
do is wired by the widget."""

from __future__ import annotations

from qtpy.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from .devices import DeviceCombo
from .plot import LossCurve

HELP = (
    "Correct a few segmentations (Correct widget), tick them here, Fine-tune: the base model is never changed, the "
    "result is a new model. Pixels painted 'unlabelled' (255) do not count, so a partly corrected image is fine."
)


class FinetuneControls:
    """Mixin for the Fine-tune widget (a :class:`~napari_bloodseg.plugin.scroll.ScrollPanel`): makes the controls,
    laid out on ``self.content``."""

    def _build_controls(self) -> None:
        self._build_source()
        self._build_model()
        self._build_settings()
        self._build_run()
        self._lay_out()

    def _build_source(self) -> None:
        """Layers or Folder, the pair list, the folder field."""
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

    def _build_model(self) -> None:
        """Base model, its classes, the new model's name."""
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

    def _build_settings(self) -> None:
        """Validation part, which epoch to keep, epochs, time budget, learning rate, batch, device, freeze, faster
        arithmetic, guard."""
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
            "with AVX512-BF16 or AMX, used as 170 epochs at learning rate 0.002 (else 100 at 0.001): on Dataset 2 "
            "this gave the better model in the same time (docs/finetuning.md). Weights stay fp32. GPUs use mixed "
            "precision anyway."
        )
        self.fast_check.setVisible(False)  # until the device probe says training runs on a CPU with native bf16
        self.guard_check = QCheckBox("Protect the base model's own domain (guard)")
        self.guard_check.setChecked(True)
        self.guard_check.setToolTip(
            "When the base model's own images are on this machine, half of every batch comes from its training part "
            "and nothing is saved if its validation Dice drops by more than 0.01"
        )

    def _build_run(self) -> None:
        """Fine-tune/Cancel, progress, loss curve, status, the before/after table, the guard line, Apply."""
        self._build_run_controls("Fine-tune", "Tick corrected segmentations, pick a base model, Fine-tune")
        self.curve = LossCurve()
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

    def _lay_out(self) -> None:
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
        layout = QVBoxLayout(self.content)
        layout.addLayout(source_row)
        layout.addWidget(self.pair_list)
        layout.addWidget(self.pairs_label)
        layout.addWidget(self.folder_box)
        layout.addLayout(form)
        layout.addWidget(self.freeze_check)
        layout.addWidget(self.fast_check)
        layout.addWidget(self.guard_check)
        layout.addLayout(self._run_buttons())
        layout.addWidget(self.progress)
        layout.addWidget(self.curve)
        layout.addWidget(self.status)
        layout.addWidget(self.metrics_table)
        layout.addWidget(self.guard_label)
        layout.addWidget(self.apply_btn)
        layout.addWidget(help_label)
        layout.addStretch(1)
