"""Training settings on their own, free of torch: the Fine-tune widget builds them on napari's GUI thread."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class TrainConfig:
    epochs: int = 60
    steps_per_epoch: int | None = None  # default: one pass over the training images
    #: stop after exactly this many optimiser steps (the last epoch may be partial); None: epochs x steps_per_epoch
    max_steps: int | None = None
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patch_size: int = 128
    # lighter than it could be: on Dataset 1 (150-step ablation) strong jitter cost 0.02 cytoplasm Dice
    scale_range: tuple[float, float] = (0.9, 1.12)
    colour_strength: float = 0.5
    #: free rotation + elastic deformation (:func:`~.augment.random_warp`); 0 = off
    deform: float = 0.0
    dice_weight: float = 1.0
    freeze: str = "none"  # "encoder" freezes the down path (fine-tuning with very few images)
    #: keep BatchNorm running statistics as they are: a few mixed-domain batches would otherwise overwrite the
    #: base domain's statistics (on Dataset 1 -> 2 this alone cost the base domain ~0.04 Dice)
    freeze_bn: bool = False
    seed: int = 0
    device: str = "auto"
    #: time budget: training stops at it; a run projected to overrun it (FAR_OVER, OVERRUN) switches its LR
    #: schedule to max(step, time) progress, so a slow machine still gets a fully annealed model (such a run is
    #: no longer bit-reproducible; one that fits stays on steps); with ``compile`` the clock starts after the
    #: first, compiling step
    max_minutes: float | None = None
    val_every: int = 1
    #: which state ``fit`` returns: "best" on validation, or "last" (validation only reported): with one or two
    #: validation images the choice is noisy (Dataset 2, 6 runs: last +0.007 cell Dice, -0.010 nucleus; RBC
    #: re-stained, 3 runs: -0.10 to +0.02 IoU; docs/finetuning.md)
    keep: str = "best"
    #: run the training step through ``torch.compile``: on this project's 2-core CPU a step is ~15 % faster after
    #: ~33 s of compiling (benchmarks/train_speed.py, docs/benchmarks.md), so it pays off after ~1000 steps; falls
    #: back to eager when the compiler cannot run (no C++ compiler, unsupported device)
    compile: bool = False
    #: fine-tuning: share of every batch drawn from the base domain's replay pool (when there is one)
    replay_fraction: float = 0.5
    #: WBC only: share of training crops that get synthetic red cells pasted around the white cell
    #: (:mod:`.red_cells`), so filled red cells touching it are learnt as background; 0 = off
    red_cells: float = 0.0
    #: decay of an exponential moving average of the weights (BatchNorm statistics included), which validation,
    #: checkpoint selection and the saved model use instead of the raw weights; 0 = off (the raw weights)
    ema: float = 0.0
    #: arithmetic of the forward pass: "auto" = mixed precision on GPUs (bf16 / fp16) and fp32 on CPUs; "bf16" =
    #: bfloat16 autocast on any device (on CPUs with AVX512-BF16 or AMX a step is faster; elsewhere slower);
    #: "fp32" = none. Weights and optimizer state stay fp32 in every case
    precision: str = "auto"
    #: keep activations and weights in channels-last (NHWC) layout, which oneDNN's CPU convolutions prefer
    channels_last: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunLength:
    """How much of its schedule a run did, and whether its time budget ended it: a run asked for N steps or
    epochs that the budget cut short must say so (it was silent, and ``--steps 200`` stopped at 70)."""

    steps_done: int = 0
    steps_planned: int = 0
    budget_s: float | None = None

    @property
    def cut_by_budget(self) -> bool:
        return self.budget_s is not None and self.steps_done < self.steps_planned

    def budget_note(self, unit: str = "s") -> str | None:
        """What a user reads when the budget ended the run (None otherwise), in the ``unit`` its setting counts
        in ("s" or "min"); each front end adds the setting that gives more time."""
        if not self.cut_by_budget or self.budget_s is None:
            return None
        budget = f"{self.budget_s:g} s" if unit == "s" else f"{self.budget_s / 60:g} min"
        return (
            f"the time budget of {budget} ended training after {self.steps_done} of {self.steps_planned} steps "
            "(the learning rate was still brought down within it)"
        )
