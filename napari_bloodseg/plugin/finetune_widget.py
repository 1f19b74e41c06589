"""Fine-tune widget: teach a trained model from corrected segmentations, in a worker thread, with a live loss curve.

The training itself is :func:`napari_bloodseg.training.finetune.finetune` (the same as ``bloodseg finetune``): the
base model is never modified, the result is saved as a new user model only when training completes (Cancel or a
failed guard saves nothing), and pixels labelled 255 ("unlabelled" in the Correct widget) do not count in the loss.

Training data are (image, labels) layer pairs, paired by name like the Evaluate widget (``"001"`` with
``"001 [wbc-unet]"`` or ``"001 mask"``; pairs marked corrected or expert masks are ticked by default), or a folder
of image+mask pairs. After a run the new model appears in every model list (see :mod:`.model_events`), and
"Apply to remaining images" segments the image layers of its kind that were not used for training with it.

The parts, each a mixin: :mod:`.finetune_controls` (the controls), :mod:`.finetune_source` (layers or folder),
:mod:`.finetune_models` (base model and new name), :mod:`.finetune_run` with :mod:`.finetune_work` (the run),
:mod:`.finetune_result` (the scores shown after it) and :mod:`.finetune_apply` (Apply to remaining images).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .background import BackgroundRun
from .finetune_apply import ApplyToRemaining
from .finetune_controls import FinetuneControls
from .finetune_models import FinetuneModels
from .finetune_result import FinetuneResults
from .finetune_run import FinetuneRun
from .finetune_source import FinetuneSource
from .finetune_work import ProgressSignals
from .model_events import model_events
from .scroll import ScrollPanel

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..models import ModelInfo
    from ..training.finetune import FinetuneResult
    from .finetune_pairs import LayerPair

__all__ = ["FinetuneWidget"]


class FinetuneWidget(
    FinetuneRun,
    FinetuneResults,
    ApplyToRemaining,
    FinetuneModels,
    FinetuneSource,
    FinetuneControls,
    BackgroundRun,
    ScrollPanel,
):
    """Dock widget: corrected layers (or a folder) + trained base model → a new fine-tuned model. Cancel stops at
    the next training step; nothing is saved."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._init_background()
        self._signals = ProgressSignals()  # no Qt parent: a worker may still emit while Qt destroys the widget
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
        self._build_controls()
        self._connect()

    def _connect(self) -> None:
        """Wire the controls to what they do and fill the lists (the base then follows the training data)."""
        self.base_combo.currentIndexChanged.connect(self._on_base_changed)
        self.base_combo.activated.connect(self._on_base_picked)
        self._fast_declined = False
        self._set_by_person: set[str] = set()  # "epochs", "lr": typed, so they no longer follow the recipe
        self._setting_recipe = False
        self.fast_check.clicked.connect(self._on_fast_clicked)
        self.fast_check.toggled.connect(self._follow_recipe)
        self.epochs_spin.valueChanged.connect(self._on_epochs_set)
        self.lr_spin.valueChanged.connect(self._on_lr_set)
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
